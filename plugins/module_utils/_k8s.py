# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's only door to the Kubernetes API.

Authentication follows kubernetes.core (same option names, same ``K8S_AUTH_*`` variables) and uses the
kubernetes client's own config loaders. Requests go straight to the known resource paths through the
client's urllib3 pool: no discovery, no model classes, the API's JSON comes back as plain dicts. Every
API failure leaves this module as a ``DarklaunchError`` whose message says what to fix.
"""

from __future__ import annotations

import json
import os
import re
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import quote, urlencode

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import (
    ApiUnavailableError,
    ConflictError,
    DarklaunchError,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._redact import is_inline_content

KUBERNETES_IMPORT_ERROR: str | None
try:
    import kubernetes
    import urllib3
    from kubernetes.client.exceptions import ApiException
    from urllib3._collections import HTTPHeaderDict
except ImportError:
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()
else:
    KUBERNETES_IMPORT_ERROR = None

HAS_KUBERNETES: Final = KUBERNETES_IMPORT_ERROR is None

KubeObject = dict[str, Any]
KubeObjects = list[KubeObject]
HeaderPairs = list[tuple[str, str]]

TRAEFIK_GROUPS: Final = ("traefik.io", "traefik.containo.us")
TRAEFIK_VERSION: Final = "v1alpha1"
CRDS_MISSING_MESSAGE: Final = (
    "the Traefik CRDs are not installed (no traefikservices in traefik.io or traefik.containo.us); "
    "install them or set api_group"
)
USER_AGENT: Final = "darklaunch.traefik"
FIELD_MANAGER: Final = "darklaunch.traefik"
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
    ("impersonate_user", ("K8S_AUTH_IMPERSONATE_USER",), "str"),
    ("impersonate_groups", ("K8S_AUTH_IMPERSONATE_GROUPS",), "list"),
    ("request_timeout", ("K8S_AUTH_REQUEST_TIMEOUT",), "str"),
)
AUTH_OPTION_NAMES: Final = tuple(option for option, _env, _type in AUTH_ENV_FALLBACKS)

# Configuration attributes that plain auth options override after any kubeconfig / in-cluster load.
_CONFIGURATION_OVERRIDES: Final = (
    ("ca_cert", "ssl_ca_cert"),
    ("client_cert", "cert_file"),
    ("client_key", "key_file"),
    ("proxy", "proxy"),
    ("no_proxy", "no_proxy"),
)
_FALSE_STRINGS: Final = frozenset({"0", "false", "no", "off", "n", "f"})
_FORBIDDEN_PATTERN: Final = re.compile(r'User "(?P<user>[^"]*)" cannot (?P<verb>\S+)')


# --------------------------------------------------------------------------------------------------
# Resource kinds


@dataclass(frozen=True)
class _Kind:
    name: str
    plural: str
    traefik: bool
    namespaced: bool = True


_KINDS: Final = {
    kind.name: kind
    for kind in (
        _Kind("TraefikService", "traefikservices", traefik=True),
        _Kind("IngressRoute", "ingressroutes", traefik=True),
        _Kind("Middleware", "middlewares", traefik=True),
        _Kind("Service", "services", traefik=False),
        _Kind("Namespace", "namespaces", traefik=False, namespaced=False),
    )
}


def _kind(name: str) -> _Kind:
    try:
        return _KINDS[name]
    except KeyError:
        raise ValueError(f"unsupported kind {name!r}; expected one of {', '.join(_KINDS)}") from None


@dataclass(frozen=True)
class ApiCall:
    """What a request was trying to do, so an API error can be explained in those terms."""

    verb: str  # Kubernetes RBAC verb: get | list | create | patch | delete
    kind: str
    resource: str  # RBAC resource: "traefikservices.traefik.io", "services"
    namespace: str | None
    name: str | None = None
    crd: bool = False
    json_patch_test: bool = False  # the body is a JSON Patch with a `test` op

    @property
    def label(self) -> str:
        """``TraefikService production/api-mirror``, for messages."""
        where = f"{self.namespace}/{self.name}" if self.namespace else f"{self.name}"
        return f"{self.kind} {where}" if self.name else self.kind


# --------------------------------------------------------------------------------------------------
# Authentication


def resolve_auth_options(params: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The auth options that are set, each from ``params`` or else from its ``K8S_AUTH_*`` variable."""
    environ = os.environ if environ is None else environ
    resolved: dict[str, Any] = {}
    for option, env_names, value_type in AUTH_ENV_FALLBACKS:
        value = params.get(option)
        if _is_unset(value):
            value = _from_environment(env_names, value_type, environ)
        if not _is_unset(value):
            resolved[option] = value
    return resolved


