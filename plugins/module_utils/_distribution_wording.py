# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plain-language sentences of a traffic split: who answers users, what is copied where."""

from __future__ import annotations

from collections.abc import Sequence

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution_records import (
    BackendShare,
    BrokenRef,
    RouteResolution,
    percent_value,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    KIND_TRAEFIK_SERVICE,
)


def _display_names(sinks: Sequence[BackendShare], route_namespace: str) -> list[str]:
    names = []
    for sink in sinks:
        name = sink.name if sink.namespace == route_namespace else f"{sink.namespace}/{sink.name}"
        if sink.kind == KIND_TRAEFIK_SERVICE:
            name = f"TraefikService {name}"
        if sink.opaque_reason:
            name = f"{name} ({sink.opaque_reason})"
        names.append(name)
    # The same Service on two ports would read twice the same: add the port to tell them apart.
    for i, sink in enumerate(sinks):
        if names.count(names[i]) > 1 and sink.port is not None:
            names[i] = f"{names[i]}:{sink.port}"
    return names


def join_words(words: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _describe_users(main: Sequence[BackendShare], route_namespace: str) -> str:
    serving = [s for s in main if s.share > 0]
    idle = [s for s in main if s.share == 0]
    names = dict(zip((id(s) for s in main), _display_names(main, route_namespace), strict=True))
    if not serving:
        text = "No service receives user requests"
    elif len(serving) == 1:
        text = f"All user responses come from {names[id(serving[0])]}"
    else:
        parts = [f"{percent_value(s.share)}% from {names[id(s)]}" for s in serving]
        text = "User responses come " + ", ".join(parts)
    if idle:
        verb = "gets" if len(idle) == 1 else "get"
        text += f" ({join_words([names[id(s)] for s in idle])} {verb} no users: weight 0)"
    return text


def _describe_shadow(shadow: Sequence[BackendShare], route_namespace: str, requests: str = "requests") -> str:
    """``requests``: which of the route's requests reach the mirror (``GET and HEAD requests`` on a route attach
    added for request matching)."""
    copying = [s for s in shadow if s.share > 0]
    names = dict(zip((id(s) for s in shadow), _display_names(shadow, route_namespace), strict=True))
    if len(copying) == 1:
        sink = copying[0]
        return (
            f"{percent_value(sink.share)}% of {requests} are copied to {names[id(sink)]} and its responses are "
            "discarded"
        )
    if copying:
        parts = [f"{names[id(s)]} ({percent_value(s.share)}%)" for s in copying]
        return f"{requests} are copied to {join_words(parts)} and their responses are discarded"
    if shadow:
        verb = "is" if len(shadow) == 1 else "are"
        return f"nothing is mirrored (the copy to {join_words([names[id(s)] for s in shadow])} {verb} set to 0%)"
    return "nothing is mirrored"


def explain(
    main: Sequence[BackendShare],
    shadow: Sequence[BackendShare],
    broken: Sequence[BrokenRef],
    route_namespace: str,
    requests: str = "requests",
) -> str:
    """One plain sentence: who answers users, what is copied where; a broken route says so first."""
    if broken:
        return f"This route does not work: {broken[0].reason}"
    copied = _describe_shadow(shadow, route_namespace, requests)
    if requests != "requests" and any(s.share > 0 for s in shadow):
        copied += "; other requests are not copied"
    return f"{_describe_users(main, route_namespace)}; {copied}."


def explain_ingress_route(resolutions: Sequence[RouteResolution], word: str = "route") -> str:
    """The route's sentence: that of its mirrored route (an HTTPRoute's rule: ``word``), noting the others."""
    primary = next((r for r in resolutions if r.carries_mirror), resolutions[0])
    # The route an added route copies from serves the requests it does not take: part of the same split.
    sources = {r.source_index for r in resolutions if r.source_index is not None and r.carries_mirror}
    differing = sum(
        1
        for r in resolutions
        if r is not primary and r.explanation != primary.explanation and not (r.index in sources and not r.shadow)
    )
    if not differing:
        return primary.explanation
    others = f"1 other {word} splits" if differing == 1 else f"{differing} other {word}s split"
    where = f"{word} {primary.index}, {primary.match}"
    return f"{primary.explanation[:-1]} (for {where}; {others} differently, see routes)."
