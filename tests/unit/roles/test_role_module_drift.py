# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role, the launch engine, traefik_mirror, the playbooks and the AWX surveys must not drift apart.

- ``shadow_launch_k8s_auth`` accepts exactly the modules' connection options (names, aliases, types, no_log,
  proxy_headers' keys);
- every option of the launch engine (the ``darklaunch.traefik.shadow_launch`` action) a user sets is a role
  variable of the same type, and every traefik_mirror option the engine passes through has traefik_mirror's type;
- every role variable is an extra var of playbooks/shadow_launch.yml (playbook_inputs sets it when given), every
  extra var a survey asks is one its playbook takes, and every playbook checks its extra vars first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.darklaunch.traefik.plugins.action import shadow_launch as launch_action
from ansible_collections.darklaunch.traefik.plugins.module_utils._argspec import auth_argument_spec
from ansible_collections.darklaunch.traefik.plugins.modules.comparator import (
    argument_spec as comparator_argument_spec,
)
from ansible_collections.darklaunch.traefik.plugins.modules.traefik_mirror import (
    argument_spec as mirror_argument_spec,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils import _playbook_inputs as inputs

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "roles" / "shadow_launch"
PREFIX = "shadow_launch_"
# Engine options the role sets itself rather than from a variable of the same name.
SET_BY_THE_ROLE = {"launch_id", "owner", "anomaly", "steps", "comparator"}
# Engine options whose role variable has another name.
RENAMED = {"gate": "anomaly_gate"}
# Role variables with no engine option of their name: read by the role's own tasks (report, lookup options).
ROLE_ONLY = {
    "route_name", "namespace", "report", "report_dir", "report_keep", "k8s_auth", "sigma", "window", "history_windows",
    "min_requests", "client_error_codes", "prometheus_url", "prometheus_auth", "prometheus_selector", "metrics",
    "anomaly_gate", "steps", "compare", "compare_service", "compare_max_diff_rate",
}  # fmt: skip
# Role variables the role passes to darklaunch.traefik.comparator (the comparator it deploys), by option name.
TO_THE_COMPARATOR = {
    "compare_port": "port", "compare_secondary_service": "secondary_service", "compare_image": "image",
    "compare_resources": "resources", "compare_labels": "labels",
    "compare_ignore_json_pointers": "ignore_json_pointers", "compare_ignore_headers": "ignore_headers",
    "compare_wait_seconds": "wait_seconds",
}  # fmt: skip
# traefik_mirror options being added by a change in progress: that change wires them through the engine, the
# role, the playbooks and the survey, and then removes them from here.
PENDING: set[str] = set()  # traefik_mirror options the launch does not take yet
# Role type names that stand for a module's (a role has no "float" for an int-or-empty, say).
COMPATIBLE_TYPES = {
    ("raw", "raw"),
    ("list", "list"),
    ("str", "str"),
    ("int", "int"),
    ("bool", "bool"),
    ("float", "float"),
}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _main_options() -> dict[str, Any]:
    options: dict[str, Any] = _load(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    return options


def _view(option: dict[str, Any]) -> dict[str, Any]:
    view = {
        "type": option.get("type", "str"),
        "aliases": sorted(option.get("aliases") or []),
        "no_log": bool(option.get("no_log", False)),
        "elements": option.get("elements"),
    }
    suboptions = option.get("options")
    if suboptions:
        view["options"] = {name: _view(sub) for name, sub in sorted(suboptions.items())}
    return view


def test_the_role_k8s_auth_accepts_exactly_the_modules_connection_options() -> None:
    role = {name: _view(option) for name, option in _main_options()[f"{PREFIX}k8s_auth"]["options"].items()}
    modules = {name: _view(option) for name, option in auth_argument_spec().items()}
    # Role argument specs have no aliases (ansible-lint's schema refuses them): each alias is an option there.
    for view in list(modules.values()):
        aliases, view["aliases"] = view["aliases"], []
        for alias in aliases:
            modules[alias] = dict(view)
    for view in (*role.values(), *modules.values()):
        # A path in the role is a path in the modules; no_log on a path is the sanity test's concern only.
        view["no_log"] = view["no_log"] and view["type"] != "path"
    assert role == modules, json.dumps({"role": role, "modules": modules}, indent=1, sort_keys=True)


def _engine_spec() -> dict[str, Any]:
    spec: dict[str, Any] = launch_action.argument_spec()
    return {name: option for name, option in spec.items() if name not in auth_argument_spec()}


def test_every_engine_option_is_a_role_variable_of_the_same_type() -> None:
    role = _main_options()
    problems = {}
    for name, option in _engine_spec().items():
        if name in SET_BY_THE_ROLE:
            continue
        variable = PREFIX + RENAMED.get(name, name)
        if variable not in role:
            problems[name] = "no role variable"
            continue
        pair = (role[variable].get("type", "str"), option.get("type", "str"))
        if pair not in COMPATIBLE_TYPES:
            problems[name] = f"role type {pair[0]}, engine type {pair[1]}"
    assert not problems, problems


def test_every_role_variable_reaches_the_engine_or_the_role_tasks() -> None:
    engine = {RENAMED.get(name, name) for name in _engine_spec()}
    unreached = sorted(
        name
        for name in (v.removeprefix(PREFIX) for v in _main_options())
        if name not in engine | ROLE_ONLY | set(TO_THE_COMPARATOR)
    )
    assert not unreached, f"role variables that reach nothing: {unreached}"


def test_the_comparator_variables_reach_the_comparator_module_with_its_types() -> None:
    module = comparator_argument_spec()
    options = _main_options()
    tasks = (ROLE / "tasks" / "comparator.yml").read_text(encoding="utf-8")
    for variable, option in TO_THE_COMPARATOR.items():
        assert option in module, f"{option} is not a comparator option"
        assert options[PREFIX + variable].get("type", "str") == module[option].get("type", "str"), variable
        assert f"{option}: " in tasks and PREFIX + variable in tasks, f"tasks/comparator.yml does not pass {variable}"
        assert options[PREFIX + variable].get("default") == module[option].get("default", ""), variable


def test_every_role_variable_is_passed_to_the_engine_by_the_main_tasks() -> None:
    tasks = (ROLE / "tasks" / "main.yml").read_text(encoding="utf-8")
    missing = [
        name
        for name in _engine_spec()
        if name not in SET_BY_THE_ROLE and f"{PREFIX}{RENAMED.get(name, name)}" not in tasks
    ]
    assert not missing, f"engine options tasks/main.yml does not set from their role variable: {missing}"


def test_the_engine_passes_traefik_mirror_options_with_their_types() -> None:
    mirror = mirror_argument_spec()
    engine = _engine_spec()
    passed = [
        *launch_action._MIRROR_OPTIONS,
        *launch_action._MIRROR_MATCH_OPTIONS,
        "api_group",
        "route_kind",
        "rule_index",
    ]
    for name in passed:
        assert name in mirror, f"{name} is not a traefik_mirror option"
        assert engine[name].get("type", "str") == mirror[name].get("type", "str"), name
        assert engine[name].get("choices") == mirror[name].get("choices"), name
    # What a launch writes that the engine does not set itself must be passed through.
    set_by_the_engine = {"route_name", "namespace", "state", "mirror_percent", "attach_to_ingress",
                         "confirm_end_weighted_split", "restore_ingress_to_wrr", "launch"}  # fmt: skip
    unreachable = set(mirror) - set(auth_argument_spec()) - set_by_the_engine - set(passed)
    assert not unreachable - PENDING, f"traefik_mirror options a launch cannot set: {sorted(unreachable - PENDING)}"
    done = PENDING & set(passed)
    assert not done, f"{sorted(done)} now reach the launch: remove them from PENDING"


def test_every_role_variable_is_an_extra_var_of_the_launch_playbooks() -> None:
    # playbook_inputs passes each launch extra var given to the role variable of its name, and sets the
    # namespace and the connections it resolved; nothing else, so the role's defaults stand.
    resolved = {"namespace", "k8s_auth", "prometheus_auth"}
    set_by_the_playbooks = {PREFIX + name for name in inputs.LAUNCH_ROLE_VARS | resolved}
    role_variables = set(_main_options())
    assert not role_variables - set_by_the_playbooks, "role variables no launch extra var sets"
    assert not set_by_the_playbooks - role_variables, "launch extra vars that set no role variable"
    assert inputs.LAUNCH_ROLE_VARS <= inputs.PLAYBOOKS["shadow_launch"] <= inputs.PLAYBOOKS["shadow_launch_fleet"]


SURVEYS = sorted((REPO / "extensions" / "awx" / "surveys").glob("*.yml"))


@pytest.mark.parametrize("survey", SURVEYS, ids=[path.stem for path in SURVEYS])
def test_every_survey_question_is_an_extra_var_of_its_playbook(survey: Path) -> None:
    asked = {question["variable"] for question in _load(survey)["spec"]}
    inputs.judge_extra_vars(survey.stem, asked)
    assert asked <= inputs.known_names(survey.stem), sorted(asked - inputs.known_names(survey.stem))


PLAYBOOKS = sorted(path for path in (REPO / "playbooks").glob("*.yml"))


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=[path.stem for path in PLAYBOOKS])
def test_every_playbook_checks_its_extra_vars_first(playbook: Path) -> None:
    assert playbook.stem in inputs.PLAYBOOKS
    first_task = _load(playbook)[0]["tasks"][0]
    if "ansible.builtin.import_tasks" in first_task:  # the launch playbooks' shared first tasks
        assert first_task["vars"]["launch_playbook"] == playbook.stem
        first_task = _load(playbook.parent / first_task["ansible.builtin.import_tasks"])[0]
        assert first_task["darklaunch.traefik.playbook_inputs"]["playbook"] == "{{ launch_playbook }}"
    else:
        assert first_task.get("darklaunch.traefik.playbook_inputs", {}).get("playbook") == playbook.stem
    text = playbook.read_text(encoding="utf-8")
    assert "'ansible.builtin.vars', 'namespace'" not in text and "-e namespace=" not in text, "the old extra var"
