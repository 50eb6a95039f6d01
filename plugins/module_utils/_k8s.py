# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's only door to the Kubernetes API: get, list, create, JSON-patch and delete the few
resources it needs, by their known paths (no discovery), as the API's own JSON dicts.

Connection options are resolved by ``_k8s_auth``, requests sent by ``_k8s_transport`` and failures told
by ``_k8s_errors``. The Traefik API group is settled by the first read when it is not given: that read is
tried in ``traefik.io`` and then in ``traefik.containo.us``, so a cluster serving ``traefik.io`` costs no
request more than a known group.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import ConflictError, DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s_auth import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    build_configuration,
    kubernetes_missing_error,
    request_timeout_seconds,
    resolve_auth_options,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s_errors import (
    ApiCall,
    describe_conflict,
    names_missing_object,
    status_body,
    translate_api_error,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s_transport import Transport
from ansible_collections.darklaunch.traefik.plugins.module_utils._kubeconfig_context import (
    CommandConnection,
    command_connection,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import CRD_VERSION, TRAEFIK_GROUPS

__all__ = ("CRDS_MISSING_MESSAGE", "HAS_KUBERNETES", "KUBERNETES_IMPORT_ERROR", "KubeClient")

KubeObject = dict[str, Any]
KubeObjects = list[KubeObject]

CRDS_MISSING_MESSAGE: Final = (
    f"the Traefik CRDs are not installed (no traefikservices in {' or '.join(TRAEFIK_GROUPS)}); "
    "install them or set api_group"
)
FIELD_MANAGER: Final = "darklaunch.traefik"
_FROM_PARAMS: Final = object()  # from_params: the kubeconfig given is the one in params


@dataclass(frozen=True)
class _Kind:
    name: str
    plural: str
    traefik: bool
    namespaced: bool = True
    # The API group/version of a kind that is neither Traefik's nor core (apps/v1, the Gateway API's); "": core.
    api: str = ""


_KINDS: Final = {
    kind.name: kind
    for kind in (
        _Kind("TraefikService", "traefikservices", traefik=True),
        _Kind("IngressRoute", "ingressroutes", traefik=True),
        _Kind("Middleware", "middlewares", traefik=True),
        _Kind("Service", "services", traefik=False),
        _Kind("ConfigMap", "configmaps", traefik=False),
        _Kind("Deployment", "deployments", traefik=False, api="apps/v1"),
        _Kind("Namespace", "namespaces", traefik=False, namespaced=False),
        _Kind("HTTPRoute", "httproutes", traefik=False, api="gateway.networking.k8s.io/v1"),
        _Kind("Gateway", "gateways", traefik=False, api="gateway.networking.k8s.io/v1"),
        _Kind("GatewayClass", "gatewayclasses", traefik=False, namespaced=False, api="gateway.networking.k8s.io/v1"),
    )
}


def _kind(name: str) -> _Kind:
    try:
        return _KINDS[name]
    except KeyError:
        raise ValueError(f"unsupported kind {name!r}; expected one of {', '.join(_KINDS)}") from None


class KubeClient:
    """Reads and writes the few resources the collection needs, as the API's own JSON dicts."""

    def __init__(
        self, transport: Transport, *, api_group: str | None = None, connection: CommandConnection | None = None
    ) -> None:
        self._transport = transport
        self._traefik_group: str | None = None
        # What a command printed for later names so that it reaches this cluster (see _kubeconfig_context).
        self.connection = connection or CommandConnection()
        if api_group not in (None, "", "auto"):
            self.traefik_group(api_group)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, given_kubeconfig: Any = _FROM_PARAMS) -> KubeClient:
        """A client from module / lookup options (kubernetes.core names; ``api_group`` is honoured too).
        ``given_kubeconfig``: the kubeconfig the user gave, when ``params`` also holds one from the
        environment (the lookup's options); a command printed for later names only a given one."""
        if not HAS_KUBERNETES:
            raise kubernetes_missing_error()
        auth = resolve_auth_options(params)
        request_timeout = request_timeout_seconds(auth.get("request_timeout"))
        transport = Transport(
            build_configuration(auth),
            request_timeout=request_timeout,
            impersonate_user=auth.get("impersonate_user"),
            impersonate_groups=auth.get("impersonate_groups") or (),
        )
        given = params.get("kubeconfig") if given_kubeconfig is _FROM_PARAMS else given_kubeconfig
        connection = command_connection({**params, "kubeconfig": given}, auth)
        return cls(transport, api_group=params.get("api_group"), connection=connection)

    # -- API group -------------------------------------------------------------------------------

    def traefik_group(self, requested: str | None = None) -> str:
        """The Traefik API group: ``requested`` if given, else the one settled by an earlier read, else the
        first one the cluster serves (one request)."""
        if requested not in (None, "", "auto"):
            if requested not in TRAEFIK_GROUPS:
                raise DarklaunchError(
                    f"api_group must be one of {', '.join(TRAEFIK_GROUPS)} or auto, not {requested}",
                    field="api_group",
                )
            self._traefik_group = requested
        if self._traefik_group is None:
            status, data, call = self._read(_KINDS["TraefikService"], None, None, {"limit": "1"})
            if not 200 <= status < 300 and status != 403:  # a 403 here was settled by the discovery document
                raise translate_api_error(status, data, call, host=self._transport.host)
        group = self._traefik_group
        if group is None:  # not reached: _read settles the group or raises
            raise DarklaunchError(CRDS_MISSING_MESSAGE, field="api_group")
        return group

    def _read(
        self, spec: _Kind, namespace: str | None, name: str | None, query: Mapping[str, str] | None = None
    ) -> tuple[int, bytes, ApiCall]:
        """GET one object or list page. While the Traefik group is unknown, a Traefik read is tried in each
        group in turn: the first group that serves the resource is the cluster's, and is kept."""
        verb = "get" if name is not None else "list"
        if not spec.traefik or self._traefik_group is not None:
            call = self._call(verb, spec, namespace, name)
            status, data = self._transport.send("GET", self._path(spec, namespace, name), query=query)
            return status, data, call
        for group in TRAEFIK_GROUPS:
            call = self._call(verb, spec, namespace, name, group=group)
            status, data = self._transport.send("GET", self._path(spec, namespace, name, group=group), query=query)
            if status == 404 and (name is None or not names_missing_object(status_body(data), call)):
                continue  # the path itself is unknown: this group does not serve the resource
            if status == 403 and not self._discovery_lists(group, spec.plural, call, data):
                continue  # RBAC answers before routing, so a 403 alone does not prove the group is served
            self._traefik_group = group
            return status, data, call
        raise DarklaunchError(CRDS_MISSING_MESSAGE, field="api_group")

    def _discovery_lists(self, group: str, plural: str, call: ApiCall, forbidden_body: bytes) -> bool:
        # The group's discovery document, which every authenticated user may read.
        status, body = self._transport.send("GET", f"/apis/{group}/{CRD_VERSION}")
        if status == 404:
            return False
        if status != 200:
            # Not even discovery: the credentials are the problem (anonymous?), so tell the original refusal.
            raise translate_api_error(403, forbidden_body, call, host=self._transport.host)
        resources = json.loads(body).get("resources") or []
        return any(resource.get("name") == plural for resource in resources)

    def serves(self, group: str, plural: str) -> bool:
        """Whether the API server serves ``plural`` in ``group`` (a CRD that is installed), from the group's
        discovery document, which every authenticated user may read."""
        status, body = self._transport.send("GET", f"/apis/{group}/{CRD_VERSION}")
        if status == 404:
            return False
        if not 200 <= status < 300:
            call = ApiCall("get", "APIResourceList", f"{plural}.{group}", None, f"/apis/{group}/{CRD_VERSION}")
            raise translate_api_error(status, body, call, host=self._transport.host)
        resources = json.loads(body).get("resources") or []
        return any(resource.get("name") == plural for resource in resources)

    # -- reads -----------------------------------------------------------------------------------

    def get(self, kind: str, namespace: str | None, name: str) -> KubeObject | None:
        """The object, or ``None`` when it does not exist."""
        status, data, call = self._read(_kind(kind), namespace, name)
        if 200 <= status < 300:
            found: KubeObject = json.loads(data)
            return found
        if status == 404 and names_missing_object(status_body(data), call):
            return None
        raise translate_api_error(status, data, call, host=self._transport.host)

    def list(
        self, kind: str, namespace: str | None, page_size: int = 500, *, label_selector: str | None = None
    ) -> KubeObjects:
        """Every object of ``kind`` in ``namespace`` (``None``: all namespaces), fetched in pages; with
        ``label_selector``, only those it selects."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        spec = _kind(kind)
        items: KubeObjects = []
        selector = {"labelSelector": label_selector} if label_selector else {}
        query = {"limit": str(page_size), **selector}
        while True:
            status, data, call = self._read(spec, namespace, None, query)
            if not 200 <= status < 300:
                raise translate_api_error(status, data, call, host=self._transport.host)
            page = json.loads(data)
            items.extend(_with_type_meta(page.get("items") or [], spec.name, page.get("apiVersion")))
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            query = {"limit": str(page_size), "continue": token, **selector}

    def namespace_exists(self, name: str) -> bool:
        """Whether the namespace exists; without the right to read it, assume it does and let later calls tell."""
        status, data, call = self._read(_KINDS["Namespace"], None, name)
        if status in (200, 403):
            return True
        if status == 404:
            return False
        raise translate_api_error(status, data, call, host=self._transport.host)

    def service_proxy_get(self, namespace: str, service: str, port: int | str, path: str) -> bytes:
        """The body of ``GET path`` on a Service's port, through the API server's service proxy (RBAC
        ``services/proxy`` get): for a program in the cluster the controller cannot reach directly. Any answer
        but 2xx raises, ``api_status`` in its details (503: the Service has no ready endpoint)."""
        target = f"{service}:{port}"
        call = ApiCall("get", "Service", "services/proxy", namespace, target)
        base = f"/api/v1/namespaces/{quote(namespace, safe='')}/services/{quote(service, safe='')}:{quote(str(port))}"
        status, data = self._transport.send("GET", f"{base}/proxy/{path.lstrip('/')}")
        if 200 <= status < 300:
            return data
        error = translate_api_error(status, data, call, host=self._transport.host)
        if status in (401, 403):
            raise error
        # The proxy's own refusals (no such Service or port, no Endpoints, no ready endpoint) or the program's
        # answer: the server's words say which; a generic "was not found" would blame the Service.
        message = str(status_body(data).get("message") or "").strip()[:300]
        raise DarklaunchError(
            f"the API server answered {status} to GET {path} on Service {namespace}/{target}"
            + (f" ({message})" if message else ""),
            details=error.details,
        )

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
        self, method: str, path: str, call: ApiCall, *, body: Any, content_type: str = "application/json"
    ) -> KubeObject:
        # Name ourselves in managedFields, so whoever meets a conflict later sees who wrote what.
        query = None if method == "DELETE" else {"fieldManager": FIELD_MANAGER}
        status, data = self._transport.send(method, path, query=query, body=body, content_type=content_type)
        if not 200 <= status < 300:
            raise translate_api_error(status, data, call, host=self._transport.host)
        written: KubeObject = json.loads(data)
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

    # -- paths -----------------------------------------------------------------------------------

    def _call(
        self,
        verb: str,
        spec: _Kind,
        namespace: str | None,
        name: str | None = None,
        *,
        json_patch_test: bool = False,
        group: str | None = None,
    ) -> ApiCall:
        if spec.traefik:
            resource = f"{spec.plural}.{group or self.traefik_group()}"
        else:
            resource = f"{spec.plural}.{spec.api.split('/')[0]}" if spec.api else spec.plural
        scoped_namespace = namespace if spec.namespaced else None
        return ApiCall(verb, spec.name, resource, scoped_namespace, name, spec.traefik, json_patch_test)

    def _path(self, spec: _Kind, namespace: str | None, name: str | None = None, *, group: str | None = None) -> str:
        if spec.traefik:
            parts = [f"/apis/{group or self.traefik_group()}/{CRD_VERSION}"]
        else:
            parts = [f"/apis/{spec.api}" if spec.api else "/api/v1"]
        if spec.namespaced and namespace is not None:
            parts += ["namespaces", quote(namespace, safe="")]
        elif spec.namespaced and name is not None:
            raise ValueError(f"{spec.name} {name}: a namespace is required")
        parts.append(spec.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
        return "/".join(parts)


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
