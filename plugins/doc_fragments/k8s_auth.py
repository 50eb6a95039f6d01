# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes connection options, and the Traefik API group option (API_GROUP).

DOCUMENTATION pairs with ``plugins/module_utils/_argspec.py:auth_argument_spec``. Modules cannot declare
``env:``, so their descriptions name the variables; PLUGINS is the same set for the lookup, with ``env:``
entries. When an option lists two variables, the last one listed wins, as in Ansible's config system.
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig itself as a dictionary.
      - A dictionary's credentials (tokens, passwords, client keys and certificates, auth-provider and exec
        plugin secrets) are masked in everything the collection prints, at any verbosity, like O(api_key) and
        O(password) are.
      - Can also be set with the E(K8S_AUTH_KUBECONFIG) environment variable.
      - When neither this nor O(host) with credentials is given, E(KUBECONFIG) or C(~/.kube/config) is used,
        and when there is no such file, the service account of the pod the task runs in.
    type: raw
  context:
    description:
      - The kubeconfig context to use; the kubeconfig's current context when omitted.
      - Can also be set with the E(K8S_AUTH_CONTEXT) environment variable.
    type: str
  host:
    description:
      - URL of the Kubernetes API server, for example V(https://k8s.example.com:6443).
      - Together with O(api_key), O(username) and O(password), or O(client_cert) and O(client_key), no kubeconfig
        is read at all; otherwise it overrides the server of the kubeconfig in use.
      - Can also be set with the E(K8S_AUTH_HOST) environment variable.
    type: str
  api_key:
    description:
      - Bearer token to authenticate with, for example a service account token.
      - Can also be set with the E(K8S_AUTH_API_KEY) environment variable.
    type: str
  username:
    description:
      - User name for HTTP basic authentication (only for API servers or proxies that still accept it).
      - Can also be set with the E(K8S_AUTH_USERNAME) environment variable.
    type: str
  password:
    description:
      - Password for HTTP basic authentication, with O(username).
      - Can also be set with the E(K8S_AUTH_PASSWORD) environment variable.
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate. Defaults to the kubeconfig's setting, else V(true).
      - Prefer O(ca_cert) over switching verification off.
      - Can also be set with the E(K8S_AUTH_VALIDATE_CERTS) or E(K8S_AUTH_VERIFY_SSL) environment variable.
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to the CA certificate (bundle) that signed the API server's certificate.
      - Can also be set with the E(K8S_AUTH_CA_CERT) or E(K8S_AUTH_SSL_CA_CERT) environment variable.
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate to authenticate with, together with O(client_key).
      - Can also be set with the E(K8S_AUTH_CLIENT_CERT) or E(K8S_AUTH_CERT_FILE) environment variable.
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the private key of O(client_cert).
      - Can also be set with the E(K8S_AUTH_CLIENT_KEY) or E(K8S_AUTH_KEY_FILE) environment variable.
    type: path
    aliases: [key_file]
  proxy:
    description:
      - URL of an HTTP(S) or SOCKS proxy to reach the API server through.
      - Can also be set with the E(K8S_AUTH_PROXY) environment variable.
    type: str
  no_proxy:
    description:
      - Comma-separated hosts, domains or networks to reach without O(proxy).
      - Can also be set with the E(K8S_AUTH_NO_PROXY) environment variable.
    type: str
  proxy_headers:
    description:
      - Headers sent to O(proxy) (in the C(CONNECT) request for an V(https) API server), built as
        C(urllib3.util.make_headers) builds them. Ignored without O(proxy).
      - The values of O(proxy_headers.basic_auth) and O(proxy_headers.proxy_basic_auth) are masked in
        everything the collection prints.
    type: dict
    suboptions:
      proxy_basic_auth:
        description:
          - V(user:password) for the C(Proxy-Authorization) header (basic authentication to the proxy).
          - Can also be set with the E(K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH) environment variable.
        type: str
      basic_auth:
        description:
          - V(user:password) for an C(Authorization) header sent to the proxy (for proxies that expect it there).
          - Can also be set with the E(K8S_AUTH_PROXY_HEADERS_BASIC_AUTH) environment variable.
        type: str
      user_agent:
        description:
          - C(User-Agent) header sent to the proxy, for example V(ops-automation/1.0).
          - Can also be set with the E(K8S_AUTH_PROXY_HEADERS_USER_AGENT) environment variable.
        type: str
  persist_config:
    description:
      - Whether a token that the kubernetes client refreshes while loading a kubeconfig file (an OIDC
        C(auth-provider)'s id-token and refresh-token, a GCP access token) is written back to that file.
      - Identity providers that rotate refresh tokens invalidate the old one on use, so without this the next
        run starts from a refresh token that no longer works.
      - Only for a kubeconfig file; a kubeconfig given as a dictionary has nowhere to be written back to.
        Defaults to V(false).
      - Can also be set with the E(K8S_AUTH_PERSIST_CONFIG) environment variable.
    type: bool
  impersonate_user:
    description:
      - User name to act as (sent as the C(Impersonate-User) header); the credentials need the C(impersonate) verb.
      - Can also be set with the E(K8S_AUTH_IMPERSONATE_USER) environment variable.
    type: str
  impersonate_groups:
    description:
      - Groups to act as (one C(Impersonate-Group) header each).
      - Can also be set with the E(K8S_AUTH_IMPERSONATE_GROUPS) environment variable, comma-separated
        (for example V(team-a,viewers)).
    type: list
    elements: str
  request_timeout:
    description:
      - Seconds each request to the Kubernetes API may take (connecting included) before the task fails.
        Defaults to 20.
      - A refused connection is tried once more; a request that got no answer is never repeated, because the
        API may have applied it.
      - When the API stops answering between two writes, the task fails within about this time and its message
        says which writes were made, what state the route is in, and that a rerun finishes the change.
      - Can also be set with the E(K8S_AUTH_REQUEST_TIMEOUT) environment variable. Not a C(kubernetes.core)
        option.
    type: float
requirements:
  - kubernetes (the Python client library) on the host the module runs on
notes:
  - The option names and E(K8S_AUTH_*) variables are those of the C(kubernetes.core) collection, so AWX
    Kubernetes credentials work unchanged; C(kubernetes.core) itself is not needed.
  - A C(module_defaults) block for C(group/kubernetes.core.k8s) does not reach these modules; give the same
    options under C(group/darklaunch.traefik.traefik) (the collection's action group, see meta/runtime.yml).
  - Modules run where the task runs, so files named here and the environment variables are read on that host.
"""

    PLUGINS = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig itself as a dictionary.
      - A dictionary's credentials (tokens, passwords, client keys and certificates, auth-provider and exec
        plugin secrets) are masked in everything the collection prints, at any verbosity, like O(api_key) and
        O(password) are.
      - When neither this nor O(host) with credentials is given, E(KUBECONFIG) or C(~/.kube/config) is used,
        and when there is no such file, the service account of the pod Ansible runs in.
    type: raw
    env:
      - name: K8S_AUTH_KUBECONFIG
  context:
    description:
      - The kubeconfig context to use; the kubeconfig's current context when omitted.
    type: str
    env:
      - name: K8S_AUTH_CONTEXT
  host:
    description:
      - URL of the Kubernetes API server, for example V(https://k8s.example.com:6443).
      - Together with O(api_key), O(username) and O(password), or O(client_cert) and O(client_key), no kubeconfig
        is read at all; otherwise it overrides the server of the kubeconfig in use.
    type: str
    env:
      - name: K8S_AUTH_HOST
  api_key:
    description:
      - Bearer token to authenticate with, for example a service account token.
    type: str
    env:
      - name: K8S_AUTH_API_KEY
  username:
    description:
      - User name for HTTP basic authentication (only for API servers or proxies that still accept it).
    type: str
    env:
      - name: K8S_AUTH_USERNAME
  password:
    description:
      - Password for HTTP basic authentication, with O(username).
    type: str
    env:
      - name: K8S_AUTH_PASSWORD
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate. Defaults to the kubeconfig's setting, else V(true).
      - Prefer O(ca_cert) over switching verification off.
    type: bool
    aliases: [verify_ssl]
    env:
      - name: K8S_AUTH_VERIFY_SSL
      - name: K8S_AUTH_VALIDATE_CERTS
  ca_cert:
    description:
      - Path to the CA certificate (bundle) that signed the API server's certificate.
    type: path
    aliases: [ssl_ca_cert]
    env:
      - name: K8S_AUTH_SSL_CA_CERT
      - name: K8S_AUTH_CA_CERT
  client_cert:
    description:
      - Path to a client certificate to authenticate with, together with O(client_key).
    type: path
    aliases: [cert_file]
    env:
      - name: K8S_AUTH_CERT_FILE
      - name: K8S_AUTH_CLIENT_CERT
  client_key:
    description:
      - Path to the private key of O(client_cert).
    type: path
    aliases: [key_file]
    env:
      - name: K8S_AUTH_KEY_FILE
      - name: K8S_AUTH_CLIENT_KEY
  proxy:
    description:
      - URL of an HTTP(S) or SOCKS proxy to reach the API server through.
    type: str
    env:
      - name: K8S_AUTH_PROXY
  no_proxy:
    description:
      - Comma-separated hosts, domains or networks to reach without O(proxy).
    type: str
    env:
      - name: K8S_AUTH_NO_PROXY
  proxy_headers:
    description:
      - Headers sent to O(proxy) (in the C(CONNECT) request for an V(https) API server), a dictionary with the
        keys C(proxy_basic_auth) (V(user:password) for the C(Proxy-Authorization) header), C(basic_auth)
        (V(user:password) for an C(Authorization) header sent to the proxy) and C(user_agent). Ignored without
        O(proxy).
      - Each key can also be set with its environment variable E(K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH),
        E(K8S_AUTH_PROXY_HEADERS_BASIC_AUTH), E(K8S_AUTH_PROXY_HEADERS_USER_AGENT).
      - The credentials in it are masked in everything the lookup prints.
    type: dict
  persist_config:
    description:
      - Whether a token that the kubernetes client refreshes while loading a kubeconfig file (an OIDC
        C(auth-provider)'s id-token and refresh-token, a GCP access token) is written back to that file.
      - Only for a kubeconfig file. Defaults to V(false).
    type: bool
    env:
      - name: K8S_AUTH_PERSIST_CONFIG
  impersonate_user:
    description:
      - User name to act as (sent as the C(Impersonate-User) header); the credentials need the C(impersonate) verb.
    type: str
    env:
      - name: K8S_AUTH_IMPERSONATE_USER
  impersonate_groups:
    description:
      - Groups to act as (one C(Impersonate-Group) header each); comma-separated in the environment variable.
    type: list
    elements: str
    env:
      - name: K8S_AUTH_IMPERSONATE_GROUPS
  request_timeout:
    description:
      - Seconds each request to the Kubernetes API may take (connecting included) before the lookup fails.
        Defaults to 20.
      - Not a C(kubernetes.core) option.
    type: float
    env:
      - name: K8S_AUTH_REQUEST_TIMEOUT
requirements:
  - kubernetes (the Python client library) on the Ansible controller
notes:
  - The option names and E(K8S_AUTH_*) variables are those of the C(kubernetes.core) collection;
    C(kubernetes.core) itself is not needed.
  - Lookups run on the controller, so files named here and the environment variables are read there.
"""

    API_GROUP = r"""
options:
  api_group:
    description:
      - API group of the Traefik CRDs.
      - When omitted, the first request tries C(traefik.io) and, if the cluster does not serve it, the pre-v3
        C(traefik.containo.us); setting it saves that second request on clusters with only the older group.
    type: str
    choices: [traefik.io, traefik.containo.us]
"""
