"""Each module's RETURN documentation says what it really returns, both ways: every key a real run
returns is documented, every documented key is returned by some run, and a key documented as
``returned: always`` is in every run. The runs are real, against the local cluster, in the modes
users use (create, attach, ramp, check mode, diff mode, teardown, status of a namespace, a route and
the whole cluster)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from dlcluster import gateway
from modrun import run_module

pytestmark = pytest.mark.integration

MODULES_DIR = Path(__file__).resolve().parents[2] / "plugins" / "modules"
# Keys every module result has or may have that Ansible itself documents (common return values).
ANSIBLE_COMMON = {"changed", "invocation", "failed", "msg"}


def documented(module: str) -> dict[str, Any]:
    source = (MODULES_DIR / f"{module}.py").read_text()
    match = re.search(r'^RETURN = r"""(.*?)"""', source, re.S | re.M)
    assert match, f"{module} has no RETURN"
    spec: dict[str, Any] = yaml.safe_load(match.group(1))
    return spec


def compare(module: str, results: list[dict[str, Any]], not_run: frozenset[str] = frozenset()) -> None:
    """``not_run``: documented keys of runs this cluster cannot make (an HTTPRoute's, on Traefik 2.x)."""
    spec = documented(module)
    returned = {key for result in results for key in result} - ANSIBLE_COMMON
    assert returned - set(spec) == set(), f"{module} returns keys RETURN does not document"
    assert set(spec) - returned - not_run == set(), f"{module} documents keys no run returned"
    for key, doc in spec.items():
        if doc.get("returned") == "always":
            missing = [i for i, result in enumerate(results) if key not in result]
            assert not missing, f"{module}: {key} is documented as always returned, missing in runs {missing}"
        contains = doc.get("contains")
        if doc.get("type") == "dict" and contains and key not in not_run:
            inner = {sub for result in results if isinstance(result.get(key), dict) for sub in result[key]}
            assert inner == set(contains), f"{module}: {key} returns {sorted(inner)}, documents {sorted(contains)}"


@pytest.fixture(scope="module")
def world(seed_world: Callable[..., Any]) -> Any:
    return seed_world(app="returns")


def _httproute_runs(cluster: Any, httproute_world: Callable[..., Any]) -> list[dict[str, Any]]:
    """traefik_mirror's runs on an HTTPRoute (attach in check and diff mode, attach, ramp, teardown)."""
    if not gateway.serves(cluster.config, cluster.env):
        return []
    world = httproute_world(app="returnsgw")
    base = {
        "route_name": world.route,
        "namespace": world.namespace,
        "rule_index": 1,
        "mirror_service": world.service("staging"),
        "attach_to_ingress": True,
        "propagation_seconds": 0.5,
    }
    return [
        run_module("traefik_mirror", {**base, "mirror_percent": 20}, check=True, diff=True, raw=True),
        run_module("traefik_mirror", {**base, "mirror_percent": 20}, raw=True),
        run_module("traefik_mirror", {**base, "mirror_percent": 50, "route_kind": "HTTPRoute"}, raw=True),
        run_module("traefik_mirror", {**base, "state": "absent"}, diff=True, raw=True),
    ]


def test_traefik_mirror_returns_what_it_documents(
    world: Any, cluster: Any, httproute_world: Callable[..., Any]
) -> None:
    base = {
        "route_name": world.route,
        "namespace": world.namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service("canary"),
    }
    present = {**base, "state": "present", "mirror_percent": 20}
    attach = {**present, "attach_to_ingress": True, "confirm_end_weighted_split": True}
    launch = {"id": "returns-1", "owner": "pytest", "step": 20, "lease_seconds": 60}
    runs = [
        run_module("traefik_mirror", present, check=True, raw=True),
        run_module("traefik_mirror", present, diff=True, raw=True),
        run_module("traefik_mirror", {**attach, "launch": launch}, raw=True),
        run_module("traefik_mirror", {**attach, "mirror_percent": 50}, raw=True),
        run_module("traefik_mirror", {**base, "state": "absent"}, diff=True, raw=True),
        run_module("traefik_mirror", {**base, "state": "absent"}, raw=True),
        run_module("traefik_mirror", {**base, "route_name": "no-such-route", "state": "absent"}, raw=True),
    ]
    gateway_runs = _httproute_runs(cluster, httproute_world)
    for result in runs + gateway_runs:
        assert not result.get("failed"), result.get("msg")
    compare("traefik_mirror", runs + gateway_runs, frozenset() if gateway_runs else frozenset({"httproute"}))


def test_traefik_traffic_info_returns_what_it_documents(
    world: Any, cluster: Any, httproute_world: Callable[..., Any]
) -> None:
    runs = [
        run_module("traefik_traffic_info", {"namespace": world.namespace}, raw=True),
        run_module("traefik_traffic_info", {"namespace": world.namespace, "route_name": world.route}, raw=True),
        run_module("traefik_traffic_info", {}, raw=True),
    ]
    if gateway.serves(cluster.config, cluster.env):
        http_route = httproute_world(app="returnsinfo")
        args = {"namespace": http_route.namespace, "route_name": http_route.route, "route_kind": "HTTPRoute"}
        runs.append(run_module("traefik_traffic_info", args, raw=True))
    for result in runs:
        assert not result.get("failed"), result.get("msg")
    compare("traefik_traffic_info", runs, frozenset() if len(runs) > 3 else frozenset({"http_routes"}))
