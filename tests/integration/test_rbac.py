"""Least privilege, proven: the shipped RBAC is enough for every operation, and every rule in it is needed.

docs/rbac/shadow-operator-role.yaml (a namespaced Role) must let a user enable, attach, ramp and disable
a mirror, read traffic_info of the namespace and of a route, and use the lookup's terms in that
namespace. docs/rbac/shadow-viewer-clusterrole.yaml must let a user read every namespace (traffic_info
without namespace, the lookup's routes / ingressroutes cluster-wide, any route's distribution) and list
anomalies cluster-wide. Then, for each single permission (one verb on one resource) of the traefik.io
and core rules, a variant without it is bound to a fresh user: the operation that needs it must fail
with a 403 whose message names the verb, the resource and the namespace (or "all namespaces"), and say
what to grant. The rules for traefik.containo.us mirror the traefik.io ones on Traefik v2 clusters.

Users are impersonated with the admin credential (``impersonate_user``, a supported auth option): the
test cluster's users are a static token file, and RBAC judges an impersonated user exactly like a
logged-in one. Each variant gets its own user name, so the variants cannot see each other's bindings.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from dlcluster import gateway
from dlcluster.audit import AuditLog
from dlcluster.kube import Kube
from modrun import run_module, store_report
from test_traefik_mirror_safety import build_static_world, ingress_route, user_part
from test_traffic_info import lookup

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s import KubeClient

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
OPERATOR_ROLE = REPO / "docs" / "rbac" / "shadow-operator-role.yaml"
VIEWER_CLUSTER_ROLE = REPO / "docs" / "rbac" / "shadow-viewer-clusterrole.yaml"
GATEWAY_CLUSTER_ROLE = REPO / "docs" / "rbac" / "shadow-operator-gateway-clusterrole.yaml"
GATEWAY_API = "gateway.networking.k8s.io"
RBAC = "rbac.authorization.k8s.io"
IO = "traefik.io"


def load(path: Path) -> dict[str, Any]:
    (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return dict(doc)


# --- the operations -------------------------------------------------------------------------------


@dataclass
class Scene:
    namespace: str
    route: str
    stable: str
    canary: str
    auth: dict[str, Any]


def _mirror(scene: Scene, **extra: Any) -> dict[str, Any]:
    return run_module(
        "traefik_mirror",
        {
            "route_name": scene.route,
            "namespace": scene.namespace,
            "main_service": scene.stable,
            "mirror_service": scene.canary,
            **scene.auth,
            **extra,
        },
    )


def _lookup(scene: Scene, *terms: str, **options: Any) -> dict[str, Any]:
    return lookup(*terms, **scene.auth, **options)


def _read_mirror_as_the_watchdog_does(scene: Scene) -> dict[str, Any]:
    """The launch watchdog's one read (plugins/plugin_utils/_watchdog_process.py): the mirror, by name."""
    client = KubeClient.from_params(scene.auth)
    try:
        mirror = client.get("TraefikService", scene.namespace, f"{scene.route}-mirror")
    except DarklaunchError as error:
        return {"failed": True, **error.fail_kwargs()}
    return {"failed": mirror is None, "msg": "" if mirror else "the mirror is missing"}


def _keep_report(scene: Scene) -> dict[str, Any]:
    """Keep two reports of the route with keep=1 (list, create, then delete the older one), as the role does."""
    import tempfile
    import time

    with tempfile.NamedTemporaryFile("w", suffix=".html", delete=False) as page:
        page.write("<html><body>report</body></html>")
    stamp = f"{time.time():.6f}".replace(".", "")
    result: dict[str, Any] = {}
    for n in (1, 2):
        launch_id, started = f"rbac-{stamp}-{n}", f"2026-01-01T00:00:0{n}.000Z"
        result = store_report(scene.route, scene.namespace, launch_id, page.name, started, keep=1, **scene.auth)
        if result.get("failed"):
            return result
    if not result.get("pruned"):
        return {"failed": True, "msg": f"the older report was not pruned: {result}"}
    return result


