from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution import (
    build_reference_index,
    ingress_route_targets,
    summarise_mirror,
    summarise_weighted,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution_records import (
    RouteDistribution,
    percent_value,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    index_by_key,
    parse_ingress_route,
    parse_kube_service,
    parse_traefik_service,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._route_walker import resolve_route
from ansible_collections.darklaunch.traefik.plugins.module_utils._traffic_view import anomaly_targets

FIXTURES = Path(__file__).parent / "fixtures"
CASES = yaml.safe_load((FIXTURES / "distribution_cases.yaml").read_text())["cases"]


def load_object(name: str) -> dict[str, Any]:
    return yaml.safe_load((FIXTURES / "objects" / f"{name}.yaml").read_text())


def traefik_services(*names: str) -> dict[tuple[str, str], Any]:
    return index_by_key(parse_traefik_service(load_object(n)) for n in names)


def resolve_case_distribution(case: dict[str, Any]) -> RouteDistribution:
    services = None
    if case["services"] is not None:
        services = index_by_key(parse_kube_service(load_object(n)) for n in case["services"])
    ingress_route = parse_ingress_route(load_object(case["ingress_route"]))
    return resolve_route(ingress_route, traefik_services(*case["traefik_services"]), services)


def resolve_case(case: dict[str, Any]) -> dict[str, Any]:
    return resolve_case_distribution(case).to_dict()


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_resolve_route(case: dict[str, Any]) -> None:
    result = resolve_case(case)
    expect = case["expect"]
    for key in ("traffic_split", "target", "main_sink", "shadow", "cycles", "explanation", "routes"):
        if key in expect:
            assert result[key] == expect[key], key
    if "broken" in expect:
        reasons = [b["reason"] for b in result["broken"]]
        assert len(reasons) == len(expect["broken"]), reasons
        for reason, fragment in zip(reasons, expect["broken"], strict=True):
            assert fragment in reason
    if "backends" in expect:
        backends = [[b["role"], b["name"], b["port"], b["service_label"], b["percent"]] for b in result["backends"]]
        assert backends == expect["backends"]


TARGET_CASES = [c for c in CASES if "anomaly_targets" in c["expect"]]


@pytest.mark.parametrize("case", TARGET_CASES, ids=[c["id"] for c in TARGET_CASES])
def test_anomaly_targets(case: dict[str, Any]) -> None:
    """Who is judged, as what, and against whom: only the mirrored route's Services are main."""
    targets = anomaly_targets(resolve_case_distribution(case))
    found = [[t["role"], t["name"], t["service_label"], t["pair"]] for t in targets]
    assert found == case["expect"]["anomaly_targets"]
    assert all(t["namespace"] == "production" for t in targets)


def test_distribution_shape_matches_architecture() -> None:
    case = next(c for c in CASES if c["id"] == "mirror-20")
    result = resolve_case(case)
    assert set(result) == {
        "route",
        "namespace",
        "route_kind",
        "label_form",
        "traffic_split",
        "target",
        "routes",
        "main_sink",
        "shadow",
        "broken",
        "cycles",
        "backends",
        "explanation",
    }
    assert result["route"] == "api-service-route"
    assert result["namespace"] == "production"
    assert result["routes"][0]["match"] == "Host(`api.example.com`)"
    assert result["routes"][0]["targets"][0]["weight"] == 5
    # The top-level target answers "which TraefikService does the ingress point at": no weight there.
    assert "weight" not in result["target"]


def test_every_route_is_resolved_separately() -> None:
    case = next(c for c in CASES if c["id"] == "several-routes-first-one-leads")
    routes = resolve_case(case)["routes"]
    assert [r["traffic_split"]["type"] for r in routes] == ["weighted", "direct"]
    assert routes[1]["main_sink"] == [
        {
            "name": "api-service-stable",
            "kind": "Service",
            "namespace": "production",
            "port": 80,
            "user_share_percent": 100,
        }
    ]
    assert routes[1]["explanation"] == "All user responses come from api-service-stable; nothing is mirrored."


def test_cycle_does_not_hang_and_keeps_reachable_backends() -> None:
    case = next(c for c in CASES if c["id"] == "reference-cycle-is-reported-not-followed")
    result = resolve_case(case)
    # loop-a: 50% stable, 50% loop-b; loop-b mirrors 10% of its half to the canary, then loops back.
    assert result["main_sink"][0]["name"] == "api-service-stable"
    assert result["main_sink"][0]["user_share_percent"] == 50
    assert result["shadow"][0]["percent"] == 5


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [(1, 1, 100), (1, 5, 20), (1, 3, 33.33), (2, 3, 66.67), (0, 1, 0), (1, 400, 0.25)],
)
def test_percent_value(numerator: int, denominator: int, expected: float) -> None:
    from fractions import Fraction

    assert percent_value(Fraction(numerator, denominator)) == expected


def test_reference_index_follows_nested_services() -> None:
    services = traefik_services("ts-wrr-stable-and-mirror", "ts-mirror-20")
    routes = [parse_ingress_route(load_object("ir-single-to-wrr")), parse_ingress_route(load_object("ir-direct"))]
    index = build_reference_index(routes, services)
    wrr_refs = [r.to_dict() for r in index[("production", "api-service-route-wrr")]]
    mirror_refs = [r.to_dict() for r in index[("production", "api-service-route-mirror")]]
    assert wrr_refs == [
        {
            "ingress_route": "api-service-route",
            "namespace": "production",
            "route_index": 0,
            "direct": True,
            "route_kind": "IngressRoute",
        }
    ]
    assert mirror_refs == [
        {
            "ingress_route": "api-service-route",
            "namespace": "production",
            "route_index": 0,
            "direct": False,
            "route_kind": "IngressRoute",
        }
    ]


def test_reference_index_survives_cycles() -> None:
    index = build_reference_index(
        [parse_ingress_route(load_object("ir-to-loop"))], traefik_services("ts-loop-a", "ts-loop-b")
    )
    assert sorted(index) == [("production", "loop-a"), ("production", "loop-b")]
    assert index[("production", "loop-a")][0].direct is True
    assert index[("production", "loop-b")][0].direct is False


def test_summarise_mirror() -> None:
    mirror = parse_traefik_service(load_object("ts-mirror-20"))
    refs = build_reference_index([parse_ingress_route(load_object("ir-to-mirror"))], index_by_key([mirror]))
    summary = summarise_mirror(mirror, refs[mirror.key])
    assert summary == {
        "name": "api-service-route-mirror",
        "namespace": "production",
        "managed": True,
        "main": {
            "name": "api-service-stable",
            "kind": "Service",
            "namespace": "production",
            "port": 80,
            "service_label": "production-api-service-stable-80@kubernetescrd",
        },
        "mirrors": [
            {
                "name": "api-service-canary",
                "kind": "Service",
                "namespace": "production",
                "port": 80,
                "percent": 20,
                "service_label": "production-api-service-canary-80@kubernetescrd",
            }
        ],
        "percent": 20,
        "mirror_body": None,
        "max_body_size": None,
        "body_buffered_in_memory": True,
        "active": True,
        "referenced_by": [
            {
                "ingress_route": "api-service-route",
                "namespace": "production",
                "route_index": 0,
                "direct": True,
                "route_kind": "IngressRoute",
            }
        ],
    }


def test_summarise_mirror_inactive_with_bounded_body() -> None:
    # How the object is parsed (an omitted kind is a Service, the body options) is test_model's
    # test_parse_hand_made_mirror_defaults; here, what the summary makes of it.
    summary = summarise_mirror(parse_traefik_service(load_object("ts-mirror-unmanaged-bounded")))
    assert summary["active"] is False
    assert summary["referenced_by"] == []
    assert summary["managed"] is False
    assert (summary["mirror_body"], summary["max_body_size"]) == (True, 1048576)
    assert summary["body_buffered_in_memory"] is False, "a bounded body is not read whole into memory"


def test_summarise_mirror_over_traefik_service_has_no_port() -> None:
    summary = summarise_mirror(parse_traefik_service(load_object("ts-mirror-over-wrr")))
    assert summary["main"] == {
        "name": "api-service-route-wrr",
        "kind": "TraefikService",
        "namespace": "production",
        "port": None,
        "service_label": None,
    }
    assert summary["percent"] == 10


def test_summarise_weighted() -> None:
    summary = summarise_weighted(parse_traefik_service(load_object("ts-wrr-default-weights")))
    assert [(s["name"], s["weight"], s["effective_weight"], s["user_share_percent"]) for s in summary["services"]] == [
        ("api-service-stable", None, 1, 33.33),
        ("api-service-canary", None, 1, 33.33),
        ("api-service-staging", None, 1, 33.33),
    ]
    assert summary["live_split"] is True
    assert summary["sticky"] is True
    assert summary["active"] is False


def test_summarise_weighted_single_live_backend_is_not_a_split() -> None:
    summary = summarise_weighted(parse_traefik_service(load_object("ts-wrr-100-0")))
    assert [s["user_share_percent"] for s in summary["services"]] == [100, 0]
    assert summary["live_split"] is False


@pytest.mark.parametrize(
    ("ingress_route", "objects", "expected_types"),
    [
        ("ir-to-wrr", ["ts-wrr-50-50"], [["weighted"], ["Service"]]),
        ("ir-to-mirror", ["ts-mirror-20"], [["mirror"], ["Service"]]),
        ("ir-to-failover", ["ts-failover"], [["TraefikService-other"]]),
        ("ir-cross-provider", [], [["TraefikService-other"]]),
        ("ir-to-missing-ts", [], [["missing"]]),
        ("ir-two-services", [], [["Service", "Service"]]),
    ],
)
def test_ingress_route_target_types(ingress_route: str, objects: list[str], expected_types: list[list[str]]) -> None:
    summary = ingress_route_targets(parse_ingress_route(load_object(ingress_route)), traefik_services(*objects))
    assert [[t["target_type"] for t in route["targets"]] for route in summary["routes"]] == expected_types


def test_ingress_route_targets_shape() -> None:
    services = index_by_key(parse_kube_service(load_object("svc-api-service-canary")) for _copy in range(1))
    summary = ingress_route_targets(
        parse_ingress_route(load_object("ir-to-mirror")), traefik_services("ts-mirror-20"), services
    )
    assert summary["name"] == "api-service-route"
    assert summary["entry_points"] == ["websecure"]
    assert summary["attached_by_darklaunch"] is True
    assert summary["routes"][0]["middlewares"] == ["api-ratelimit", "strip-v1"]
    assert summary["routes"][0]["priority"] == 10
    # With the Service list given, a Service that is not in it is reported missing.
    assert summary["routes"][1]["targets"][0]["target_type"] == "missing"
