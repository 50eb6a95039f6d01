"""The shipped AWX objects (extensions/awx) run the way AWX runs them, on AWX's own engine, ansible-runner.

What AWX does for a job, and this module does too:

- a private data dir per job: ``project/`` (a copy of the project's playbooks), ``inventory/hosts`` (the
  template's inventory), ``env/extravars`` (the survey answers with AWX's ``awx_*`` variables),
  ``env/`` files written by the credential injectors;
- survey answers as AWX sends them: text and multiple-choice answers are strings (``"true"``,
  ``"20,50"``), integer answers ints, float answers numbers; unanswered questions get the survey's
  default; a wrong type or a missing required answer is refused, as AWX refuses the launch;
- credential injectors rendered like AWX's ``CredentialType.inject_credential``: Jinja's immutable
  sandbox, a namespace with only the inputs that are set (booleans as booleans, a boolean the credential
  does not set is False), ``file`` templates written to ``env/`` with mode 0600 and their paths offered as
  ``tower.filename`` (one unnamed file) or ``tower.filename.<name>`` (``template.<name>``), then the ``env``
  templates, then ``extra_vars`` written to a file passed as ``-e @file``;
- the job's ``timeout`` as ansible-runner's ``timeout``, a ``cancel_callback`` polled while the job runs,
  every event kept (AWX stores them all);
- an environment without the test session's own connection variables (``K8S_AUTH_*``, ``PROMETHEUS_*``):
  on AWX only the credentials supply them.

Not reproduced: the execution environment container (the job runs in this Python, where the collection
resolves from ``.state/collections`` as it would from the EE's collection path) and AWX's database.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment
from shadow import COLLECTIONS_ROOT, REPO_ROOT

AWX_DIR = REPO_ROOT / "extensions" / "awx"

# Variables of the test session that a job on AWX would not have: its credentials supply them.
_SESSION_ONLY_ENV = re.compile(r"^(K8S_AUTH_|PROMETHEUS_|DARKLAUNCH_|TRAEFIK_)")
# AWX refuses injectors for these (CredentialTypeInjectorField.validate_env_var_allowed).
_AWX_RESERVED_ENV = re.compile(r"^(ANSIBLE_|AWX_|JOB_ID$|INVENTORY_ID$|PROJECT_REVISION$|PATH$|HOME$|PYTHONPATH$)")


class SurveyRefused(ValueError):
    """AWX would refuse the launch: the answers do not fit the survey."""


class _AwxYamlLoader(yaml.SafeLoader):
    """Reads the config-as-code files; ``!unsafe`` marks a template AWX renders, so keep its text."""


def _unsafe_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


_AwxYamlLoader.add_constructor("!unsafe", _unsafe_text)


def load_awx_file(name: str) -> dict[str, Any]:
    data = yaml.load((AWX_DIR / name).read_text(), Loader=_AwxYamlLoader)  # a SafeLoader subclass
    assert isinstance(data, dict), name
    return data


# --- job templates, workflows, surveys --------------------------------------------------------------


@dataclass(frozen=True)
class JobTemplate:
    name: str
    playbook: str
    timeout: int
    survey: dict[str, Any]
    raw: dict[str, Any]


def _survey_of(spec_expression: str) -> dict[str, Any]:
    match = re.search(r"/surveys/([\w.-]+\.yml)", spec_expression)
    assert match, f"survey_spec does not name a file under surveys/: {spec_expression}"
    return load_awx_file(f"surveys/{match.group(1)}")


def job_template(name: str) -> JobTemplate:
    for template in load_awx_file("job_templates.yml")["controller_templates"]:
        if template["name"] == name:
            survey = _survey_of(template["survey_spec"]) if template.get("survey_enabled") else {"spec": []}
            return JobTemplate(name, template["playbook"], int(template.get("timeout") or 0), survey, template)
    raise KeyError(f"no job template named {name!r} in extensions/awx/job_templates.yml")


def workflow(name: str) -> dict[str, Any]:
    for item in load_awx_file("job_templates.yml")["controller_workflows"]:
        if item["name"] == name:
            return dict(item)
    raise KeyError(f"no workflow named {name!r}")


def inventory_hosts() -> dict[str, Any]:
    """The controller inventory as a YAML inventory: its hosts with their variables."""
    hosts = load_awx_file("job_templates.yml")["controller_hosts"]
    return {"all": {"hosts": {host["name"]: host.get("variables", {}) for host in hosts}}}


def _survey_value_errors(question: dict[str, Any], value: Any) -> list[str]:
    variable, kind = question["variable"], question["type"]
    if kind in ("text", "textarea", "password"):
        if not isinstance(value, str):
            return [f"{variable}: expected a string, got {value!r}"]
        if question.get("min") not in ("", None) and len(value) < int(question["min"]):
            return [f"{variable}: {value!r} is shorter than {question['min']}"]
        if question.get("max") not in ("", None) and len(value) > int(question["max"]):
            return [f"{variable}: {value!r} is longer than {question['max']}"]
    elif kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):  # bool is an int to Python, not to AWX
            return [f"{variable}: expected an integer, got {value!r}"]
        if question.get("min") not in ("", None) and value < int(question["min"]):
            return [f"{variable}: {value} is below {question['min']}"]
        if question.get("max") not in ("", None) and value > int(question["max"]):
            return [f"{variable}: {value} is above {question['max']}"]
    elif kind == "float":
        if type(value) not in (int, float):
            return [f"{variable}: expected a number, got {value!r}"]
    elif kind == "multiplechoice":
        choices = question["choices"]
        choices = choices.splitlines() if isinstance(choices, str) else choices
        if value not in choices:
            return [f"{variable}: {value!r} is not one of {choices}"]
    return []


def survey_extra_vars(survey: dict[str, Any], answers: Mapping[str, Any]) -> dict[str, Any]:
    """The extra vars AWX gives the job for these answers: valid defaults first, the answers over them."""
    extra: dict[str, Any] = {}
    errors: list[str] = []
    for question in survey.get("spec", []):
        variable = question["variable"]
        default = question.get("default")
        if default is not None and not _survey_value_errors(question, default):
            extra[variable] = default
        if variable in answers:
            errors += _survey_value_errors(question, answers[variable])
        elif question.get("required") and variable not in extra:
            errors.append(f"{variable}: value missing")
    unknown = set(answers) - {q["variable"] for q in survey.get("spec", [])}
    if unknown:
        errors.append(f"variables {sorted(unknown)} are not in the survey (ask_variables_on_launch is off)")
    if errors:
        raise SurveyRefused("; ".join(errors))
    extra.update(answers)
    return extra


# --- credentials ----------------------------------------------------------------------------------


def credential_type(name: str) -> dict[str, Any]:
    for item in load_awx_file("credential_types.yml")["controller_credential_types"]:
        if item["name"] == name:
            return dict(item)
    raise KeyError(f"no credential type named {name!r} in extensions/awx/credential_types.yml")


class _Namespace:
    """AWX's ``tower`` namespace object: attributes set as files are written."""