# Operator operations, in the order of a launch; each returns a module-like result.
OPERATOR_OPERATIONS: dict[str, Callable[[Scene], dict[str, Any]]] = {
    "enable": lambda s: _mirror(s, mirror_percent=20),
    "attach": lambda s: _mirror(s, mirror_percent=20, attach_to_ingress=True, confirm_end_weighted_split=True),
    "ramp": lambda s: _mirror(s, mirror_percent=50, attach_to_ingress=True, confirm_end_weighted_split=True),
    "traffic_info of the namespace": lambda s: run_module("traefik_traffic_info", {"namespace": s.namespace, **s.auth}),
    "traffic_info of the route": lambda s: run_module(
        "traefik_traffic_info", {"namespace": s.namespace, "route_name": s.route, **s.auth}
    ),
    "lookup distribution": lambda s: _lookup(s, "distribution", namespace=s.namespace, route_name=s.route),
    "lookup routes": lambda s: _lookup(s, "routes", namespace=s.namespace),
    "lookup ingressroutes": lambda s: _lookup(s, "ingressroutes", namespace=s.namespace),
    "lookup anomalies of the route": lambda s: _lookup(s, "anomalies", namespace=s.namespace, route_name=s.route),
    "watchdog reads the mirror": _read_mirror_as_the_watchdog_does,
    "disable": lambda s: _mirror(s, state="absent"),
    "keep a report": _keep_report,
}

# Viewer operations: reads across namespaces.
VIEWER_OPERATIONS: dict[str, Callable[[Scene], dict[str, Any]]] = {
    "traffic_info of all namespaces": lambda s: run_module("traefik_traffic_info", dict(s.auth)),
    "traffic_info of a route": lambda s: run_module(
        "traefik_traffic_info", {"namespace": s.namespace, "route_name": s.route, **s.auth}
    ),
    "lookup routes of all namespaces": lambda s: _lookup(s, "routes"),
    "lookup ingressroutes of all namespaces": lambda s: _lookup(s, "ingressroutes"),
    "lookup distribution": lambda s: _lookup(s, "distribution", namespace=s.namespace, route_name=s.route),
    "lookup anomalies of all namespaces": lambda s: _lookup(s, "anomalies"),
}

# (resource, verb) removed -> the first operation that must fail, and the scope its 403 names.
OPERATOR_REMOVALS = {
    ("traefikservices", "get"): ("enable", "namespace"),
    ("traefikservices", "list"): ("enable", "namespace"),
    ("traefikservices", "create"): ("enable", "namespace"),
    ("traefikservices", "patch"): ("ramp", "namespace"),
    ("traefikservices", "delete"): ("disable", "namespace"),
    ("ingressroutes", "get"): ("attach", "namespace"),
    ("ingressroutes", "list"): ("enable", "namespace"),
    ("ingressroutes", "patch"): ("attach", "namespace"),
    ("services", "get"): ("enable", "namespace"),
    ("configmaps", "list"): ("keep a report", "namespace"),
    ("configmaps", "create"): ("keep a report", "namespace"),
    ("configmaps", "delete"): ("keep a report", "namespace"),
}
VIEWER_REMOVALS = {
    ("traefikservices", "list"): ("traffic_info of all namespaces", "all namespaces"),
    ("ingressroutes", "list"): ("traffic_info of all namespaces", "all namespaces"),
    ("ingressroutes", "get"): ("traffic_info of a route", "namespace"),  # a named route is read by name
}


