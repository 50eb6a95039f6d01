# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plugin documentation users read must match the code they run.

For each module and the lookup: DOCUMENTATION, EXAMPLES and RETURN are valid YAML; ``ansible-doc`` renders
the plugin (doc fragments merged) from this checkout; every documented option exists in the argument spec
and the other way round, with the same type, default, choices, elements, aliases and required flag; every
task in EXAMPLES passes the module's own argument validation (``module_defaults`` of the collection's
action group included); every lookup call in EXAMPLES uses documented options and terms.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from jinja2 import Environment, nodes

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS_ROOT = REPO_ROOT / ".state" / "collections"  # tests/conftest.py links the checkout there
COLLECTION = "darklaunch.traefik"
MODULES = sorted(path.stem for path in (REPO_ROOT / "plugins" / "modules").glob("*.py") if path.stem != "__init__")
LOOKUPS = sorted(path.stem for path in (REPO_ROOT / "plugins" / "lookup").glob("*.py") if path.stem != "__init__")
PLUGINS = [("module", name) for name in MODULES] + [("lookup", name) for name in LOOKUPS]
PLUGIN_IDS = [f"{kind}:{name}" for kind, name in PLUGINS]
DOC_BLOCKS = ("DOCUMENTATION", "EXAMPLES", "RETURN")
SECRET_NAME = re.compile(r"(^|_)(password|passphrase|secret|token|api_key)($|_)")
TASK_KEYWORDS = {
    "name", "register", "when", "loop", "loop_control", "with_items", "until", "retries", "delay",
    "changed_when", "failed_when", "ignore_errors", "check_mode", "diff", "tags", "vars", "environment",
    "become", "become_user", "delegate_to", "run_once", "no_log", "notify", "module_defaults", "block",
    "rescue", "always", "any_errors_fatal", "timeout", "throttle",
}  # fmt: skip


def _plugin_path(kind: str, name: str) -> Path:
    return REPO_ROOT / "plugins" / ("modules" if kind == "module" else kind) / f"{name}.py"


@cache
def _raw_blocks(kind: str, name: str) -> dict[str, str]:
    """DOCUMENTATION, EXAMPLES and RETURN as written in the source, read without importing it."""
    tree = ast.parse(_plugin_path(kind, name).read_text(encoding="utf-8"))
    blocks: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in DOC_BLOCKS:
                    blocks[target.id] = node.value.value
    return blocks


def _ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_ROOT), ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="1")
    return env


def _ansible_doc(*args: str) -> subprocess.CompletedProcess[str]:
    # ansible-doc of the Ansible that runs these tests (ansible-test's, a compat virtualenv's, ...).
    return subprocess.run(
        [sys.executable, "-m", "ansible.cli.doc", *args],
        capture_output=True,
        text=True,
        env=_ansible_env(),
        timeout=120,
        check=False,
    )