@dataclass
class Injection:
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)


def inject_credential(ctype: dict[str, Any], inputs: Mapping[str, Any], private_data_dir: Path) -> Injection:
    """Render ``ctype``'s injectors with ``inputs`` into ``private_data_dir`` as AWX does."""
    fields = ctype.get("inputs", {}).get("fields", [])
    missing = [name for name in ctype.get("inputs", {}).get("required", []) if not inputs.get(name)]
    if missing:
        raise ValueError(f"credential of type {ctype['name']!r} lacks required inputs {missing}")
    tower = _Namespace()
    namespace: dict[str, Any] = {"tower": tower}
    for name, value in inputs.items():
        if isinstance(value, bool) or len(value):
            namespace[name] = value
    for spec in fields:
        # AWX: a boolean the credential does not set is False, whatever the field's default says.
        if spec.get("type") == "boolean" and spec["id"] not in inputs:
            namespace[spec["id"]] = False
    sandbox = ImmutableSandboxedEnvironment()
    injectors = ctype.get("injectors", {})
    env_dir = private_data_dir / "env"
    env_dir.mkdir(parents=True, exist_ok=True)
    injection = Injection()
    for label, template in injectors.get("file", {}).items():
        handle, path = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(handle, "w") as sink:
            sink.write(sandbox.from_string(template).render(**namespace))
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        injection.files[label] = Path(path)
        if "." not in label:
            tower.filename = path  # type: ignore[attr-defined]
        else:
            if not hasattr(tower, "filename"):
                tower.filename = _Namespace()  # type: ignore[attr-defined]
            setattr(tower.filename, label.split(".", 1)[1], path)  # type: ignore[attr-defined]
    for variable, template in injectors.get("env", {}).items():
        if _AWX_RESERVED_ENV.match(variable):
            raise ValueError(f"AWX ignores injector variable {variable} (a reserved name)")
        injection.env[variable] = sandbox.from_string(template).render(**namespace)
    extra_vars = _render_tree(sandbox, injectors.get("extra_vars", {}), namespace)
    if extra_vars:
        handle, path = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(handle, "w") as sink:
            sink.write(yaml.safe_dump(extra_vars))
        os.chmod(path, stat.S_IRUSR)
        injection.args += ["-e", f"@{path}"]
    return injection


