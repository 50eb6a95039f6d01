# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The seed route of the module_utils tests: its objects (fixtures/objects/<name>.yaml), its names, and
traefik_mirror's arguments that attach a 20% mirror to it or tear it down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

OBJECTS = Path(__file__).parent / "fixtures" / "objects"
NS = "production"
ROUTE = "api-service-route"
MIRROR = f"{ROUTE}-mirror"
# traefik_mirror's arguments leave out api_group: the runner finds the group the API serves.
# The route on its weighted split, and the same route attached to a 20% mirror.
WORLD = ["ts-wrr-50-50", "ir-to-wrr", "svc-api-service-stable", "svc-api-service-canary"]
ATTACHED = ["ts-wrr-50-50", "ts-mirror-20", "ir-to-mirror", "svc-api-service-stable", "svc-api-service-canary"]
ATTACH = {
    "route_name": ROUTE,
    "namespace": NS,
    "state": "present",
    "main_service": "api-service-stable",
    "mirror_service": "api-service-canary",
    "mirror_percent": 20,
    "attach_to_ingress": True,
    "confirm_end_weighted_split": True,
}
TEARDOWN = {"route_name": ROUTE, "namespace": NS, "state": "absent"}


def load(name: str) -> dict[str, Any]:
    """The object of fixtures/objects/<name>.yaml."""
    loaded: dict[str, Any] = yaml.safe_load((OBJECTS / f"{name}.yaml").read_text())
    return loaded
