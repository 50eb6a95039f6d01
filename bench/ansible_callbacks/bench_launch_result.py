# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible callback for bench/verdict_quality.py: the shadow launch's result as data, as JSON.

Writes the result of the ``darklaunch.traefik.shadow_launch`` task (outcome, cause, cause_kind, the failed
check, every check and step) to the file named by ``BENCH_LAUNCH_OUT`` as soon as the task ends, so the
bench reads the verdicts from the engine itself instead of parsing the playbook's text.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_launch_result
type: aggregate
short_description: the shadow launch task's result as JSON, for bench/verdict_quality.py
description: Writes the result of the darklaunch.traefik.shadow_launch task to $BENCH_LAUNCH_OUT.
requirements: [enable in the callbacks_enabled setting]
"""

KEYS = ("outcome", "msg", "cause", "cause_kind", "failed_check", "passed_steps", "steps", "checks", "failed")


class CallbackModule(CallbackBase):  # type: ignore[misc]  # ansible-core ships no type information
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_launch_result"
    CALLBACK_NEEDS_ENABLED = True

    def _result(self, result: Any) -> None:
        data = result._result
        out = os.environ.get("BENCH_LAUNCH_OUT")
        action = str(getattr(result._task, "action", "") or "")
        if not out or not action.endswith("shadow_launch") or "outcome" not in data:
            return
        with open(out, "w", encoding="utf-8") as handle:
            json.dump({key: data.get(key) for key in KEYS}, handle, default=str)

    def v2_runner_on_ok(self, result: Any) -> None:
        self._result(result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._result(result)