def _is_unset(value: Any) -> bool:
    return value is None or value == "" or value == []


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


def build_configuration(auth: Mapping[str, Any]) -> Any:
    """A fresh ``kubernetes.client.Configuration`` for resolved auth options (see ``resolve_auth_options``).

    Like kubernetes.core: a host with its own credentials needs no kubeconfig; otherwise the given
    kubeconfig / context, else ``KUBECONFIG`` or ``~/.kube/config``, else the in-cluster service account.
    Explicit options then override what was loaded.
    """
    _require_existing_files(auth)
    configuration = kubernetes.client.Configuration()
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
    if _host_has_own_credentials(auth):
        return
    kubeconfig = auth.get("kubeconfig")
    context = auth.get("context")
    if kubeconfig is not None or context is not None:
        _load_kubeconfig(configuration, kubeconfig if kubeconfig is not None else _default_kubeconfig(), context)
        return
    default_kubeconfig = _default_kubeconfig()
    if _kubeconfig_exists(default_kubeconfig):
        _load_kubeconfig(configuration, default_kubeconfig, None)
        return
    try:
        _config_loaders().load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException:
        if auth.get("host"):
            return  # a bare host (anonymous access, or certificates set below) is the user's explicit choice
        raise DarklaunchError(
            f"no Kubernetes credentials found: no kubeconfig at {default_kubeconfig} and not running inside a "
            "cluster; set kubeconfig (or K8S_AUTH_KUBECONFIG), or host with api_key",
            field="kubeconfig",
        ) from None


def _config_loaders() -> Any:
    # kubernetes.config ships partial type hints (its loaders are untyped); treat it as dynamic.
    return kubernetes.config


def _host_has_own_credentials(auth: Mapping[str, Any]) -> bool:
    # kubernetes.core skips the kubeconfig for host+api_key and host+username+password; a host with a
    # client certificate is just as complete, and loading a kubeconfig there would send its token elsewhere.
    if not auth.get("host"):
        return False
    return bool(
        auth.get("api_key")
        or (auth.get("username") and auth.get("password"))
        or (auth.get("client_cert") and auth.get("client_key"))
    )


def _default_kubeconfig() -> str:
    # Read at call time: the client's KUBE_CONFIG_DEFAULT_LOCATION is frozen when kubernetes is imported.
    return os.environ.get("KUBECONFIG") or "~/.kube/config"


def _kubeconfig_exists(paths: str) -> bool:
    return any(os.path.exists(os.path.expanduser(path)) for path in paths.split(os.pathsep) if path)