def _render_tree(sandbox: ImmutableSandboxedEnvironment, node: Any, namespace: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {_render_tree(sandbox, k, namespace): _render_tree(sandbox, v, namespace) for k, v in node.items()}
    if isinstance(node, list):
        return [_render_tree(sandbox, item, namespace) for item in node]
    return sandbox.from_string(node).render(**namespace)


# --- running a job --------------------------------------------------------------------------------


@dataclass
class Job:
    template: JobTemplate
    private_data_dir: Path
    extra_vars: dict[str, Any]
    status: str = ""
    rc: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    seconds: float = 0.0
    runner: Any = None

    @property
    def artifacts_dir(self) -> Path:
        return Path(self.runner.config.artifact_dir)

    @property
    def stdout(self) -> str:
        return "\n".join(event.get("stdout", "") for event in self.events)

    def stats_event(self) -> dict[str, Any]:
        stats = [event for event in self.events if event.get("event") == "playbook_on_stats"]
        assert stats, f"no playbook_on_stats event; status {self.status}\n{self.stdout[-3000:]}"
        return stats[-1]

    def artifact_data(self) -> dict[str, Any]:
        """What ``set_stats`` published (AWX passes it to later workflow nodes); nothing from a killed job."""
        stats = [event for event in self.events if event.get("event") == "playbook_on_stats"]
        return dict(stats[-1]["event_data"].get("artifact_data") or {}) if stats else {}

    def everything_recorded(self) -> dict[str, str]:
        """Every event (as JSON, by its event name and task), and every file under the artifacts dir (the
        stdout, job_events, status, rc...), each with where it comes from.

        Not ``command``: ansible-runner writes the job's whole environment there (mode 0600), injected
        secrets included, whatever the playbook does; AWX deletes the private data dir after the job and
        stores only the environment with the secret inputs masked."""
        recorded = {
            f"event {n} {event.get('event')} {event.get('event_data', {}).get('task', '')}": json.dumps(event)
            for n, event in enumerate(self.events)
        }
        for path in sorted(self.artifacts_dir.rglob("*")):
            if path.is_file() and path != self.artifacts_dir / "command":
                recorded[f"artifact {path.relative_to(self.artifacts_dir)}"] = path.read_text(errors="replace")
        return recorded

    def task_results(self, task_name_part: str) -> list[dict[str, Any]]:
        return [
            event["event_data"].get("res", {})
            for event in self.events
            if event.get("event") in ("runner_on_ok", "runner_on_failed")
            and task_name_part in event.get("event_data", {}).get("task", "")
        ]


@contextmanager
def _job_environment() -> Iterator[None]:
    """ansible-runner copies ``os.environ`` when it prepares a job: hide the session's connection variables."""
    saved = dict(os.environ)
    try:
        for name in [n for n in os.environ if _SESSION_ONLY_ENV.match(n)]:
            del os.environ[name]
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


_JOB_IDS = iter(range(1000, 10**6))


def prepare_private_data_dir(root: Path, template: JobTemplate, extra_vars: dict[str, Any]) -> Path:
    job_id = next(_JOB_IDS)
    private = Path(tempfile.mkdtemp(prefix=f"awx_{job_id}_", dir=root))
    shutil.copytree(REPO_ROOT / "playbooks", private / "project" / "playbooks")
    (private / "inventory").mkdir()
    (private / "inventory" / "hosts").write_text(yaml.safe_dump(inventory_hosts()))
    (private / "env").mkdir()
    awx_vars = {
        f"{prefix}_{name}": value
        for prefix in ("awx", "tower")
        for name, value in {
            "job_id": job_id,
            "job_launch_type": "manual",
            "job_template_name": template.name,
            "project_revision": "0" * 40,
            "user_name": "admin",
            "inventory_name": "darklaunch.traefik controller",
        }.items()
    }
    (private / "env" / "extravars").write_text(json.dumps({**awx_vars, **extra_vars}))
    return private


def run_job(
    template: JobTemplate,
    extra_vars: dict[str, Any],
    credentials: list[tuple[str, dict[str, Any]]],
    root: Path,
    cancel_callback: Callable[[], bool] | None = None,
    timeout: int | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> Job:
    """Run ``template`` like AWX: ``extra_vars`` as AWX built them, each ``(credential type, inputs)`` injected."""
    import ansible_runner

    private = prepare_private_data_dir(root, template, extra_vars)
    job = Job(template, private, extra_vars)
    envvars = {"ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_ROOT), "JOB_ID": private.name.split("_")[1]}
    args: list[str] = []
    for type_name, inputs in credentials:
        injection = inject_credential(credential_type(type_name), inputs, private)
        envvars.update(injection.env)
        args += injection.args
    lock = threading.Lock()

    def keep(event: dict[str, Any]) -> bool:
        with lock:
            job.events.append(event)
        if on_event is not None:
            on_event(event)
        return True

    started = time.monotonic()
    with _job_environment():
        thread, runner = ansible_runner.run_async(
            private_data_dir=str(private),
            playbook=template.playbook,
            inventory=str(private / "inventory" / "hosts"),
            envvars=envvars,
            cmdline=" ".join(args) or None,
            timeout=timeout if timeout is not None else (template.timeout or None),
            settings={"suppress_ansible_output": True, "pexpect_timeout": 5},
            # AWX_RUNNER_OMIT_ENV_FILES: the environment (secrets) is not written to env/envvars.
            suppress_env_files=True,
            event_handler=keep,
            status_handler=lambda data, runner_config: job.statuses.append(data["status"]),
            cancel_callback=cancel_callback,
            quiet=True,
        )
    thread.join()
    job.seconds = time.monotonic() - started
    job.runner = runner
    job.status = runner.status
    job.rc = runner.rc
    return job
