# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of an anomaly check, validated into AnomalySettings (sigma, window, history, client error codes)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError

# A sample standard deviation needs two points; fewer previous windows cannot define "usual".
MIN_HISTORY_POINTS = 2
DEFAULT_CLIENT_ERROR_CODES = ("4xx",)
_CODE_PATTERN = re.compile(r"^[1-5](?:xx|\d\d)$")
MAX_HISTORY_WINDOWS = 1000  # Prometheus refuses range queries of more than 11,000 points per series.
_DURATION_RE = re.compile(
    r"^(?:(?P<y>\d+)y)?(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?"
    r"(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?$"
)
_DURATION_UNIT_SECONDS = {
    "y": 365 * 86400.0,
    "w": 7 * 86400.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}


@dataclass(frozen=True)
class AnomalySettings:
    sigma: float = 2.0
    window: str = "5m"
    window_seconds: float = 300.0
    history_windows: int = 6
    min_requests: int = 100
    # The threshold the checks apply: ``sigma`` raised for the comparisons sharing it (see family_wise_sigma).
    applied_sigma: float | None = None
    comparisons: int = 1
    # The checks that share sigma's false-alarm budget with this one (the gate's checks per step).
    checks: int = 1
    # Answers counted as client errors: classes (``4xx``) or codes (``404``).
    client_error_codes: tuple[str, ...] = DEFAULT_CLIENT_ERROR_CODES
    # How long the mirror's current percentage has held within the window (None: all of it).
    mirror_seconds: float | None = None

    @property
    def threshold(self) -> float:
        return self.sigma if self.applied_sigma is None else self.applied_sigma

    @classmethod
    def from_options(
        cls,
        sigma: Any = 2.0,
        window: Any = "5m",
        history_windows: Any = 6,
        min_requests: Any = 100,
        checks_per_step: Any = 1,
        client_error_codes: Any = None,
    ) -> AnomalySettings:
        """Validate user options (they may arrive as strings from AWX surveys) into settings."""
        window_text = _window_text(window)
        return cls(
            sigma=_positive_float(sigma, "sigma"),
            window=window_text,
            window_seconds=parse_prometheus_duration(window_text),
            history_windows=_bounded_int(history_windows, "history_windows", MIN_HISTORY_POINTS, MAX_HISTORY_WINDOWS),
            min_requests=_bounded_int(min_requests, "min_requests", 1, None),
            checks=_bounded_int(checks_per_step, "checks_per_step", 1, None),
            client_error_codes=parse_client_error_codes(client_error_codes),
        )

    def is_client_error(self, code: str) -> bool:
        """Does a status code (Traefik's ``code`` label) count as a client error?"""
        return any(
            code == wanted or (wanted.endswith("xx") and code[:1] == wanted[0] and len(code) == 3)
            for wanted in self.client_error_codes
        )


def parse_client_error_codes(value: Any) -> tuple[str, ...]:
    """``client_error_codes``: classes such as ``4xx`` or codes such as ``404`` (numbers too); an empty
    list turns the client-error comparison off."""
    if value is None:
        return DEFAULT_CLIENT_ERROR_CODES
    if isinstance(value, str):  # survey and extra-var text: "4xx" or "404, 429"
        value = [item for item in value.replace("[", "").replace("]", "").split(",") if item.strip()]
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, (list, tuple)):
        raise DarklaunchError(
            f"client_error_codes must be a list of status codes or classes such as [4xx] or [404, 429], got {value!r}.",
            field="client_error_codes",
        )
    codes = []
    for item in items:
        text = str(item).strip().lower() if not isinstance(item, bool) else ""
        if not _CODE_PATTERN.match(text):
            raise DarklaunchError(
                f"client_error_codes: {item!r} is not a status code (404) or class (4xx).", field="client_error_codes"
            )
        codes.append(text)
    return tuple(dict.fromkeys(codes))


def parse_prometheus_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as ``5m``, ``1h30m`` or ``500ms``."""
    match = _DURATION_RE.match(text.strip()) if text else None
    if not text or match is None or not any(match.groupdict().values()):
        raise DarklaunchError(
            f"window {text!r} is not a Prometheus duration: use a number and a unit, like 30s, 5m or 1h.",
            field="window",
        )
    seconds = sum(int(amount) * _DURATION_UNIT_SECONDS[unit] for unit, amount in match.groupdict().items() if amount)
    if seconds < 1:
        raise DarklaunchError(f"window {text!r} is too short: use at least 1s.", field="window")
    return seconds


def _window_text(window: Any) -> str:
    if isinstance(window, bool):
        raise DarklaunchError("window must be a Prometheus duration such as 5m.", field="window")
    if isinstance(window, int):
        return f"{window}s"
    return str(window).strip()


def _positive_float(value: Any, name: str) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not (number > 0 and math.isfinite(number)):
        raise DarklaunchError(f"{name} must be a positive number, got {value!r}.", field=name)
    return number


def _bounded_int(value: Any, name: str, low: int, high: int | None) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        limits = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise DarklaunchError(f"{name} must be an integer {limits}, got {value!r}.", field=name)
    return number
