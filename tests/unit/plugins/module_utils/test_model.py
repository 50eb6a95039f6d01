from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import ConflictError, DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    check_name,
    dump_saved_services,
    index_by_key,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_port_name,
    normalise_port,
    normalise_traefik_name,
    parse_ingress_route,
    parse_kube_service,
    parse_saved_services,
    parse_traefik_service,
    route_service_label,
    traefik_service_label,
)

OBJECTS = Path(__file__).parent / "fixtures" / "objects"
ALL_OBJECTS = sorted(p.stem for p in OBJECTS.glob("*.yaml"))
PARSERS = {"TraefikService": parse_traefik_service, "IngressRoute": parse_ingress_route, "Service": parse_kube_service}


def load_object(name: str) -> dict[str, Any]:
    return yaml.safe_load((OBJECTS / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", ALL_OBJECTS)
def test_every_fixture_object_parses(name: str) -> None:
    raw = load_object(name)
    parsed = PARSERS[raw["kind"]](raw)
    assert parsed.key == (raw["metadata"]["namespace"], raw["metadata"]["name"])
    assert parsed.resource_version == raw["metadata"]["resourceVersion"]


def test_parse_mirroring_service() -> None:
    mirror = parse_traefik_service(load_object("ts-mirror-20"))
    assert mirror.spec_type == "mirroring"
    assert mirror.main is not None
    assert mirror.main.to_dict() == {
        "name": "api-service-stable",
        "kind": "Service",
        "namespace": "production",
        "port": 80,
        "weight": None,
    }
    assert [m.to_dict() for m in mirror.mirrors] == [
        {"name": "api-service-canary", "kind": "Service", "namespace": "production", "port": 80, "percent": 20}
    ]
    assert mirror.is_managed is True
    assert mirror.resource_version == "3105"
    assert (mirror.mirror_body, mirror.max_body_size) == (None, None)


def test_parse_hand_made_mirror_defaults() -> None:
    mirror = parse_traefik_service(load_object("ts-mirror-unmanaged-bounded"))
    assert mirror.main is not None
    assert mirror.main.kind == "Service"  # omitted kind means Service
    assert mirror.mirrors[0].kind == "Service"
    assert (mirror.mirror_body, mirror.max_body_size) == (True, 1048576)
    assert mirror.is_managed is False


def test_missing_percent_means_zero() -> None:
    raw = load_object("ts-mirror-20")
    del raw["spec"]["mirroring"]["mirrors"][0]["percent"]
    assert parse_traefik_service(raw).mirrors[0].percent == 0


def test_parse_weighted_service() -> None:
    wrr = parse_traefik_service(load_object("ts-wrr-default-weights"))
    assert wrr.spec_type == "weighted"
    assert [(s.name, s.port, s.weight, s.effective_weight) for s in wrr.weighted] == [
        ("api-service-stable", 80, None, 1),
        ("api-service-canary", "http", None, 1),
        ("api-service-staging", 80, None, 1),
    ]
    assert wrr.sticky is True
    assert [c.name for c in wrr.children()] == ["api-service-stable", "api-service-canary", "api-service-staging"]


def test_parse_weight_zero() -> None:
    wrr = parse_traefik_service(load_object("ts-wrr-100-0"))
    assert [(s.weight, s.effective_weight) for s in wrr.weighted] == [(100, 100), (0, 0)]


def test_parse_other_service_type() -> None:
    failover = parse_traefik_service(load_object("ts-failover"))
    assert failover.spec_type == "other"
    assert failover.spec_detail == "failover"
    assert failover.children() == ()


def test_mirroring_children_are_main_then_mirrors() -> None:
    mirror = parse_traefik_service(load_object("ts-mirror-over-wrr"))
    assert [(c.kind, c.name) for c in mirror.children()] == [
        ("TraefikService", "api-service-route-wrr"),
        ("Service", "api-service-staging"),
    ]


def test_parse_ingress_route() -> None:
    route = parse_ingress_route(load_object("ir-to-wrr"))
    assert route.entry_points == ("websecure",)
    assert [r.index for r in route.routes] == [0, 1]
    first, second = route.routes
    assert first.match == "Host(`api.example.com`) && PathPrefix(`/v1`)"
    assert first.priority == 10
    assert first.middlewares == ("api-ratelimit", "strip-v1")
    assert [(s.kind, s.name, s.namespace, s.port) for s in first.services] == [
        ("TraefikService", "api-service-route-wrr", "production", None)
    ]
    assert second.kind == "Rule"
    assert second.services[0].port == 80
    assert route.labels["team"] == "payments"
    assert route.saved_pre_mirror_services() is None


def test_parse_ingress_route_reads_saved_targets() -> None:
    route = parse_ingress_route(load_object("ir-to-mirror"))
    assert route.saved_pre_mirror_services() == {"0": [{"kind": "TraefikService", "name": "api-service-route-wrr"}]}


def test_route_kind_defaults_to_rule() -> None:
    assert parse_ingress_route(load_object("ir-to-failover")).routes[0].kind == "Rule"


def test_parse_kube_service_ports() -> None:
    service = parse_kube_service(load_object("svc-api-service-multi"))
    assert [p.to_dict() for p in service.ports] == [
        {"name": "http", "port": 80, "target_port": "http", "protocol": "TCP"},
        {"name": "metrics", "port": 9090, "target_port": 9090, "protocol": "TCP"},
    ]
    assert service.find_port(9090) == service.ports[1]
    assert service.find_port("metrics") == service.ports[1]
    assert service.find_port(8080) is None
    assert service.find_port("grpc") is None
    assert service.describe_ports() == "80 (http), 9090 (metrics)"


def test_externalname_service_accepts_any_number() -> None:
    service = parse_kube_service(load_object("svc-api-service-external"))
    assert service.type == "ExternalName"
    assert service.external_name == "localhost"
    assert service.ports == ()
    found = service.find_port(18080)
    assert found is not None and found.port == 18080
    assert service.find_port("http") is None
    assert service.describe_ports() == "no ports"


def test_object_without_name_is_refused() -> None:
    with pytest.raises(DarklaunchError, match=r"no metadata\.name"):
        parse_traefik_service({"apiVersion": "traefik.io/v1alpha1", "kind": "TraefikService", "metadata": {}})


def test_index_by_key() -> None:
    objects = [parse_traefik_service(load_object(n)) for n in ("ts-mirror-20", "ts-loop-a")]
    assert sorted(index_by_key(objects)) == [("production", "api-service-route-mirror"), ("production", "loop-a")]


# --- metric labels --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "name", "port", "expected"),
    [
        ("production", "api-service-canary", 80, "production-api-service-canary-80@kubernetescrd"),
        ("production", "api-service-canary", "http", "production-api-service-canary-http@kubernetescrd"),
        # Traefik's Normalize collapses runs of non-alphanumerics into a single '-'.
        ("prod", "xn--api", 8080, "prod-xn-api-8080@kubernetescrd"),
    ],
)
def test_traefik_service_label(namespace: str, name: str, port: int | str, expected: str) -> None:
    assert traefik_service_label(namespace, name, port) == expected


def test_route_service_label_matches_traefik() -> None:
    # The key Traefik's own CRD provider tests expect for this IngressRoute and rule.
    label = route_service_label("default", "test.route", "Host(`foo.com`) && PathPrefix(`/bar`)")
    assert label == "default-test-route-6b204d94623b3df4370c@kubernetescrd"


def test_normalise_traefik_name() -> None:
    assert normalise_traefik_name("a.b_c//d--") == "a-b-c-d"


# --- names and ports ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "label", "subdomain", "service"),
    [
        ("production", True, True, True),
        ("api-service-route", True, True, True),
        ("9lives", True, True, False),
        ("api.example", False, True, False),
        ("Api", False, False, False),
        ("-api", False, False, False),
        ("api-", False, False, False),
        ("a" * 63, True, True, True),
        ("a" * 64, False, True, False),
        ("", False, False, False),
        ("api_service", False, False, False),
    ],
)
def test_name_rules(value: str, label: bool, subdomain: bool, service: bool) -> None:
    assert is_dns1123_label(value) is label
    assert is_dns1123_subdomain(value) is subdomain
    assert is_dns1035_label(value) is service


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("http", True),
        ("http-alt", True),
        ("h2c", True),
        ("8080", False),
        ("http--x", False),
        ("HTTP", False),
        ("a-very-long-port-name", False),
    ],
)
def test_port_names(value: str, valid: bool) -> None:
    assert is_port_name(value) is valid