def without(role: dict[str, Any], resource: str, verb: str, group: str) -> dict[str, Any]:
    """``role`` minus one verb on one resource of one API group (the rule is split as needed)."""
    variant = copy.deepcopy(role)
    rules = []
    for rule in variant["rules"]:
        if resource in rule["resources"] and group in rule["apiGroups"] and verb in rule["verbs"]:
            rest_groups = [g for g in rule["apiGroups"] if g != group]
            if rest_groups:
                rules.append({**rule, "apiGroups": rest_groups})
            rest_resources = [r for r in rule["resources"] if r != resource]
            if rest_resources:
                rules.append({**rule, "apiGroups": [group], "resources": rest_resources})
            rest_verbs = [v for v in rule["verbs"] if v != verb]
            if rest_verbs:
                rules.append({**rule, "apiGroups": [group], "resources": [resource], "verbs": rest_verbs})
        else:
            rules.append(rule)
    variant["rules"] = rules
    return variant


def granted(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    """Every (apiGroup, resource, verb) a role grants."""
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def scene(kube: Kube, make_namespace: Callable[[str], str], admin_kubeconfig: Path) -> Scene:
    """The seed world's objects in a fresh namespace; auth: the admin kubeconfig impersonating a fresh user."""
    world = build_static_world(kube, make_namespace("rbac"), "rbac")
    user = f"rbac-{secrets.token_hex(4)}"
    return Scene(
        namespace=world.namespace,
        route=world.route,
        stable=world.service("stable"),
        canary=world.service("canary"),
        auth={"kubeconfig": str(admin_kubeconfig), "impersonate_user": user},
    )


def bind_role(kube: Kube, scene: Scene, role: dict[str, Any]) -> None:
    role = copy.deepcopy(role)
    name = role["metadata"]["name"]
    role["metadata"]["namespace"] = scene.namespace
    kube.apply(role, scene.namespace)
    kube.apply(
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": scene.namespace},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
            "subjects": [{"apiGroup": RBAC, "kind": "User", "name": scene.auth["impersonate_user"]}],
        }
    )


@pytest.fixture
def bind_cluster_role(kube: Kube) -> Iterator[Callable[[Scene, dict[str, Any]], None]]:
    """Bind a ClusterRole (renamed per user) to the scene's user; removed afterwards (cluster-scoped)."""
    made: list[str] = []

    def bind(scene: Scene, cluster_role: dict[str, Any]) -> None:
        cluster_role = copy.deepcopy(cluster_role)
        name = f"{cluster_role['metadata']['name']}-{scene.auth['impersonate_user']}"
        cluster_role["metadata"]["name"] = name
        kube.apply(cluster_role)
        kube.apply(
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": name},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": name},
                "subjects": [{"apiGroup": RBAC, "kind": "User", "name": scene.auth["impersonate_user"]}],
            }
        )
        made.append(name)

    yield bind
    for name in made:
        kube.delete(f"{RBAC}/v1", "ClusterRoleBinding", name)
        kube.delete(f"{RBAC}/v1", "ClusterRole", name)


def ok(name: str, result: dict[str, Any]) -> None:
    assert not result.get("failed"), f"{name} failed: {result.get('msg')}"


def run_until_failure(
    operations: dict[str, Callable[[Scene], dict[str, Any]]], scene: Scene
) -> tuple[str, dict[str, Any]] | None:
    for name, operation in operations.items():
        result = operation(scene)
        if result.get("failed"):
            return name, result
    return None


def assert_names_the_missing_permission(
    result: dict[str, Any], user: str, verb: str, resource: str, scope: str, namespace: str
) -> None:
    message = str(result.get("msg"))
    assert f'user "{user}" may not {verb} {resource}' in message, message
    where = "in all namespaces" if scope == "all namespaces" else f'in namespace "{namespace}"'
    assert where in message, message
    assert "grant" in message, f"the message must say what to grant: {message}"


# --- the shipped rules are enough -----------------------------------------------------------------