def _load_kubeconfig(configuration: Any, source: Any, context: str | None) -> None:
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
            _config_loaders().load_kube_config_from_dict(
                config_dict=dict(source), context=context, client_configuration=configuration, persist_config=False
            )
        else:
            _config_loaders().load_kube_config(
                config_file=str(source), context=context, client_configuration=configuration, persist_config=False
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


def _normalise_host(host: str) -> str:
    host = host.strip().rstrip("/")
    return host if "://" in host else f"https://{host}"


# --------------------------------------------------------------------------------------------------
# Error translation


def translate_api_error(error: ApiException, call: ApiCall, *, host: str | None = None) -> DarklaunchError:
    """Turn a kubernetes ``ApiException`` into a message about ``call`` that says what to do."""
    status = int(error.status or 0)
    body = _status_body(error)
    server_message = str(body.get("message") or error.reason or "").strip()
    details = {"api_status": status, "api_reason": body.get("reason") or error.reason, "api_message": server_message}
    api = f"the Kubernetes API at {host}" if host else "the Kubernetes API"
    if status == 401:
        return DarklaunchError(
            f"{api} rejected the credentials (401 Unauthorized): check api_key, username/password or the "
            "kubeconfig user (a token may have expired)",
            details=details,
        )
    if status == 403:
        return _forbidden(call, server_message, details)
    if status == 404:
        return _not_found(call, body, details)
    if status == 409:
        return _conflict(call, body, details)
    if status == 410:
        return DarklaunchError(
            f"listing {call.resource} took too long and the API server expired the list (410 Gone); retry",
            details=details,
        )
    if status == 422:
        return _invalid(call, body, server_message, details)
    return DarklaunchError(
        f"{api} failed to {call.verb} {_target(call)}: {status} {error.reason or ''} {server_message}".rstrip(),
        details=details,
    )


def _status_body(error: ApiException) -> dict[str, Any]:
    raw = getattr(error, "body", None)
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {"message": str(raw).strip()}
    return parsed if isinstance(parsed, dict) else {}


def _target(call: ApiCall) -> str:
    named = f' "{call.name}"' if call.name else ""
    if call.namespace:
        return f'{call.resource}{named} in namespace "{call.namespace}"'
    if call.kind == "Namespace":
        return f"{call.resource}{named}"
    return f"{call.resource}{named} in all namespaces"


def _forbidden(call: ApiCall, server_message: str, details: dict[str, Any]) -> DarklaunchError:
    match = _FORBIDDEN_PATTERN.search(server_message)
    user = f'user "{match.group("user")}"' if match else "the current user"
    if match and match.group("verb") == "impersonate":
        return DarklaunchError(
            f"{user} may not impersonate as requested ({server_message}); grant it the impersonate verb "
            "or unset impersonate_user / impersonate_groups",
            field="impersonate_user",
            details=details,
        )
    message = f"{user} may not {call.verb} {_target(call)}"
    if call.verb == "list" and call.namespace is None and call.kind != "Namespace":
        return DarklaunchError(
            f"{message}; set namespace to look in a single namespace, or grant list on {call.resource} "
            "cluster-wide (ClusterRole)",
            field="namespace",
            details=details,
        )
    if "system:anonymous" in user:
        return DarklaunchError(f"{message}; the request was anonymous: set api_key or a kubeconfig", details=details)
    return DarklaunchError(f"{message}; {_grant_hint(call)}", details=details)


def _grant_hint(call: ApiCall) -> str:
    """The RBAC rule that would allow ``call``, in the words of a Role (docs/rbac/ lists them all)."""
    resource, _dot, group = call.resource.partition(".")
    scope = f'a Role in namespace "{call.namespace}"' if call.namespace else "a ClusterRole"
    return (
        f'grant it with {scope}: apiGroups ["{group}"], resources [{resource}], verbs [{call.verb}] '
        "(see docs/rbac in the darklaunch.traefik collection)"
    )


def _not_found(call: ApiCall, body: Mapping[str, Any], details: dict[str, Any]) -> DarklaunchError:
    status_details = body.get("details") or {}
    if status_details.get("kind") == "namespaces" and call.kind != "Namespace":
        return DarklaunchError(
            f'namespace "{status_details.get("name") or call.namespace}" does not exist',
            field="namespace",
            details=details,
        )
    object_missing = call.name is not None and status_details.get("name") == call.name
    if call.crd and not object_missing:
        group = call.resource.partition(".")[2]
        return DarklaunchError(
            f"the Traefik CRDs are not installed (no {call.resource.partition('.')[0]} in {group}); "
            "install them or set api_group",
            field="api_group",
            details=details,
        )
    if call.verb in ("patch", "delete"):
        return ConflictError(f"{call.label} was deleted since it was read; re-read it and retry", details=details)
    return DarklaunchError(f"{call.label} was not found", details=details)


def _conflict(call: ApiCall, body: Mapping[str, Any], details: dict[str, Any]) -> DarklaunchError:
    if body.get("reason") == "AlreadyExists":
        return ConflictError(f"{call.label} already exists: it was created since it was read", details=details)
    return ConflictError(f"{call.label} changed since it was read; re-read it and retry", details=details)


def _invalid(call: ApiCall, body: Mapping[str, Any], server_message: str, details: dict[str, Any]) -> DarklaunchError:
    causes = (body.get("details") or {}).get("causes") or []
    # kube-apiserver answers a JSON Patch that no longer applies (a failed `test` op, a path gone) with a
    # bare 422 and no causes; a schema violation lists its causes.
    if call.json_patch_test and not causes:
        return ConflictError(f"{call.label} changed since it was read; re-read it and retry", details=details)
    if causes:
        details = {**details, "api_causes": causes}
    return DarklaunchError(f"the API server rejected {call.label}: {server_message}", details=details)


def describe_conflict(label: str, read_version: str | None, current: Mapping[str, Any] | None) -> str:
    """Who changed what since ``read_version``, from the object as it is now (``None``: deleted)."""
    if current is None:
        return f"{label} was deleted since it was read; re-read it and retry"
    metadata = current.get("metadata") or {}
    now_version = metadata.get("resourceVersion")
    versions = f"resourceVersion {read_version} -> {now_version}" if read_version else f"now {now_version}"
    writer = _last_writer(metadata.get("managedFields") or [])
    verb = "changed since it was read" if read_version else "already exists: it was created since it was read"
    return f"{label} {verb} ({versions}{'; ' + writer if writer else ''}); re-read it and retry"


def _last_writer(managed_fields: Sequence[Mapping[str, Any]]) -> str:
    entries = [entry for entry in managed_fields if entry.get("time")]
    if not entries:
        return ""
    latest = max(entries, key=lambda entry: str(entry["time"]))
    paths = _field_paths(latest.get("fieldsV1") or {})
    owned = f", owning {', '.join(paths)}" if paths else ""
    return f'last written by "{latest.get("manager")}" ({latest.get("operation")}) at {latest["time"]}{owned}'


def _field_paths(fields: Mapping[str, Any], prefix: str = "", depth: int = 2) -> list[str]:
    """``{"f:spec": {"f:mirroring": {...}}}`` -> ``["spec.mirroring"]``, cut at ``depth`` levels."""
    paths: list[str] = []
    for key, sub_fields in fields.items():
        if not key.startswith("f:"):
            continue
        path = f"{prefix}{key[2:]}"
        if depth > 1 and isinstance(sub_fields, Mapping) and any(k.startswith("f:") for k in sub_fields):
            paths.extend(_field_paths(sub_fields, f"{path}.", depth - 1))
        else:
            paths.append(path)
    return paths


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


def _connection_error(
    error: Exception, host: str, proxy: str | None, request: str = "", timeout: float | None = None
) -> DarklaunchError:
    reason = getattr(error, "reason", None) or error
    text = str(reason)
    details: dict[str, Any] = {"api_error": text}
    if isinstance(reason, (urllib3.exceptions.SSLError, OSError)) and _looks_like_tls(text):
        return DarklaunchError(
            f"TLS error talking to the Kubernetes API at {host}: {text}. Set ca_cert to the CA that signed the "
            "API server certificate (or fix certificate-authority in the kubeconfig), check client_cert / "
            "client_key, or set validate_certs: false to skip verification",
            field="ca_cert",
            details=details,
        )
    if isinstance(reason, urllib3.exceptions.ProxyError) and proxy:
        return DarklaunchError(
            f"cannot reach the Kubernetes API at {host} through the proxy {proxy}: {text}; check proxy",
            field="proxy",
            details=details,
        )
    # A request that never got a connection was not sent; after that, the API may have acted on it.
    sent = not isinstance(reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError))
    details["request_sent"] = sent
    if request:
        details["request"] = request
    # NewConnectionError subclasses ConnectTimeoutError, so only a timeout that is not a refusal is one.
    if isinstance(reason, urllib3.exceptions.TimeoutError) and not isinstance(
        reason, urllib3.exceptions.NewConnectionError
    ):
        within = f" within {timeout:g} s (request_timeout)" if timeout else " in time"
        return ApiUnavailableError(
            f"the Kubernetes API at {host} did not answer {request or 'a request'}{within}: {text}. "
            "Check that the API server is up and reachable, or raise request_timeout if it is only slow",
            request_sent=sent,
            field="request_timeout",
            details=details,
        )
    return ApiUnavailableError(
        f"cannot connect to the Kubernetes API at {host}: {text}. Check host (K8S_AUTH_HOST) or the server of "
        "the kubeconfig / context in use" + (f" (the request was {request})" if request else ""),
        request_sent=sent,
        field="host",
        details=details,
    )


