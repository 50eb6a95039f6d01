# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""traefik_mirror on an HTTPRoute refuses, with nothing written, where the TraefikService CRD is not served; and
where Traefik (from 3.1) reports the rule's backendRef to the mirror unresolved after attach (its CRD provider
off), the rule is put back, the TraefikServices it created are deleted and the run fails."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils import _httproute_resolution as resolution
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_runner import run_httproute_mirror
from ansible_collections.darklaunch.traefik.plugins.module_utils._json_patch import apply_json_patch

NS = "prod"
CONTROLLER = "traefik.io/gateway-controller"
UNRESOLVED = (
    "Cannot load HTTPBackendRef traefik.io/TraefikService/prod/api-mirror: unsupported HTTPBackendRef "
    "traefik.io/TraefikService/api-mirror"
)


def _status(generation: int, resolved: bool) -> dict[str, Any]:
    condition = {"type": "ResolvedRefs", "observedGeneration": generation, "status": "True", "reason": "ResolvedRefs"}
    if not resolved:
        condition.update(status="False", reason="InvalidKind", message=UNRESOLVED)
    accepted = {"type": "Accepted", "observedGeneration": generation, "status": "True"}
    return {"parents": [{"controllerName": CONTROLLER, "conditions": [accepted, condition]}]}


