# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The comparator the role deploys: its manifests, and writes that never touch an object that is not ours."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._comparator_deploy import (
    deploy,
    remove,
    service_port,
    wait_ready,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._comparator_manifests import (
    ComparatorSpec,
    manifests,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError


def spec(**changes: Any) -> ComparatorSpec:
    base: dict[str, Any] = {
        "name": "shop-compare",
        "namespace": "prod",
        "route": "shop",
        "port": 8099,
        "program": "print('compare')\n",
        "candidate": "http://shop-staging.prod.svc:80",
        "primary": "http://shop-stable.prod.svc:80",
        "secondary": "http://shop-stable.prod.svc:80",
        "ignore_json_pointers": ("/timestamp",),
        "extra_labels": {"team": "shop", "app.kubernetes.io/managed-by": "someone-else"},
    }
    base.update(changes)
    return ComparatorSpec(**base)


class FakeKube:
    def __init__(self, objects: list[dict[str, Any]] | None = None) -> None:
        self.objects = {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects or []}
        self.writes: list[tuple[str, str, str]] = []

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind, str(namespace), name))
        return copy.deepcopy(found) if found else None

    def create(self, kind: str, namespace: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
        self.writes.append(("create", kind, body["metadata"]["name"]))
        stored = {**copy.deepcopy(dict(body)), "metadata": {**body["metadata"], "resourceVersion": "1"}}
        self.objects[(kind, str(namespace), body["metadata"]["name"])] = stored
        return stored

    def delete(self, kind: str, namespace: str | None, name: str, resource_version: str | None = None) -> None:
        self.writes.append(("delete", kind, name))
        del self.objects[(kind, str(namespace), name)]


def test_manifests_carry_the_program_args_limits_labels_and_scrape_annotations() -> None:
    config_map, deployment, service = manifests(spec())
    assert config_map["data"] == {"darklaunch_compare.py": "print('compare')\n"}
    labels = deployment["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "darklaunch.traefik" and labels["team"] == "shop"
    assert labels["darklaunch.traefik/route"] == "shop"
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/__darklaunch/metrics"
    container = pod["spec"]["containers"][0]
    assert container["image"] == "python:3.12-slim" and container["resources"]["limits"]["memory"] == "128Mi"
    assert container["command"] == ["python3", "/opt/darklaunch/darklaunch_compare.py"]
    argv = container["args"]
    assert argv[argv.index("--candidate") + 1] == "http://shop-staging.prod.svc:80"
    assert argv[argv.index("--route") + 1] == "prod/shop"
    assert argv[argv.index("--ignore-json-pointer") + 1] == "/timestamp"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [{"name": "http", "port": 8099, "targetPort": "http", "protocol": "TCP"}]


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"port": 0}, "port"), ({"program": " "}, "program"), ({"ignore_json_pointers": ("ts",)}, "ignore_json_pointers")],
)
def test_bad_specs_are_refused_naming_the_option(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(DarklaunchError) as raised:
        manifests(spec(**changes))
    assert raised.value.field == field


def test_deploy_creates_then_keeps_then_replaces_only_what_changed() -> None:
    kube = FakeKube()
    assert [a["action"] for a in deploy(kube, manifests(spec()), "shop", False)] == ["created"] * 3
    assert [a["action"] for a in deploy(kube, manifests(spec()), "shop", False)] == ["unchanged"] * 3
    kube.writes.clear()
    actions = deploy(kube, manifests(spec(program="print(2)\n")), "shop", False)
    assert [a["action"] for a in actions] == ["replaced", "replaced", "unchanged"]
    assert kube.writes == [
        ("delete", "ConfigMap", "shop-compare"),
        ("create", "ConfigMap", "shop-compare"),
        ("delete", "Deployment", "shop-compare"),
        ("create", "Deployment", "shop-compare"),
    ]


def test_check_mode_writes_nothing() -> None:
    kube = FakeKube()
    assert [a["action"] for a in deploy(kube, manifests(spec()), "shop", True)] == ["created"] * 3
    assert kube.writes == [] and kube.objects == {}


def test_a_user_object_of_the_name_is_refused_and_never_touched() -> None:
    users = {"kind": "Service", "metadata": {"name": "shop-compare", "namespace": "prod", "labels": {"app": "mine"}}}
    kube = FakeKube([users])
    with pytest.raises(DarklaunchError, match="Service prod/shop-compare exists and is not the comparator"):
        deploy(kube, manifests(spec()), "shop", False)
    # Refused before any write.
    assert kube.writes == []
    deploy(kube, manifests(spec())[:2], "shop", False)
    actions, warnings = remove(kube, "prod", "shop-compare", "shop", False)
    assert [a["kind"] for a in actions] == ["Deployment", "ConfigMap"]
    assert warnings == [
        "Service prod/shop-compare is not a comparator this collection deployed for route shop: left as it is."
    ]
    assert kube.objects == {("Service", "prod", "shop-compare"): users}


def test_remove_deletes_exactly_the_three_objects_and_then_nothing() -> None:
    kube = FakeKube()
    deploy(kube, manifests(spec()), "shop", False)
    other_route = manifests(spec(name="cart-compare", route="cart"))
    deploy(kube, other_route, "cart", False)
    actions, warnings = remove(kube, "prod", "shop-compare", "shop", False)
    assert ([a["kind"] for a in actions], warnings) == (["Service", "Deployment", "ConfigMap"], [])
    assert sorted(kube.objects) == [(kind, "prod", "cart-compare") for kind in ("ConfigMap", "Deployment", "Service")]
    assert remove(kube, "prod", "shop-compare", "shop", False) == ([], [])


def test_service_port_reads_the_only_port_or_asks_for_one() -> None:
    def svc(name: str, *ports: int) -> dict[str, Any]:
        return {
            "kind": "Service",
            "metadata": {"name": name, "namespace": "prod"},
            "spec": {"ports": [{"port": p} for p in ports]},
        }

    kube = FakeKube([svc("one", 80), svc("two", 80, 443)])
    assert service_port(kube, "prod", "one", None, "primary_service") == 80
    assert service_port(kube, "prod", "two", 443, "primary_service") == 443
    with pytest.raises(DarklaunchError, match="has 2 ports"):
        service_port(kube, "prod", "two", None, "candidate_service")
    with pytest.raises(DarklaunchError, match="does not exist") as raised:
        service_port(kube, "prod", "gone", 80, "candidate_service")
    assert raised.value.field == "candidate_service"


def test_wait_ready_returns_once_a_pod_is_available_and_refuses_past_the_timeout() -> None:
    kube = FakeKube()
    deploy(kube, manifests(spec()), "shop", False)
    moments = iter(float(second) for second in range(100))
    slept: list[float] = []

    def become_ready(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:
            kube.objects[("Deployment", "prod", "shop-compare")]["status"] = {"availableReplicas": 1}

    assert wait_ready(kube, "prod", "shop-compare", 30, become_ready, lambda: next(moments)) == 3.0
    assert slept == [2.0, 2.0]
    kube.objects[("Deployment", "prod", "shop-compare")]["status"] = {
        "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]
    }
    moments = iter(float(second) for second in range(0, 100, 5))
    with pytest.raises(DarklaunchError) as raised:
        wait_ready(kube, "prod", "shop-compare", 10, slept.append, lambda: next(moments))
    assert raised.value.field == "wait_seconds"
    assert "no available pod after 10 s (Available=False (MinimumReplicasUnavailable: ))" in raised.value.msg


def test_remove_under_the_least_privilege_role_warns_instead_of_failing() -> None:
    class Forbidden(FakeKube):
        def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
            if kind == "Deployment":
                raise DarklaunchError("forbidden", details={"api_status": 403})
            return super().get(kind, namespace, name)

    # No comparator of the route: nothing to say, however many kinds could not be read.
    assert remove(Forbidden(), "prod", "shop-compare", "shop", False) == ([], [])
    deployed = FakeKube()
    deploy(deployed, manifests(spec()), "shop", False)
    kube = Forbidden()
    kube.objects = deployed.objects
    actions, warnings = remove(kube, "prod", "shop-compare", "shop", False)
    assert [a["kind"] for a in actions] == ["Service", "ConfigMap"]
    assert warnings == [
        "Deployment prod/shop-compare could not be read (forbidden), so it may be left: remove it with an account "
        "that may read and delete it."
    ]

    class Down(FakeKube):
        def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
            raise DarklaunchError("unreachable", details={"api_status": 503})

    with pytest.raises(DarklaunchError, match="unreachable"):
        remove(Down(), "prod", "shop-compare", "shop", False)
