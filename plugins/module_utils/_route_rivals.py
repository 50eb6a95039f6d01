# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which routes compete with a route for its requests, in its own IngressRoute and in others, and the priority
a route added beside it (request matching, see ``_mirror_match``) needs: above the route, and below every
route that beats the route today, wherever that one is written.

Pure. Read from Traefik's own source (v2.11, v3.0 and the newest 3.x):

- ``pkg/config/runtime/runtime_http.go`` (GetRoutersByEntryPoints) and ``pkg/server/router/router.go``: the
  routers of every IngressRoute (and every provider) on an entry point go into that entry point's one muxer;
  routers with TLS and routers without have a muxer each and never compete.
- ``pkg/server/router/router.go`` (v3) and ``pkg/muxer/http/mux.go`` (v2.11): a priority of 0 (unset) becomes
  the rule's length in bytes; the muxer tries routes from the highest priority down. Equal priorities come in
  no defined order (the routers come from a map and ``sort.Sort`` is not stable; the newest releases order
  them by provider only, and every IngressRoute is the same provider). The rule syntax (``syntax`` /
  ``ruleSyntax``, v2 or v3) changes how a rule is parsed, not its priority.
- An IngressRoute without ``entryPoints`` is on Traefik's default entry points, which the cluster's objects
  do not tell: it is taken as sharing every entry point.

Two routes compete only where one request can match both. Rules whose Host matchers require disjoint hosts
never do (``_traefik_rule.required_hosts``); anything else is taken as competing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._traefik_rule import required_hosts, route_syntax

# pkg/server/router/router.go: maxUserPriority = math.MaxInt - 1000 (the CRD's maximum as well).
MAX_USER_PRIORITY = 2**63 - 1 - 1000


@dataclass(frozen=True)
class Rival:
    """A route that may take requests the source route matches: where it is written, and its priority."""

    where: str
    priority: int


class NoRoom(Exception):
    """No priority beats the source without beating ``blocking`` too (None: the source's is the highest)."""

    def __init__(self, wanted: int, blocking: Rival | None) -> None:
        super().__init__(wanted, blocking)
        self.wanted = wanted
        self.blocking = blocking


def effective_priority(route: Mapping[str, Any]) -> int | None:
    """The priority Traefik gives ``route`` (its own, else the rule's length in bytes); None when Traefik
    builds no router for it (empty rule, a kind other than Rule)."""
    match = route.get("match")
    if not isinstance(match, str) or not match or (route.get("kind") or "Rule") != "Rule":
        return None
    priority = route.get("priority")
    if isinstance(priority, int) and not isinstance(priority, bool) and priority != 0:
        return priority
    return len(match.encode())


def route_hosts(route: Mapping[str, Any], api_group: str) -> frozenset[str] | None:
    """The hosts one of which a request needs for ``route`` to match it; None for any host (or unknown)."""
    match = route.get("match")
    if not isinstance(match, str):
        return None
    try:
        syntax = route_syntax(route, "", api_group)
    except ValueError:
        return None
    return required_hosts(match, syntax)


def rivals(
    source: Mapping[str, Any], candidates: Iterable[tuple[str, Mapping[str, Any]]], api_group: str
) -> list[Rival]:
    """The ``(where, route)`` candidates Traefik builds a router for that can match a request ``source`` matches."""
    hosts = route_hosts(source, api_group)
    found = []
    for where, route in candidates:
        priority = effective_priority(route)
        if priority is None:
            continue
        theirs = route_hosts(route, api_group)
        if hosts is not None and theirs is not None and not hosts & theirs:
            continue
        found.append(Rival(where, priority))
    return found


def neighbour_routes(
    ingress_route: Mapping[str, Any], neighbours: Iterable[Mapping[str, Any]]
) -> list[tuple[str, Mapping[str, Any]]]:
    """The routes of other IngressRoutes (``neighbours`` may hold ``ingress_route`` itself: it is skipped) that
    are on a muxer ``ingress_route``'s routers are on: an entry point in common, both with TLS or both without."""
    own_key = _key(ingress_route)
    own_points = _entry_points(ingress_route)
    own_tls = _has_tls(ingress_route)
    found: list[tuple[str, Mapping[str, Any]]] = []
    for other in neighbours:
        key = _key(other)
        if key == own_key or _has_tls(other) != own_tls:
            continue
        points = _entry_points(other)
        if own_points is not None and points is not None and not own_points & points:
            continue
        routes = (other.get("spec") or {}).get("routes") or []
        found.extend(
            (f"route {index} of IngressRoute {key[0]}/{key[1]}", route)
            for index, route in enumerate(routes)
            if isinstance(route, Mapping)
        )
    return found


def place_above(source: Mapping[str, Any], competing: Sequence[Rival]) -> int:
    """The priority for a route that must be tried right after everything that beats ``source`` and right
    before ``source``: the source's priority + 1, which must stay below the lowest rival above the source;
    raises :class:`NoRoom` when it does not.

    Always explicit, never the rule's length: a route written later with a priority above the source's + 1
    still comes before the added route. A rival with the source's own priority is tried in no defined order
    against the source already and does not count.
    """
    own = effective_priority(source)
    if own is None:
        raise ValueError("a route Traefik builds no router for has no priority")
    wanted = own + 1 or 1  # 0 would mean "the rule's length"
    if wanted > MAX_USER_PRIORITY:
        raise NoRoom(wanted, None)
    blocking = [rival for rival in competing if own < rival.priority <= wanted]
    if blocking:
        raise NoRoom(wanted, blocking[0])
    return wanted


def _key(ingress_route: Mapping[str, Any]) -> tuple[str, str]:
    meta = ingress_route.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _entry_points(ingress_route: Mapping[str, Any]) -> frozenset[str] | None:
    points = (ingress_route.get("spec") or {}).get("entryPoints")
    return frozenset(str(point) for point in points) if points else None


def _has_tls(ingress_route: Mapping[str, Any]) -> bool:
    return (ingress_route.get("spec") or {}).get("tls") is not None
