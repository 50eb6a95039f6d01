# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible callback for bench/ops_vs_kubernetes_core.py: each task's times, as JSON.

A task lasts from its start to the next task's start (or the end of the play), the way
ansible.posix.profile_tasks measures it, so the numbers match its recap. Written to the file named by
``BENCH_TIMING_OUT`` when the playbook ends; ``changed``/``failed`` let the bench check each step did
what it should.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_timing
type: aggregate
short_description: per-task wall times as JSON, for the benchmarks in bench/
description: Writes one JSON document (tasks with start, end, changed, failed) to $BENCH_TIMING_OUT.
requirements: [enable in the callbacks_enabled setting]
"""


class CallbackModule(CallbackBase):  # type: ignore[misc]  # ansible-core ships no type information
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._started = time.perf_counter()
        self._tasks: list[dict[str, Any]] = []

    def _close_last(self, now: float) -> None:
        if self._tasks and self._tasks[-1]["end"] is None:
            self._tasks[-1]["end"] = now - self._started

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        now = time.perf_counter()
        self._close_last(now)
        self._tasks.append(
            {"name": task.get_name(), "start": now - self._started, "end": None, "changed": None, "failed": False}
        )

    def _result(self, result: Any, failed: bool) -> None:
        if self._tasks:
            self._tasks[-1]["changed"] = bool(result._result.get("changed"))
            self._tasks[-1]["failed"] = self._tasks[-1]["failed"] or failed

    def v2_runner_on_ok(self, result: Any) -> None:
        self._result(result, failed=False)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._result(result, failed=True)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        now = time.perf_counter()
        self._close_last(now)
        out = os.environ.get("BENCH_TIMING_OUT")
        if out:
            with open(out, "w", encoding="utf-8") as handle:
                json.dump({"tasks": self._tasks, "playbook": now - self._started}, handle)
