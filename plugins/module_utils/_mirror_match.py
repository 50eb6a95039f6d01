# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which requests a mirror copies: traefik_mirror's ``mirror_methods`` and ``mirror_match``.

Traefik's mirroring has no request filter of its own. An IngressRoute can filter, though: attach adds, to the
same IngressRoute, one route per repointed route (the *source*) whose rule is the source's rule AND the
methods / extra expression, with a priority that makes it win over its source and over nothing that does not
already beat the source, in this IngressRoute or in another one on the same entry point (``_route_rivals``), the
source's middlewares and other fields, and the mirror as its target. The source keeps serving every other
request from its own services. The added routes are listed in the annotation ``ROUTES_ANNOTATION`` so that a
rerun recognises them and a restore removes exactly them.

Pure: JSON Patch ops over plain dicts (rule syntax: ``_traefik_rule``; priorities: ``_route_rivals``, read
from Traefik's own source). The methods part written here, ``Method(`GET`) || Method(`HEAD`)``, means the same
in v2 and v3 syntax.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import MIRROR_ROUTES_ANNOTATION
from ansible_collections.darklaunch.traefik.plugins.module_utils._route_rivals import (
    NoRoom,
    effective_priority,
    neighbour_routes,
    place_above,
    rivals,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._traefik_rule import (
    SYNTAX_V2,
    SYNTAX_V3,
    SyntaxMismatch,
    join_words,
    route_syntax,
    rule_error,
)

ROUTES_ANNOTATION = MIRROR_ROUTES_ANNOTATION
HTTP_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE", "POST", "PUT", "PATCH", "DELETE", "CONNECT")
# Methods that RFC 9110 defines as safe: repeating them has no intended side effect.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

# --- the options ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestMatch:
    """The requests to copy: ``methods`` (empty: every method) and ``extra`` (a rule expression, "" for none)."""

    methods: tuple[str, ...] = ()
    extra: str = ""

    @property
    def field(self) -> str:
        """The option a refusal about the combined rule names."""
        return "mirror_methods" if self.methods else "mirror_match"

    def describe(self) -> str:
        """``GET and HEAD requests``, ``requests matching <expr>``, ``GET requests matching <expr>``."""
        words = join_words(list(self.methods)) + " requests" if self.methods else "requests"
        return f"{words} matching {self.extra}" if self.extra else words

    def unsafe_methods(self) -> list[str]:
        return [method for method in self.methods if method not in SAFE_METHODS]

    def only_safe_methods(self) -> bool:
        return bool(self.methods) and not self.unsafe_methods()

    def warnings(self, shadow: str) -> list[str]:
        unsafe = self.unsafe_methods()
        if not unsafe:
            return []
        return [
            f"mirror_methods includes {join_words(unsafe)}: copies of those requests reach {shadow} with their side "
            "effects. [GET, HEAD, OPTIONS] keeps writes out of the shadow."
        ]


def parse_request_match(
    methods: Sequence[Any] | None, extra: str | None, *, attach: bool, present: bool
) -> RequestMatch | None:
    """Check ``mirror_methods`` / ``mirror_match`` (before anything is read); None when neither is set.

    Methods are upper-cased and deduplicated in the given order. The expression is checked here against both
    rule syntaxes, and again against the route's own syntax when the route is known (``plan_request_routes``).
    """
    if methods is None and extra is None:
        return None
    checked_methods: tuple[str, ...] = ()
    if methods is not None:
        checked_methods = check_methods(methods)
    checked_extra = ""
    if extra is not None:
        checked_extra = check_extra(extra)
    if present and not attach:
        given = "mirror_methods" if methods is not None else "mirror_match"
        raise DarklaunchError(
            f"{given} needs attach_to_ingress=true: the requests to copy are chosen by a route that attach adds to "
            "the IngressRoute, and without attach nothing routes through the mirror. Set attach_to_ingress=true, "
            f"or remove {given}.",
            field=given,
        )
    return RequestMatch(checked_methods, checked_extra)


def check_methods(methods: Sequence[Any]) -> tuple[str, ...]:
    if isinstance(methods, (str, bytes)) or not isinstance(methods, Sequence):
        raise DarklaunchError(
            f"mirror_methods must be a list of HTTP methods; got {methods!r}.", field="mirror_methods"
        )
    if not methods:
        raise DarklaunchError(
            "mirror_methods is an empty list, which would copy no request at all. List the methods to copy (for "
            "example [GET, HEAD, OPTIONS] for a service with side effects), or omit mirror_methods to copy every "
            "request.",
            field="mirror_methods",
        )
    result: list[str] = []
    for method in methods:
        name = method.strip().upper() if isinstance(method, str) else None
        if name not in HTTP_METHODS:
            raise DarklaunchError(
                f"mirror_methods: {method!r} is not an HTTP method this module knows; use {', '.join(HTTP_METHODS)}.",
                field="mirror_methods",
            )
        if name not in result:
            result.append(name)
    return tuple(result)


def check_extra(extra: Any) -> str:
    if not isinstance(extra, str) or not extra.strip():
        raise DarklaunchError(
            "mirror_match is empty; give a Traefik rule expression such as PathPrefix(`/api`), or omit mirror_match "
            "to copy every request the route matches.",
            field="mirror_match",
        )
    errors = {syntax: rule_error(extra, syntax) for syntax in (SYNTAX_V3, SYNTAX_V2)}
    if all(errors.values()):
        raise DarklaunchError(
            f"mirror_match {extra!r} is not a rule Traefik can parse: {errors[SYNTAX_V3]}.", field="mirror_match"
        )
    return extra.strip()


# --- the added route -----------------------------------------------------------------------------------


def combined_rule(match: str, request: RequestMatch) -> str:
    """``(<route rule>) && (Method(`GET`) || Method(`HEAD`)) && (<extra>)``: valid in v2 and v3 syntax alike."""
    parts = [f"({match.strip()})"]
    if request.methods:
        methods = " || ".join(f"Method(`{method}`)" for method in request.methods)
        parts.append(f"({methods})" if len(request.methods) > 1 else methods)
    if request.extra:
        parts.append(f"({request.extra})")
    return " && ".join(parts)


def added_priority(
    routes: Sequence[Mapping[str, Any]],
    source: int,
    ignored: Iterable[int],
    request: RequestMatch,
    neighbours: Sequence[tuple[str, Mapping[str, Any]]] = (),
    api_group: str = "traefik.io",
) -> int:
    """The priority of the route added for ``routes[source]``: the source's + 1 (see _route_rivals).

    It must beat the source and nothing that beats the source today: the IngressRoute's other routes (except
    ``ignored``, the routes added earlier) and ``neighbours``, the routes of other IngressRoutes on the same
    muxer (``_route_rivals.neighbour_routes``), where their rules can match the same requests. Refused when
    one of them has exactly the source's priority + 1: no whole number fits between the two.
    """
    own = routes[source]
    skipped = {source, *ignored}
    inside = [(f"route {index}", route) for index, route in enumerate(routes) if index not in skipped]
    try:
        return place_above(own, rivals(own, [*inside, *neighbours], api_group))
    except NoRoom as no_room:
        source_priority = effective_priority(own)
        blocking = no_room.blocking
        reason = (
            f"{blocking.where} has priority {blocking.priority}, beats route {source} for requests both match, and "
            "no whole number lies between the two"
            if blocking
            else f"priority {source_priority} is the highest Traefik accepts"
        )
        raise DarklaunchError(
            f"Route {source}'s rule cannot be combined safely with {request.field}: the route that copies "
            f"{request.describe()} needs a priority above route {source}'s ({source_priority}) and below every "
            f"route that beats route {source} today, but {reason}. Nothing was changed. Give route {source} a "
            f"lower explicit priority (or {blocking.where if blocking else 'the other route'} a higher one), or "
            f"attach without {request.field}.",
            field=request.field,
        ) from None


def added_route(
    source: Mapping[str, Any], combined: str, priority: int, services: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The source route's fields (middlewares, syntax, observability, kind, ...) with the combined rule, the
    added priority and the mirror's services."""
    route = {key: copy.deepcopy(value) for key, value in source.items() if key not in ("priority", "services")}
    route["match"] = combined
    route["priority"] = priority
    route["services"] = [copy.deepcopy(dict(entry)) for entry in services]
    return route


# --- the record of added routes ------------------------------------------------------------------------


def read_record(annotations: Mapping[str, Any]) -> tuple[dict[int, dict[str, Any]], bool]:
    """The annotation's ``{added route index: {"source": index, "match": rule}}`` and whether it was readable."""
    text = annotations.get(ROUTES_ANNOTATION)
    if text is None:
        return {}, True
    try:
        decoded = json.loads(str(text))
    except ValueError:
        return {}, False
    if not isinstance(decoded, dict):
        return {}, False
    record: dict[int, dict[str, Any]] = {}
    for key, entry in decoded.items():
        if not str(key).isdigit() or not isinstance(entry, dict) or not isinstance(entry.get("match"), str):
            return {}, False
        record[int(key)] = entry
    return record, True


def dump_record(record: Mapping[int, Mapping[str, Any]]) -> str:
    ordered = {
        str(index): {"match": record[index]["match"], "source": record[index]["source"]} for index in sorted(record)
    }
    return json.dumps(ordered, separators=(",", ":"))


def added_routes(
    ingress_route: Mapping[str, Any], targets_mirror: Callable[[Mapping[str, Any]], bool]
) -> tuple[dict[int, int | None], list[str]]:
    """The routes attach added, ``{index: source index or None}``, and warnings about records that no longer
    match a route. A recorded route counts while it still has its recorded rule and a mirror entry; if routes
    were inserted before it, it is found by its rule."""
    annotations = (ingress_route.get("metadata") or {}).get("annotations") or {}
    record, readable = read_record(annotations)
    warnings = [] if readable else [f"The {ROUTES_ANNOTATION} annotation was unreadable; it was rewritten."]
    routes = (ingress_route.get("spec") or {}).get("routes") or []

    def ours(index: int, match: str) -> bool:
        route = routes[index] if 0 <= index < len(routes) else None
        if not isinstance(route, Mapping) or route.get("match") != match:
            return False
        services = route.get("services") or []
        return any(isinstance(entry, Mapping) and targets_mirror(entry) for entry in services)

    found: dict[int, int | None] = {}
    for index, entry in sorted(record.items()):
        source = entry.get("source")
        source_index = source if isinstance(source, int) and not isinstance(source, bool) else None
        if ours(index, entry["match"]) and index not in found:
            found[index] = source_index
            continue
        moved = [i for i in range(len(routes)) if i not in found and ours(i, entry["match"])]
        if moved:
            found[moved[0]] = source_index
        else:
            warnings.append(
                f"The route added for request matching ({entry['match']}) was changed or removed by someone else; "
                "it is no longer treated as this module's."
            )
    return found, warnings


def annotation_ops(annotations: Any, updates: Mapping[str, str | None]) -> list[dict[str, Any]]:
    """JSON Patch ops that set (value) or remove (None) annotation keys, keeping every other annotation; the
    map goes as a whole when nothing else is left in it, so that a restore gives back the original object."""
    current = dict(annotations) if isinstance(annotations, Mapping) else None
    wanted = dict(current or {})
    for key, value in updates.items():
        if value is None:
            wanted.pop(key, None)
        else:
            wanted[key] = value
    if current is None:
        return [{"op": "add", "path": "/metadata/annotations", "value": wanted}] if wanted else []
    if wanted == current:
        return []
    if not wanted:
        return [{"op": "remove", "path": "/metadata/annotations"}]
    ops: list[dict[str, Any]] = [
        {"op": "remove", "path": f"/metadata/annotations/{_pointer(key)}"} for key in current if key not in wanted
    ]
    ops.extend(
        {"op": "add", "path": f"/metadata/annotations/{_pointer(key)}", "value": value}
        for key, value in wanted.items()
        if current.get(key) != value
    )
    return ops


def _pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


# --- planning ------------------------------------------------------------------------------------------


@dataclass
class RoutesChange:
    """JSON Patch ops (without the resourceVersion test) and what they do in words (empty: nothing to do)."""

    ops: list[dict[str, Any]]
    changes: list[str]
    added_after: frozenset[int]


def plan_request_routes(
    ingress_route: Mapping[str, Any],
    request: RequestMatch,
    sources: Mapping[int, Sequence[Mapping[str, Any]]],
    existing: Mapping[int, int | None],
    api_group: str,
    neighbours: Sequence[Mapping[str, Any]] = (),
) -> RoutesChange:
    """Ops that make the IngressRoute carry exactly one added route per source: ``sources`` maps a route index
    to the services its added route targets (its entries repointed to the mirror); ``existing`` holds the
    routes added earlier (``added_routes``). An added route that is already right is left alone, one that
    differs is replaced in place, one whose source is gone is removed, a missing one is appended (the
    indexes of the IngressRoute's own routes, and so Traefik's names for them, never change)."""
    routes = list((ingress_route.get("spec") or {}).get("routes") or [])
    # Other IngressRoutes' routes compete with these on Traefik's muxer (see _route_rivals).
    outside = neighbour_routes(ingress_route, neighbours)
    desired: dict[int, dict[str, Any]] = {}
    for index in sorted(sources):
        route = routes[index]
        match = str(route.get("match") or "")
        if effective_priority(route) is None:
            kind = route.get("kind") or "Rule"
            reason = "has no rule" if not match else f"is of kind {kind}, which Traefik ignores"
            raise DarklaunchError(
                f"Route {index} {reason}, so it cannot be combined with {request.field}.", field=request.field
            )
        try:
            route_syntax(route, request.extra, api_group)
        except SyntaxMismatch as mismatch:
            raise DarklaunchError(
                f"mirror_match {request.extra!r} cannot be combined with route {index}: {mismatch}. Write it in "
                "the route's syntax.",
                field="mirror_match",
            ) from None
        except ValueError as error:
            raise DarklaunchError(
                f"Route {index}'s rule cannot be combined safely with {request.field}: {error}. Fix the route "
                f"(Traefik ignores a rule it cannot parse), or attach without {request.field}.",
                field=request.field,
            ) from None
        combined = combined_rule(match, request)
        priority = added_priority(routes, index, existing, request, outside, api_group)
        desired[index] = added_route(route, combined, priority, sources[index])
    placed: dict[int, int] = {}  # source -> index of its added route
    stale: list[int] = []
    for index, source in sorted(existing.items()):
        if source in desired and source not in placed:
            placed[source] = index
        else:
            stale.append(index)
    ops: list[dict[str, Any]] = []
    changes: list[str] = []
    for source, route in desired.items():
        position = placed.get(source)
        if position is not None and routes[position] != route:
            ops.append({"op": "replace", "path": f"/spec/routes/{position}", "value": route})
            changes.append(f"route {position} (copies {request.describe()} of route {source}) updated")
    for index in sorted(stale, reverse=True):
        ops.append({"op": "remove", "path": f"/spec/routes/{index}"})
        changes.append(f"route {index} (added for request matching, its source is gone) removed")

    def shifted(index: int) -> int:
        return index - sum(1 for gone in stale if gone < index)

    record: dict[int, dict[str, Any]] = {}
    count = len(routes) - len(stale)
    for source, route in desired.items():
        if source in placed:
            record[shifted(placed[source])] = {"source": shifted(source), "match": route["match"]}
            continue
        ops.append({"op": "add", "path": "/spec/routes/-", "value": route})
        at = f" at priority {route['priority']}"
        changes.append(
            f"route {count} added{at}: it sends {request.describe()} of route {source} through the mirror, "
            f"and route {source} keeps serving every other request"
        )
        record[count] = {"source": shifted(source), "match": route["match"]}
        count += 1
    annotations = (ingress_route.get("metadata") or {}).get("annotations")
    ops.extend(annotation_ops(annotations, {ROUTES_ANNOTATION: dump_record(record) if record else None}))
    return RoutesChange(ops, changes, frozenset(record))


def refuse_switching(
    request: RequestMatch | None, already_attached: bool, added: Collection[int], route_name: str, mirror_name: str
) -> None:
    """Attaching with request matching over an attach that copies every request, or the other way round, is
    refused: keeping both would leave unclear which requests are copied."""
    if request is not None and already_attached:
        raise DarklaunchError(
            f"IngressRoute {route_name} already sends every request through the mirror {mirror_name} (attached "
            f"without mirror_methods/mirror_match). To copy only {request.describe()}, run state=absent first (it "
            "restores the IngressRoute), then attach again with them.",
            field=request.field,
        )
    if request is None and added:
        raise DarklaunchError(
            f"IngressRoute {route_name} copies only some requests, through its route "
            f"{', '.join(str(index) for index in sorted(added))} (attached with mirror_methods/mirror_match). Pass "
            "the same mirror_methods/mirror_match, or run state=absent first to copy every request.",
            field="mirror_methods",
        )


def removal_ops(existing: Iterable[int]) -> list[dict[str, Any]]:
    """Remove the added routes, highest index first (so each index still names the route meant)."""
    return [{"op": "remove", "path": f"/spec/routes/{index}"} for index in sorted(existing, reverse=True)]
