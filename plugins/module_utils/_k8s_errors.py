# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes API failures told as what to fix: an answer's status and body, or a connection that failed,
become one ``DarklaunchError`` (``ConflictError`` / ``ApiUnavailableError`` where callers act on the kind).

Pure apart from the urllib3 exception classes it recognises; it never sends a request.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import (
    ApiUnavailableError,
    ConflictError,
    DarklaunchError,
)

with contextlib.suppress(ImportError):  # reported by _k8s_auth.HAS_KUBERNETES; urllib3 comes with kubernetes
    import urllib3

_FORBIDDEN_PATTERN: Final = re.compile(r'User "(?P<user>[^"]*)" cannot (?P<verb>\S+)')


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


def status_body(body: bytes | str | None) -> dict[str, Any]:
    """The API's ``Status`` object from a failed answer's body (a plain-text body becomes its message)."""
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {"message": str(raw).strip()}
    return parsed if isinstance(parsed, dict) else {}


def names_missing_object(body: Mapping[str, Any], call: ApiCall) -> bool:
    """Whether a 404 says the object is missing: a 404 for a missing object names it; a 404 for an unknown
    path (the CRD is not installed in that group) does not."""
    if not call.crd:
        return True
    return bool((body.get("details") or {}).get("name") == call.name)


def translate_api_error(
    status: int, body: bytes | str | None, call: ApiCall, *, host: str | None = None
) -> DarklaunchError:
    """The API answered ``status`` (not 2xx) with ``body``: a message about ``call`` that says what to do."""
    parsed = status_body(body)
    reason = _reason_phrase(status)
    server_message = str(parsed.get("message") or reason or "").strip()
    details = {"api_status": status, "api_reason": parsed.get("reason") or reason, "api_message": server_message}
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
        return _not_found(call, parsed, details)
    if status == 409:
        return _conflict(call, parsed, details)
    if status == 410:
        return DarklaunchError(
            f"listing {call.resource} took too long and the API server expired the list (410 Gone); retry",
            details=details,
        )
    if status == 422:
        return _invalid(call, parsed, server_message, details)
    return DarklaunchError(
        f"{api} failed to {call.verb} {_target(call)}: {status} {reason or ''} {server_message}".rstrip(),
        details=details,
    )


def _reason_phrase(status: int) -> str | None:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return None


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


def tls_error(text: str, host: str) -> DarklaunchError:
    """The client reported a TLS failure (its ``ApiException`` with status 0, or urllib3's ``SSLError``)."""
    return DarklaunchError(
        f"TLS error talking to the Kubernetes API at {host}: {text}. Set ca_cert to the CA that signed the "
        "API server certificate (or fix certificate-authority in the kubeconfig), check client_cert / "
        "client_key, or set validate_certs: false to skip verification",
        field="ca_cert",
        details={"api_error": text},
    )


def connection_error(
    error: Exception, host: str, proxy: str | None, request: str = "", timeout: float | None = None
) -> DarklaunchError:
    """A request that got no answer: TLS, proxy, timeout or refused connection, each with its option."""
    reason = getattr(error, "reason", None) or error
    text = str(reason)
    details: dict[str, Any] = {"api_error": text}
    if isinstance(reason, (urllib3.exceptions.SSLError, OSError)) and looks_like_tls(text):
        return tls_error(text, host)
    if isinstance(reason, urllib3.exceptions.ProxyError) and proxy:
        return DarklaunchError(
            f"cannot reach the Kubernetes API at {host} through the proxy {proxy}: {text}; check proxy and "
            "proxy_headers",
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


def looks_like_tls(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in ("ssl", "certificate", "tls", "wrong version number", "handshake"))
