"""Bad input corpus: invalid options and malformed cluster objects, across the collection's entry points.

One table per entry point (traefik_mirror, traefik_traffic_info, the darklaunch.traefik.traffic lookup,
the shadow_launch role through playbooks/shadow_launch.yml). Each row is: a case id, what is passed,
the option the collection must report in ``field`` (``None`` where Ansible's own argument checking
refuses, or for the lookup and the role, which have no ``field``), and words the message must contain
(the option or object at fault, what is wrong). Every case must fail and change nothing: the
resourceVersion of every object of the namespace is the same before and after, and the last test reads
the apiserver's audit log to prove no write request reached the namespace at all.

The namespace holds the seed world (route ``bad-route``: a 50/50 weighted split of bad-stable and
bad-canary) and the malformed objects of the ``MALFORMED`` section below.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from dlcluster.audit import AuditLog, summarize
from dlcluster.kube import Kube
from modrun import run_module
from shadow import run_playbook
from test_traefik_mirror_safety import STATIC_PORTS, build_static_world
from test_traffic_info import lookup

pytestmark = pytest.mark.integration

IO = "traefik.io/v1alpha1"
APP = "bad"
ROUTE = "bad-route"
STABLE, CANARY, STAGING = "bad-stable", "bad-canary", "bad-staging"
# The route names of the malformed objects (each has its own IngressRoute).
BOTH = "both-route"  # its -wrr TraefikService has both weighted and mirroring
FOREIGN = "foreign-route"  # its -mirror was made by someone else and mirrors to other services
EMPTY = "empty-route"  # its IngressRoute's only route has no services
MISSING = "missing-route"  # no IngressRoute of that name
CLUSTER_IP = "bad-clusterip"  # a ClusterIP Service with one port, 80 "http"
NAMESPACED_KINDS = (
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    (IO, "TraefikService"),
    (IO, "IngressRoute"),
    (IO, "Middleware"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
)


# --- the table -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    args: dict[str, Any]
    field: str | None  # the option the result's ``field`` names; None: refused by Ansible / no field
    words: tuple[str, ...] = ()  # each must appear in the message
    base: bool = True  # start from the valid attach arguments of the seed route
    remove: tuple[str, ...] = dataclasses.field(default_factory=tuple)  # base arguments to drop


def case(id: str, args: dict[str, Any], field: str | None, *words: str, base: bool = True) -> Case:
    return Case(id, args, field, tuple(words), base)


MIRROR_OPTIONS = [
    # -- types and ranges (mirror_percent first: the shadow's share of requests) --
    case("percent-zero", {"mirror_percent": 0}, "mirror_percent", "1 to 100", "state=absent"),
    case("percent-over-100", {"mirror_percent": 101}, "mirror_percent", "1 to 100"),
    case("percent-negative", {"mirror_percent": -5}, "mirror_percent", "1 to 100"),
    case("percent-not-a-number", {"mirror_percent": "twenty"}, None, "mirror_percent", "int"),
    case("percent-fraction", {"mirror_percent": 12.5}, None, "mirror_percent", "int"),
    case("percent-missing-with-present", {"mirror_percent": None}, None, "mirror_percent", "state is present"),
    case("state-unknown", {"state": "enabled"}, None, "state", "present, absent"),
    case("main-kind-unknown", {"main_kind": "Deployment"}, None, "main_kind", "Service, TraefikService"),
    case("api-group-unknown", {"api_group": "traefik.example.com"}, None, "api_group", "traefik.io"),
    case("attach-not-a-bool", {"attach_to_ingress": "maybe"}, None, "attach_to_ingress", "bool"),
    case("sign-off-not-a-bool", {"confirm_end_weighted_split": "sure"}, None, "confirm_end_weighted_split", "bool"),
    case("max-body-size-below-minus-one", {"max_body_size": -5}, "max_body_size", "-1"),
    case("max-body-size-not-a-number", {"max_body_size": "big"}, None, "max_body_size", "int"),
    case("main-port-out-of-range", {"main_port": 70000}, "main_port", "70000"),
    case("mirror-port-zero", {"mirror_port": 0}, "mirror_port", "0"),
    case("mirror-port-a-list", {"mirror_port": [80]}, "mirror_port"),
    case("unknown-option", {"mirror_percentage": 20}, None, "mirror_percentage", "Unsupported parameters"),
    case("launch-without-lease", {"launch": {"id": "x"}}, None, "lease_seconds", "missing"),
    # -- names --
    case("route-name-empty", {"route_name": ""}, "route_name"),
    case("route-name-uppercase", {"route_name": "Bad_Route"}, "route_name", "Bad_Route"),
    case("route-name-too-long", {"route_name": "r" * 254}, "route_name"),
    case("namespace-underscore", {"namespace": "no_way"}, "namespace", "no_way"),
    case("main-service-uppercase", {"main_service": "UPPER"}, "main_service", "UPPER"),
    case("mirror-service-with-space", {"mirror_service": "bad canary"}, "mirror_service", "bad canary"),
    case("mirror-name-leading-dash", {"mirror_name": "-mirror"}, "mirror_name", "-mirror"),
    case("mirror-name-equals-wrr-name", {"mirror_name": "same", "wrr_name": "same"}, "mirror_name", "same"),
    case("derived-name-too-long", {"route_name": "r" * 250}, "mirror_name", "derived from route_name"),
    # -- missing objects --
    case("namespace-missing", {"namespace": "no-such-namespace-here"}, "namespace", "does not exist"),
    case("main-service-missing", {"main_service": "nope-stable"}, "main_service", "nope-stable", "does not exist"),
    case("mirror-service-missing", {"mirror_service": "nope-canary"}, "mirror_service", "nope-canary"),
    case("route-missing", {"route_name": MISSING}, "route_name", MISSING, "does not exist"),
    case(
        "main-traefik-service-missing",
        {"main_kind": "TraefikService", "main_service": "nope-wrr"},
        "main_service",
        "nope-wrr",
    ),
    case("kubeconfig-missing", {"kubeconfig": "/nonexistent/kubeconfig"}, "kubeconfig", "/nonexistent/kubeconfig"),
    # -- safety refusals on valid-looking input --
    case("sign-off-missing", {"confirm_end_weighted_split": False}, "confirm_end_weighted_split", STABLE, CANARY),
    # -- malformed objects already in the cluster --
    case(
        "wrr-with-weighted-and-mirroring",
        {"route_name": BOTH},
        "wrr_name",
        f"{BOTH}-wrr",
        "weighted",
        "mirroring",
    ),
    case(
        "main-with-weighted-and-mirroring",
        {"main_kind": "TraefikService", "main_service": f"{BOTH}-wrr", "attach_to_ingress": False},
        "main_service",
        f"{BOTH}-wrr",
        "weighted",
        "mirroring",
    ),
    case(
        "mirror-name-is-a-weighted-and-mirroring-service",
        {"mirror_name": f"{BOTH}-wrr", "attach_to_ingress": False},
        "mirror_name",
        f"{BOTH}-wrr",
    ),
    case("foreign-mirror", {"route_name": FOREIGN}, "mirror_name", f"{FOREIGN}-mirror", "darklaunch.traefik"),
    case(
        "foreign-mirror-disable",
        {"route_name": FOREIGN, "state": "absent"},
        "mirror_name",
        f"{FOREIGN}-mirror",
        "darklaunch.traefik",
        base=False,
    ),
    case(
        "mirror-name-is-the-weighted-split",
        {"mirror_name": f"{ROUTE}-wrr", "wrr_name": "other-wrr", "attach_to_ingress": False},
        "mirror_name",
        f"{ROUTE}-wrr",
        "weighted",
    ),
    case("route-without-services", {"route_name": EMPTY}, "attach_to_ingress", EMPTY),
    case("service-without-the-named-port", {"main_port": "grpc"}, "main_port", "grpc", STABLE),
    case("mirror-service-without-the-named-port", {"mirror_port": "metrics"}, "mirror_port", "metrics", CANARY),
    # An ExternalName Service accepts any port number (Traefik dials it); a ClusterIP Service does not.
    case(
        "service-without-that-port-number",
        {"mirror_service": CLUSTER_IP, "mirror_port": 9999},
        "mirror_port",
        "9999",
        CLUSTER_IP,
    ),
]

INFO_OPTIONS = [
    case("route-without-namespace", {"route_name": ROUTE}, "namespace", "route_name needs namespace"),
    case("namespace-uppercase", {"namespace": "Bad_NS"}, "namespace", "Bad_NS"),
    case("route-name-uppercase", {"route_name": "UPPER", "namespace": "{ns}"}, "route_name", "UPPER"),
    case("namespace-missing", {"namespace": "no-such-namespace-here"}, "namespace", "does not exist"),
    case("route-missing", {"route_name": MISSING, "namespace": "{ns}"}, "route_name", MISSING),
    case("api-group-unknown", {"api_group": "traefik.example.com", "namespace": "{ns}"}, None, "api_group"),
    case("unknown-option", {"namespaces": "{ns}"}, None, "namespaces", "Unsupported parameters"),
    case("kubeconfig-not-a-file", {"kubeconfig": "/nonexistent/kc", "namespace": "{ns}"}, "kubeconfig", "/nonexistent"),
]

LOOKUP_TERMS = [
    case("no-term", {"terms": []}, None, "needs a term"),
    case("unknown-term", {"terms": ["mirrors"]}, None, "mirrors", "distribution"),
    case("distribution-without-route", {"terms": ["distribution"], "namespace": "{ns}"}, None, "route_name"),
    case(
        "distribution-route-missing",
        {"terms": ["distribution"], "namespace": "{ns}", "route_name": MISSING},
        None,
        MISSING,
    ),
    case("query-not-jmespath", {"terms": ["routes"], "namespace": "{ns}", "query": "mirrors[?"}, None, "query"),
    case("unknown-option", {"terms": ["routes"], "routename": ROUTE}, None, "routename"),
    case("namespace-uppercase", {"terms": ["routes"], "namespace": "Bad_NS"}, None, "namespace", "Bad_NS"),
    case(
        "sigma-negative", {"terms": ["anomalies"], "namespace": "{ns}", "route_name": ROUTE, "sigma": -1}, None, "sigma"
    ),
    case(
        "window-in-words",
        {"terms": ["anomalies"], "namespace": "{ns}", "route_name": ROUTE, "window": "5 minutes"},
        None,
        "window",
        "5 minutes",
    ),
    case(
        "history-windows-zero",
        {"terms": ["anomalies"], "namespace": "{ns}", "route_name": ROUTE, "history_windows": 0},
        None,
        "history_windows",
    ),
    case(
        "min-requests-not-a-number",
        {"terms": ["anomalies"], "namespace": "{ns}", "route_name": ROUTE, "min_requests": "many"},
        None,
        "min_requests",
    ),
]

# playbooks/shadow_launch.yml extra vars; only preflight refusals (the gate itself is tested elsewhere).
ROLE_VARS = [
    case("steps-zero", {"steps": [0, 50]}, None, "shadow_launch_steps", "1 to 100"),
    case("steps-over-100", {"steps": [20, 150]}, None, "shadow_launch_steps", "1 to 100"),
    case("window-not-a-duration", {"window": "five minutes"}, None, "window", "five minutes"),
    case("unknown-role-variable", {"shadow_launch_stepz": [20]}, None, "shadow_launch_stepz", "Unknown variable"),
    case("gate-without-attach", {"attach_to_ingress": False}, None, "no request would be copied"),
    case("main-service-missing", {"main_service": "nope-stable"}, None, "nope-stable", "does not exist"),
    case("sign-off-missing", {"confirm_end_weighted_split": False}, None, "confirm_end_weighted_split", STABLE),
]


# --- the namespace and its malformed objects ---------------------------------------------------------


def _ingress_route(namespace: str, name: str, services: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": IO,
        "kind": "IngressRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "entryPoints": ["web"],
            "routes": [{"match": f"Host(`{name}.{namespace}.test`)", "kind": "Rule", "services": services}],
        },
    }


def malformed_objects(namespace: str) -> list[dict[str, Any]]:
    stable = {"name": STABLE, "port": STATIC_PORTS["stable"]}
    canary = {"name": CANARY, "port": STATIC_PORTS["canary"]}
    return [
        {
            "apiVersion": IO,
            "kind": "TraefikService",
            "metadata": {"name": f"{BOTH}-wrr", "namespace": namespace},
            "spec": {
                "weighted": {"services": [{**stable, "weight": 1}, {**canary, "weight": 1}]},
                "mirroring": {**stable, "mirrors": [{**canary, "percent": 10}]},
            },
        },
        _ingress_route(namespace, BOTH, [{"name": f"{BOTH}-wrr", "kind": "TraefikService"}]),
        # Made by hand (no managed-by label), mirroring the staging Service rather than the canary.
        {
            "apiVersion": IO,
            "kind": "TraefikService",
            "metadata": {"name": f"{FOREIGN}-mirror", "namespace": namespace, "labels": {"team": "other"}},
            "spec": {
                "mirroring": {**stable, "mirrors": [{"name": STAGING, "port": STATIC_PORTS["staging"], "percent": 5}]}
            },
        },
        _ingress_route(namespace, FOREIGN, [{"name": STABLE, "port": STATIC_PORTS["stable"]}]),
        _ingress_route(namespace, EMPTY, []),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": CLUSTER_IP, "namespace": namespace},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
        },
    ]


@pytest.fixture(scope="module")
def bad_namespace(kube: Kube, namespace: str) -> str:
    build_static_world(kube, namespace, APP)
    for obj in malformed_objects(namespace):
        kube.apply(obj)
    return namespace


@pytest.fixture(scope="module")
def audit_mark(cluster: Any, bad_namespace: str) -> tuple[AuditLog, int] | None:
    if cluster.audit_log is None:
        return None
    log = AuditLog(cluster.audit_log)
    return log, log.mark()


def snapshot(kube: Kube, namespace: str) -> dict[str, str]:
    """``kind/name -> resourceVersion`` of every object of the namespace (and of the namespace itself)."""
    versions: dict[str, str] = {}
    for api_version, kind in NAMESPACED_KINDS:
        for obj in kube.list(api_version, kind, namespace):
            versions[f"{api_version}/{kind}/{obj['metadata']['name']}"] = obj["metadata"]["resourceVersion"]
    ns = kube.get("v1", "Namespace", namespace)
    assert ns is not None
    versions[f"Namespace/{namespace}"] = ns["metadata"]["resourceVersion"]
    return versions


def _fill(value: Any, namespace: str) -> Any:
    return value.replace("{ns}", namespace) if isinstance(value, str) else value


def _refused(result: dict[str, Any], row: Case) -> str:
    assert result.get("failed"), f"{row.id}: expected a refusal, got {result}"
    message = str(result.get("msg", ""))
    if row.field is not None:
        assert result.get("field") == row.field, f"{row.id}: field {result.get('field')!r}: {message}"
        assert row.field in message or any(word in message for word in row.words), message
    for word in row.words:
        assert word in message, f"{row.id}: {word!r} missing from: {message}"
    return message


def _run_unchanged(kube: Kube, namespace: str, call: Callable[[], dict[str, Any]], row: Case) -> str:
    before = snapshot(kube, namespace)
    message = _refused(call(), row)
    after = snapshot(kube, namespace)
    assert after == before, f"{row.id} changed the cluster: {set(after.items()) ^ set(before.items())}"
    return message


# --- the tests ---------------------------------------------------------------------------------------


def _mirror_args(namespace: str, row: Case) -> dict[str, Any]:
    args: dict[str, Any] = {"route_name": ROUTE, "namespace": namespace}
    if row.base:
        args.update(
            main_service=STABLE,
            mirror_service=CANARY,
            mirror_percent=20,
            attach_to_ingress=True,
            confirm_end_weighted_split=True,
        )
    for key, value in row.args.items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = _fill(value, namespace)
    return args


@pytest.mark.parametrize("row", MIRROR_OPTIONS, ids=lambda r: r.id)
def test_traefik_mirror_refuses(row: Case, kube: Kube, bad_namespace: str, audit_mark: Any) -> None:
    _run_unchanged(kube, bad_namespace, lambda: run_module("traefik_mirror", _mirror_args(bad_namespace, row)), row)


@pytest.mark.parametrize("row", INFO_OPTIONS, ids=lambda r: r.id)
def test_traefik_traffic_info_refuses(row: Case, kube: Kube, bad_namespace: str, audit_mark: Any) -> None:
    args = {key: _fill(value, bad_namespace) for key, value in row.args.items()}
    _run_unchanged(kube, bad_namespace, lambda: run_module("traefik_traffic_info", args), row)


@pytest.mark.parametrize("row", LOOKUP_TERMS, ids=lambda r: r.id)
def test_lookup_refuses(row: Case, kube: Kube, bad_namespace: str, audit_mark: Any) -> None:
    options = {key: _fill(value, bad_namespace) for key, value in row.args.items() if key != "terms"}
    _run_unchanged(kube, bad_namespace, lambda: lookup(*row.args["terms"], **options), row)


def _role_result(namespace: str, row: Case) -> dict[str, Any]:
    extra = {
        "route_name": ROUTE,
        "route_namespace": namespace,
        "main_service": STABLE,
        "mirror_service": CANARY,
        "steps": [20, 50],
        "bake_seconds": 1,
        "attach_to_ingress": True,
        "confirm_end_weighted_split": True,
        "prometheus_url": os.environ.get("PROMETHEUS_URL", "http://127.0.0.1:19090"),
        **row.args,
    }
    completed = run_playbook("shadow_launch", extra)
    output = completed.stdout + completed.stderr
    # One message per failed task: the assert's fail_msg, or the module's msg.
    messages = re.findall(r'"msg": "((?:[^"\\]|\\.)*)"', output)
    return {"failed": completed.returncode != 0, "msg": "\n".join(messages) or output}


@pytest.mark.parametrize("row", ROLE_VARS, ids=lambda r: r.id)
def test_shadow_launch_role_refuses_before_any_change(
    row: Case, kube: Kube, bad_namespace: str, audit_mark: Any
) -> None:
    _run_unchanged(kube, bad_namespace, lambda: _role_result(bad_namespace, row), row)


def test_corpus_is_large_and_no_write_reached_the_namespace(bad_namespace: str, audit_mark: Any) -> None:
    """Runs last (file order): the apiserver saw no write request to the namespace during the corpus."""
    total = len(MIRROR_OPTIONS) + len(INFO_OPTIONS) + len(LOOKUP_TERMS) + len(ROLE_VARS)
    assert total >= 40
    print(f"\n[bad input] {total} invalid inputs refused with nothing changed")
    if audit_mark is None:
        pytest.skip("the audit log is only available on a cluster started by tests/cluster/up")
    log, mark = audit_mark
    writes = log.writes_since(mark, namespace=bad_namespace)
    assert writes == [], summarize(writes)
