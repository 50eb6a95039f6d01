"""traefik_mirror's safety promises against the real apiserver: refusals, races, ports, API groups, RBAC.

Every refusal must name the option at fault (``field`` in the result and the option in ``msg``) and leave
the cluster as it was: no write request reaches the apiserver (audit log) and the objects are unchanged.
Each test builds its own seed world in a fresh namespace, so the tests are independent of each other.
"""

from __future__ import annotations

import copy
import math
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dlcluster.audit import AuditLog, summarize
from dlcluster.kube import Kube, object_path
from dlcluster.testing import Cluster
from dlcluster.world import SeedWorld, manifests
from modrun import run_module
from shadow import wait_mirror_live

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s import KubeClient
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_runner import MirrorRun, run_mirror

pytestmark = pytest.mark.integration

IO = "traefik.io"
CONTAINO = "traefik.containo.us"
PRE_MIRROR = "darklaunch.traefik/pre-mirror-services"
RACE_LABEL = "darklaunch.test/concurrent-writer"

MakeWorld = Callable[..., SeedWorld]
# Services of a world built without backends; nothing listens there, and these tests send no traffic.
STATIC_PORTS = {"stable": 8081, "canary": 8082, "staging": 8083}


# --- helpers -------------------------------------------------------------------------------------


@dataclass
class StaticWorld(SeedWorld):
    """The seed world's objects without backends (starting and stopping backends costs seconds)."""

    ports: dict[str, int] = field(default_factory=lambda: dict(STATIC_PORTS))

    def port(self, role: str) -> int:
        return self.ports[role]


def build_static_world(kube: Kube, namespace: str, app: str, api_group: str = IO) -> StaticWorld:
    route = f"{app}-route"
    host = f"{route}.{namespace}.test"
    kube.ensure_namespace(namespace)
    kube.apply_all(manifests(namespace, app, route, host, STATIC_PORTS, {"stable": 50, "canary": 50}, api_group))
    return StaticWorld(namespace=namespace, app=app, route=route, host=host, api_group=api_group, backends={})


@pytest.fixture
def make_world(kube: Kube, make_namespace: Callable[[str], str]) -> MakeWorld:
    """The seed world's objects in a fresh namespace of the main cluster."""
    return lambda app: build_static_world(kube, make_namespace(app), app)


def enable_args(world: SeedWorld, **extra: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "route_name": world.route,
        "namespace": world.namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service("canary"),
        "mirror_percent": 20,
    }
    args.update(extra)
    return args


def attach_args(world: SeedWorld, **extra: Any) -> dict[str, Any]:
    return enable_args(world, attach_to_ingress=True, confirm_end_weighted_split=True, **extra)


def disable_args(world: SeedWorld, **extra: Any) -> dict[str, Any]:
    return {"route_name": world.route, "namespace": world.namespace, "state": "absent", **extra}


def traefik_mirror(args: dict[str, Any]) -> dict[str, Any]:
    """The module's result, run as Ansible runs it."""
    return run_module("traefik_mirror", args)


def succeeded(result: dict[str, Any]) -> dict[str, Any]:
    assert not result.get("failed"), result
    return result


def api_version(group: str) -> str:
    return f"{group}/v1alpha1"


