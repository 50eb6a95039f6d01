# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus connection options of the plugins that query it (the traffic lookup).

They pair with the lookup's options read in ``plugins/plugin_utils/_prometheus.py``.
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  prometheus_url:
    description:
      - Base URL of the Prometheus server that scrapes Traefik's metrics, for example V(http://prometheus:9090).
      - For Thanos, Cortex or Mimir, the base URL of their Prometheus-compatible query API (for Mimir
        V(http://mimir/prometheus)).
    type: str
    env:
      - name: PROMETHEUS_URL
  prometheus_token:
    description:
      - Bearer token sent to Prometheus (for example behind an authenticating proxy).
      - Mutually exclusive with O(prometheus_username) and O(prometheus_password).
    type: str
    env:
      - name: PROMETHEUS_TOKEN
  prometheus_username:
    description:
      - User name for HTTP basic authentication to Prometheus.
    type: str
    env:
      - name: PROMETHEUS_USERNAME
  prometheus_password:
    description:
      - Password for HTTP basic authentication to Prometheus, with O(prometheus_username).
    type: str
    env:
      - name: PROMETHEUS_PASSWORD
  prometheus_headers:
    description:
      - Extra HTTP headers sent with every Prometheus request, as a dict, for example
        an C(X-Scope-OrgID) header naming the tenant of a Mimir, Cortex or Thanos tenant.
      - In the environment variable, a JSON object.
      - Values of headers whose name suggests a credential (C(Authorization), C(X-Api-Key), anything with
        C(token), C(secret), C(password), C(key) or C(cookie)) are hidden from all output.
    type: raw
    env:
      - name: PROMETHEUS_HEADERS
  prometheus_timeout:
    description:
      - Seconds to wait for each Prometheus answer. Prometheus is asked to give up slightly earlier, so a
        heavy query ends with its own explanation.
    type: float
    default: 10
    env:
      - name: PROMETHEUS_TIMEOUT
  prometheus_validate_certs:
    description:
      - Whether to verify the TLS certificate of an V(https) O(prometheus_url).
    type: bool
    default: true
    env:
      - name: PROMETHEUS_VALIDATE_CERTS
  prometheus_ca_cert:
    description:
      - Path to the CA certificate (bundle) that signed Prometheus's certificate.
      - Paths of this and the other Prometheus file options are read on the controller; C(~) and
        environment variables in them are expanded, and an empty value means unset (as an AWX credential
        without that file injects it).
    type: str
    env:
      - name: PROMETHEUS_CA_CERT
  prometheus_client_cert:
    description:
      - Path to a PEM client certificate for Prometheus servers or proxies that require mutual TLS.
        It may also contain the private key.
    type: str
    env:
      - name: PROMETHEUS_CLIENT_CERT
  prometheus_client_key:
    description:
      - Path to the PEM private key of O(prometheus_client_cert), when it is in a file of its own.
    type: str
    env:
      - name: PROMETHEUS_CLIENT_KEY
  prometheus_proxy:
    description:
      - URL of an HTTP proxy to reach Prometheus through, for example V(http://proxy.example.com:3128);
        a user and password may be given in it (V(http://user:password@proxy:3128)), and are hidden from
        all output.
      - Without it, the proxy environment variables apply (E(http_proxy), E(https_proxy)), as for every
        Ansible HTTP client (C(ansible.module_utils.urls)); in both cases hosts listed in E(no_proxy) are
        reached directly.
    type: str
    env:
      - name: PROMETHEUS_PROXY
  prometheus_selector:
    description:
      - Label matchers added to every query, built-in and custom, for a Prometheus shared by several
        clusters or several Traefik deployments, for example V(cluster="prod-eu") or
        V(cluster="prod-eu",job="traefik"). A dict of label names and values means equality matchers.
    type: raw
    env:
      - name: PROMETHEUS_SELECTOR
"""
