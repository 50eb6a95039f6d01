# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the ``darklaunch.traefik.traffic`` lookup, loaded through Ansible's ``lookup_loader``
so its options come from its documentation and Ansible's config system (``set_options`` / ``get_option``,
``env:`` variables). The Kubernetes client is a fake injected through ``KubeClient.from_params``."""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ansible.errors import AnsibleLookupError

from ansible_collections.darklaunch.traefik.plugins.module_utils._argspec import auth_argument_spec
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._kubeconfig_context import CommandConnection
from ansible_collections.darklaunch.traefik.plugins.module_utils._traffic_view import read_traffic

COLLECTIONS_ROOT = Path(__file__).resolve().parents[4] / ".state" / "collections"
LOOKUP = "darklaunch.traefik.traffic"
NS = "production"
ENV_VARIABLES = (
    "K8S_AUTH_KUBECONFIG",
    "K8S_AUTH_CONTEXT",
    "K8S_AUTH_HOST",
    "K8S_AUTH_API_KEY",
    "K8S_AUTH_VERIFY_SSL",
    "K8S_AUTH_VALIDATE_CERTS",
    "K8S_AUTH_IMPERSONATE_GROUPS",
    "DARKLAUNCH_SIGMA",
    "PROMETHEUS_URL",
    "PROMETHEUS_TOKEN",
    "PROMETHEUS_VALIDATE_CERTS",
)

# --------------------------------------------------------------------------------------------------
# The lookup as Ansible loads it


def _collection_modules() -> dict[str, ModuleType]:
    return {
        name: module
        for name, module in sys.modules.items()
        if name == "ansible_collections" or name.startswith("ansible_collections.")
    }


@pytest.fixture(scope="module")
def lookup_loader() -> Iterator[Any]:
    """Ansible's ``lookup_loader`` with the collection loader installed for this module's tests only.

    The other unit tests import the collection as a plain package (tests/conftest.py); Ansible's loader
    needs to import it itself, so the plain modules are set aside and put back afterwards. Under
    ``ansible-test units`` the collection loader is already in place and is used unchanged.
    """
    from ansible.plugins.loader import init_plugin_loader
    from ansible.plugins.loader import lookup_loader as loader
    from ansible.utils.collection_loader import AnsibleCollectionConfig
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

    if AnsibleCollectionConfig.collection_finder is not None:
        # ansible-test units installed its collection loader for the whole session: use it as it is.
        yield loader
        return
    saved = _collection_modules()
    for name in saved:
        del sys.modules[name]
    init_plugin_loader([str(COLLECTIONS_ROOT)])
    try:
        yield loader
    finally:
        _AnsibleCollectionFinder._remove()
        for name in _collection_modules():
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARIABLES:
        monkeypatch.delenv(name, raising=False)


# --------------------------------------------------------------------------------------------------
# A fake cluster: a 20% mirror that the route goes through, and the 50/50 split it replaced


def _ts(name: str, spec: dict[str, Any], namespace: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TraefikService",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
        "spec": spec,
    }


def _service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS, "resourceVersion": "1"},
        "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    }


OBJECTS: dict[str, list[dict[str, Any]]] = {
    "TraefikService": [
        _ts(
            "api-service-route-mirror",
            {
                "mirroring": {
                    "name": "api-service-stable",
                    "port": 80,
                    "mirrors": [{"name": "api-service-canary", "port": 80, "percent": 20}],
                }
            },
        ),
        _ts(
            "api-service-route-wrr",
            {
                "weighted": {
                    "services": [
                        {"name": "api-service-stable", "port": 80, "weight": 50},
                        {"name": "api-service-canary", "port": 80, "weight": 50},
                    ]
                }
            },
        ),
        _ts(
            "other-mirror",
            {"mirroring": {"name": "other", "port": 80, "mirrors": [{"name": "other-next", "port": 80, "percent": 5}]}},
            namespace="staging",
        ),
    ],
    "IngressRoute": [
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "IngressRoute",
            "metadata": {"name": "api-service-route", "namespace": NS, "resourceVersion": "1"},
            "spec": {
                "entryPoints": ["web"],
                "routes": [
                    {
                        "match": "Host(`api.example.com`)",
                        "kind": "Rule",
                        "services": [{"name": "api-service-route-mirror", "kind": "TraefikService"}],
                    }
                ],
            },
        }
    ],
    "Service": [_service("api-service-stable"), _service("api-service-canary")],
}


class FakeKube:
    """``KubeReader`` over OBJECTS; a cluster-wide list can be refused the way ``_k8s`` words it."""

    connection = CommandConnection()  # the rollback command names no cluster

    def __init__(self, *, cluster_wide: bool = True, error_type: type[Exception] = DarklaunchError) -> None:
        self.cluster_wide = cluster_wide
        # The lookup catches its own copy of DarklaunchError (loaded by Ansible's collection loader).
        self.error_type = error_type
        self.lists: list[tuple[str, str | None]] = []
        self.requested_groups: list[str | None] = []

    def traefik_group(self, requested: str | None = None) -> str:
        self.requested_groups.append(requested)
        return requested or "traefik.io"

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        found = [o for o in OBJECTS[kind] if (o["metadata"]["namespace"], o["metadata"]["name"]) == (namespace, name)]
        return found[0] if found else None

    def list(self, kind: str, namespace: str | None, page_size: int = 500) -> list[dict[str, Any]]:
        self.lists.append((kind, namespace))
        if namespace is None and not self.cluster_wide:
            raise self.error_type(
                f'user "shadow-operator" may not list {kind.lower()}s in all namespaces; set namespace to look in '
                "a single namespace, or grant list cluster-wide (ClusterRole)",
                field="namespace",
            )
        return [o for o in OBJECTS.get(kind, []) if namespace is None or o["metadata"]["namespace"] == namespace]


@pytest.fixture
def lookup(lookup_loader: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh lookup instance; ``lookup.client_params`` records what ``KubeClient.from_params`` got."""
    instance = lookup_loader.get(LOOKUP)
    assert instance is not None, "lookup_loader did not find darklaunch.traefik.traffic"
    plugin_globals = type(instance).run.__globals__
    instance.fake = FakeKube(error_type=plugin_globals["DarklaunchError"])
    instance.client_params = []

    def from_params(params: dict[str, Any], **given: Any) -> FakeKube:
        instance.client_params.append(dict(params))
        instance.client_given = given
        return instance.fake

    # The class the lookup module itself imported (the collection loader's copy of _k8s).
    kube_client = plugin_globals["KubeClient"]
    monkeypatch.setattr(kube_client, "from_params", staticmethod(from_params))
    return instance