def user_part(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a user wrote (spec, labels, annotations), without the server's bookkeeping."""
    if obj is None:
        return None
    meta = obj["metadata"]
    return {
        "spec": copy.deepcopy(obj.get("spec")),
        "labels": dict(meta.get("labels") or {}),
        "annotations": dict(meta.get("annotations") or {}),
    }


def get_object(kube: Kube, world: SeedWorld, kind: str, name: str) -> dict[str, Any] | None:
    version = "v1" if kind == "Service" else api_version(world.api_group)
    return kube.get(version, kind, name, world.namespace)


def ingress_route(kube: Kube, world: SeedWorld) -> dict[str, Any]:
    found = get_object(kube, world, "IngressRoute", world.route)
    assert found is not None, f"IngressRoute {world.route} is gone"
    return found


def mirror_object(kube: Kube, world: SeedWorld) -> dict[str, Any] | None:
    return get_object(kube, world, "TraefikService", f"{world.route}-mirror")


def world_state(kube: Kube, world: SeedWorld) -> dict[str, Any]:
    """The user-visible state of every object of the world (None where an object does not exist)."""
    objects = {
        ("IngressRoute", world.route),
        ("TraefikService", world.wrr),
        ("TraefikService", f"{world.route}-mirror"),
        *(("Service", world.service(role)) for role in ("stable", "canary", "staging")),
    }
    return {f"{kind}/{name}": user_part(get_object(kube, world, kind, name)) for kind, name in sorted(objects)}


def assert_refused(result: dict[str, Any], option: str, *words: str, by_ansible: bool = False) -> None:
    """The run failed, naming ``option`` in ``msg`` and (for the collection's own refusals) in ``field``.

    ``by_ansible``: Ansible's argument-spec validation (types, choices) refused it before the module ran;
    those messages name the option but carry no ``field``.
    """
    assert result.get("failed"), f"expected a refusal naming {option}, got {result}"
    if not by_ansible:
        assert result.get("field") == option, result
    assert option in result["msg"], result["msg"]
    for word in words:
        assert word in result["msg"], result["msg"]


class Unchanged:
    """``with Unchanged(audit, kube, world): ...``: no write reached the namespace, every object is as it was."""

    def __init__(self, audit: AuditLog, kube: Kube, world: SeedWorld) -> None:
        self.audit, self.kube, self.world = audit, kube, world

    def __enter__(self) -> Unchanged:
        self.before = world_state(self.kube, self.world)
        self.mark = self.audit.mark()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            return
        writes = self.audit.writes_since(self.mark, namespace=self.world.namespace)
        assert writes == [], f"a refused run wrote to the cluster: {summarize(writes)}"
        assert world_state(self.kube, self.world) == self.before


def merge_patch(kube: Kube, group_version: str, kind: str, name: str, namespace: str, patch: dict[str, Any]) -> None:
    kube.request(
        "PATCH",
        object_path(group_version, kind, namespace, name),
        patch,
        content_type="application/merge-patch+json",
    )


def set_label(kube: Kube, world: SeedWorld, kind: str, name: str, value: str) -> None:
    merge_patch(
        kube, api_version(world.api_group), kind, name, world.namespace, {"metadata": {"labels": {RACE_LABEL: value}}}
    )


def replace_service_ports(kube: Kube, world: SeedWorld, role: str, ports: list[dict[str, Any]]) -> None:
    merge_patch(kube, "v1", "Service", world.service(role), world.namespace, {"spec": {"ports": ports}})


# --- backends must exist before attach -------------------------------------------------------------


@pytest.mark.parametrize(("role", "option"), [("stable", "main_service"), ("canary", "mirror_service")])
def test_attach_refused_when_a_backend_service_is_missing(
    make_world: MakeWorld, kube: Kube, audit: AuditLog, role: str, option: str
) -> None:
    world = make_world(f"missing-{role}")
    kube.delete("v1", "Service", world.service(role), world.namespace)
    with Unchanged(audit, kube, world):
        refused = traefik_mirror(attach_args(world))
    assert_refused(refused, option, world.service(role), "does not exist")
    assert mirror_object(kube, world) is None


# --- disable -------------------------------------------------------------------------------------


def test_disable_twice_second_run_is_a_no_op(make_world: MakeWorld, kube: Kube, audit: AuditLog) -> None:
    world = make_world("disable-twice")
    original = user_part(ingress_route(kube, world))
    succeeded(traefik_mirror(attach_args(world)))

    first = succeeded(traefik_mirror(disable_args(world)))
    assert first["changed"] is True and first["status"] == "absent"
    assert user_part(ingress_route(kube, world)) == original

    with Unchanged(audit, kube, world):
        second = succeeded(traefik_mirror(disable_args(world)))
    assert second["changed"] is False
    assert second["status"] == "absent" and second["actions"] == []


# --- concurrent writers --------------------------------------------------------------------------


class InterferingClient:
    """A KubeClient whose writes to ``kind`` are each preceded by another writer's change (``times`` times)."""

    def __init__(self, inner: KubeClient, kind: str, interfere: Callable[[int], None], times: float) -> None:
        self.inner, self.kind, self.interfere, self.times = inner, kind, interfere, times
        self.interferences = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _before_write(self, kind: str) -> None:
        if kind == self.kind and self.interferences < self.times:
            self.interferences += 1
            self.interfere(self.interferences)

    def create(self, kind: str, namespace: str | None, body: Any) -> dict[str, Any]:
        self._before_write(kind)
        return self.inner.create(kind, namespace, body)

    def json_patch(self, kind: str, namespace: str | None, name: str, ops: Any) -> dict[str, Any]:
        self._before_write(kind)
        return self.inner.json_patch(kind, namespace, name, ops)


@pytest.fixture
def admin_client(admin_kubeconfig: Path) -> Iterator[KubeClient]:
    yield KubeClient.from_params({"kubeconfig": str(admin_kubeconfig)})


def run_with_interference(
    client: KubeClient, kube: Kube, world: SeedWorld, kind: str, name: str, options: dict[str, Any], times: float
) -> tuple[MirrorRun, InterferingClient]:
    """run_mirror while the admin labels ``kind``/``name`` (label value: 1, 2, ...) just before our writes to it."""
    racer = InterferingClient(client, kind, lambda n: set_label(kube, world, kind, name, str(n)), times)
    return run_mirror(racer, options, check_mode=False), racer


def test_concurrent_change_is_retried_and_kept(make_world: MakeWorld, kube: Kube, admin_client: KubeClient) -> None:
    world = make_world("race-once")
    run, racer = run_with_interference(admin_client, kube, world, "IngressRoute", world.route, attach_args(world), 1)

    assert racer.interferences == 1
    assert run.attempts == 2, "the write that met the concurrent change must be planned again and retried"
    route = ingress_route(kube, world)
    assert route["metadata"]["labels"][RACE_LABEL] == "1", "the other writer's change was overwritten"
    assert route["spec"]["routes"][0]["services"] == [{"name": f"{world.route}-mirror", "kind": "TraefikService"}]
    assert PRE_MIRROR in route["metadata"]["annotations"]
    assert mirror_object(kube, world) is not None


def test_concurrent_change_to_the_mirror_is_retried_and_kept(
    make_world: MakeWorld, kube: Kube, admin_client: KubeClient
) -> None:
    world = make_world("race-mirror")
    succeeded(traefik_mirror(enable_args(world)))
    mirror_name = f"{world.route}-mirror"
    run = run_with_interference(
        admin_client, kube, world, "TraefikService", mirror_name, enable_args(world, mirror_percent=50), 1
    )[0]

    assert run.attempts == 2
    ramped = mirror_object(kube, world)
    assert ramped is not None
    assert ramped["metadata"]["labels"][RACE_LABEL] == "1"
    assert ramped["spec"]["mirroring"]["mirrors"][0]["percent"] == 50


def test_object_changing_before_every_write_fails_and_undoes(
    make_world: MakeWorld, kube: Kube, admin_client: KubeClient
) -> None:
    world = make_world("race-always")
    original = user_part(ingress_route(kube, world))
    racer = InterferingClient(
        admin_client, "IngressRoute", lambda n: set_label(kube, world, "IngressRoute", world.route, str(n)), math.inf
    )
    with pytest.raises(DarklaunchError) as raised:
        run_mirror(racer, attach_args(world), check_mode=False)

    message = str(raised.value)
    assert f"IngressRoute {world.namespace}/{world.route}" in message, message
    assert "changed since it was read" in message and "kept changing" in message, message
    assert "undone" in message, message
    assert racer.interferences == 3, "each of the three attempts must have met a change"

    route = ingress_route(kube, world)
    assert route["metadata"]["labels"][RACE_LABEL] == "3", "the other writer's last change must survive"
    expected = copy.deepcopy(original)
    assert expected is not None
    expected["labels"][RACE_LABEL] = "3"
    assert user_part(route) == expected, "the IngressRoute must not be left half attached"
    assert mirror_object(kube, world) is None, "the mirror created in the first attempt must be removed"


# --- ports ---------------------------------------------------------------------------------------


def test_ports_default_to_the_services_only_port(make_world: MakeWorld, kube: Kube) -> None:
    world = make_world("port-default")
    succeeded(traefik_mirror(enable_args(world)))
    created = mirror_object(kube, world)
    assert created is not None
    spec = created["spec"]["mirroring"]
    assert spec["port"] == world.port("stable")
    assert spec["mirrors"][0]["port"] == world.port("canary")


def test_named_ports_are_written_as_names(
    seed_world: MakeWorld,
    make_namespace: Callable[[str], str],
    kube: Kube,
    traefik_api_get: Callable[[str], Any],
    traffic: Any,
) -> None:
    world = seed_world(app="port-named", namespace=make_namespace("port-named"))
    succeeded(traefik_mirror(attach_args(world, main_port="http", mirror_port="http")))
    created = mirror_object(kube, world)
    assert created is not None
    spec = created["spec"]["mirroring"]
    assert spec["port"] == "http" and spec["mirrors"][0]["port"] == "http"

    # Traefik resolves the names: the mirror builds and users are answered by stable.
    wait_mirror_live(traefik_api_get, world)
    answered = traffic(world.host, n=20)
    assert answered.by_status == {200: 20}
    assert set(answered.by_body) == {world.service("stable")}


@pytest.mark.parametrize(("role", "option"), [("stable", "main_port"), ("canary", "mirror_port")])
def test_multi_port_service_needs_an_explicit_port(
    make_world: MakeWorld, kube: Kube, audit: AuditLog, role: str, option: str
) -> None:
    world = make_world(f"multi-port-{role}")
    port = world.port(role)
    replace_service_ports(
        kube,
        world,
        role,
        [{"name": "http", "port": port, "protocol": "TCP"}, {"name": "admin", "port": port + 1, "protocol": "TCP"}],
    )
    with Unchanged(audit, kube, world):
        refused = traefik_mirror(attach_args(world))
    assert_refused(refused, option, "several ports")


# --- API groups ----------------------------------------------------------------------------------


def test_api_group_is_detected_on_a_traefik_io_cluster(make_world: MakeWorld, kube: Kube) -> None:
    world = make_world("group-auto")
    result = succeeded(traefik_mirror(enable_args(world)))
    assert result["api_group"] == IO
    created = mirror_object(kube, world)
    assert created is not None and created["apiVersion"] == api_version(IO)


def test_forced_api_group_is_used_without_detection(make_world: MakeWorld, kube: Kube, audit: AuditLog) -> None:
    world = make_world("group-forced")
    with Unchanged(audit, kube, world):
        refused = traefik_mirror(attach_args(world, api_group=CONTAINO))
    assert_refused(refused, "api_group", "not installed", CONTAINO)


@pytest.fixture
def containo_world(containo_cluster: Cluster) -> SeedWorld:
    """The seed world's objects under traefik.containo.us on the containo-only apiserver."""
    return build_static_world(containo_cluster.kube(), f"t-containo-{secrets.token_hex(3)}", "legacy", CONTAINO)


def test_containo_only_cluster_works_end_to_end(containo_cluster: Cluster, containo_world: SeedWorld) -> None:
    kube = containo_cluster.kube()
    world = containo_world
    auth = {"kubeconfig": str(containo_cluster.kubeconfigs["admin"])}
    original = user_part(ingress_route(kube, world))

    enabled = succeeded(
        traefik_mirror({**enable_args(world, attach_to_ingress=True, confirm_end_weighted_split=True), **auth})
    )
    assert enabled["api_group"] == CONTAINO and enabled["status"] == "active"
    created = mirror_object(kube, world)
    assert created is not None
    assert created["apiVersion"] == api_version(CONTAINO)
    assert created["spec"]["mirroring"]["mirrors"][0] == {
        "name": world.service("canary"),
        "kind": "Service",
        "port": world.port("canary"),
        "percent": 20,
    }
    attached = ingress_route(kube, world)
    assert attached["spec"]["routes"][0]["services"] == [{"name": f"{world.route}-mirror", "kind": "TraefikService"}]

    # api_group given explicitly is used as is: no probe of the other group reaches the apiserver.
    audit = AuditLog(containo_cluster.audit_log)
    mark = audit.mark()
    disabled = succeeded(traefik_mirror({**disable_args(world, api_group=CONTAINO), **auth}))
    probes = [e for e in audit.events_since(mark) if e.get("objectRef", {}).get("apiGroup") == IO]
    assert probes == [], summarize(probes)
    assert disabled["api_group"] == CONTAINO and disabled["status"] == "absent"
    assert mirror_object(kube, world) is None
    assert user_part(ingress_route(kube, world)) == original


def test_traefik_io_on_a_containo_only_cluster_is_refused(containo_cluster: Cluster, containo_world: SeedWorld) -> None:
    kube = containo_cluster.kube()
    world = containo_world
    with Unchanged(AuditLog(containo_cluster.audit_log), kube, world):
        refused = traefik_mirror(
            {**attach_args(world, api_group=IO), "kubeconfig": str(containo_cluster.kubeconfigs["admin"])}
        )
    assert_refused(refused, "api_group", "not installed", IO)


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("mirror_percent", 0),
        ("mirror_percent", 101),
        ("mirror_percent", -5),
        ("mirror_percent", "abc"),
        ("route_name", "Bad_Name"),
        ("mirror_service", "UPPER"),
        ("namespace", "no_way"),
        ("state", "enabled"),
    ],
)
def test_bad_option_is_refused_by_name(
    make_world: MakeWorld, kube: Kube, audit: AuditLog, option: str, value: Any
) -> None:
    world = make_world("bad-input")
    with Unchanged(audit, kube, world):
        refused = traefik_mirror(attach_args(world, **{option: value}))
    # A non-integer percent and an unknown state fail Ansible's own type and choice checks.
    assert_refused(refused, option, by_ansible=(option, value) in {("mirror_percent", "abc"), ("state", "enabled")})