def test_check_name_names_the_field() -> None:
    with pytest.raises(DarklaunchError) as caught:
        check_name("Prod", "namespace", "label")
    assert caught.value.field == "namespace"
    assert "namespace must be a DNS-1123 label" in str(caught.value)
    assert check_name("prod", "namespace", "label") == "prod"


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), ("", None), (80, 80), ("80", 80), ("http", "http"), (65535, 65535)]
)
def test_normalise_port(value: object, expected: object) -> None:
    assert normalise_port(value, "main_port") == expected


@pytest.mark.parametrize("value", [0, 70000, True, "HTTP", "web--x", 8.5, "-1"])
def test_normalise_port_refuses(value: object) -> None:
    with pytest.raises(DarklaunchError) as caught:
        normalise_port(value, "mirror_port")
    assert caught.value.field == "mirror_port"
    assert "mirror_port" in caught.value.msg


# --- the pre-mirror annotation --------------------------------------------------------------------------


def test_saved_services_round_trip_in_numeric_order() -> None:
    saved = {"10": [{"name": "b"}], "2": [{"name": "a", "kind": "TraefikService"}]}
    text = dump_saved_services(saved)
    assert text == '{"2":[{"kind":"TraefikService","name":"a"}],"10":[{"name":"b"}]}'
    assert parse_saved_services(text) == saved


@pytest.mark.parametrize("text", [None, "", "not json", "[]", '{"x": []}', '{"0": {}}', '{"0": ["name"]}'])
def test_unreadable_saved_services(text: str | None) -> None:
    assert parse_saved_services(text) is None


# --- errors ---------------------------------------------------------------------------------------------


def test_error_fail_kwargs() -> None:
    err = DarklaunchError("mirror_percent must be 1..100", field="mirror_percent", details={"msg": "x", "got": 0})
    assert str(err) == "mirror_percent must be 1..100"
    assert err.fail_kwargs() == {"msg": "mirror_percent must be 1..100", "field": "mirror_percent", "got": 0}
    assert DarklaunchError("plain").fail_kwargs() == {"msg": "plain"}


def test_conflict_is_a_darklaunch_error() -> None:
    err = ConflictError("IngressRoute production/api-service-route changed", details={"status": 409})
    assert isinstance(err, DarklaunchError)
    assert err.details == {"status": 409}
