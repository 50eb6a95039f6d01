# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests do not wait for Traefik: traefik_mirror's propagation waits are recorded, not slept."""

from __future__ import annotations

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils import _mirror_runner


@pytest.fixture(autouse=True)
def propagation_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The seconds of every propagation wait the runner asked for, in order."""
    slept: list[float] = []
    monkeypatch.setattr(_mirror_runner, "sleep", slept.append)
    return slept