def test_operator_role_runs_every_operation(kube: Kube, scene: Scene, audit: AuditLog) -> None:
    role = load(OPERATOR_ROLE)
    bind_role(kube, scene, role)
    original = user_part(ingress_route(kube, _world_of(scene)))
    mark = audit.mark()
    for name, operation in OPERATOR_OPERATIONS.items():
        ok(name, operation(scene))
    assert user_part(ingress_route(kube, _world_of(scene))) == original, "disable must restore the route"
    # What the user actually did, per the apiserver: every request allowed, nothing used outside the Role.
    user = scene.auth["impersonate_user"]
    events = [e for e in audit.events_since(mark) if (e.get("impersonatedUser") or {}).get("username") == user]
    assert events, "the audit log must show the impersonated user's requests"

    def triple(event: dict[str, Any]) -> tuple[str, str, str]:
        return (event["objectRef"].get("apiGroup", ""), event["objectRef"]["resource"], event["verb"])

    allowed = {triple(e) for e in events if e["responseStatus"]["code"] < 400}
    denied = {(*triple(e), e["objectRef"].get("namespace")) for e in events if e["responseStatus"]["code"] == 403}
    # Refused by design, with a fallback: the API-group probe's cluster-wide list (discovery answers it
    # instead), reading the Namespace object (a Role cannot grant it usefully; the namespace's own
    # calls tell whether it exists), and traffic_info's list of Services (only for broken-backend flags).
    assert denied <= {
        (IO, "traefikservices", "list", None),
        ("", "namespaces", "get", scene.namespace),
        ("", "services", "list", scene.namespace),
    }, denied
    assert allowed <= granted(role), allowed - granted(role)
    unused = {g for g in granted(role) if g[0] in ("", IO)} - allowed
    assert not unused, f"the Role grants permissions no operation used: {sorted(unused)}"
    print(f"\n[rbac] operator: {len(OPERATOR_OPERATIONS)} operations, {len(events)} requests, used {sorted(allowed)}")


def _world_of(scene: Scene) -> Any:
    from dlcluster.world import SeedWorld

    return SeedWorld(namespace=scene.namespace, app="rbac", route=scene.route, host="", api_group=IO, backends={})


def test_viewer_cluster_role_reads_every_namespace(
    kube: Kube, scene: Scene, bind_cluster_role: Callable[[Scene, dict[str, Any]], None]
) -> None:
    bind_cluster_role(scene, load(VIEWER_CLUSTER_ROLE))
    for name, operation in VIEWER_OPERATIONS.items():
        ok(name, operation(scene))
    # Read-only: the viewer cannot enable a mirror.
    refused = _mirror(scene, mirror_percent=20)
    assert refused.get("failed") and refused.get("api_status") == 403, refused


# --- every rule is needed ---------------------------------------------------------------------------


@pytest.mark.parametrize(("resource", "verb"), list(OPERATOR_REMOVALS), ids=str)
def test_operator_role_without_one_permission_names_it(kube: Kube, scene: Scene, resource: str, verb: str) -> None:
    group = "" if resource in ("services", "configmaps") else IO
    bind_role(kube, scene, without(load(OPERATOR_ROLE), resource, verb, group))
    expected_operation, scope = OPERATOR_REMOVALS[(resource, verb)]
    failure = run_until_failure(OPERATOR_OPERATIONS, scene)
    assert failure is not None, f"every operation still works without {verb} {resource}: the rule is not needed"
    operation, result = failure
    assert operation == expected_operation, f"{operation} failed first, expected {expected_operation}: {result}"
    assert result.get("api_status") == 403 or "403" in str(result.get("msg")) or "may not" in str(result.get("msg"))
    full = f"{resource}.{group}" if group else resource
    assert_names_the_missing_permission(result, scene.auth["impersonate_user"], verb, full, scope, scene.namespace)