# --------------------------------------------------------------------------------------------------
# Terms


def test_loaded_through_ansible(lookup: Any) -> None:
    assert type(lookup).__module__ == "ansible_collections.darklaunch.traefik.plugins.lookup.traffic"


def test_a_term_is_required(lookup: Any) -> None:
    with pytest.raises(AnsibleLookupError, match="needs a term: one of distribution, routes, ingressroutes"):
        lookup.run([], variables={})


def test_unknown_terms_are_named(lookup: Any) -> None:
    with pytest.raises(AnsibleLookupError, match=r"unknown term mirrors, splits: .* answers distribution"):
        lookup.run(["routes", "mirrors", "splits"], variables={})
    assert lookup.client_params == [], "nothing is read before the terms are valid"


def test_distribution_needs_route_name(lookup: Any) -> None:
    with pytest.raises(AnsibleLookupError, match="distribution term needs route_name"):
        lookup.run(["distribution"], variables={}, namespace=NS)


def test_route_name_needs_namespace(lookup: Any) -> None:
    with pytest.raises(AnsibleLookupError, match="route_name needs namespace"):
        lookup.run(["distribution"], variables={}, route_name="api-service-route")


@pytest.mark.parametrize(
    ("options", "field"),
    [({"namespace": "Prod_1"}, "namespace"), ({"namespace": NS, "route_name": "API Route"}, "route_name")],
)
def test_names_are_checked_before_reading(lookup: Any, options: dict[str, str], field: str) -> None:
    with pytest.raises(AnsibleLookupError, match=field):
        lookup.run(["routes"], variables={}, **options)
    assert lookup.fake.lists == []


