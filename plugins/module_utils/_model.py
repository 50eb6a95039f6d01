# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed, frozen records parsed from Traefik and Kubernetes API objects (plain dicts), and name rules.

Pure: no I/O, standard library only, so Ansible's sanity tests can import it on every supported Python.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TypeVar, Union

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError

KIND_SERVICE = "Service"
KIND_TRAEFIK_SERVICE = "TraefikService"
KIND_INGRESS_ROUTE = "IngressRoute"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "darklaunch.traefik"
PRE_MIRROR_ANNOTATION = "darklaunch.traefik/pre-mirror-services"
# The routes attach added for request matching (mirror_methods / mirror_match; see _mirror_match).
MIRROR_ROUTES_ANNOTATION = "darklaunch.traefik/mirror-request-routes"
TRAEFIK_PROVIDER_SUFFIX = "@kubernetescrd"

# The Traefik CRDs' API groups, preferred first (traefik.containo.us is the pre-v3 group), and their version.
TRAEFIK_GROUPS = ("traefik.io", "traefik.containo.us")
CRD_VERSION = "v1alpha1"
# Metadata the API server owns: left out of diffs and of comparisons, which are about what users change.
SERVER_OWNED_METADATA = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink")

SPEC_MIRRORING = "mirroring"
SPEC_WEIGHTED = "weighted"
SPEC_OTHER = "other"

# Union, not "int | str": module_utils also run on targets, and ansible-test's pylint checks them for the
# oldest target Python, where a "|" between types evaluated at import time fails.
PortValue = Union[int, str]
ObjectKey = tuple[str, str]  # (namespace, name)

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


# --- name rules (the same ones the API server applies, so mistakes fail before any request) -------------


def is_dns1123_label(value: str) -> bool:
    """Namespaces: lower-case alphanumerics and '-', at most 63 characters."""
    return len(value) <= 63 and bool(_DNS1123_LABEL.match(value))


def is_dns1123_subdomain(value: str) -> bool:
    """Names of custom resources (IngressRoute, TraefikService): dot-separated DNS-1123 labels, <= 253."""
    return 0 < len(value) <= 253 and all(_DNS1123_LABEL.match(part) for part in value.split("."))


def is_dns1035_label(value: str) -> bool:
    """Names of v1 Services: like a DNS-1123 label but starting with a letter."""
    return len(value) <= 63 and bool(_DNS1035_LABEL.match(value))


def is_port_name(value: str) -> bool:
    """An IANA service name as Kubernetes uses for port names: <= 15 chars, a letter, no '--'."""
    return (
        len(value) <= 15
        and bool(_IANA_SVC_NAME.match(value))
        and "--" not in value
        and any(char.isalpha() for char in value)
    )


_NAME_RULES = {
    "label": (is_dns1123_label, "a DNS-1123 label (lower-case letters, digits and '-', at most 63 characters)"),
    "subdomain": (
        is_dns1123_subdomain,
        "a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', at most 253 characters)",
    ),
    "service": (
        is_dns1035_label,
        "a Service name (DNS-1035 label: starts with a letter, then lower-case letters, digits and '-', "
        "at most 63 characters)",
    ),
}


def check_name(value: object, field_name: str, rule: str) -> str:
    """Return ``value`` if it is a valid name under ``rule`` (label | subdomain | service), else raise."""
    check, description = _NAME_RULES[rule]
    if not isinstance(value, str) or not check(value):
        raise DarklaunchError(f"{field_name} must be {description}; got {value!r}.", field=field_name)
    return value


def normalise_port(value: object, field_name: str) -> PortValue | None:
    """An option's port as Traefik expects it: a number 1..65535, or a port name. Digit strings become ints.

    Survey answers and extra vars arrive as strings, and Traefik treats the string "80" as a port *name*
    (never found), so the coercion matters.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise DarklaunchError(f"{field_name} must be a port number or a port name; got {value!r}.", field=field_name)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int):
        if 1 <= value <= 65535:
            return value
        raise DarklaunchError(f"{field_name} must be between 1 and 65535; got {value}.", field=field_name)
    if isinstance(value, str) and is_port_name(value):
        return value
    raise DarklaunchError(
        f"{field_name} must be a port number or a port name (as in the Service's spec.ports[].name); got {value!r}.",
        field=field_name,
    )


# --- Traefik metric names ------------------------------------------------------------------------------


def normalise_traefik_name(name: str) -> str:
    """Traefik's ``provider.Normalize``: runs of characters other than letters and digits become one '-'."""
    return "-".join(part for part in re.split(r"[\W_]+", name) if part)