def test_namespace_that_does_not_exist_is_refused(make_world: MakeWorld, kube: Kube, audit: AuditLog) -> None:
    world = make_world("no-namespace")
    missing = f"{world.namespace}-gone"
    with Unchanged(audit, kube, world):
        refused = traefik_mirror(attach_args(world, namespace=missing))
    assert_refused(refused, "namespace", missing, "does not exist")
    assert kube.get("v1", "Namespace", missing) is None


def test_attach_refused_when_the_ingress_route_is_missing(make_world: MakeWorld, kube: Kube, audit: AuditLog) -> None:
    world = make_world("no-route")
    kube.delete(api_version(IO), "IngressRoute", world.route, world.namespace)
    with Unchanged(audit, kube, world):
        refused = traefik_mirror(attach_args(world))
    assert_refused(refused, "route_name", world.route, "does not exist", "attach_to_ingress")


def test_attach_refused_when_the_route_targets_something_else(
    make_world: MakeWorld, kube: Kube, audit: AuditLog
) -> None:
    world = make_world("other-target")
    route = ingress_route(kube, world)
    routes = copy.deepcopy(route["spec"]["routes"])
    routes[0]["services"] = [{"name": world.service("staging"), "port": world.port("staging")}]
    merge_patch(kube, api_version(IO), "IngressRoute", world.route, world.namespace, {"spec": {"routes": routes}})
    with Unchanged(audit, kube, world):
        refused = traefik_mirror(attach_args(world))
    assert_refused(refused, "attach_to_ingress", world.service("staging"), world.wrr, world.service("stable"))


