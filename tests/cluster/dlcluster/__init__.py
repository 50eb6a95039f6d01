"""Local test cluster: embedded etcd + kube-apiserver, Traefik, Prometheus and HTTP backends.

Entry points are ``tests/cluster/up`` and ``tests/cluster/down``; pytest uses the same code through
``tests/integration/conftest.py``. Everything listens on loopback only.
"""
