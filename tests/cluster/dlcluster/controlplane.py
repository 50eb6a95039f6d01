"""Embedded etcd + kube-apiserver (one process, tests/cluster/controlplane)."""

from __future__ import annotations

from pathlib import Path

import yaml

from .build import ensure_binary
from .config import InstanceConfig
from .kube import Kube
from .pki import read_tokens, tokens_file
from .procs import ProcessTable, require_alive, wait_until

NAME = "controlplane"

# One event per request (ResponseComplete), Metadata only. Traefik's own list/watch traffic is
# dropped so the log shows what clients (the collection, tests) did to Traefik objects.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [
        {"level": "None", "users": ["traefik", "system:apiserver"]},
        {"level": "None", "nonResourceURLs": ["*"]},
        {
            "level": "Metadata",
            "resources": [
                {"group": "traefik.io"},
                {"group": "traefik.containo.us"},
                {"group": "gateway.networking.k8s.io"},
                {"group": "", "resources": ["services", "namespaces", "configmaps"]},
            ],
        },
        {"level": "None"},
    ],
}


def apiserver_args(cfg: InstanceConfig) -> list[str]:
    pki = cfg.pki_dir
    audit_policy = cfg.state_dir / "audit-policy.yaml"
    audit_policy.write_text(yaml.safe_dump(AUDIT_POLICY, sort_keys=False))
    return [
        f"--etcd-servers=http://127.0.0.1:{cfg.ports['etcd_client']}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={cfg.ports['apiserver']}",
        f"--cert-dir={pki / 'apiserver-generated'}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--token-auth-file={tokens_file(cfg)}",
        "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-cluster-ip-range=10.0.0.0/24",
        # No controller-manager, no kubelets: nothing may wait for them.
        "--endpoint-reconciler-type=none",
        "--disable-admission-plugins=ServiceAccount",
        "--enable-priority-and-fairness=false",
        "--profiling=false",
        f"--audit-policy-file={audit_policy}",
        f"--audit-log-path={cfg.audit_log}",
        "--audit-log-format=json",
        "--audit-log-mode=blocking",
        "--audit-log-maxsize=0",
    ]


def start(cfg: InstanceConfig, procs: ProcessTable) -> None:
    binary = ensure_binary()
    cfg.etcd_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(binary),
        f"--etcd-dir={cfg.etcd_dir}",
        f"--etcd-client-url=http://127.0.0.1:{cfg.ports['etcd_client']}",
        f"--etcd-peer-url=http://127.0.0.1:{cfg.ports['etcd_peer']}",
        "--",
        *apiserver_args(cfg),
    ]
    procs.start(NAME, argv)


def admin_client(cfg: InstanceConfig) -> Kube:
    ca = Path(cfg.pki_dir / "ca.crt").read_text()
    return Kube(cfg.apiserver_url, read_tokens(cfg)["admin"], ca, timeout=10)


def is_ready(cfg: InstanceConfig) -> bool:
    try:
        return bool(admin_client(cfg).request("GET", "/readyz") == "ok")
    except Exception:
        return False


def wait_ready(cfg: InstanceConfig, procs: ProcessTable, timeout: float = 90.0) -> None:
    def ready() -> bool:
        require_alive(procs, NAME)
        return is_ready(cfg)

    wait_until("kube-apiserver /readyz", ready, timeout, on_timeout=lambda: procs.log_tail(NAME))
