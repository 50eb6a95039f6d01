# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that read the shadow_launch role's and the playbooks' inputs with the collection's own rules.

The documentation of each filter is in the YAML file of its name beside this one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.plugin_utils import _launch_inputs


def _as_filter_error(function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except DarklaunchError as error:
            raise AnsibleFilterError(str(error)) from None

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


@_as_filter_error
def mirror_steps(value: Any, name: str = "steps") -> list[int]:
    return _launch_inputs.parse_steps(value, name)


@_as_filter_error
def anomaly_settings(options: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    if not isinstance(options, Mapping):
        raise DarklaunchError(f"anomaly_settings takes a dictionary of options, not {type(options).__name__}.")
    return _launch_inputs.anomaly_settings(options, prefix)


@_as_filter_error
def mirror_names(options: Mapping[str, Any]) -> dict[str, str]:
    if not isinstance(options, Mapping):
        raise DarklaunchError(f"mirror_names takes a dictionary of options, not {type(options).__name__}.")
    return _launch_inputs.mirror_names(options)


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"mirror_steps": mirror_steps, "anomaly_settings": anomaly_settings, "mirror_names": mirror_names}