@cache
def _rendered(kind: str) -> dict[str, Any]:
    """``ansible-doc --json`` for every plugin of a kind: the docs with their fragments merged."""
    names = MODULES if kind == "module" else LOOKUPS
    result = _ansible_doc("--json", "-t", kind, *(f"{COLLECTION}.{name}" for name in names))
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _doc(kind: str, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = _rendered(kind)[f"{COLLECTION}.{name}"]["doc"]
    return doc


# --- YAML and rendering ---------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "name"), PLUGINS, ids=PLUGIN_IDS)
def test_doc_blocks_are_valid_yaml(kind: str, name: str) -> None:
    blocks = _raw_blocks(kind, name)
    assert set(blocks) == set(DOC_BLOCKS), f"missing {set(DOC_BLOCKS) - set(blocks)}"
    documentation = yaml.safe_load(blocks["DOCUMENTATION"])
    assert documentation[kind if kind == "module" else "name"] == name
    assert documentation["short_description"]
    assert documentation["version_added"]
    examples = yaml.safe_load(blocks["EXAMPLES"])
    assert isinstance(examples, list) and examples, "EXAMPLES must be a list of tasks"
    assert all(isinstance(task, dict) and task.get("name") for task in examples), "every example task is named"
    returns = yaml.safe_load(blocks["RETURN"])
    assert isinstance(returns, dict) and returns


@pytest.mark.parametrize(("kind", "name"), PLUGINS, ids=PLUGIN_IDS)
def test_ansible_doc_renders_the_checkout(kind: str, name: str) -> None:
    result = _ansible_doc("-t", kind, f"{COLLECTION}.{name}")
    assert result.returncode == 0, result.stderr
    assert "[WARNING]" not in result.stderr and "ERROR" not in result.stderr, result.stderr
    assert "EXAMPLES:" in result.stdout
    assert "RETURN VALUES:" in result.stdout
    rendered = _rendered(kind)[f"{COLLECTION}.{name}"]
    # The plugin came from this checkout, not from some other installed copy of the collection.
    assert Path(rendered["doc"]["filename"]).resolve() == _plugin_path(kind, name).resolve()
    assert rendered["examples"].strip() == _raw_blocks(kind, name)["EXAMPLES"].strip()


def test_ansible_doc_lists_every_plugin() -> None:
    for kind, names in (("module", MODULES), ("lookup", LOOKUPS)):
        result = _ansible_doc("--list", "--json", "-t", kind, COLLECTION)
        assert result.returncode == 0, result.stderr
        assert sorted(json.loads(result.stdout)) == [f"{COLLECTION}.{name}" for name in names]


# --- modules: documentation against the argument spec ---------------------------------------------


class _Captured(Exception):
    def __init__(self, kwargs: dict[str, Any]) -> None:
        super().__init__("AnsibleModule")
        self.kwargs = kwargs


@cache
def _module_kwargs(name: str) -> dict[str, Any]:
    """The keyword arguments the module's main() gives AnsibleModule (argument_spec, required_if, ...)."""
    module = importlib.import_module(f"ansible_collections.darklaunch.traefik.plugins.modules.{name}")
    if not hasattr(module, "main"):
        # A documentation-only module: its action plugin does the work and exposes the same kwargs.
        action = importlib.import_module(f"ansible_collections.darklaunch.traefik.plugins.action.{name}")
        kwargs: dict[str, Any] = action.ActionModule.module_kwargs()
        return kwargs

    def capture(**kwargs: Any) -> None:
        raise _Captured(kwargs)

    # The module creates its AnsibleModule itself or through _kube_module.kube_module: both names are patched.
    kube_module = importlib.import_module("ansible_collections.darklaunch.traefik.plugins.module_utils._kube_module")
    holders = [holder for holder in (module, kube_module) if hasattr(holder, "AnsibleModule")]
    originals = [getattr(holder, "AnsibleModule") for holder in holders]  # noqa: B009
    for holder in holders:
        setattr(holder, "AnsibleModule", capture)  # noqa: B010
    try:
        module.main()
    except _Captured as captured:
        return captured.kwargs
    finally:
        for holder, original in zip(holders, originals, strict=True):
            setattr(holder, "AnsibleModule", original)  # noqa: B010
    raise AssertionError(f"{name}.main() did not create an AnsibleModule")


def _spec_view(option: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": option.get("type", "str"),
        "default": option.get("default"),
        "choices": list(option["choices"]) if option.get("choices") is not None else None,
        "elements": option.get("elements"),
        "aliases": sorted(option.get("aliases") or []),
        "required": bool(option.get("required", False)),
    }


@pytest.mark.parametrize("name", MODULES)
def test_module_options_match_the_argument_spec(name: str) -> None:
    spec = _module_kwargs(name)["argument_spec"]
    documented = _doc("module", name).get("options") or {}
    undocumented, unknown = sorted(set(spec) - set(documented)), sorted(set(documented) - set(spec))
    assert not (undocumented or unknown), f"not documented: {undocumented}; not in the argument spec: {unknown}"
    mismatches = {
        option: {"documented": _spec_view(documented[option]), "argument_spec": _spec_view(spec[option])}
        for option in spec
        if _spec_view(documented[option]) != _spec_view(spec[option])
    }
    assert not mismatches, json.dumps(mismatches, indent=2)


@pytest.mark.parametrize("name", MODULES)
def test_module_secrets_are_no_log(name: str) -> None:
    spec = _module_kwargs(name)["argument_spec"]
    leaky = [option for option, details in spec.items() if SECRET_NAME.search(option) and not details.get("no_log")]
    assert not leaky, f"options that hold secrets without no_log=True: {leaky}"


@pytest.mark.parametrize("name", MODULES)
def test_module_attributes_match_the_code(name: str) -> None:
    kwargs = _module_kwargs(name)
    attributes = _doc("module", name).get("attributes") or {}
    check_mode = attributes.get("check_mode", {}).get("support")
    assert check_mode in ("full", "partial", "none"), "attributes.check_mode.support is required"
    assert (check_mode != "none") == bool(kwargs.get("supports_check_mode")), "check_mode support differs"
    group = attributes.get("action_group", {})
    groups = _runtime()["action_groups"]
    membership = sorted(f"{COLLECTION}.{g}" for g, members in groups.items() if name in members)
    assert sorted(group.get("membership", [])) == membership, "attributes.action_group.membership"


# --- modules: EXAMPLES against the argument spec --------------------------------------------------


@cache
def _runtime() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / "meta" / "runtime.yml").read_text(encoding="utf-8"))
    return data