def _looks_like_tls(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in ("ssl", "certificate", "tls", "wrong version number", "handshake"))


def kubernetes_missing_error() -> DarklaunchError:
    """The error for a host without the kubernetes library, worded by Ansible's ``missing_required_lib``."""
    return DarklaunchError(
        "the kubernetes Python library is required: "
        + missing_required_lib("kubernetes", reason="to talk to the Kubernetes API"),
        details={"exception": KUBERNETES_IMPORT_ERROR},
    )


# --------------------------------------------------------------------------------------------------
# The client


class KubeClient:
    """Reads and writes the few resources the collection needs, as the API's own JSON dicts."""

    def __init__(
        self,
        api_client: Any,
        *,
        impersonate_user: str | None = None,
        impersonate_groups: Iterable[str] = (),
        api_group: str | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self._api_client = api_client
        self._configuration = api_client.configuration
        self._pool = api_client.rest_client.pool_manager
        self._host: str = str(self._configuration.host).rstrip("/")
        self._impersonate_user = impersonate_user
        self._impersonate_groups = tuple(impersonate_groups)
        self._traefik_group: str | None = None
        self._request_timeout = request_timeout
        self._timeout = urllib3.Timeout(connect=min(CONNECT_TIMEOUT_SECONDS, request_timeout), read=request_timeout)
        # A refused connection is tried once more (an API server restarting); a request that was sent is
        # never repeated: a read that timed out would take the whole timeout again, and a write may have
        # been applied.
        self._retries = urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=False, backoff_factor=0.5)
        self._write_count = 0
        if api_group not in (None, "", "auto"):
            self.traefik_group(api_group)
        if not self._configuration.verify_ssl:
            # The user switched verification off on purpose; one warning per request is noise.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> KubeClient:
        """A client from module / lookup options (kubernetes.core names; ``api_group`` is honoured too)."""
        if not HAS_KUBERNETES:
            raise kubernetes_missing_error()
        auth = resolve_auth_options(params)
        request_timeout = request_timeout_seconds(auth.get("request_timeout"))
        configuration = build_configuration(auth)
        return cls(
            kubernetes.client.ApiClient(configuration),
            impersonate_user=auth.get("impersonate_user"),
            impersonate_groups=auth.get("impersonate_groups") or (),
            api_group=params.get("api_group"),
            request_timeout=request_timeout,
        )

    @property
    def api_client(self) -> Any:
        """The underlying ``kubernetes.client.ApiClient``."""
        return self._api_client

    @property
    def configuration(self) -> Any:
        """The ``kubernetes.client.Configuration`` in use."""
        return self._configuration

    @property
    def host(self) -> str:
        return self._host

    @property
    def request_timeout(self) -> float:
        """Seconds each request to the API may take."""
        return self._request_timeout

    @property
    def write_count(self) -> int:
        """Writes (create, patch, delete) issued by this client, successful or not."""
        return self._write_count

    def close(self) -> None:
        self._pool.clear()

    # -- API group -------------------------------------------------------------------------------

    def traefik_group(self, requested: str | None = None) -> str:
        """The Traefik API group to use: ``requested`` if given, else the first one the cluster serves."""
        if requested not in (None, "", "auto"):
            if requested not in TRAEFIK_GROUPS:
                raise DarklaunchError(
                    f"api_group must be one of {', '.join(TRAEFIK_GROUPS)} or auto, not {requested}",
                    field="api_group",
                )
            self._traefik_group = requested
        if self._traefik_group is None:
            self._traefik_group = self._detect_traefik_group()
        return self._traefik_group

    def _detect_traefik_group(self) -> str:
        for group in TRAEFIK_GROUPS:
            if self._serves_traefik_services(group):
                return group
        raise DarklaunchError(CRDS_MISSING_MESSAGE, field="api_group")

    def _serves_traefik_services(self, group: str) -> bool:
        call = ApiCall("list", "TraefikService", f"traefikservices.{group}", None, crd=True)
        status, body = self._send_raw("GET", f"/apis/{group}/{TRAEFIK_VERSION}/traefikservices", query={"limit": "1"})
        if status == 200:
            return True
        if status == 404:
            return False
        if status == 403:
            # RBAC answers before routing, so a 403 does not prove the CRD exists: ask the group's
            # discovery document, which every authenticated user may read.
            return self._discovery_lists_traefik_services(group, call, body)
        raise translate_api_error(_api_exception(status, body), call, host=self._host)

    def _discovery_lists_traefik_services(self, group: str, call: ApiCall, forbidden_body: bytes) -> bool:
        status, body = self._send_raw("GET", f"/apis/{group}/{TRAEFIK_VERSION}")
        if status == 404:
            return False
        if status != 200:
            raise translate_api_error(_api_exception(403, forbidden_body), call, host=self._host)
        resources = json.loads(body).get("resources") or []
        return any(resource.get("name") == "traefikservices" for resource in resources)

    # -- reads -----------------------------------------------------------------------------------

    def get(self, kind: str, namespace: str | None, name: str) -> KubeObject | None:
        """The object, or ``None`` when it does not exist."""
        spec = _kind(kind)
        call = self._call("get", spec, namespace, name)
        status, data = self._send_raw("GET", self._path(spec, namespace, name))
        if 200 <= status < 300:
            found: KubeObject = json.loads(data)
            return found
        error = _api_exception(status, data)
        if status == 404 and _names_missing_object(error, call):
            return None
        raise translate_api_error(error, call, host=self._host) from error

    def list(self, kind: str, namespace: str | None, page_size: int = 500) -> KubeObjects:
        """Every object of ``kind`` in ``namespace`` (``None``: all namespaces), fetched in pages."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        spec = _kind(kind)
        call = self._call("list", spec, namespace)
        path = self._path(spec, namespace)
        items: KubeObjects = []
        query = {"limit": str(page_size)}
        while True:
            page = self._send("GET", path, call, query=query)
            items.extend(_with_type_meta(page.get("items") or [], spec.name, page.get("apiVersion")))
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            query = {"limit": str(page_size), "continue": token}

    def namespace_exists(self, name: str) -> bool:
        """Whether the namespace exists; without the right to read it, assume it does and let later calls tell."""
        call = self._call("get", _KINDS["Namespace"], None, name)
        status, body = self._send_raw("GET", f"/api/v1/namespaces/{quote(name, safe='')}")
        if status == 200:
            return True
        if status == 404:
            return False
        if status == 403:
            return True
        raise translate_api_error(_api_exception(status, body), call, host=self._host)

    # -- writes ----------------------------------------------------------------------------------

    def create(self, kind: str, namespace: str | None, body: Mapping[str, Any]) -> KubeObject:
        spec = _kind(kind)
        name = (body.get("metadata") or {}).get("name")
        call = self._call("create", spec, namespace, name)
        try:
            return self._write("POST", self._path(spec, namespace), call, body=body)
        except ConflictError as conflict:
            raise self._explained(conflict, spec, namespace, name, None) from conflict

    def json_patch(self, kind: str, namespace: str | None, name: str, ops: Sequence[Mapping[str, Any]]) -> KubeObject:
        """Apply an RFC 6902 patch; a failing ``test`` op (the object changed) raises ``ConflictError``."""
        spec = _kind(kind)
        call = self._call("patch", spec, namespace, name, json_patch_test=any(op.get("op") == "test" for op in ops))
        path = self._path(spec, namespace, name)
        try:
            return self._write("PATCH", path, call, body=list(ops), content_type="application/json-patch+json")
        except ConflictError as conflict:
            raise self._explained(conflict, spec, namespace, name, _tested_resource_version(ops)) from conflict

    def merge_patch(self, kind: str, namespace: str | None, name: str, patch: Mapping[str, Any]) -> KubeObject:
        """Apply an RFC 7386 merge patch (``metadata.resourceVersion`` in it makes it conditional)."""
        spec = _kind(kind)
        call = self._call("patch", spec, namespace, name)
        path = self._path(spec, namespace, name)
        read_version = (patch.get("metadata") or {}).get("resourceVersion")
        try:
            return self._write("PATCH", path, call, body=patch, content_type="application/merge-patch+json")
        except ConflictError as conflict:
            raise self._explained(conflict, spec, namespace, name, read_version) from conflict

    def delete(self, kind: str, namespace: str | None, name: str, resource_version: str | None = None) -> None:
        """Delete; with ``resource_version`` only that exact version (else ``ConflictError``).

        Without a precondition an object that is already gone counts as deleted.
        """
        spec = _kind(kind)
        call = self._call("delete", spec, namespace, name)
        options: KubeObject = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if resource_version is not None:
            options["preconditions"] = {"resourceVersion": resource_version}
        try:
            self._write("DELETE", self._path(spec, namespace, name), call, body=options)
        except ConflictError as conflict:
            if resource_version is None and conflict.details.get("api_status") == 404:
                return
            raise self._explained(conflict, spec, namespace, name, resource_version) from conflict

    def _write(
        self,
        method: str,
        path: str,
        call: ApiCall,
        *,
        body: Any,
        content_type: str = "application/json",
    ) -> KubeObject:
        self._write_count += 1
        # Name ourselves in managedFields, so whoever meets a conflict later sees who wrote what.
        query = None if method == "DELETE" else {"fieldManager": FIELD_MANAGER}
        written: KubeObject = self._send(method, path, call, query=query, body=body, content_type=content_type)
        return written

    def _explained(
        self, conflict: ConflictError, spec: _Kind, namespace: str | None, name: str | None, read_version: str | None
    ) -> DarklaunchError:
        """The conflict, told with who changed the object since it was read (best effort: one GET)."""
        if name is None:
            return conflict
        try:
            current = self.get(spec.name, namespace, name)
        except DarklaunchError:
            return conflict
        label = self._call("get", spec, namespace, name).label
        if _patch_failed_on_unchanged_object(conflict, read_version, current):
            return DarklaunchError(
                f"the JSON Patch for {label} does not apply although the object has not changed since it was "
                f"read (resourceVersion {read_version}); this is a bug in darklaunch.traefik, please report it",
                details=conflict.details,
            )
        return ConflictError(describe_conflict(label, read_version, current), details=conflict.details)

    # -- HTTP ------------------------------------------------------------------------------------

    def _call(
        self, verb: str, spec: _Kind, namespace: str | None, name: str | None = None, *, json_patch_test: bool = False
    ) -> ApiCall:
        resource = f"{spec.plural}.{self.traefik_group()}" if spec.traefik else spec.plural
        scoped_namespace = namespace if spec.namespaced else None
        return ApiCall(verb, spec.name, resource, scoped_namespace, name, spec.traefik, json_patch_test)

    def _path(self, spec: _Kind, namespace: str | None, name: str | None = None) -> str:
        parts = [f"/apis/{self.traefik_group()}/{TRAEFIK_VERSION}" if spec.traefik else "/api/v1"]
        if spec.namespaced and namespace is not None:
            parts += ["namespaces", quote(namespace, safe="")]
        elif spec.namespaced and name is not None:
            raise ValueError(f"{spec.name} {name}: a namespace is required")
        parts.append(spec.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
        return "/".join(parts)

    def _send(
        self,
        method: str,
        path: str,
        call: ApiCall,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> Any:
        status, data = self._send_raw(method, path, query=query, body=body, content_type=content_type)
        if 200 <= status < 300:
            return json.loads(data)
        error = _api_exception(status, data)
        raise translate_api_error(error, call, host=self._host) from error

    def _send_raw(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> tuple[int, bytes]:
        url = f"{self._host}{path}?{urlencode(query)}" if query else f"{self._host}{path}"
        encoded = None if body is None else json.dumps(body).encode("utf-8")
        try:
            response = self._pool.request(
                method,
                url,
                body=encoded,
                headers=self._headers(content_type),
                timeout=self._timeout,
                retries=self._retries,
                redirect=False,
                preload_content=True,
            )
        except (urllib3.exceptions.HTTPError, OSError) as err:
            request = f"{method} {path}"
            raise _connection_error(err, self._host, self._configuration.proxy, request, self._request_timeout) from err
        return int(response.status), bytes(response.data)

    def _headers(self, content_type: str | None) -> HTTPHeaderDict:
        headers = HTTPHeaderDict({"Accept": "application/json", "User-Agent": USER_AGENT})
        if content_type:
            headers["Content-Type"] = content_type
        for key, value in self._auth_headers():
            headers[key] = value
        if self._impersonate_user:
            headers["Impersonate-User"] = self._impersonate_user
        for group in self._impersonate_groups:
            headers.add("Impersonate-Group", group)  # one header line per group, as the API server expects
        return headers

    def _auth_headers(self) -> HeaderPairs:
        # auth_settings() runs the kubeconfig's token refresh hook (exec plugins, expiring tokens).
        headers: HeaderPairs = [
            (str(setting["key"]), str(setting["value"]))
            for setting in self._configuration.auth_settings().values()
            if setting.get("in") == "header" and setting.get("value")
        ]
        if not headers and self._configuration.username and self._configuration.password:
            credentials = f"{self._configuration.username}:{self._configuration.password}"
            headers.extend(urllib3.util.make_headers(basic_auth=credentials).items())
        return headers


def _api_exception(status: int, body: bytes) -> ApiException:
    """A real ``ApiException`` for a failed response, the same whichever kubernetes version is installed."""
    try:
        reason: str | None = HTTPStatus(status).phrase
    except ValueError:
        reason = None
    error = ApiException(status=status, reason=reason)
    error.body = body.decode("utf-8", "replace")
    return error


def _names_missing_object(error: ApiException, call: ApiCall) -> bool:
    # A 404 for a missing object names it; a 404 for an unknown path (CRD not installed) does not.
    if not call.crd:
        return True
    return bool((_status_body(error).get("details") or {}).get("name") == call.name)


def _patch_failed_on_unchanged_object(
    conflict: ConflictError, read_version: str | None, current: Mapping[str, Any] | None
) -> bool:
    # A bare 422 on an object still at the version that was read is not a race: the patch itself is wrong.
    if conflict.details.get("api_status") != 422 or current is None or read_version is None:
        return False
    return bool((current.get("metadata") or {}).get("resourceVersion") == read_version)


def _tested_resource_version(ops: Sequence[Mapping[str, Any]]) -> str | None:
    for op in ops:
        if op.get("op") == "test" and op.get("path") == "/metadata/resourceVersion":
            return str(op.get("value"))
    return None


def _with_type_meta(items: KubeObjects, kind: str, api_version: str | None) -> KubeObjects:
    # List items of built-in kinds come without kind/apiVersion; the parsers expect whole objects.
    for item in items:
        if "kind" not in item:
            item["kind"] = kind
        if api_version and "apiVersion" not in item:
            item["apiVersion"] = api_version
    return items
