"""Verdicts that stay right in real traffic, on the real apiserver, Traefik and Prometheus with live users:
users' traffic that surges and falls back during a bake never rolls a healthy launch back.

Users are split between stable and staging and the canary is the shadow, so no rollback can send a user to
the shadow.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from routes import launch_vars, mirror_exists, route_as_written
from shadow import finish_playbook, start_playbook
from steady import SteadyTraffic

pytestmark = pytest.mark.integration

BASE_RATE = 20.0  # user requests per second
SURGE_RATE = 40.0  # added on top: users' traffic triples
INTERVAL = 5


def test_users_traffic_that_triples_and_falls_back_during_a_bake_does_not_roll_back(
    seed_world: Callable[..., Any],
    kube: Any,
    traffic_for: Callable[[Any, float], SteadyTraffic],
    tmp_path: Path,
) -> None:
    world = seed_world(app="verdict-surge", weights={"stable": 50, "staging": 50})
    before = route_as_written(kube, world)
    load = traffic_for(world, BASE_RATE)
    time.sleep(12)  # history for the baseline, at the usual rate
    output = tmp_path / "launch.out"
    launch = launch_vars(world, bake_seconds=75, interval=INTERVAL, history_windows=3, min_requests=20)
    process = start_playbook("shadow_launch", launch, output)
    deadline = time.monotonic() + 120
    while not re.search(r"50% step, \d+/75 s, check 2/15: ok", output.read_text(errors="replace")):
        assert process.poll() is None and time.monotonic() < deadline, output.read_text()[-4000:]
        time.sleep(0.2)
    surge = traffic_for(world, SURGE_RATE)  # a peak: three times the users...
    time.sleep(25)
    surge.stop()  # ...and back to the usual rate, which the main's recent history now calls a drop
    out = finish_playbook(process, output, timeout=150)
    load.stop()

    lines = re.findall(r"50% step, \d+/75 s, check (\d+)/15: (\w+)", out)
    print(f"\n[surge] checks: {lines}")
    assert process.returncode == 0, out
    assert lines and all(verdict == "ok" for _n, verdict in lines), lines
    assert route_as_written(kube, world) == before
    assert not mirror_exists(kube, world)
    assert load.errors() == 0 and surge.errors() == 0
