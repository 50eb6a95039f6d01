# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The distribution's sentence says which requests are mirrored when the mirror is attached through a route added
for request matching (traefik_mirror's mirror_methods / mirror_match)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_match import (
    RequestMatch,
    combined_rule,
    dump_record,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    MIRROR_ROUTES_ANNOTATION,
    index_by_key,
    parse_ingress_route,
    parse_traefik_service,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._route_walker import resolve_route

OBJECTS = Path(__file__).parent / "fixtures" / "objects"
HOST = "Host(`api.example.com`)"


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((OBJECTS / f"{name}.yaml").read_text())
    return loaded


def _attached(request: RequestMatch, record: bool = True, percent: int = 20) -> dict[str, Any]:
    """ir-direct as attach leaves it with request matching: its route kept, one route added to the mirror."""
    route = _load("ir-direct")
    original = route["spec"]["routes"][0]
    added = copy.deepcopy(original)
    added["match"] = combined_rule(original["match"], request)
    added["services"] = [{"name": "api-service-route-mirror", "kind": "TraefikService"}]
    route["spec"]["routes"].append(added)
    if record:
        route["metadata"]["annotations"] = {
            MIRROR_ROUTES_ANNOTATION: dump_record({1: {"match": added["match"], "source": 0}})
        }
    return route


def _explain(route: dict[str, Any], percent: int = 20) -> dict[str, Any]:
    mirror = _load("ts-mirror-20")
    mirror["spec"]["mirroring"]["mirrors"][0]["percent"] = percent
    return resolve_route(parse_ingress_route(route), index_by_key([parse_traefik_service(mirror)])).to_dict()


@pytest.mark.parametrize(
    ("request_match", "words"),
    [
        (RequestMatch(("GET",)), "GET requests"),
        (RequestMatch(("GET", "HEAD")), "GET and HEAD requests"),
        (RequestMatch(("GET", "HEAD", "OPTIONS")), "GET, HEAD and OPTIONS requests"),
        (RequestMatch((), "PathPrefix(`/api`)"), "requests matching PathPrefix(`/api`)"),
        (RequestMatch(("GET",), "Header(`X-Shadow`, `yes`) || PathPrefix(`/a`)"),
         "GET requests matching Header(`X-Shadow`, `yes`) || PathPrefix(`/a`)"),
    ],
)  # fmt: skip
def test_the_sentence_names_the_mirrored_requests(request_match: RequestMatch, words: str) -> None:
    distribution = _explain(_attached(request_match))
    assert distribution["explanation"] == (
        f"All user responses come from api-service-stable; 20% of {words} are copied to api-service-canary and its "
        "responses are discarded; other requests are not copied."
    )
    # The added route is the route the launch is judged on; the original keeps serving the other requests.
    assert distribution["traffic_split"]["type"] == "mirror"
    assert [route["explanation"].split("; ")[1] for route in distribution["routes"]] == [
        "nothing is mirrored.",
        f"20% of {words} are copied to api-service-canary and its responses are discarded",
    ]


def test_at_zero_percent_nothing_is_mirrored() -> None:
    distribution = _explain(_attached(RequestMatch(("GET",))), percent=0)
    assert "nothing is mirrored" in distribution["explanation"]
    assert "GET" not in distribution["explanation"]


def test_an_unrecorded_route_to_the_mirror_is_not_taken_for_a_method_filter() -> None:
    """Without the annotation (a route someone else added) the sentence claims nothing about methods."""
    distribution = _explain(_attached(RequestMatch(("GET",)), record=False))
    assert "20% of requests are copied" in distribution["explanation"]
    assert "other requests are not copied" not in distribution["explanation"]


def test_a_route_changed_after_the_attach_is_not_described_by_its_record() -> None:
    route = _attached(RequestMatch(("GET",)))
    route["spec"]["routes"][1]["match"] = f"{HOST} && Method(`POST`)"
    assert "20% of requests are copied" in _explain(route)["explanation"]


def test_without_request_matching_the_sentence_is_unchanged() -> None:
    route = _load("ir-direct")
    route["spec"]["routes"][0]["services"] = [{"name": "api-service-route-mirror", "kind": "TraefikService"}]
    assert _explain(route)["explanation"] == (
        "All user responses come from api-service-stable; 20% of requests are copied to api-service-canary and its "
        "responses are discarded."
    )


def test_the_mirrored_methods_are_those_of_the_added_route() -> None:
    route = parse_ingress_route(_attached(RequestMatch(("GET", "HEAD"))))
    mirror = parse_traefik_service(_load("ts-mirror-20"))
    assert resolve_route(route, index_by_key([mirror])).mirrored_methods == ("GET", "HEAD")
    extra_only = parse_ingress_route(_attached(RequestMatch((), "PathPrefix(`/api`)")))
    assert resolve_route(extra_only, index_by_key([mirror])).mirrored_methods == ()