def test_unknown_options_are_refused(lookup: Any) -> None:
    """A typo must not silently widen the answer to every namespace."""
    with pytest.raises(AnsibleLookupError, match="unknown option namspace, route: see ansible-doc"):
        lookup.run(["routes"], variables={}, namspace=NS, route="api-service-route")
    assert lookup.fake.lists == []


def test_option_aliases_are_accepted(lookup: Any) -> None:
    lookup.run(["routes"], variables={}, namespace=NS, verify_ssl=False, ssl_ca_cert="/etc/ca.pem")
    assert lookup.get_option("validate_certs") is False and lookup.get_option("ca_cert") == "/etc/ca.pem"
    # ... and reach the Kubernetes client under their canonical names.
    (params,) = lookup.client_params
    assert params["validate_certs"] is False and params["ca_cert"] == "/etc/ca.pem"


def test_distribution_term(lookup: Any) -> None:
    (answer,) = lookup.run(["distribution"], variables={}, namespace=NS, route_name="api-service-route")
    assert answer["traffic_split"]["type"] == "mirror"
    assert [(s["name"], s["user_share_percent"]) for s in answer["main_sink"]] == [("api-service-stable", 100)]
    assert [(s["name"], s["percent"]) for s in answer["shadow"]] == [("api-service-canary", 20)]
    assert "api-service-stable" in answer["explanation"] and "20%" in answer["explanation"]
    # The route, the TraefikServices it reaches and their Services, by name: no listing.
    assert lookup.fake.lists == []


def assert_the_module_answer(routes: Any, ingress_routes: Any, module_view: dict[str, Any]) -> None:
    """The routes and ingressroutes terms say what traefik_traffic_info's read says."""
    assert routes == {
        "api_group": "traefik.io",
        "mirrors": module_view["mirrors"],
        "weighted": module_view["weighted"],
        "abandoned_launches": [],
    }
    assert ingress_routes == {"api_group": "traefik.io", "ingress_routes": module_view["ingress_routes"]}


def test_routes_and_ingressroutes_terms_are_the_module_answer(lookup: Any) -> None:
    routes, ingress_routes = lookup.run(["routes", "ingressroutes"], variables={}, namespace=NS)
    module_view = read_traffic(FakeKube(), namespace=NS)
    assert_the_module_answer(routes, ingress_routes, module_view)
    assert routes["mirrors"][0]["active"] is True and routes["mirrors"][0]["percent"] == 20
    assert len(lookup.client_params) == 1, "one client for all terms of a call"


def test_routes_and_ingressroutes_terms_of_one_route_are_read_by_name(lookup: Any) -> None:
    routes, ingress_routes = lookup.run(
        ["routes", "ingressroutes"], variables={}, namespace=NS, route_name="api-service-route"
    )
    module_view = read_traffic(FakeKube(), namespace=NS, route_name="api-service-route")
    assert_the_module_answer(routes, ingress_routes, module_view)
    # The route is on its mirror, which mirrors a Service: the unused WRR is not the route's.
    assert [m["name"] for m in routes["mirrors"]] == ["api-service-route-mirror"] and routes["weighted"] == []
    assert [ir["name"] for ir in ingress_routes["ingress_routes"]] == ["api-service-route"]
    assert lookup.fake.lists == []


