# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Numbers as answers carry them (Prometheus values, survey text, JSON): finite numbers told from the rest."""

from __future__ import annotations

import math
from typing import Any


def finite_number(value: Any) -> float | None:
    """The value as a finite float, from a number or its text; None for anything else (a bool, NaN, infinity)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def is_number(value: Any) -> bool:
    """A finite number, or text that is one (answers pass through Ansible's templating as text)."""
    return finite_number(value) is not None