@pytest.mark.parametrize(("resource", "verb"), list(VIEWER_REMOVALS), ids=str)
def test_viewer_cluster_role_without_one_permission_names_it(
    kube: Kube, scene: Scene, bind_cluster_role: Callable[[Scene, dict[str, Any]], None], resource: str, verb: str
) -> None:
    bind_cluster_role(scene, without(load(VIEWER_CLUSTER_ROLE), resource, verb, IO))
    expected_operation, scope = VIEWER_REMOVALS[(resource, verb)]
    failure = run_until_failure(VIEWER_OPERATIONS, scene)
    assert failure is not None, f"every read still works without {verb} {resource}: the rule is not needed"
    operation, result = failure
    assert operation == expected_operation, f"{operation} failed first, expected {expected_operation}: {result}"
    assert_names_the_missing_permission(
        result, scene.auth["impersonate_user"], verb, f"{resource}.{IO}", scope, scene.namespace
    )


# --- HTTPRoutes: the Gateway API rules -------------------------------------------------------------


def _http_mirror(scene: Scene, **extra: Any) -> dict[str, Any]:
    return run_module(
        "traefik_mirror",
        {
            "route_name": scene.route,
            "namespace": scene.namespace,
            "route_kind": "HTTPRoute",
            "mirror_service": scene.canary,
            "rule_index": 1,
            "propagation_seconds": 0.5,
            **scene.auth,
            **extra,
        },
    )


def _http_info(scene: Scene) -> dict[str, Any]:
    result = run_module(
        "traefik_traffic_info",
        {"namespace": scene.namespace, "route_name": scene.route, "route_kind": "HTTPRoute", **scene.auth},
    )
    if not result.get("failed") and [r["name"] for r in result["http_routes"]] != [scene.route]:
        return {"failed": True, "msg": f"the HTTPRoute is missing from the answer: {result['http_routes']}"}
    return result


def _http_listing(scene: Scene, namespace: str | None) -> dict[str, Any]:
    answer = _lookup(scene, "httproutes", **({"namespace": namespace} if namespace else {}))
    if answer.get("failed"):
        return answer
    names = {(r["namespace"], r["name"]) for r in answer["result"][0]["http_routes"]}
    if (scene.namespace, scene.route) not in names:
        return {"failed": True, "msg": f"{scene.route} is not among the listed HTTPRoutes: {sorted(names)}"}
    return answer


# The operator Role and the gateway ClusterRole on an HTTPRoute, in the order of a launch.
HTTPROUTE_OPERATOR_OPERATIONS: dict[str, Callable[[Scene], dict[str, Any]]] = {
    "attach on the HTTPRoute": lambda s: _http_mirror(s, mirror_percent=20, attach_to_ingress=True),
    "traffic_info of the HTTPRoute": _http_info,
    "lookup httproutes of the namespace": lambda s: _http_listing(s, s.namespace),
    "teardown on the HTTPRoute": lambda s: _http_mirror(s, state="absent"),
}
HTTPROUTE_VIEWER_OPERATIONS: dict[str, Callable[[Scene], dict[str, Any]]] = {
    "traffic_info of the HTTPRoute": _http_info,
    "lookup httproutes of all namespaces": lambda s: _http_listing(s, None),
}
# (resource, verb) of the Gateway API group removed -> the first operation that fails, and the namespace its
# 403 names ("route": the route's, "gateway": the Gateway's, "cluster": none, the resource is cluster-scoped).
HTTPROUTE_OPERATOR_REMOVALS = {
    ("httproutes", "get"): ("attach on the HTTPRoute", "route"),
    ("httproutes", "patch"): ("attach on the HTTPRoute", "route"),
    ("httproutes", "list"): ("lookup httproutes of the namespace", "route"),
    ("gateways", "get"): ("attach on the HTTPRoute", "gateway"),
    ("gatewayclasses", "get"): ("attach on the HTTPRoute", "cluster"),
}
HTTPROUTE_VIEWER_REMOVALS = {
    ("httproutes", "get"): ("traffic_info of the HTTPRoute", "route"),
    ("httproutes", "list"): ("lookup httproutes of all namespaces", "all namespaces"),
}