def test_httproutes_term_lists_httproutes_rule_by_rule(lookup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    http_route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "shop-route", "namespace": NS, "resourceVersion": "1"},
        "spec": {
            "parentRefs": [{"name": "traefik-gateway"}],
            "rules": [
                {
                    "backendRefs": [
                        {"name": "api-service-stable", "port": 80, "weight": 3},
                        {"name": "api-service-canary", "port": 80, "weight": 1},
                    ]
                },
                {
                    "backendRefs": [
                        {"group": "traefik.io", "kind": "TraefikService", "name": "api-service-route-mirror"}
                    ]
                },
            ],
        },
    }
    monkeypatch.setitem(OBJECTS, "HTTPRoute", [http_route])
    (listed,) = lookup.run(["httproutes"], variables={}, namespace=NS)
    (route,) = listed["http_routes"]
    assert listed["api_group"] == "traefik.io" and route["gateways"] == [f"{NS}/traefik-gateway"]
    assert [rule["explanation"] for rule in route["rules"]] == [
        "User responses come 75% from api-service-stable, 25% from api-service-canary; nothing is mirrored.",
        "All user responses come from api-service-stable; 20% of requests are copied to api-service-canary and its "
        "responses are discarded.",
    ]
    # By name: the same entry, read by name, and jmespath over it as over any term.
    (one,) = lookup.run(["httproutes"], variables={}, namespace=NS, route_name="shop-route")
    assert one == listed
    (sentences,) = lookup.run(
        ["httproutes"], variables={}, namespace=NS, query="http_routes[].rules[].traffic_split.type"
    )
    assert sentences == ["weighted", "mirror"]


