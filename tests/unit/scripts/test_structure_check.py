# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""scripts/checks/structure.py finds what it promises to find, on a planted tree, and nothing in the real one."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "checks" / "structure.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("structure_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    check = load()
    monkeypatch.setattr(check, "ROOT", tmp_path)
    for folder in ("plugins/module_utils", "plugins/plugin_utils", "playbooks", "roles/r/tasks"):
        (tmp_path / folder).mkdir(parents=True)
    return check


def test_the_real_tree_passes() -> None:
    check = load()
    assert check.oversized() == []
    assert check.spelled_twice() == []
    assert check.parsed_in_playbooks() == []
    assert check.repeated_yaml() == []


def test_a_long_helper_module_is_found(planted: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "plugins/module_utils/_big.py").write_text("x = 1\n" * 601)
    (tmp_path / "plugins/plugin_utils/_fine.py").write_text("x = 1\n" * 600)
    assert planted.oversized() == ["plugins/module_utils/_big.py: 601 lines, over 600: split it by job"]


def test_a_default_name_or_verdict_spelled_outside_its_owner_is_found(planted: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "plugins/module_utils/_default_names.py").write_text('SUFFIX = "-mirror"\n')
    (tmp_path / "plugins/module_utils/_other.py").write_text(
        '"""Docs may say "-mirror"."""\n# so may comments: "anomalous"\nname = f"{route}-wrr"\nverdict = "anomalous"\n'
    )
    found = planted.spelled_twice()
    assert [line.split(":", 2)[:2] for line in found] == [
        ["plugins/module_utils/_other.py", "3"],
        ["plugins/module_utils/_other.py", "4"],
    ]


def test_the_missing_namespace_error_spelled_outside_its_owner_is_found(planted: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "plugins/module_utils/_route_reads.py").write_text("msg = 'does not exist: check namespace.'\n")
    (tmp_path / "plugins/module_utils/_view.py").write_text(
        "msg = f'namespace {ns} does not exist: check namespace.'\n"
    )
    found = planted.spelled_twice()
    assert [line.split(":", 2)[:2] for line in found] == [["plugins/module_utils/_view.py", "1"]]


def test_an_extra_var_parsed_in_a_playbook_is_found(planted: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "playbooks/a.yml").write_text(
        '---\n# metrics | from_yaml is what this check keeps out\n- vars:\n    m: "{{ metrics | from_yaml }}"\n'
    )
    found = planted.parsed_in_playbooks()
    assert len(found) == 1 and found[0].startswith("playbooks/a.yml:4: an extra var parsed in a playbook")


def test_a_yaml_block_written_twice_is_found(planted: ModuleType, tmp_path: Path) -> None:
    block = "".join(f"    option_{index}: \"{{{{ value_{index} | default('') }}}}\"\n" for index in range(6))
    (tmp_path / "playbooks/a.yml").write_text("---\n- name: A\n  vars:\n" + block)
    (tmp_path / "roles/r/tasks/main.yml").write_text("---\n# comment\n- name: B\n  vars:\n" + block)
    found = planted.repeated_yaml()
    assert len(found) == 1 and found[0].startswith("playbooks/a.yml:3 repeats at roles/r/tasks/main.yml:4")