@pytest.fixture
def http_scene(httproute_world: Callable[..., Any], admin_kubeconfig: Path) -> Scene:
    """An HTTPRoute of the cluster's Gateway (rule 1 split 50/50) in the module's namespace; a fresh user."""
    world = httproute_world(app=f"rbac{secrets.token_hex(2)}")
    return Scene(
        namespace=world.namespace,
        route=world.route,
        stable=world.service("stable"),
        canary=world.service("staging"),
        auth={"kubeconfig": str(admin_kubeconfig), "impersonate_user": f"rbac-{secrets.token_hex(4)}"},
    )


def _http_route(kube: Kube, scene: Scene) -> dict[str, Any]:
    obj = kube.get(f"{GATEWAY_API}/v1", "HTTPRoute", scene.route, scene.namespace) or {}
    meta = obj.get("metadata") or {}
    return {"labels": meta.get("labels"), "annotations": meta.get("annotations"), "spec": obj.get("spec")}


def _gateway_permissions(*roles: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {g for role in roles for g in granted(role) if g[0] == GATEWAY_API}


def test_operator_roles_run_traefik_mirror_on_an_httproute(
    kube: Kube, http_scene: Scene, audit: AuditLog, bind_cluster_role: Callable[[Scene, dict[str, Any]], None]
) -> None:
    role, gateway_role = load(OPERATOR_ROLE), load(GATEWAY_CLUSTER_ROLE)
    bind_role(kube, http_scene, role)
    bind_cluster_role(http_scene, gateway_role)
    original = _http_route(kube, http_scene)
    mark = audit.mark()
    for name, operation in HTTPROUTE_OPERATOR_OPERATIONS.items():
        ok(name, operation(http_scene))
    assert _http_route(kube, http_scene) == original, "teardown must restore the HTTPRoute exactly"
    user = http_scene.auth["impersonate_user"]
    events = [e for e in audit.events_since(mark) if (e.get("impersonatedUser") or {}).get("username") == user]
    used = {
        (e["objectRef"].get("apiGroup", ""), e["objectRef"]["resource"], e["verb"])
        for e in events
        if e["responseStatus"]["code"] < 400
    }
    assert used <= granted(role) | granted(gateway_role), used - granted(role) - granted(gateway_role)
    unused = _gateway_permissions(role, gateway_role) - used
    assert not unused, f"the Gateway API rules grant permissions no operation used: {sorted(unused)}"


def test_viewer_cluster_role_reads_httproutes(
    http_scene: Scene, bind_cluster_role: Callable[[Scene, dict[str, Any]], None]
) -> None:
    bind_cluster_role(http_scene, load(VIEWER_CLUSTER_ROLE))
    for name, operation in HTTPROUTE_VIEWER_OPERATIONS.items():
        ok(name, operation(http_scene))
    refused = _http_mirror(http_scene, mirror_percent=20, attach_to_ingress=True)
    assert refused.get("failed") and refused.get("api_status") == 403, refused


def _assert_gateway_403(result: dict[str, Any], scene: Scene, verb: str, resource: str, scope: str) -> None:
    message = str(result.get("msg"))
    assert f'user "{scene.auth["impersonate_user"]}" may not {verb} {resource}.{GATEWAY_API}' in message, message
    if scope == "route":
        assert f'in namespace "{scene.namespace}"' in message, message
    elif scope == "gateway":
        assert f'in namespace "{gateway.GATEWAY_NAMESPACE}"' in message, message
    elif scope == "all namespaces":
        assert "in all namespaces" in message, message
    assert "grant" in message, f"the message must say what to grant: {message}"


@pytest.mark.parametrize(("resource", "verb"), list(HTTPROUTE_OPERATOR_REMOVALS), ids=str)
def test_operator_roles_without_one_gateway_permission_name_it(
    kube: Kube,
    http_scene: Scene,
    bind_cluster_role: Callable[[Scene, dict[str, Any]], None],
    resource: str,
    verb: str,
) -> None:
    role, gateway_role = load(OPERATOR_ROLE), load(GATEWAY_CLUSTER_ROLE)
    if resource == "httproutes":
        role = without(role, resource, verb, GATEWAY_API)
    else:
        gateway_role = without(gateway_role, resource, verb, GATEWAY_API)
    bind_role(kube, http_scene, role)
    bind_cluster_role(http_scene, gateway_role)
    original = _http_route(kube, http_scene)
    expected_operation, scope = HTTPROUTE_OPERATOR_REMOVALS[(resource, verb)]
    failure = run_until_failure(HTTPROUTE_OPERATOR_OPERATIONS, http_scene)
    assert failure is not None, f"every operation still works without {verb} {resource}: the rule is not needed"
    operation, result = failure
    assert operation == expected_operation, f"{operation} failed first, expected {expected_operation}: {result}"
    _assert_gateway_403(result, http_scene, verb, resource, scope)
    if operation == "attach on the HTTPRoute":
        # A refused attach left the users' rule as it was.
        assert _http_route(kube, http_scene)["spec"] == original["spec"]


@pytest.mark.parametrize(("resource", "verb"), list(HTTPROUTE_VIEWER_REMOVALS), ids=str)
def test_viewer_cluster_role_without_one_httproute_permission_names_it(
    http_scene: Scene, bind_cluster_role: Callable[[Scene, dict[str, Any]], None], resource: str, verb: str
) -> None:
    bind_cluster_role(http_scene, without(load(VIEWER_CLUSTER_ROLE), resource, verb, GATEWAY_API))
    expected_operation, scope = HTTPROUTE_VIEWER_REMOVALS[(resource, verb)]
    failure = run_until_failure(HTTPROUTE_VIEWER_OPERATIONS, http_scene)
    assert failure is not None, f"every read still works without {verb} {resource}: the rule is not needed"
    operation, result = failure
    assert operation == expected_operation, f"{operation} failed first, expected {expected_operation}: {result}"
    _assert_gateway_403(result, http_scene, verb, resource, scope)


def test_every_permission_of_the_shipped_rules_is_covered() -> None:
    """The tables above cover every traefik.io / core permission the two files grant, so none is untested."""
    operator = {(r, v) for g, r, v in granted(load(OPERATOR_ROLE)) if g in ("", IO)}
    viewer = {(r, v) for g, r, v in granted(load(VIEWER_CLUSTER_ROLE)) if g in ("", IO)}
    assert operator == set(OPERATOR_REMOVALS), operator ^ set(OPERATOR_REMOVALS)
    assert viewer == set(VIEWER_REMOVALS), viewer ^ set(VIEWER_REMOVALS)
    gateway_rules = {
        (r, v) for g, r, v in _gateway_permissions(load(OPERATOR_ROLE), load(GATEWAY_CLUSTER_ROLE)) if g == GATEWAY_API
    }
    assert gateway_rules == set(HTTPROUTE_OPERATOR_REMOVALS), gateway_rules ^ set(HTTPROUTE_OPERATOR_REMOVALS)
    viewer_gateway = {(r, v) for g, r, v in _gateway_permissions(load(VIEWER_CLUSTER_ROLE))}
    assert viewer_gateway == set(HTTPROUTE_VIEWER_REMOVALS), viewer_gateway ^ set(HTTPROUTE_VIEWER_REMOVALS)
    # Traefik v2 clusters serve the same resources under traefik.containo.us: the same permissions.
    for path in (OPERATOR_ROLE, VIEWER_CLUSTER_ROLE):
        rules = granted(load(path))
        io = {(r, v) for g, r, v in rules if g == IO}
        containo = {(r, v) for g, r, v in rules if g == "traefik.containo.us"}
        assert io == containo, path