def traefik_service_label(namespace: str, name: str, port: PortValue) -> str:
    """The ``service`` label of Traefik's Prometheus metrics for a Kubernetes Service reached from a
    TraefikService or from a route with several services: ``<ns>-<name>-<port>@kubernetescrd``."""
    return normalise_traefik_name(f"{namespace}-{name}-{port}") + TRAEFIK_PROVIDER_SUFFIX


def route_service_label(namespace: str, ingress_route: str, match: str) -> str:
    """The ``service`` label when a route has exactly ONE Kubernetes Service: Traefik names that service
    after the route (IngressRoute name + first 10 bytes of sha256(match), hex), not after the Service."""
    digest = hashlib.sha256(match.encode("utf-8")).hexdigest()[:20]
    return normalise_traefik_name(f"{namespace}-{ingress_route}-{digest}") + TRAEFIK_PROVIDER_SUFFIX


# --- records -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceRef:
    """One LoadBalancerSpec entry: a route's service, a weighted child or a mirroring main service."""

    name: str
    kind: str
    namespace: str
    port: PortValue | None = None
    weight: int | None = None

    @property
    def key(self) -> ObjectKey:
        return (self.namespace, self.name)

    @property
    def is_traefik_service(self) -> bool:
        return self.kind == KIND_TRAEFIK_SERVICE

    @property
    def is_cross_provider(self) -> bool:
        """``name@provider`` references point outside the Kubernetes CRD objects we can read."""
        return "@" in self.name

    @property
    def effective_weight(self) -> int:
        """Traefik's default weight is 1; weights <= 0 receive nothing."""
        return 1 if self.weight is None else max(self.weight, 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MirrorRef:
    """One entry of ``spec.mirroring.mirrors``; a missing ``percent`` means 0 (nothing copied)."""

    name: str
    kind: str
    namespace: str
    port: PortValue | None
    percent: int

    @property
    def key(self) -> ObjectKey:
        return (self.namespace, self.name)

    def as_service_ref(self) -> ServiceRef:
        return ServiceRef(name=self.name, kind=self.kind, namespace=self.namespace, port=self.port)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TraefikServiceObj:
    name: str
    namespace: str
    spec_type: str  # mirroring | weighted | other
    main: ServiceRef | None
    mirrors: tuple[MirrorRef, ...]
    weighted: tuple[ServiceRef, ...]
    mirror_body: bool | None
    max_body_size: int | None
    sticky: bool
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)
    annotations: Mapping[str, str] = field(default_factory=dict, compare=False)
    resource_version: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> ObjectKey:
        return (self.namespace, self.name)

    @property
    def is_managed(self) -> bool:
        return self.labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE

    @property
    def spec_detail(self) -> str:
        """The spec's own key (mirroring, weighted, failover, highestRandomWeight, ...) for messages."""
        spec = self.raw.get("spec") if isinstance(self.raw, Mapping) else None
        keys = [key for key in spec if key] if isinstance(spec, Mapping) else []
        return keys[0] if keys else "empty"

    def children(self) -> tuple[ServiceRef, ...]:
        """Every reference this service makes: main and mirrors, or the weighted services."""
        if self.spec_type == SPEC_MIRRORING:
            main = (self.main,) if self.main else ()
            return main + tuple(mirror.as_service_ref() for mirror in self.mirrors)
        return self.weighted


@dataclass(frozen=True)
class RouteObj:
    index: int
    match: str
    kind: str
    priority: int | None
    middlewares: tuple[str, ...]
    services: tuple[ServiceRef, ...]


@dataclass(frozen=True)
class IngressRouteObj:
    name: str
    namespace: str
    entry_points: tuple[str, ...]
    routes: tuple[RouteObj, ...]
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)
    annotations: Mapping[str, str] = field(default_factory=dict, compare=False)
    resource_version: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # IngressRoute, or HTTPRoute for a Gateway API route read as one (its rules as routes; _httproute_view).
    kind: str = KIND_INGRESS_ROUTE

    @property
    def key(self) -> ObjectKey:
        return (self.namespace, self.name)

    def saved_pre_mirror_services(self) -> dict[str, list[dict[str, Any]]] | None:
        """The route targets saved by attach (annotation), or None when absent or unreadable."""
        return parse_saved_services(self.annotations.get(PRE_MIRROR_ANNOTATION))