class FakeCluster:
    """The API objects; Traefik writes the route's status on each spec change (``traefik_status``), resolving a
    TraefikService backendRef only when ``crd_provider``; ``crds``: whether traefikservices.traefik.io is served."""

    def __init__(self, *, crds: bool = True, crd_provider: bool = True, traefik_status: bool = True) -> None:
        self.crds, self.crd_provider, self.traefik_status = crds, crd_provider, traefik_status
        route = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "api", "namespace": NS, "resourceVersion": "1", "generation": 1},
            "spec": {
                "parentRefs": [{"name": "gw"}],
                "rules": [
                    {"backendRefs": [{"name": "stable", "port": 80, "weight": 3}, {"name": "canary", "port": 80}]}
                ],
            },
        }
        if traefik_status:
            route["status"] = _status(1, True)
        self.objects: dict[tuple[str, str], dict[str, Any]] = {
            ("HTTPRoute", "api"): route,
            ("Gateway", "gw"): {"spec": {"gatewayClassName": "traefik"}},
            ("GatewayClass", "traefik"): {"spec": {"controllerName": CONTROLLER}},
            ("Service", "api-staging"): {"spec": {"ports": [{"port": 8080}]}},
        }
        self.original = copy.deepcopy(route)
        self.writes: list[str] = []

    def traefik_group(self, requested: str | None = None) -> str:
        return requested or "traefik.io"

    def serves(self, group: str, plural: str) -> bool:
        return self.crds and (group, plural) == ("traefik.io", "traefikservices")

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind, name))
        return copy.deepcopy(found) if found else None

    def create(self, kind: str, namespace: str | None, body: Any) -> dict[str, Any]:
        self.writes.append(f"create {kind} {body['metadata']['name']}")
        obj = copy.deepcopy(dict(body))
        obj["metadata"]["resourceVersion"] = "1"
        self.objects[(kind, obj["metadata"]["name"])] = obj
        return obj

    def json_patch(self, kind: str, namespace: str | None, name: str, ops: Any) -> dict[str, Any]:
        self.writes.append(f"patch {kind} {name}")
        current = self.objects[(kind, name)]
        patched = apply_json_patch(current, ops)
        meta = patched["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        if kind == "HTTPRoute" and patched["spec"] != current["spec"]:
            meta["generation"] += 1
            if self.traefik_status:
                refs = [r for rule in patched["spec"]["rules"] for r in rule["backendRefs"]]
                on_traefik_service = any(r.get("kind") == "TraefikService" for r in refs)
                patched["status"] = _status(meta["generation"], self.crd_provider or not on_traefik_service)
        self.objects[(kind, name)] = patched
        return patched

    def delete(self, kind: str, namespace: str | None, name: str, resource_version: str | None = None) -> None:
        self.writes.append(f"delete {kind} {name}")
        del self.objects[(kind, name)]


OPTIONS = {
    "route_name": "api",
    "namespace": NS,
    "state": "present",
    "mirror_percent": 20,
    "rule_index": 0,
    "attach_to_ingress": True,
    "propagation_seconds": 0,
}


def test_an_attach_that_traefik_resolves_passes() -> None:
    cluster = FakeCluster()
    result = run_httproute_mirror(cluster, OPTIONS, check_mode=False)
    assert result["status"] == "active" and result["warnings"] == []
    assert cluster.objects[("HTTPRoute", "api")]["spec"]["rules"][0]["backendRefs"][0]["name"] == "api-mirror"


@pytest.mark.parametrize("check_mode", [False, True])
def test_no_traefikservice_crd_is_refused_before_any_write(check_mode: bool) -> None:
    cluster = FakeCluster(crds=False)
    with pytest.raises(
        DarklaunchError, match=r"TraefikService CRD \(traefikservices\.traefik\.io\) is not served"
    ) as err:
        run_httproute_mirror(cluster, OPTIONS, check_mode=check_mode)
    assert "--providers.kubernetescrd" in err.value.msg and "Nothing was changed" in err.value.msg
    assert cluster.writes == []
    # Teardown still works there: it only puts back what an attach changed.
    assert run_httproute_mirror(cluster, {**OPTIONS, "state": "absent"}, check_mode=False)["changed"] is False


def test_the_traefik_containo_us_group_is_refused() -> None:
    cluster = FakeCluster()
    with pytest.raises(DarklaunchError, match=r"only in the traefik\.io group") as err:
        run_httproute_mirror(cluster, {**OPTIONS, "api_group": "traefik.containo.us"}, check_mode=False)
    assert err.value.field == "api_group" and cluster.writes == []


def test_an_unresolved_mirror_is_rolled_back_and_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = FakeCluster(crd_provider=False)
    with pytest.raises(DarklaunchError, match="Traefik does not resolve HTTPRoute prod/api rule 0") as err:
        run_httproute_mirror(cluster, OPTIONS, check_mode=False)
    assert "InvalidKind" in err.value.msg and "--providers.kubernetescrd" in err.value.msg
    assert cluster.writes == [
        "create TraefikService api-split",
        "create TraefikService api-mirror",
        "patch HTTPRoute api",
        "patch HTTPRoute api",
        "delete TraefikService api-mirror",
        "delete TraefikService api-split",
    ]
    route = cluster.objects[("HTTPRoute", "api")]
    assert route["spec"] == cluster.original["spec"] and "annotations" not in route["metadata"]
    assert ("TraefikService", "api-mirror") not in cluster.objects


def test_a_traefik_that_reports_no_status_is_a_warning() -> None:
    cluster = FakeCluster(traefik_status=False)
    result = run_httproute_mirror(cluster, OPTIONS, check_mode=False)
    assert result["status"] == "active"
    assert ["Traefik reports no status" in w for w in result["warnings"]] == [True]


def test_resolution_follows_the_current_generation() -> None:
    route = {"metadata": {"generation": 3}, "status": _status(2, False)}
    assert resolution.resolution_of(route, 3).resolved is None  # Traefik has not seen generation 3 yet
    assert resolution.resolution_of({"status": _status(3, False)}, 3).resolved is False
    assert resolution.resolution_of({"status": _status(3, True)}, 3).resolved is True
    other = {
        "parents": [{"controllerName": "example.com/gw", "conditions": _status(3, False)["parents"][0]["conditions"]}]
    }
    assert resolution.resolution_of({"status": other}, 3).resolved is None


def test_waiting_for_traefik_gives_up_at_the_timeout() -> None:
    now = [0.0]

    class Silent:
        def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
            return {"metadata": {"generation": 2}, "status": _status(1, True)}

    def sleep(seconds: float) -> None:
        now[0] += seconds

    found = resolution.wait_for_resolution(Silent(), NS, "api", timeout=3, clock=lambda: now[0], sleep=sleep)
    assert found.resolved is None and now[0] == 3
