"""The shadow_launch role's variables, its argument specs and its defaults must not drift apart.

argument_specs only validates the names it declares, so a variable that tasks read but the spec does
not declare is neither validated nor documented, and the role's own typo check (check_variables.yml,
which reads the spec) would reject it when a user sets it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROLE = Path(__file__).resolve().parents[3] / "roles" / "shadow_launch"
PREFIX = "shadow_launch_"
# Public names only: internal facts are "__shadow_launch_*" (no word boundary before the "s").
PUBLIC_NAME = re.compile(r"\b" + PREFIX + r"[a-z0-9_]*[a-z0-9]")
ENTRY_POINTS = ("main", "status", "rollback")


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _spec() -> dict[str, Any]:
    return _load(ROLE / "meta" / "argument_specs.yml")["argument_specs"]


def _declared() -> set[str]:
    return {name for entry in _spec().values() for name in entry.get("options", {})}


def _task_files() -> list[Path]:
    return sorted((ROLE / "tasks").glob("*.yml"))


def _names_used_in_tasks() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for path in _task_files():
        for name in PUBLIC_NAME.findall(path.read_text(encoding="utf-8")):
            used.setdefault(name, set()).add(path.name)
    return used


def _defaults() -> dict[str, Any]:
    return _load(ROLE / "defaults" / "main.yml") or {}


def test_scan_finds_public_names_and_skips_internal_ones() -> None:
    text = "{{ shadow_launch_steps | first }} {{ __shadow_launch_steps }} query('varnames', '^shadow_launch_')"
    assert PUBLIC_NAME.findall(text) == ["shadow_launch_steps"]


def test_every_entry_point_has_a_tasks_file() -> None:
    spec = _spec()
    assert set(spec) == set(ENTRY_POINTS)
    for entry in ENTRY_POINTS:
        assert (ROLE / "tasks" / f"{entry}.yml").is_file(), entry
        assert spec[entry].get("short_description"), entry


# What the role sets for the play rather than reads (documented in its README, allowed by check_variables.yml).
OUTPUTS = {"shadow_launch_result"}


def test_every_variable_used_in_tasks_is_declared() -> None:
    undeclared = {
        name: sorted(files)
        for name, files in _names_used_in_tasks().items()
        if name not in _declared() and name not in OUTPUTS
    }
    assert not undeclared, f"used in tasks but missing from meta/argument_specs.yml: {undeclared}"


def test_every_default_is_declared() -> None:
    undeclared = sorted(set(_defaults()) - _declared())
    assert not undeclared, f"in defaults/main.yml but missing from meta/argument_specs.yml: {undeclared}"


def test_every_declared_variable_is_used_by_the_tasks() -> None:
    unused = sorted(_declared() - set(_names_used_in_tasks()))
    assert not unused, f"declared in meta/argument_specs.yml but never read by tasks/: {unused}"


def test_every_variable_is_prefixed() -> None:
    names = _declared() | set(_defaults())
    assert all(name.startswith(PREFIX) for name in names), sorted(n for n in names if not n.startswith(PREFIX))


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_spec_defaults_match_role_defaults(entry: str) -> None:
    defaults = _defaults()
    for name, option in _spec()[entry]["options"].items():
        if option.get("required"):
            assert name not in defaults, f"{name} is required, so defaults/main.yml must not set it"
            continue
        assert name in defaults, f"{entry}: {name} is optional but has no value in defaults/main.yml"
        assert "default" in option, f"{entry}: {name} has a role default but the spec documents none"
        assert option["default"] == defaults[name], (
            f"{entry}: {name} defaults to {defaults[name]!r} in defaults/main.yml "
            f"but the spec documents {option['default']!r}"
        )


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_shared_options_are_identical_across_entry_points(entry: str) -> None:
    main = _spec()["main"]["options"]
    for name, option in _spec()[entry]["options"].items():
        assert name in main, f"{entry}: {name} is not an option of the main entry point"
        assert option == main[name], f"{entry}: {name} differs from the main entry point's definition"