# --- RBAC ----------------------------------------------------------------------------------------


def test_operator_runs_every_operation_in_a_bound_namespace(
    make_world: MakeWorld,
    kube: Kube,
    audit: AuditLog,
    operator_kubeconfig: Path,
    bind_operator: Callable[[str], None],
) -> None:
    world = make_world("rbac-bound")
    bind_operator(world.namespace)
    auth = {"kubeconfig": str(operator_kubeconfig)}
    original = user_part(ingress_route(kube, world))
    mark = audit.mark()

    enabled = succeeded(traefik_mirror({**enable_args(world), **auth}))
    assert enabled["changed"] and enabled["status"] == "inactive"
    attached = succeeded(traefik_mirror({**attach_args(world), **auth}))
    assert attached["changed"] and attached["status"] == "active"
    ramped = succeeded(traefik_mirror({**attach_args(world, mirror_percent=50), **auth}))
    assert [(a["verb"], a["kind"]) for a in ramped["actions"]] == [("patch", "TraefikService")]
    disabled = succeeded(traefik_mirror({**disable_args(world), **auth}))
    assert disabled["changed"] and disabled["status"] == "absent"

    assert user_part(ingress_route(kube, world)) == original
    writers = {w["user"]["username"] for w in audit.writes_since(mark, namespace=world.namespace)}
    assert writers == {"shadow-operator"}


