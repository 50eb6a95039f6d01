# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Gateway API HTTPRoute read as the route records the traffic walk knows (_route_walker), and which route a
name means.

Pure apart from ``find_route`` (two by-name reads at most). Each rule becomes one route: its backendRefs are
the route's services with their weights (Traefik round-robins them like a weighted TraefikService; weight
omitted = 1, 0 = nothing), and a backendRef ``{group: traefik.io, kind: TraefikService}`` is a TraefikService
of the CRD provider - how traefik_mirror puts a mirror in front of a rule's users.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution_records import TraefikServices
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_plan import (
    KIND_HTTP_ROUTE,
    SAVED_ANNOTATION,
    parent_gateways,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    KIND_INGRESS_ROUTE,
    KIND_SERVICE,
    KIND_TRAEFIK_SERVICE,
    TRAEFIK_GROUPS,
    IngressRouteObj,
    RouteObj,
    ServiceRef,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._route_walker import resolve_route, target_dict

ROUTE_KINDS = (KIND_INGRESS_ROUTE, KIND_HTTP_ROUTE)

# How the metrics' service label of a backend is known, said in the answers (see docs/compatibility.md).
LABEL_FORM_CRD = (
    "the rule's backends are reached through TraefikServices of the CRD provider, so their series carry "
    "<ns>-<svc>-<port>@kubernetescrd; their history from before the mirror was attached is read from the "
    "Gateway provider's labels of the saved backendRefs, whichever release's form matches (history_from)"
)
LABEL_FORM_GATEWAY = (
    "the rule's own backendRefs are named by Traefik's Gateway provider in a form that changed across releases "
    "(<ns>-<svc>-<port>@kubernetesgateway in 3.0-3.1, <ns>-<svc>-http-<port>@kubernetesgateway from 3.2, "
    "httproute-<ns>-<route>-...-svc-<ns>-<svc>-<index>@kubernetesgateway from 3.7.6): they are not labelled "
    "and not judged by the anomaly checks"
)


class RouteGetter(Protocol):
    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None: ...


def find_route(
    client: RouteGetter, namespace: str, name: str, route_kind: str | None = None
) -> tuple[str, dict[str, Any] | None]:
    """(kind, object or None): ``route_kind`` as given; unset, the IngressRoute of that name, else the HTTPRoute
    when only an HTTPRoute has it. An HTTPRoute that cannot be read (no Gateway API, no right) counts as absent:
    the IngressRoute path then says what is missing in its own words."""
    if route_kind not in (None, "", *ROUTE_KINDS):
        raise DarklaunchError(
            f"route_kind must be one of {', '.join(ROUTE_KINDS)}; got {route_kind!r}.", field="route_kind"
        )
    if route_kind == KIND_HTTP_ROUTE:
        return KIND_HTTP_ROUTE, client.get(KIND_HTTP_ROUTE, namespace, name)
    found = client.get(KIND_INGRESS_ROUTE, namespace, name)
    if found is not None or route_kind == KIND_INGRESS_ROUTE:
        return KIND_INGRESS_ROUTE, found
    try:
        http_route = client.get(KIND_HTTP_ROUTE, namespace, name)
    except DarklaunchError:
        return KIND_INGRESS_ROUTE, None
    return (KIND_HTTP_ROUTE, http_route) if http_route is not None else (KIND_INGRESS_ROUTE, None)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def backend_ref(raw: Mapping[str, Any], namespace: str) -> ServiceRef:
    """One backendRef as a service reference: a core Service (group "" and kind Service by default), a
    TraefikService of the CRD provider, or any other kind, named ``Kind.group`` (the walk reports it broken)."""
    entry = _mapping(raw)
    group = str(entry.get("group") or "")
    kind = str(entry.get("kind") or KIND_SERVICE)
    if group in ("", "core") and kind == KIND_SERVICE:
        ref_kind = KIND_SERVICE
    elif group in TRAEFIK_GROUPS and kind == KIND_TRAEFIK_SERVICE:
        ref_kind = KIND_TRAEFIK_SERVICE
    else:
        ref_kind = f"{kind}.{group}" if group else kind
    port = entry.get("port")
    weight = entry.get("weight")
    return ServiceRef(
        name=str(entry.get("name") or ""),
        kind=ref_kind,
        namespace=str(entry.get("namespace") or namespace),
        port=port if isinstance(port, int) and not isinstance(port, bool) and port > 0 else None,
        weight=weight if isinstance(weight, int) and not isinstance(weight, bool) else None,
    )


def describe_matches(rule: Mapping[str, Any]) -> str:
    """A rule's matches as a Traefik-like rule text (``PathPrefix(`/api`) && Method(`GET`)``), each match
    or-ed; a rule without matches matches every path (the Gateway API's default ``PathPrefix /``)."""
    texts = []
    for raw in _list(rule.get("matches")) or [{}]:
        match = _mapping(raw)
        path = _mapping(match.get("path"))
        kind = {"Exact": "Path", "RegularExpression": "PathRegexp"}.get(str(path.get("type")), "PathPrefix")
        parts = [f"{kind}(`{path.get('value') or '/'}`)"]
        if match.get("method"):
            parts.append(f"Method(`{match['method']}`)")
        for header in _list(match.get("headers")):
            parts.append(f"Header(`{_mapping(header).get('name')}`, `{_mapping(header).get('value')}`)")
        for param in _list(match.get("queryParams")):
            parts.append(f"Query(`{_mapping(param).get('name')}`, `{_mapping(param).get('value')}`)")
        texts.append(" && ".join(parts))
    return texts[0] if len(texts) == 1 else " || ".join(f"({text})" for text in texts)


def parse_http_route(raw: Mapping[str, Any]) -> IngressRouteObj:
    """The HTTPRoute as an IngressRouteObj of kind HTTPRoute: one route per rule, in order."""
    meta = _mapping(raw.get("metadata"))
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise DarklaunchError("An HTTPRoute object has no metadata.name; pass objects as the API returns them.")
    namespace = str(meta.get("namespace") or "default")
    routes = []
    for index, rule_raw in enumerate(_list(_mapping(raw.get("spec")).get("rules"))):
        rule = _mapping(rule_raw)
        routes.append(
            RouteObj(
                index=index,
                match=describe_matches(rule),
                kind="Rule",
                priority=None,
                middlewares=tuple(str(_mapping(f).get("type") or "") for f in _list(rule.get("filters"))),
                services=tuple(backend_ref(ref, namespace) for ref in _list(rule.get("backendRefs"))),
            )
        )
    version = meta.get("resourceVersion")
    return IngressRouteObj(
        name=name,
        namespace=namespace,
        entry_points=(),
        routes=tuple(routes),
        labels={str(k): str(v) for k, v in _mapping(meta.get("labels")).items()},
        annotations={str(k): str(v) for k, v in _mapping(meta.get("annotations")).items()},
        resource_version=str(version) if version else None,
        raw=raw,
        kind=KIND_HTTP_ROUTE,
    )


def label_form(route: IngressRouteObj) -> str:
    """How the metrics' service labels of the route's backends were derived, in words."""
    through_traefik = any(ref.kind == KIND_TRAEFIK_SERVICE for rule in route.routes for ref in rule.services)
    direct = any(ref.kind == KIND_SERVICE for rule in route.routes for ref in rule.services)
    forms = [LABEL_FORM_CRD] if through_traefik else []
    forms += [LABEL_FORM_GATEWAY] if direct else []
    return "; ".join(forms)


def http_route_targets(
    route: IngressRouteObj, traefik_services: TraefikServices, services: Any = None
) -> dict[str, Any]:
    """The HTTPRoute for listings: its Gateways, hostnames and each rule's live targets and their type."""
    spec = _mapping(route.raw.get("spec"))
    return {
        "name": route.name,
        "namespace": route.namespace,
        "gateways": [f"{ns}/{name}" for ns, name in parent_gateways(route.raw, route.namespace)],
        "hostnames": [str(host) for host in _list(spec.get("hostnames"))],
        "attached_by_darklaunch": SAVED_ANNOTATION in route.annotations,
        "rules": [
            {
                "index": rule.index,
                "match": rule.match,
                "filters": list(rule.middlewares),
                "targets": [target_dict(ref, traefik_services, services) for ref in rule.services],
            }
            for rule in route.routes
        ],
    }


def describe_http_route(route: IngressRouteObj, traefik_services: TraefikServices) -> dict[str, Any]:
    """The HTTPRoute as the lookup's ``httproutes`` term lists it: its targets (``http_route_targets``), one
    sentence for the route and one for each rule, in the words of ``distribution`` (Services are not read)."""
    entry = http_route_targets(route, traefik_services)
    distribution = resolve_route(route, traefik_services, None, label_form=label_form(route))
    entry["explanation"] = distribution.explanation
    for rule, resolution in zip(entry["rules"], distribution.routes, strict=True):
        rule["explanation"] = resolution.explanation
        rule["traffic_split"] = resolution.traffic_split()
    return entry