def _group_members(key: str) -> list[str]:
    """``group/darklaunch.traefik.traefik`` -> the modules of that action group (short names)."""
    group = key.removeprefix("group/")
    if not group.startswith(f"{COLLECTION}."):
        return []
    members = _runtime()["action_groups"][group.removeprefix(f"{COLLECTION}.")]
    return [member.removeprefix(f"{COLLECTION}.") for member in members]


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _placeholder(option: Mapping[str, Any]) -> Any:
    if option.get("choices"):
        return option["choices"][0]
    samples = {"int": 1, "float": 1.0, "bool": True, "list": [], "dict": {}, "path": "/x"}
    return samples.get(option.get("type", "str"), "x")


def _resolve_templates(params: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """Templated values are only known at run time: give them a valid value of the option's type."""
    names = {alias: name for name, option in spec.items() for alias in option.get("aliases") or []}
    resolved = {}
    for key, value in params.items():
        option = spec.get(names.get(key, key))
        resolved[key] = _placeholder(option) if option is not None and _is_template(value) else value
    return resolved


def _tasks(
    tasks: list[dict[str, Any]], defaults: Mapping[str, Mapping[str, Any]]
) -> Iterator[tuple[dict[str, Any], dict[str, dict[str, Any]]]]:
    """Every task, with the module_defaults in force for it (block defaults merged into the task's)."""
    for task in tasks:
        merged = {key: dict(value) for key, value in defaults.items()}
        for key, value in (task.get("module_defaults") or {}).items():
            merged.setdefault(key, {}).update(value)
        if any(section in task for section in ("block", "rescue", "always")):
            for section in ("block", "rescue", "always"):
                yield from _tasks(task.get(section) or [], merged)
        else:
            yield task, merged


def _action(task: Mapping[str, Any]) -> str:
    actions = [key for key in task if key not in TASK_KEYWORDS]
    assert len(actions) == 1, f"task {task.get('name')!r}: cannot tell its action from {actions}"
    return actions[0]


@pytest.mark.parametrize("name", MODULES)
def test_module_examples_pass_the_argument_spec(name: str) -> None:
    examples = yaml.safe_load(_raw_blocks("module", name)["EXAMPLES"])
    checked = 0
    for task, defaults in _tasks(examples, {}):
        action = _action(task)
        short = action.removeprefix(f"{COLLECTION}.")
        for key, values in defaults.items():
            targets = _group_members(key) if key.startswith("group/") else [key.removeprefix(f"{COLLECTION}.")]
            assert targets, f"module_defaults key {key!r} names nothing in {COLLECTION}"
            for target in targets:
                unknown = set(values) - _accepted_names(target)
                assert not unknown, f"module_defaults {key}: {target} has no option {sorted(unknown)}"
        if short not in MODULES:
            assert action.startswith("ansible.builtin.") or "." in action, f"{action!r}: use the FQCN"
            continue
        assert action == f"{COLLECTION}.{short}", f"task {task['name']!r}: use the FQCN {COLLECTION}.{short}"
        kwargs = _module_kwargs(short)
        spec = kwargs["argument_spec"]
        params: dict[str, Any] = {}
        for key, values in defaults.items():
            if short in (_group_members(key) if key.startswith("group/") else [key.removeprefix(f"{COLLECTION}.")]):
                params.update(values)
        params.update(task[action] or {})
        rules = ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")
        validator = ArgumentSpecValidator(spec, **{rule: kwargs.get(rule) for rule in rules})
        result = validator.validate(_resolve_templates(params, spec))
        assert not result.error_messages, f"example {task['name']!r}: {result.error_messages}"
        checked += 1
    assert checked, f"EXAMPLES of {name} never call the module"


def _accepted_names(module: str) -> set[str]:
    spec = _module_kwargs(module)["argument_spec"]
    return set(spec) | {alias for option in spec.values() for alias in option.get("aliases") or []}


# --- the lookup -------------------------------------------------------------------------------------


def _lookup_calls(template: str, plugin: str) -> Iterator[tuple[list[Any], dict[str, Any]]]:
    """(terms, keyword arguments) of each lookup()/query()/q() call of ``plugin`` in a Jinja string."""
    for call in Environment().parse(template).find_all(nodes.Call):
        if not (isinstance(call.node, nodes.Name) and call.node.name in ("lookup", "query", "q")):
            continue
        if not call.args or not isinstance(call.args[0], nodes.Const) or call.args[0].value != plugin:
            continue
        terms = [arg.value if isinstance(arg, nodes.Const) else None for arg in call.args[1:]]
        kwargs = {kw.key: kw.value.value if isinstance(kw.value, nodes.Const) else None for kw in call.kwargs}
        yield terms, kwargs


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@pytest.mark.parametrize("name", LOOKUPS)
def test_lookup_examples_use_documented_options_and_terms(name: str) -> None:
    doc = _doc("lookup", name)
    options = {key: value for key, value in doc["options"].items() if key != "_terms"}
    accepted = set(options) | {alias for option in options.values() for alias in option.get("aliases") or []}
    term_choices = doc["options"]["_terms"].get("choices")
    calls = 0
    for task in yaml.safe_load(_raw_blocks("lookup", name)["EXAMPLES"]):
        for text in _strings(task):
            for terms, kwargs in _lookup_calls(text, f"{COLLECTION}.{name}"):
                calls += 1
                assert set(kwargs) <= accepted, f"{task['name']!r}: undocumented {sorted(set(kwargs) - accepted)}"
                assert terms, f"{task['name']!r}: no term"
                if term_choices:
                    bad = [term for term in terms if term is not None and term not in term_choices]
                    assert not bad, f"{task['name']!r}: unknown terms {bad}"
                for key, value in kwargs.items():
                    choices = options[key].get("choices") if key in options else None
                    if choices and value is not None:
                        assert value in choices, f"{task['name']!r}: {key}={value!r} not in {choices}"
    assert calls, f"EXAMPLES of the {name} lookup never call it"


def _options_read(path: Path) -> set[str]:
    """Option names the plugin reads with self.get_option("...") (string literals only)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get_option"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def test_traffic_lookup_reads_exactly_its_documented_options() -> None:
    from ansible_collections.darklaunch.traefik.plugins.module_utils._argspec import auth_argument_spec

    doc = _doc("lookup", "traffic")
    documented = {key for key in doc["options"] if key != "_terms"}
    auth = auth_argument_spec()
    # The lookup reads the auth options through a loop over auth_argument_spec() and the rest by name.
    read = _options_read(_plugin_path("lookup", "traffic")) | set(auth)
    assert sorted(documented) == sorted(read), f"read: {sorted(read - documented)}, unread: {sorted(documented - read)}"
    # The auth options mean the same in the lookup as in the modules.
    for option, details in auth.items():
        assert _spec_view(doc["options"][option]) == _spec_view(details), option