def test_operator_outside_its_namespace_is_told_what_is_refused(
    make_world: MakeWorld, kube: Kube, audit: AuditLog, operator_kubeconfig: Path
) -> None:
    world = make_world("rbac-unbound")
    with Unchanged(audit, kube, world):
        refused = traefik_mirror({**attach_args(world), "kubeconfig": str(operator_kubeconfig)})
    assert refused.get("failed"), refused
    assert refused.get("api_status") == 403, refused
    message = refused["msg"]
    # The first request is the by-name read of the mirror.
    assert 'user "shadow-operator" may not get' in message, message
    assert "traefikservices" in message and f'namespace "{world.namespace}"' in message, message


def test_viewer_cannot_write(make_world: MakeWorld, kube: Kube, audit: AuditLog, viewer_kubeconfig: Path) -> None:
    world = make_world("rbac-viewer")
    before = world_state(kube, world)
    mark = audit.mark()
    refused = traefik_mirror({**attach_args(world), "kubeconfig": str(viewer_kubeconfig)})

    assert refused.get("failed"), refused
    assert refused.get("api_status") == 403, refused
    message = refused["msg"]
    assert 'user "viewer" may not create' in message, message
    assert f"traefikservices.{IO}" in message and f'namespace "{world.namespace}"' in message, message
    attempted = audit.writes_since(mark, namespace=world.namespace)
    assert {w["responseStatus"]["code"] for w in attempted} == {403}, summarize(attempted)
    assert world_state(kube, world) == before
