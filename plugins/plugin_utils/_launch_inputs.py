# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shadow_launch role's inputs, read with the same rules as the module and the lookup that use them.

Survey answers and extra vars arrive as text ("20,50", "[20, 50]", "1h30m"); the role hands them to
these functions (through the darklaunch.traefik.mirror_steps, anomaly_settings and mirror_names filters)
instead of parsing them again in Jinja, so a step is a valid percentage exactly when traefik_mirror accepts
it as ``mirror_percent``, and a window is valid exactly when the traffic lookup accepts it. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils import _default_names as default_names
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_params import (
    MirrorParams,
    check_mirror_percent,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import check_name
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_settings import AnomalySettings

_SEPARATORS = re.compile(r"[\s,]+")
_EXAMPLE = 'for example [20, 50] or "20,50"'


def parse_steps(value: Any, name: str = "steps") -> list[int]:
    """Mirror percentages in order, from a list or the text of a survey answer or extra var.

    ``[20, 50]``, ``"[20, 50]"``, ``"20,50"``, ``"20 50"``, ``20`` and ``"20"`` all give ``[20, 50]``
    (or ``[20]``); each must be what traefik_mirror accepts as ``mirror_percent``.
    """
    items = _step_items(value, name)
    if not items:
        raise DarklaunchError(
            f"{name} must name at least one mirror percentage, {_EXAMPLE}; got {value!r}.", field=name
        )
    return [check_mirror_percent(_whole_number(item), f"{name}[{index}]") for index, item in enumerate(items)]


def _step_items(value: Any, name: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    if not isinstance(value, str):
        return [value]
    text = value.strip()
    if text.startswith("["):
        if not text.endswith("]"):
            # ansible-playbook -e "steps=[20, 50]" splits on the space and passes "[20,".
            raise DarklaunchError(
                f'{name} arrived as {value!r}: a space inside -e "steps=[20, 50]" cuts it short. '
                "Write -e steps=20,50 or -e '{\"steps\": [20, 50]}'.",
                field=name,
            )
        try:
            parsed = json.loads(text)
        except ValueError:
            text = text[1:-1]
        else:
            return list(parsed)
    return [token for token in _SEPARATORS.split(text) if token]


def _whole_number(item: Any) -> Any:
    """Digit strings (survey answers) become numbers; anything else is left for the percent rule to judge."""
    if isinstance(item, str) and re.fullmatch(r"\s*-?\d+\s*", item):
        return int(item)
    return item


def anomaly_settings(options: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``sigma``, ``window``, ``history_windows``, ``min_requests`` and ``client_error_codes`` checked as the
    traffic lookup checks them, plus ``window_seconds``. Options that are missing get the lookup's defaults.
    Errors name the option as ``prefix`` + its name (the role's ``shadow_launch_window``)."""
    known = ("sigma", "window", "history_windows", "min_requests", "client_error_codes")
    given = {key: options[key] for key in known if options.get(key) not in (None, "")}
    try:
        settings = AnomalySettings.from_options(**given)
    except DarklaunchError as error:
        raise _renamed(error, prefix) from None
    return {
        "sigma": settings.sigma,
        "window": settings.window,
        "window_seconds": settings.window_seconds,
        "history_windows": settings.history_windows,
        "min_requests": settings.min_requests,
        "client_error_codes": list(settings.client_error_codes),
    }


def mirror_names(options: Mapping[str, Any]) -> dict[str, str]:
    """The object names traefik_mirror uses for these options (its ``{route_name}-mirror``, ``-wrr``,
    ``-stable`` and ``-staging`` defaults), and the comparator the role deploys (``compare_name``), for callers
    that have no traefik_mirror result to read."""
    names = ("route_name", "namespace", "main_service", "mirror_service", "mirror_name", "wrr_name")
    given: dict[str, Any] = {key: str(options[key]) for key in names if options.get(key)}
    params = MirrorParams(**{"route_name": "", **given}).with_defaults()
    # The names traefik_mirror would refuse are refused here too, with its words.
    check_name(params.route_name, "route_name", "subdomain")
    check_name(params.namespace, "namespace", "label")
    return {
        **{key: getattr(params, key) for key in names},
        "compare_name": default_names.compare_service_name(params.route_name),
    }


def _renamed(error: DarklaunchError, prefix: str) -> DarklaunchError:
    if not prefix or error.field is None:
        return error
    name = prefix + error.field
    message = error.msg.replace(error.field, name, 1) if error.msg.startswith(error.field) else f"{name}: {error.msg}"
    return DarklaunchError(message, field=name, details=error.details)
