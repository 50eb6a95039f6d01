# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The object names a launch derives from its route's name when the user gives none: the only place they are built."""

from __future__ import annotations

MIRROR_SUFFIX = "-mirror"
WRR_SUFFIX = "-wrr"
MAIN_SUFFIX = "-stable"
SHADOW_SUFFIX = "-staging"
COMPARE_SUFFIX = "-compare"
SPLIT_SUFFIX = "-split"


def mirror_name(route: str) -> str:
    """The mirroring TraefikService."""
    return route + MIRROR_SUFFIX


def wrr_name(route: str) -> str:
    """The weighted TraefikService the route served before the launch (restored at teardown)."""
    return route + WRR_SUFFIX


def main_service_name(route: str) -> str:
    """The stable Service users are answered by."""
    return route + MAIN_SUFFIX


def shadow_service_name(route: str) -> str:
    """The Service that receives the copies."""
    return route + SHADOW_SUFFIX


def split_name(route: str) -> str:
    """The weighted TraefikService that keeps an HTTPRoute rule's backendRefs split while the mirror is on it."""
    return route + SPLIT_SUFFIX


def compare_service_name(route: str) -> str:
    """The comparator the role deploys between the mirror and the shadow (its ConfigMap, Deployment, Service)."""
    return route + COMPARE_SUFFIX


def route_of_mirror(mirror: str) -> str:
    """The route a default mirror name was derived from; a name of the user's own choosing as it is."""
    return mirror[: -len(MIRROR_SUFFIX)] if mirror.endswith(MIRROR_SUFFIX) else mirror
