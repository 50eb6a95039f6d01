# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of the collection's actions: all their work on the controller, their options checked first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible.plugins.action import ActionBase


class ControllerAction(ActionBase):  # type: ignore[misc]  # ansible-core ships no type information
    """An action with no connection and no files to send; ``start`` checks the task's options against the
    subclass's ``spec`` (the argument spec its documentation describes)."""

    TRANSFERS_FILES = False
    _requires_connection = False
    spec: Callable[[], dict[str, Any]]

    def start(self, tmp: str | None, task_vars: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The result to fill and the validated options (a bad option fails the task with its name)."""
        result: dict[str, Any] = super().run(tmp, task_vars)
        _validation, params = self.validate_argument_spec(argument_spec=self.spec())
        return result, params

    @classmethod
    def module_kwargs(cls) -> dict[str, Any]:
        """What an AnsibleModule of such an action would be given (tests compare it with the documentation)."""
        return {"argument_spec": cls.spec(), "supports_check_mode": True}