@dataclass(frozen=True)
class PortObj:
    name: str | None
    port: int
    target_port: PortValue | None
    protocol: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "port": self.port, "target_port": self.target_port, "protocol": self.protocol}


@dataclass(frozen=True)
class KubeServiceObj:
    name: str
    namespace: str
    type: str
    ports: tuple[PortObj, ...]
    external_name: str | None = None
    resource_version: str | None = None

    @property
    def key(self) -> ObjectKey:
        return (self.namespace, self.name)

    def find_port(self, port: PortValue) -> PortObj | None:
        """The Service port a reference selects, following Traefik: numbers match ``port``, strings match
        ``name``; an ExternalName Service also accepts an unlisted number (Traefik dials it directly)."""
        for candidate in self.ports:
            if isinstance(port, int) and candidate.port == port:
                return candidate
            if isinstance(port, str) and candidate.name == port:
                return candidate
        if self.type == "ExternalName" and isinstance(port, int):
            return PortObj(name=None, port=port, target_port=None, protocol="TCP")
        return None

    def describe_ports(self) -> str:
        if not self.ports:
            return "no ports"
        return ", ".join(f"{p.port} ({p.name})" if p.name else str(p.port) for p in self.ports)


# --- parsing -------------------------------------------------------------------------------------------


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sequence(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _str_map(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in _mapping(value).items()}


def _optional_int(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def _port_value(value: object) -> PortValue | None:
    if isinstance(value, bool) or value is None or value == "" or value == 0:
        return None
    if isinstance(value, int | str):
        return value
    return None


@dataclass(frozen=True)
class _Meta:
    name: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]
    resource_version: str | None


def _metadata(raw: Mapping[str, Any], what: str) -> _Meta:
    if not isinstance(raw, Mapping):
        raise DarklaunchError(f"Expected a {what} object (a mapping), got {type(raw).__name__}.")
    meta = _mapping(raw.get("metadata"))
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise DarklaunchError(f"A {what} object has no metadata.name; pass objects as the Kubernetes API returns them.")
    resource_version = meta.get("resourceVersion")
    return _Meta(
        name=name,
        namespace=str(meta.get("namespace") or "default"),
        labels=_str_map(meta.get("labels")),
        annotations=_str_map(meta.get("annotations")),
        resource_version=str(resource_version) if resource_version not in (None, "") else None,
    )


def _kind(value: object) -> str:
    # Traefik treats a missing or empty kind as a Kubernetes Service.
    return value if isinstance(value, str) and value else KIND_SERVICE


def parse_service_ref(raw: Mapping[str, Any], default_namespace: str) -> ServiceRef:
    """One LoadBalancerSpec; ``namespace`` defaults to the referencing object's namespace."""
    entry = _mapping(raw)
    return ServiceRef(
        name=str(entry.get("name") or ""),
        kind=_kind(entry.get("kind")),
        namespace=str(entry.get("namespace") or default_namespace),
        port=_port_value(entry.get("port")),
        weight=_optional_int(entry.get("weight")),
    )


def parse_mirror_ref(raw: Mapping[str, Any], default_namespace: str) -> MirrorRef:
    entry = _mapping(raw)
    percent = _optional_int(entry.get("percent"))
    return MirrorRef(
        name=str(entry.get("name") or ""),
        kind=_kind(entry.get("kind")),
        namespace=str(entry.get("namespace") or default_namespace),
        port=_port_value(entry.get("port")),
        percent=0 if percent is None else percent,
    )


def parse_traefik_service(raw: Mapping[str, Any]) -> TraefikServiceObj:
    meta = _metadata(raw, "TraefikService")
    spec = _mapping(raw.get("spec"))
    mirroring = spec.get("mirroring")
    weighted = spec.get("weighted")
    main: ServiceRef | None = None
    mirrors: tuple[MirrorRef, ...] = ()
    weighted_refs: tuple[ServiceRef, ...] = ()
    mirror_body: bool | None = None
    max_body_size: int | None = None
    sticky = False
    if isinstance(mirroring, Mapping):
        spec_type = SPEC_MIRRORING
        main = parse_service_ref(mirroring, meta.namespace)
        mirrors = tuple(parse_mirror_ref(m, meta.namespace) for m in _sequence(mirroring.get("mirrors")))
        body = mirroring.get("mirrorBody")
        mirror_body = body if isinstance(body, bool) else None
        max_body_size = _optional_int(mirroring.get("maxBodySize"))
    elif isinstance(weighted, Mapping):
        spec_type = SPEC_WEIGHTED
        weighted_refs = tuple(parse_service_ref(s, meta.namespace) for s in _sequence(weighted.get("services")))
        sticky = bool(weighted.get("sticky"))
    else:
        spec_type = SPEC_OTHER
    return TraefikServiceObj(
        name=meta.name,
        namespace=meta.namespace,
        spec_type=spec_type,
        main=main,
        mirrors=mirrors,
        weighted=weighted_refs,
        mirror_body=mirror_body,
        max_body_size=max_body_size,
        sticky=sticky,
        labels=meta.labels,
        annotations=meta.annotations,
        resource_version=meta.resource_version,
        raw=raw,
    )


def _middleware_name(raw: object, namespace: str) -> str:
    entry = _mapping(raw)
    name = str(entry.get("name") or "")
    other_namespace = entry.get("namespace")
    if other_namespace and other_namespace != namespace:
        return f"{other_namespace}/{name}"
    return name


def parse_ingress_route(raw: Mapping[str, Any]) -> IngressRouteObj:
    meta = _metadata(raw, "IngressRoute")
    spec = _mapping(raw.get("spec"))
    routes = []
    for index, route_raw in enumerate(_sequence(spec.get("routes"))):
        route = _mapping(route_raw)
        routes.append(
            RouteObj(
                index=index,
                match=str(route.get("match") or ""),
                kind=str(route.get("kind") or "Rule"),
                priority=_optional_int(route.get("priority")),
                middlewares=tuple(_middleware_name(m, meta.namespace) for m in _sequence(route.get("middlewares"))),
                services=tuple(parse_service_ref(s, meta.namespace) for s in _sequence(route.get("services"))),
            )
        )
    return IngressRouteObj(
        name=meta.name,
        namespace=meta.namespace,
        entry_points=tuple(str(e) for e in _sequence(spec.get("entryPoints"))),
        routes=tuple(routes),
        labels=meta.labels,
        annotations=meta.annotations,
        resource_version=meta.resource_version,
        raw=raw,
    )


def parse_kube_service(raw: Mapping[str, Any]) -> KubeServiceObj:
    meta = _metadata(raw, "Service")
    spec = _mapping(raw.get("spec"))
    ports = []
    for port_raw in _sequence(spec.get("ports")):
        port = _mapping(port_raw)
        number = _optional_int(port.get("port"))
        if number is None:
            continue
        ports.append(
            PortObj(
                name=str(port["name"]) if port.get("name") else None,
                port=number,
                target_port=_port_value(port.get("targetPort")),
                protocol=str(port.get("protocol") or "TCP"),
            )
        )
    external_name = spec.get("externalName")
    return KubeServiceObj(
        name=meta.name,
        namespace=meta.namespace,
        type=str(spec.get("type") or "ClusterIP"),
        ports=tuple(ports),
        external_name=str(external_name) if external_name else None,
        resource_version=meta.resource_version,
    )


def parse_saved_services(text: str | None) -> dict[str, list[dict[str, Any]]] | None:
    """Decode the pre-mirror annotation: ``{"<route index>": [<services>]}``; None if absent or corrupt."""
    if not text:
        return None
    try:
        decoded = json.loads(text)
    except ValueError:
        return None
    if not isinstance(decoded, dict):
        return None
    saved: dict[str, list[dict[str, Any]]] = {}
    for index, services in decoded.items():
        if not str(index).isdigit() or not isinstance(services, list):
            return None
        if not all(isinstance(entry, dict) for entry in services):
            return None
        saved[str(index)] = services
    return saved


def dump_saved_services(saved: Mapping[str, list[dict[str, Any]]]) -> str:
    """Encode the pre-mirror annotation deterministically, so reruns compare equal."""
    # Route indexes in numeric order ("2" before "10"); entry keys sorted. json's sort_keys would order the
    # indexes as text.
    ordered = {key: [_sorted_keys(entry) for entry in saved[key]] for key in sorted(saved, key=int)}
    return json.dumps(ordered, separators=(",", ":"))


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


class _Keyed(Protocol):
    @property
    def key(self) -> ObjectKey: ...


KeyedT = TypeVar("KeyedT", bound=_Keyed)


def index_by_key(objects: Iterable[KeyedT]) -> dict[ObjectKey, KeyedT]:
    """``{(namespace, name): object}`` for lookups during resolution."""
    return {obj.key: obj for obj in objects}
