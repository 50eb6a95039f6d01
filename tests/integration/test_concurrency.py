"""Concurrent traefik_mirror runs on one route, racing each other and a person editing the IngressRoute.

Ten module processes (run as Ansible runs them) attach the mirror at ten different percents while an
admin adds an annotation, a label and a middleware to the IngressRoute. Every run must either succeed
or fail with a conflict that says so and names the option of the object at fault; nothing anybody
wrote may be lost; the end state must be one of the requested ones. Then ten concurrent disables must
leave the IngressRoute exactly as before the attach (plus the manual edits) and the mirror gone.

The figures (runs, successes, conflicts, manual edits) are printed: ``pytest -s`` shows them, and
docs/reliability.md quotes them.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from dlcluster.kube import Kube, object_path
from modrun import run_module
from routes import attach_args
from test_traefik_mirror_safety import (
    STATIC_PORTS,
    build_static_world,
    ingress_route,
    mirror_object,
    user_part,
)

pytestmark = pytest.mark.integration

RUNS = 10
PERCENTS = [5 * (i + 1) for i in range(RUNS)]  # 5, 10, ..., 50: every run asks for a different state
MANUAL_ANNOTATION = "darklaunch.test/manual-edit"
MANUAL_LABEL = "darklaunch.test/edited-by"
EXTRA_MIDDLEWARE = "race-extra-headers"
PRE_MIRROR = "darklaunch.traefik/pre-mirror-services"
# What a failed run may say: the object changed under it, and it names the option of that object.
CONFLICT_WORDS = ("changed since it was read", "already exists", "was deleted since it was read")
CONFLICT_FIELDS = {"route_name", "mirror_name"}


def _patch(kube: Kube, namespace: str, name: str, body: Any, content_type: str) -> None:
    kube.request(
        "PATCH", object_path("traefik.io/v1alpha1", "IngressRoute", namespace, name), body, content_type=content_type
    )


class ManualEditor:
    """An admin editing the IngressRoute by hand while the runs race: ``edits`` annotation changes spread
    over ``spread`` seconds, one label, and one middleware appended to the mirrored route."""

    def __init__(self, kube: Kube, namespace: str, route: str, edits: int = 8, spread: float = 4.0) -> None:
        self.kube, self.namespace, self.route = kube, namespace, route
        self.edits, self.spread = edits, spread
        self.done = 0
        self.last_value = ""

    def run(self) -> None:
        for n in range(1, self.edits + 1):
            time.sleep(self.spread / self.edits)
            value = f"edit-{n}"
            # kubectl annotate / label: a merge patch, no resourceVersion (a person does not retry).
            _patch(
                self.kube,
                self.namespace,
                self.route,
                {"metadata": {"annotations": {MANUAL_ANNOTATION: value}, "labels": {MANUAL_LABEL: "admin"}}},
                "application/merge-patch+json",
            )
            if n == self.edits // 2:
                # kubectl patch --type=json: append a middleware to the route the runs repoint.
                _patch(
                    self.kube,
                    self.namespace,
                    self.route,
                    [{"op": "add", "path": "/spec/routes/0/middlewares/-", "value": {"name": EXTRA_MIDDLEWARE}}],
                    "application/json-patch+json",
                )
            self.last_value = value
            self.done += 1


def _race(calls: list[Callable[[], dict[str, Any]]], editor: ManualEditor) -> list[dict[str, Any]]:
    """Start every call and the editor at once; return the calls' results in order."""
    start = threading.Barrier(len(calls) + 1)

    def at_start(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        start.wait()
        return call()

    def edit() -> None:
        start.wait()
        editor.run()

    with ThreadPoolExecutor(max_workers=len(calls) + 1) as pool:
        edited = pool.submit(edit)
        futures = [pool.submit(at_start, call) for call in calls]
        results = [future.result() for future in futures]
        edited.result()
    return results


def _assert_succeeded_or_conflict(results: list[dict[str, Any]]) -> tuple[int, int]:
    """Every result is a success or a clearly reported conflict; returns (successes, conflicts)."""
    conflicts = [r for r in results if r.get("failed")]
    for result in conflicts:
        message = result.get("msg", "")
        assert any(words in message for words in CONFLICT_WORDS), f"a failure that is not a conflict: {result}"
        assert "retry" in message, message
        assert result.get("field") in CONFLICT_FIELDS, f"a conflict must name the option of its object: {result}"
    return len(results) - len(conflicts), len(conflicts)


def _add_second_route(kube: Kube, namespace: str, route: str, host: str, staging: str) -> None:
    """A second route (to staging, with its own middleware) that no run may touch."""
    _patch(
        kube,
        namespace,
        route,
        [
            {
                "op": "add",
                "path": "/spec/routes/-",
                "value": {
                    "match": f"Host(`{host}`) && PathPrefix(`/static`)",
                    "kind": "Rule",
                    "middlewares": [{"name": f"{route}-headers"}],
                    "services": [{"name": staging, "port": STATIC_PORTS["staging"]}],
                },
            }
        ],
        "application/json-patch+json",
    )


def test_concurrent_attaches_and_disables_lose_nothing(
    kube: Kube, make_namespace: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    world = build_static_world(kube, make_namespace("concurrency"), "race")
    kube.apply(
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "Middleware",
            "metadata": {"name": EXTRA_MIDDLEWARE, "namespace": world.namespace},
            "spec": {"headers": {"customRequestHeaders": {"X-Race": "1"}}},
        }
    )
    _add_second_route(kube, world.namespace, world.route, world.host, world.service("staging"))
    before_attach = user_part(ingress_route(kube, world))
    assert before_attach is not None
    mirror_name = f"{world.route}-mirror"

    def attach(percent: int) -> Callable[[], dict[str, Any]]:
        return lambda: run_module("traefik_mirror", attach_args(world, percent))

    # --- ten attaches at ten percents, and a person editing the route ---------------------------
    editor = ManualEditor(kube, world.namespace, world.route)
    attached = _race([attach(p) for p in PERCENTS], editor)
    attach_ok, attach_conflicts = _assert_succeeded_or_conflict(attached)
    assert attach_ok >= 1, f"no run succeeded: {attached}"
    assert editor.done == editor.edits

    route = ingress_route(kube, world)
    mirror = mirror_object(kube, world)
    assert mirror is not None, "the mirror must exist after the attaches"
    percent = mirror["spec"]["mirroring"]["mirrors"][0]["percent"]
    assert percent in PERCENTS, f"final percent {percent} was never requested"
    assert len(mirror["spec"]["mirroring"]["mirrors"]) == 1, mirror["spec"]
    # The mirrored route goes through the mirror; the second route is untouched.
    routes = route["spec"]["routes"]
    assert routes[0]["services"] == [{"name": mirror_name, "kind": "TraefikService"}], routes
    assert routes[1] == before_attach["spec"]["routes"][1], "the second route was changed"
    # The manual edits survive, and so does everything that was there before.
    meta = route["metadata"]
    assert meta["annotations"][MANUAL_ANNOTATION] == editor.last_value, meta["annotations"]
    assert meta["labels"][MANUAL_LABEL] == "admin", meta["labels"]
    assert routes[0]["middlewares"] == [*before_attach["spec"]["routes"][0]["middlewares"], {"name": EXTRA_MIDDLEWARE}]
    for key, value in before_attach["annotations"].items():
        assert meta["annotations"][key] == value, f"annotation {key} was lost"
    for key, value in before_attach["labels"].items():
        assert meta["labels"][key] == value, f"label {key} was lost"
    assert PRE_MIRROR in meta["annotations"], "the pre-attach targets must be recorded once"
    assert set(meta["annotations"]) == {*before_attach["annotations"], MANUAL_ANNOTATION, PRE_MIRROR}
    assert routes[0]["match"] == before_attach["spec"]["routes"][0]["match"]
    assert route["spec"]["entryPoints"] == before_attach["spec"]["entryPoints"]

    # --- ten disables at once, the person still editing -------------------------------------------
    disable_args = {"route_name": world.route, "namespace": world.namespace, "state": "absent"}
    editor2 = ManualEditor(kube, world.namespace, world.route, edits=4, spread=2.0)
    # The second editor appends the middleware again; expected below.
    disabled = _race([lambda: run_module("traefik_mirror", disable_args) for _run in range(RUNS)], editor2)
    disable_ok, disable_conflicts = _assert_succeeded_or_conflict(disabled)
    assert disable_ok >= 1, f"no disable succeeded: {disabled}"

    assert mirror_object(kube, world) is None, "the mirror must be gone"
    expected = copy.deepcopy(before_attach)
    expected["annotations"][MANUAL_ANNOTATION] = editor2.last_value
    expected["labels"][MANUAL_LABEL] = "admin"
    expected["spec"]["routes"][0]["middlewares"] += [{"name": EXTRA_MIDDLEWARE}, {"name": EXTRA_MIDDLEWARE}]
    assert user_part(ingress_route(kube, world)) == expected, "the route must end exactly as before the attach"

    # A rerun after the race is a no-op: every run converged on the same state.
    again = run_module("traefik_mirror", disable_args)
    assert not again.get("failed") and again["changed"] is False, again

    with capsys.disabled():
        print(
            f"\n[concurrency] attach: {RUNS} runs at percents {PERCENTS}: {attach_ok} succeeded, "
            f"{attach_conflicts} reported a conflict; final percent {percent}; {editor.done} manual edits kept"
            f"\n[concurrency] disable: {RUNS} runs: {disable_ok} succeeded, {disable_conflicts} reported a "
            f"conflict; {editor2.done} manual edits kept; mirror gone, route restored"
        )
