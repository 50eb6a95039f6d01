# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options -> a ``kubernetes.client.Configuration``, the way kubernetes.core resolves them.

Same option names and ``K8S_AUTH_*`` variables as kubernetes.core; the kubernetes client's own config loaders
read kubeconfigs and the in-cluster service account. Nothing here sends a request (an OIDC or GCP token
refresh inside the client's loader aside).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._kubeconfig_context import (
    default_kubeconfig,
    host_has_own_credentials,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._redact import is_inline_content

KUBERNETES_IMPORT_ERROR: str | None
try:
    import urllib3
    from kubernetes.client import Configuration
    from kubernetes.config import ConfigException, incluster_config, kube_config
except ImportError:
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()
else:
    KUBERNETES_IMPORT_ERROR = None

HAS_KUBERNETES: Final = KUBERNETES_IMPORT_ERROR is None

# Every request gets request_timeout seconds (connecting at most CONNECT_TIMEOUT_SECONDS of them), so a
# stopped or hanging API server fails a run within that time instead of stalling the play.
DEFAULT_REQUEST_TIMEOUT_SECONDS: Final = 20.0
CONNECT_TIMEOUT_SECONDS: Final = 10.0

# (option, environment variables in order of preference, value type), as kubernetes.core reads them:
# K8S_AUTH_<OPTION> first, then K8S_AUTH_<kubernetes client attribute>.
AUTH_ENV_FALLBACKS: Final[tuple[tuple[str, tuple[str, ...], str], ...]] = (
    ("kubeconfig", ("K8S_AUTH_KUBECONFIG",), "str"),
    ("context", ("K8S_AUTH_CONTEXT",), "str"),
    ("host", ("K8S_AUTH_HOST",), "str"),
    ("api_key", ("K8S_AUTH_API_KEY",), "str"),
    ("username", ("K8S_AUTH_USERNAME",), "str"),
    ("password", ("K8S_AUTH_PASSWORD",), "str"),
    ("validate_certs", ("K8S_AUTH_VALIDATE_CERTS", "K8S_AUTH_VERIFY_SSL"), "bool"),
    ("ca_cert", ("K8S_AUTH_CA_CERT", "K8S_AUTH_SSL_CA_CERT"), "str"),
    ("client_cert", ("K8S_AUTH_CLIENT_CERT", "K8S_AUTH_CERT_FILE"), "str"),
    ("client_key", ("K8S_AUTH_CLIENT_KEY", "K8S_AUTH_KEY_FILE"), "str"),
    ("proxy", ("K8S_AUTH_PROXY",), "str"),
    ("no_proxy", ("K8S_AUTH_NO_PROXY",), "str"),
    ("proxy_headers", (), "dict"),  # one variable per key: PROXY_HEADER_ENV below
    ("persist_config", ("K8S_AUTH_PERSIST_CONFIG",), "bool"),
    ("impersonate_user", ("K8S_AUTH_IMPERSONATE_USER",), "str"),
    ("impersonate_groups", ("K8S_AUTH_IMPERSONATE_GROUPS",), "list"),
    ("request_timeout", ("K8S_AUTH_REQUEST_TIMEOUT",), "str"),
)
AUTH_OPTION_NAMES: Final = tuple(option for option, _env, _type in AUTH_ENV_FALLBACKS)
# proxy_headers keys (urllib3.util.make_headers arguments, as in kubernetes.core) and their variables.
PROXY_HEADER_ENV: Final = {
    "basic_auth": "K8S_AUTH_PROXY_HEADERS_BASIC_AUTH",
    "proxy_basic_auth": "K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH",
    "user_agent": "K8S_AUTH_PROXY_HEADERS_USER_AGENT",
}

# Configuration attributes that plain auth options override after any kubeconfig / in-cluster load.
_CONFIGURATION_OVERRIDES: Final = (
    ("ca_cert", "ssl_ca_cert"),
    ("client_cert", "cert_file"),
    ("client_key", "key_file"),
    ("proxy", "proxy"),
    ("no_proxy", "no_proxy"),
)
_FALSE_STRINGS: Final = frozenset({"0", "false", "no", "off", "n", "f"})


def resolve_auth_options(params: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The auth options that are set, each from ``params`` or else from its ``K8S_AUTH_*`` variable(s)."""
    environ = os.environ if environ is None else environ
    resolved: dict[str, Any] = {}
    for option, env_names, value_type in AUTH_ENV_FALLBACKS:
        value = params.get(option)
        if option == "proxy_headers":
            value = _proxy_headers(value, environ)
        elif _is_unset(value):
            value = _from_environment(env_names, value_type, environ)
        if not _is_unset(value):
            resolved[option] = value
    return resolved


def _is_unset(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _proxy_headers(value: Any, environ: Mapping[str, str]) -> dict[str, str]:
    # Key by key, as kubernetes.core: a key given in the option wins over its variable.
    given = value if isinstance(value, Mapping) else {}
    if value is not None and not isinstance(value, Mapping):
        raise DarklaunchError(
            f"proxy_headers must be a dictionary with keys {', '.join(PROXY_HEADER_ENV)}", field="proxy_headers"
        )
    unknown = sorted(set(given) - set(PROXY_HEADER_ENV))
    if unknown:
        raise DarklaunchError(
            f"proxy_headers has unknown keys {', '.join(map(str, unknown))}: use {', '.join(PROXY_HEADER_ENV)}",
            field="proxy_headers",
        )
    headers: dict[str, str] = {}
    for key, env_name in PROXY_HEADER_ENV.items():
        chosen = given.get(key)
        if _is_unset(chosen):
            chosen = environ.get(env_name) or None
        if chosen is not None:
            headers[key] = str(chosen)
    return headers


def _from_environment(env_names: Sequence[str], value_type: str, environ: Mapping[str, str]) -> Any:
    for env_name in env_names:
        raw = environ.get(env_name)
        if raw:
            return _parse_env_value(raw, value_type)
    return None


def _parse_env_value(raw: str, value_type: str) -> Any:
    if value_type == "bool":
        return raw.strip().lower() not in _FALSE_STRINGS
    if value_type == "list":
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def request_timeout_seconds(value: Any) -> float:
    """The ``request_timeout`` option as seconds (default when unset); refused unless a positive number."""
    if _is_unset(value):
        return DEFAULT_REQUEST_TIMEOUT_SECONDS
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = 0.0
    if not 0 < seconds <= 3600 or isinstance(value, bool):
        raise DarklaunchError(
            f"request_timeout must be a number of seconds between 0 and 3600 (default "
            f"{DEFAULT_REQUEST_TIMEOUT_SECONDS:g}), not {value!r}",
            field="request_timeout",
        )
    return seconds


def kubernetes_missing_error() -> DarklaunchError:
    """The error for a host without the kubernetes library, worded by Ansible's ``missing_required_lib``."""
    return DarklaunchError(
        "the kubernetes Python library is required: "
        + missing_required_lib("kubernetes", reason="to talk to the Kubernetes API"),
        details={"exception": KUBERNETES_IMPORT_ERROR},
    )


def build_configuration(auth: Mapping[str, Any]) -> Any:
    """A fresh ``kubernetes.client.Configuration`` for resolved auth options (see ``resolve_auth_options``).

    Like kubernetes.core: a host with its own credentials needs no kubeconfig; otherwise the given
    kubeconfig / context, else ``KUBECONFIG`` or ``~/.kube/config``, else the in-cluster service account.
    Explicit options then override what was loaded.
    """
    if not HAS_KUBERNETES:
        raise kubernetes_missing_error()
    _require_existing_files(auth)
    configuration = Configuration()
    _load_base_configuration(configuration, auth)
    _apply_overrides(configuration, auth)
    return configuration


def _require_existing_files(auth: Mapping[str, Any]) -> None:
    # Checked up front: at connection time a missing file is only "[Errno 2] No such file or directory".
    for option in ("ca_cert", "client_cert", "client_key"):
        path = auth.get(option)
        if is_inline_content(path):
            # Never quoted back: pasted key material is a secret.
            raise DarklaunchError(
                f"{option} must be the path of a PEM file, not its content: write it to a file and give the path",
                field=option,
            )
        if path and not os.path.isfile(os.path.expanduser(str(path))):
            raise DarklaunchError(f"{option} {path} does not exist or is not a file", field=option)


def _load_base_configuration(configuration: Any, auth: Mapping[str, Any]) -> None:
    if host_has_own_credentials(auth):
        return
    kubeconfig = auth.get("kubeconfig")
    context = auth.get("context")
    persist = bool(auth.get("persist_config"))
    if kubeconfig is not None or context is not None:
        source = kubeconfig if kubeconfig is not None else default_kubeconfig()
        _load_kubeconfig(configuration, source, context, persist)
        return
    default_source = default_kubeconfig()
    if _kubeconfig_exists(default_source):
        _load_kubeconfig(configuration, default_source, None, persist)
        return
    try:
        _untyped(incluster_config).load_incluster_config(client_configuration=configuration)
    except ConfigException:
        if auth.get("host"):
            return  # a bare host (anonymous access, or certificates set below) is the user's explicit choice
        raise DarklaunchError(
            f"no Kubernetes credentials found: no kubeconfig at {default_source} and not running inside a "
            "cluster; set kubeconfig (or K8S_AUTH_KUBECONFIG), or host with api_key",
            field="kubeconfig",
        ) from None


def _untyped(loaders: Any) -> Any:
    # kubernetes.config ships partial type hints (its loaders are untyped); treat it as dynamic.
    return loaders


def _kubeconfig_exists(paths: str) -> bool:
    return any(os.path.exists(os.path.expanduser(path)) for path in paths.split(os.pathsep) if path)


def _load_kubeconfig(configuration: Any, source: Any, context: str | None, persist: bool) -> None:
    # Neither is quoted back: a kubeconfig's text (or a list holding it) carries its credentials.
    if is_inline_content(source):
        raise DarklaunchError(
            "kubeconfig is the text of a kubeconfig, not a path: give the path of the file, or the kubeconfig as "
            "a dictionary (parse the text with the from_yaml filter)",
            field="kubeconfig",
        )
    if not isinstance(source, (Mapping, str)):
        raise DarklaunchError(
            f"kubeconfig must be a path or a dictionary, not a {type(source).__name__}", field="kubeconfig"
        )
    where = "the kubeconfig dict" if isinstance(source, Mapping) else f"the kubeconfig {source}"
    if not isinstance(source, Mapping) and not _kubeconfig_exists(str(source)):
        raise DarklaunchError(f"{where} does not exist; set kubeconfig to an existing file", field="kubeconfig")
    try:
        if isinstance(source, Mapping):
            # A dictionary has no file to write a refreshed token back to: persist_config does not apply.
            _untyped(kube_config).load_kube_config_from_dict(
                config_dict=dict(source), context=context, client_configuration=configuration, persist_config=False
            )
        else:
            # persist_config: a token refreshed while loading (OIDC, GCP) is written back to the file, so the
            # next run does not start from a refresh token the identity provider has already replaced.
            _untyped(kube_config).load_kube_config(
                config_file=str(source), context=context, client_configuration=configuration, persist_config=persist
            )
    except Exception as err:  # the loader raises ConfigException, YAML and OS errors alike
        unknown_context = context is not None and context in str(err)
        in_context = f" with context {context}" if context else ""
        raise DarklaunchError(
            f"cannot use {where}{in_context}: {err}",
            field="context" if unknown_context else "kubeconfig",
        ) from err


def _apply_overrides(configuration: Any, auth: Mapping[str, Any]) -> None:
    if auth.get("host"):
        configuration.host = _normalise_host(str(auth["host"]))
    if auth.get("api_key"):
        # Replace, not merge: a kubeconfig token and its refresh hook would otherwise win over api_key.
        configuration.api_key = {"authorization": f"Bearer {auth['api_key']}"}
        configuration.api_key_prefix = {}
        configuration.refresh_api_key_hook = None
    if auth.get("username") and auth.get("password"):
        configuration.username = auth["username"]
        configuration.password = auth["password"]
    if auth.get("validate_certs") is not None:
        configuration.verify_ssl = bool(auth["validate_certs"])
    for option, attribute in _CONFIGURATION_OVERRIDES:
        if auth.get(option):
            setattr(configuration, attribute, auth[option])
    if auth.get("proxy_headers"):
        # Sent to the proxy only (on CONNECT for an https API server), as kubernetes.core does.
        configuration.proxy_headers = urllib3.util.make_headers(**auth["proxy_headers"])


def _normalise_host(host: str) -> str:
    host = host.strip().rstrip("/")
    return host if "://" in host else f"https://{host}"