def test_routes_term_reports_an_abandoned_launch(lookup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = copy.deepcopy(OBJECTS["TraefikService"][0])
    mirror["metadata"]["annotations"] = {
        "darklaunch.traefik/launch-id": "run-a1",
        "darklaunch.traefik/launch-owner": "AWX job 42",
        "darklaunch.traefik/launch-started": "2025-11-27T10:00:00.000Z",
        "darklaunch.traefik/launch-step": "50",
        "darklaunch.traefik/launch-deadline": "2025-11-27T10:05:00.000Z",
    }
    monkeypatch.setitem(OBJECTS, "TraefikService", [mirror, *OBJECTS["TraefikService"][1:]])
    (routes,) = lookup.run(["routes"], variables={}, namespace=NS)
    launch = routes["mirrors"][0]["launch"]
    assert launch["abandoned"] is True and launch["seconds_past_deadline"] > 0
    command = (
        "ansible-playbook darklaunch.traefik.mirror_disable -e route_name=api-service-route "
        "-e route_namespace=production -e restore_ingress_to_wrr=true"
    )
    assert launch["rollback_command"] == command
    assert launch["message"].startswith("Launch run-a1 started by AWX job 42 at 2025-11-27T10:00:00.000Z stopped")
    assert launch["message"].endswith(
        f"at step 50%: it was abandoned (interrupted or killed). The route still sends "
        f"copies to the shadow. Roll it back with: {command}"
    )
    assert routes["abandoned_launches"] == [{"mirror": "api-service-route-mirror", "namespace": NS, **launch}]


def test_all_namespaces_without_namespace(lookup: Any) -> None:
    (routes,) = lookup.run(["routes"], variables={})
    assert {(m["namespace"], m["name"]) for m in routes["mirrors"]} == {
        (NS, "api-service-route-mirror"),
        ("staging", "other-mirror"),
    }
    assert ("TraefikService", None) in lookup.fake.lists


def test_cluster_wide_refusal_suggests_namespace(lookup: Any) -> None:
    lookup.fake.cluster_wide = False
    with pytest.raises(AnsibleLookupError, match="set namespace"):
        lookup.run(["ingressroutes"], variables={})


def test_api_group_is_passed_on(lookup: Any) -> None:
    (routes,) = lookup.run(["routes"], variables={}, namespace=NS, api_group="traefik.containo.us")
    assert routes["api_group"] == "traefik.containo.us"
    assert lookup.fake.requested_groups == ["traefik.containo.us"]


def test_api_group_choices_are_enforced(lookup: Any) -> None:
    with pytest.raises(Exception, match="api_group"):
        lookup.run(["routes"], variables={}, api_group="traefik.example.com")


# --------------------------------------------------------------------------------------------------
# query (JMESPath)


def test_query_filters_each_result(lookup: Any) -> None:
    answer = lookup.run(["routes"], variables={}, query="mirrors[?percent > `10`].name")
    assert answer == [["api-service-route-mirror"]]
    assert lookup.get_option("query") == "mirrors[?percent > `10`].name"


def test_query_applies_to_every_term(lookup: Any) -> None:
    answer = lookup.run(["routes", "ingressroutes"], variables={}, namespace=NS, query="api_group")
    assert answer == ["traefik.io", "traefik.io"]


def test_query_on_the_distribution(lookup: Any) -> None:
    answer = lookup.run(
        ["distribution"],
        variables={},
        namespace=NS,
        route_name="api-service-route",
        query="{split: traffic_split.type, shadow: shadow[0].name}",
    )
    assert answer == [{"split": "mirror", "shadow": "api-service-canary"}]


def test_invalid_query_is_a_lookup_error(lookup: Any) -> None:
    with pytest.raises(AnsibleLookupError, match="not a valid JMESPath expression"):
        lookup.run(["routes"], variables={}, namespace=NS, query="mirrors[?")


# --------------------------------------------------------------------------------------------------
# Options through Ansible's config system


def test_defaults(lookup: Any) -> None:
    lookup.run(["routes"], variables={}, namespace=NS)
    assert lookup.get_option("sigma") == 2.0
    assert lookup.get_option("window") == "5m"
    assert lookup.get_option("history_windows") == 6
    assert lookup.get_option("min_requests") == 100
    assert lookup.get_option("prometheus_url") is None
    assert lookup.get_option("prometheus_validate_certs") is True
    assert lookup.get_option("kubeconfig") is None


def test_environment_variables(lookup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", "/etc/darklaunch/kubeconfig")
    monkeypatch.setenv("K8S_AUTH_CONTEXT", "prod")
    monkeypatch.setenv("K8S_AUTH_IMPERSONATE_GROUPS", "team-a,viewers")
    monkeypatch.setenv("DARKLAUNCH_SIGMA", "3.5")
    monkeypatch.setenv("PROMETHEUS_URL", "http://prometheus.monitoring:9090")
    monkeypatch.setenv("PROMETHEUS_VALIDATE_CERTS", "false")
    lookup.run(["routes"], variables={}, namespace=NS)
    assert lookup.get_option("kubeconfig") == "/etc/darklaunch/kubeconfig"
    assert lookup.get_option("context") == "prod"
    assert lookup.get_option("impersonate_groups") == ["team-a", "viewers"]
    assert lookup.get_option("sigma") == 3.5
    assert lookup.get_option("prometheus_url") == "http://prometheus.monitoring:9090"
    assert lookup.get_option("prometheus_validate_certs") is False
    (params,) = lookup.client_params
    assert params["kubeconfig"] == "/etc/darklaunch/kubeconfig" and params["context"] == "prod"
    assert params["impersonate_groups"] == ["team-a", "viewers"]


def test_direct_options_beat_environment_variables(lookup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", "/from/env")
    monkeypatch.setenv("DARKLAUNCH_SIGMA", "3")
    lookup.run(["routes"], variables={}, namespace=NS, kubeconfig="/from/task", sigma=1.5)
    assert lookup.get_option("kubeconfig") == "/from/task" and lookup.get_option("sigma") == 1.5
    assert lookup.client_params[0]["kubeconfig"] == "/from/task"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"K8S_AUTH_VERIFY_SSL": "no"}, False),
        ({"K8S_AUTH_VALIDATE_CERTS": "false"}, False),
        # Two variables set: the last one the documentation lists (K8S_AUTH_VALIDATE_CERTS) wins.
        ({"K8S_AUTH_VERIFY_SSL": "false", "K8S_AUTH_VALIDATE_CERTS": "true"}, True),
        ({}, None),
    ],
)
def test_validate_certs_variables(
    lookup: Any, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: bool | None
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    lookup.run(["routes"], variables={}, namespace=NS)
    assert lookup.get_option("validate_certs") is expected
    assert lookup.client_params[0]["validate_certs"] is expected


def test_every_auth_option_reaches_the_shared_client_code(lookup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lookup hands the module's auth options, by the module's names, to ``KubeClient.from_params``."""
    monkeypatch.setenv("K8S_AUTH_HOST", "https://k8s.example.com:6443")
    monkeypatch.setenv("K8S_AUTH_API_KEY", "secret-token")
    lookup.run(["routes"], variables={}, namespace=NS, impersonate_user="alice")
    (params,) = lookup.client_params
    assert set(params) == set(auth_argument_spec())
    assert params["host"] == "https://k8s.example.com:6443" and params["api_key"] == "secret-token"
    assert params["impersonate_user"] == "alice"
    assert lookup.client_given == {"given_kubeconfig": None}


def test_a_kubeconfig_from_the_environment_is_not_named(lookup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # A command printed for later (an abandoned launch's rollback) names only a kubeconfig the user gave.
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", "/from/env")
    lookup.run(["routes"], variables={}, namespace=NS)
    assert lookup.client_params[-1]["kubeconfig"] == "/from/env"
    assert lookup.client_given == {"given_kubeconfig": None}


def test_a_kubeconfig_given_to_the_lookup_is_named(lookup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", "/from/env")
    lookup.run(["routes"], variables={}, namespace=NS, kubeconfig="/given")
    assert lookup.client_params[-1]["kubeconfig"] == "/given"
    assert lookup.client_given == {"given_kubeconfig": "/given"}


def test_anomalies_needs_prometheus(lookup: Any) -> None:
    with pytest.raises(AnsibleLookupError, match=r"the anomalies term needs Prometheus: .*PROMETHEUS_URL"):
        lookup.run(["anomalies"], variables={})


def test_series_needs_prometheus_and_says_so_by_its_own_name(lookup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    labels = {"shadow": ["ns-shadow@kubernetescrd"], "main": ["ns-main@kubernetescrd"]}
    with pytest.raises(AnsibleLookupError, match=r"the series term needs Prometheus: .*PROMETHEUS_URL"):
        lookup.run(["series"], variables={}, namespace=NS, route_name="shop", service_labels=labels)


@pytest.fixture
def recorded_checks(lookup: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    """The arguments of every check_anomalies call the lookup makes (answered with a bare ``ok``)."""
    calls: list[tuple[Any, dict[str, Any]]] = []

    def check_anomalies(client: Any, targets: Any, **options: Any) -> dict[str, Any]:
        calls.append((targets, options))
        return {"verdict": "ok", "builtin_queries": 4}

    monkeypatch.setitem(type(lookup).run.__globals__, "check_anomalies", check_anomalies)
    return calls


def test_anomalies_defaults_for_the_gate_options(lookup: Any, recorded_checks: list[Any]) -> None:
    lookup.run(["anomalies"], variables={}, prometheus_url="http://prometheus:9090")
    [(targets, options)] = recorded_checks
    assert targets is None  # cluster-wide
    assert (options["checks_per_step"], options["client_error_codes"], options["mirror_since"]) == (1, ["4xx"], None)


def test_anomalies_passes_the_gate_options_and_the_percentages(lookup: Any, recorded_checks: list[Any]) -> None:
    [answer] = lookup.run(
        ["anomalies"],
        variables={},
        route_name="api-service-route",
        namespace=NS,
        prometheus_url="http://prometheus:9090",
        checks_per_step=5,
        client_error_codes=["404", "429"],
        mirror_since=1_700_000_000,
    )
    [(targets, options)] = recorded_checks
    assert (options["checks_per_step"], options["client_error_codes"]) == (5, ["404", "429"])
    assert options["mirror_since"] == 1_700_000_000.0
    # the route's 20% mirror: the shadow's percentage, and the share of users its main serves
    assert [(target["role"], target["name"], target["percent"]) for target in targets] == [
        ("main", "api-service-stable", 100),
        ("shadow", "api-service-canary", 20),
    ]
    assert answer["verdict"] == "ok"
