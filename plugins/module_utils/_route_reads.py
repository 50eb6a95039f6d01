# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one I/O walk of what a route reaches: by-name reads of its TraefikServices and Services, each read once.

Used by the traffic view (traefik_traffic_info, the ``traffic`` lookup) and by traefik_mirror's runner, so both
follow a route by the same rules: ``name@provider`` references and names the API cannot hold are never read, a
TraefikService that may be listed but not read by name (the shipped viewer ClusterRole) comes from one listing
of its namespace, and loops are cut. The pure resolution of what was read is ``_route_walker``'s.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, Protocol

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    KIND_SERVICE,
    KIND_TRAEFIK_SERVICE,
    KubeServiceObj,
    ObjectKey,
    ServiceRef,
    TraefikServiceObj,
    check_name,
    parse_kube_service,
    parse_traefik_service,
)

_Key = tuple[str, str, str]  # (kind, namespace, name)


class ObjectReader(Protocol):
    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None: ...

    def list(self, kind: str, namespace: str | None, page_size: int = 500) -> list[dict[str, Any]]: ...

    def namespace_exists(self, name: str) -> bool: ...


def require_namespace(client: ObjectReader, namespace: str) -> None:
    """Fail when ``namespace`` does not exist. Asked only when a read found nothing there: an empty answer
    ("no mirror here", "route not found") would send the user looking elsewhere when the namespace is a typo."""
    if not client.namespace_exists(namespace):
        raise DarklaunchError(f'namespace "{namespace}" does not exist: check namespace.', field="namespace")


class RouteReads:
    """By-name reads of TraefikServices and Services, each (kind, namespace, name) read at most once (a miss
    is remembered too); ``requests`` counts the requests made.

    ``namespaces`` limits the walk to the objects of those namespaces (None: every namespace). traefik_mirror
    passes its own: the operator Role it runs with is namespaced, so a read elsewhere would be refused.
    """

    def __init__(self, client: ObjectReader, *, namespaces: Collection[str] | None = None) -> None:
        self._client = client
        self._namespaces = namespaces
        self._objects: dict[_Key, dict[str, Any] | None] = {}
        self._listed: set[str] = set()  # namespaces whose TraefikServices are all known
        self.requests = 0

    def add_listing(self, namespace: str, traefik_services: Iterable[dict[str, Any]]) -> None:
        """Every TraefikService of ``namespace``, as a listing answered: a name not among them does not exist."""
        self._listed.add(namespace)
        for item in traefik_services:
            self._objects.setdefault((KIND_TRAEFIK_SERVICE, namespace, _name(item)), item)

    def remember(self, kind: str, namespace: str, name: str, obj: dict[str, Any] | None) -> None:
        """An object read elsewhere (None: it does not exist), so it is not read again."""
        self._objects[(kind, namespace, name)] = obj

    def read(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object as the API returns it, or None when it does not exist."""
        key = (kind, namespace, name)
        if key not in self._objects:
            self._objects[key] = self._read(key)
        return self._objects[key]

    def known(self, kind: str) -> list[dict[str, Any]]:
        """Every object of ``kind`` read so far (misses left out)."""
        return [obj for (each, _ns, _name), obj in self._objects.items() if each == kind and obj is not None]

    def reachable(
        self, refs: Iterable[ServiceRef], *, planned: Mapping[ObjectKey, TraefikServiceObj] | None = None
    ) -> dict[ObjectKey, TraefikServiceObj]:
        """Every existing TraefikService ``refs`` reach, directly or through each other (loops cut).
        ``planned`` replaces the cluster's version of some (a plan's mirror as it will be written)."""
        planned = planned or {}
        found: dict[ObjectKey, TraefikServiceObj] = {}
        seen: set[ObjectKey] = set()
        pending = list(refs)
        while pending:
            ref = pending.pop()
            if ref.kind != KIND_TRAEFIK_SERVICE or not self._follows(ref) or ref.key in seen:
                continue
            seen.add(ref.key)
            service = planned.get(ref.key)
            if service is None:
                raw = self.read(KIND_TRAEFIK_SERVICE, ref.namespace, ref.name)
                service = parse_traefik_service(raw) if raw is not None else None
            if service is not None:
                found[ref.key] = service
                pending.extend(service.children())
        return found

    def services(
        self, namespace: str, refs: Iterable[ServiceRef], reached: Mapping[ObjectKey, TraefikServiceObj]
    ) -> dict[ObjectKey, KubeServiceObj]:
        """The existing v1 Services of ``namespace`` named by ``refs`` and by the TraefikServices ``reached`` (see
        reachable), for existence and port checks; a failed read raises. Services of other namespaces are not
        read, so the answer is the one a listing of ``namespace`` gives."""
        wanted = [*refs, *(child for service in reached.values() for child in service.children())]
        found: dict[ObjectKey, KubeServiceObj] = {}
        for key, ref in sorted({ref.key: ref for ref in wanted if ref.kind == KIND_SERVICE}.items()):
            if ref.namespace == namespace and self._follows(ref):
                raw = self.read(KIND_SERVICE, ref.namespace, ref.name)
                if raw is not None:
                    found[key] = parse_kube_service(raw)
        return found

    def _follows(self, ref: ServiceRef) -> bool:
        return not ref.is_cross_provider and (self._namespaces is None or ref.namespace in self._namespaces)

    def _read(self, key: _Key) -> dict[str, Any] | None:
        kind, namespace, name = key
        if not _could_exist(namespace, name) or (kind == KIND_TRAEFIK_SERVICE and namespace in self._listed):
            return None
        self.requests += 1
        try:
            return self._client.get(kind, namespace, name)
        except DarklaunchError as error:
            if kind != KIND_TRAEFIK_SERVICE or error.details.get("api_status") != 403:
                raise
        # May list but not get (the viewer ClusterRole): the same answer, at the cost of one listing.
        self.requests += 1
        self.add_listing(namespace, self._client.list(KIND_TRAEFIK_SERVICE, namespace))
        return self._objects.get(key)


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _could_exist(namespace: str, name: str) -> bool:
    """Whether a reference names an object the API could hold; any other name simply does not exist."""
    try:
        check_name(namespace, "namespace", "label")
        check_name(name, "name", "subdomain")
    except DarklaunchError:
        return False
    return True
