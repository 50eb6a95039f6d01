# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The propagation wait: which writes of a run must give Traefik time to see the write before them."""

from __future__ import annotations

from collections.abc import Sequence

from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    KIND_INGRESS_ROUTE,
    KIND_TRAEFIK_SERVICE,
)


def propagation_waits(writes: Sequence[tuple[str, str]]) -> list[bool]:
    """For each write ``(verb, kind)`` of a run, in order: whether to wait ``propagation_seconds`` before it.

    Traefik watches IngressRoutes and TraefikServices on separate streams and builds its configuration from
    whatever each has delivered so far. A route that names a TraefikService Traefik has not seen yet (created
    a moment ago), or no longer has (deleted before Traefik saw the route let go of it), is dropped, and that
    route answers 404 until the next change. So a route written after a TraefikService was created, and a
    TraefikService deleted after a route was written, each wait for the earlier write to reach Traefik.
    """
    waits: list[bool] = []
    created = routed = False
    for verb, kind in writes:
        wait = (kind == KIND_INGRESS_ROUTE and created) or (
            verb == "delete" and kind == KIND_TRAEFIK_SERVICE and routed
        )
        if wait:
            created = routed = False
        waits.append(wait)
        created = created or (verb == "create" and kind == KIND_TRAEFIK_SERVICE)
        routed = routed or kind == KIND_INGRESS_ROUTE
    return waits
