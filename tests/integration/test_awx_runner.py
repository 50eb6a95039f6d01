"""The AWX job templates, surveys and credential types of extensions/awx, run on AWX's engine (ansible-runner)
the way AWX runs them (tests/integration/awx_engine.py), against the real apiserver, Traefik and Prometheus:

- the credential types' injectors render as AWX renders them (env and files, ``tower.filename``);
- the progressive launch passes with survey answers as AWX sends them, and no secret reaches any event,
  the stdout or the artifacts; once AWX has deleted the job's private data dir, a later job reads the same
  launch's report back from the cluster (playbooks/shadow_report.yml);
- the workflow "Shadow launch with rollback on failure": a failing launch, then its failure node;
- a job timeout and a cancel through ansible-runner, and what they leave (the watchdog's rollback);
- ``ansible-builder create`` still builds a context from the EE definition.

Every launch checks the cluster's real objects and counts the user responses at the client.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from awx_engine import (
    JobTemplate,
    SurveyRefused,
    credential_type,
    inject_credential,
    job_template,
    load_awx_file,
    run_job,
    survey_extra_vars,
    workflow,
)
from routes import fail_shadow_while_attached, mirror_exists, route_as_written, routes_through_mirror
from shadow import REPO_ROOT
from steady import SteadyTraffic

pytestmark = pytest.mark.integration

RATE = 60.0  # user requests per second: 120 copies per 10 s window at a 20% mirror (min_requests is 100)
LAUNCH = "Shadow launch (progressive)"
ROLLBACK_WORKFLOW = "Shadow launch with rollback on failure"
BEARER = "Kubernetes Bearer Token (darklaunch.traefik)"
KUBECONFIG = "Kubeconfig file (darklaunch.traefik)"
PROMETHEUS = "Prometheus (darklaunch.traefik)"


# --- the world as users see it -------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``predicate()`` held, or AssertionError."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


# --- credentials as an AWX admin would fill them in ----------------------------------------------------


def _kubeconfig_parts(path: Path) -> tuple[str, str, str]:
    config = yaml.safe_load(path.read_text())
    cluster = config["clusters"][0]["cluster"]
    return cluster["server"], config["users"][0]["user"]["token"], cluster["certificate-authority-data"]


@pytest.fixture(scope="module")
def operator_namespace_world(
    seed_world: Callable[..., Any], bind_operator: Callable[[str], None], namespace: str
) -> Callable[[str], Any]:
    bind_operator(namespace)
    # Users are split between stable and staging: the canary (the shadow) only ever gets copies, so a test
    # that makes it fail can never have a user meet it, whoever restores the route and when.
    return lambda app: seed_world(app=app, weights={"stable": 50, "staging": 50})


@pytest.fixture(scope="module")
def prometheus_token() -> str:
    # Prometheus here accepts any request; the token still travels to it, so it must never be printed.
    return "prom-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def credentials(operator_kubeconfig: Path, cluster: Any, prometheus_token: str) -> list[tuple[str, dict[str, Any]]]:
    server, token, ca_data = _kubeconfig_parts(operator_kubeconfig)
    return [
        (
            BEARER,
            {
                "host": server,
                "bearer_token": token,
                "ca_cert": base64.b64decode(ca_data).decode(),
                "verify_ssl": True,
            },
        ),
        # A CA file although Prometheus speaks http here: the injected file path must reach the lookup intact.
        (
            PROMETHEUS,
            {
                "url": cluster.prometheus_url,
                "token": prometheus_token,
                "ca_cert": base64.b64decode(ca_data).decode(),
                "verify_ssl": True,
            },
        ),
    ]


@pytest.fixture(scope="module")
def secret_inputs(credentials: list[tuple[str, dict[str, Any]]]) -> list[str]:
    found = []
    for type_name, inputs in credentials:
        for spec in credential_type(type_name)["inputs"]["fields"]:
            if spec.get("secret") and inputs.get(spec["id"]):
                found.append(inputs[spec["id"]])
    assert len(found) == 2
    return found


def assert_no_secret(job: Any, secrets_: list[str]) -> None:
    command = job.artifacts_dir / "command"  # ansible-runner's record of the environment, see everything_recorded
    assert oct(command.stat().st_mode & 0o777) == "0o600"
    assert not (job.private_data_dir / "env" / "envvars").exists()
    recorded = job.everything_recorded()
    for secret in secrets_:
        for needle in (secret, secret[:12], base64.b64encode(secret.encode()).decode()):
            assert needle not in recorded, (
                f"a secret input reached the job's events, stdout or artifacts ({job.status})"
            )


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Path:
    return tmp_path


@dataclass
class AwxStand:
    """What the job tests work with: the operator's namespace, the credentials an AWX admin filled in (and
    their secret inputs), users, and a scratch directory for the jobs."""

    operator_namespace_world: Callable[[str], Any]
    kube: Any
    credentials: list[tuple[str, dict[str, Any]]]
    secret_inputs: list[str]
    traffic_for: Callable[[Any, float], SteadyTraffic]
    jobs_dir: Path

    def world_under_load(self, app: str) -> tuple[Any, dict[str, Any], SteadyTraffic]:
        """A world for ``app``, its route as written, and users at RATE with a little history for the baseline."""
        world = self.operator_namespace_world(app)
        before = route_as_written(self.kube, world)
        load = self.traffic_for(world, RATE)
        time.sleep(12)
        return world, before, load


@pytest.fixture
def awx(
    operator_namespace_world: Callable[[str], Any],
    kube: Any,
    credentials: list[tuple[str, dict[str, Any]]],
    secret_inputs: list[str],
    traffic_for: Callable[[Any, float], SteadyTraffic],
    jobs_dir: Path,
) -> AwxStand:
    return AwxStand(operator_namespace_world, kube, credentials, secret_inputs, traffic_for, jobs_dir)


def launch_answers(world: Any, **answers: Any) -> dict[str, Any]:
    """The progressive launch's survey as a user fills it in: every answer typed as AWX sends it."""
    return {
        "route_name": world.route,
        "route_namespace": world.namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service("canary"),
        "steps": "20,50",
        "bake_seconds": 10,
        "window": "10s",
        "interval": 5,
        # The test machine's latency is noisy (two shared cores); the failing shadows here are far beyond 5.
        "sigma": 5,
        "attach_to_ingress": "true",
        "confirm_end_weighted_split": "true",
        "teardown": "true",
        **answers,
    }


def rollback_node_vars(launch_vars: dict[str, Any], launch_job: Any) -> dict[str, Any]:
    """What AWX gives the workflow's failure node: its template's survey defaults, the node's extra_data,
    the launch job's set_stats artifacts, and the workflow's survey answers (the workflow's vars win)."""
    nodes = {node["identifier"]: node for node in workflow(ROLLBACK_WORKFLOW)["simplified_workflow_nodes"]}
    assert nodes["launch"]["failure_nodes"] == ["rollback"]
    rollback = nodes["rollback"]
    template = job_template(rollback["unified_job_template"])
    defaults = survey_extra_vars(template.survey, {"route_name": launch_vars["route_name"]})
    return {**defaults, **rollback.get("extra_data", {}), **launch_job.artifact_data(), **launch_vars}


# --- the injectors, rendered as AWX renders them ----------------------------------------------------------


def test_credential_injectors_render_env_and_files_as_awx_does(tmp_path: Path) -> None:
    bearer = inject_credential(
        credential_type(BEARER),
        {"host": "https://k8s.example:6443", "bearer_token": "tok-1", "ca_cert": "PEM\n", "verify_ssl": True},
        tmp_path,
    )
    ca_file = bearer.files["template.ca_cert"]
    assert bearer.env == {
        "K8S_AUTH_HOST": "https://k8s.example:6443",
        "K8S_AUTH_API_KEY": "tok-1",
        "K8S_AUTH_VERIFY_SSL": "True",
        "K8S_AUTH_SSL_CA_CERT": str(ca_file),
    }
    assert ca_file.parent == tmp_path / "env" and ca_file.read_text() == "PEM\n"
    assert oct(ca_file.stat().st_mode & 0o777) == "0o600"

    # No CA: AWX still writes the (empty) file, the variable stays empty, so the modules use the system CAs.
    # A boolean the credential does not set is injected as False by AWX, whatever the field's default: the
    # type's default only pre-fills AWX's form. Set verify_ssl explicitly when creating credentials by API.
    bare = inject_credential(credential_type(BEARER), {"host": "https://k", "bearer_token": "t"}, tmp_path)
    assert bare.env["K8S_AUTH_SSL_CA_CERT"] == "" and bare.files["template.ca_cert"].read_text() == ""
    assert bare.env["K8S_AUTH_VERIFY_SSL"] == "False"

    prometheus = inject_credential(credential_type(PROMETHEUS), {"url": "http://p:9090", "token": "pt"}, tmp_path)
    assert prometheus.env["PROMETHEUS_URL"] == "http://p:9090" and prometheus.env["PROMETHEUS_TOKEN"] == "pt"
    assert prometheus.env["PROMETHEUS_VALIDATE_CERTS"] == "False"  # not set: AWX's False, as above
    unset = {name for name, value in prometheus.env.items() if value == ""}
    assert unset == set(prometheus.env) - {"PROMETHEUS_URL", "PROMETHEUS_TOKEN", "PROMETHEUS_VALIDATE_CERTS"}
    assert {"PROMETHEUS_USERNAME", "PROMETHEUS_PASSWORD", "PROMETHEUS_CA_CERT"} <= unset

    kubeconfig = inject_credential(
        credential_type(KUBECONFIG), {"kubeconfig": "apiVersion: v1\n", "context": "prod"}, tmp_path
    )
    assert kubeconfig.env == {
        "K8S_AUTH_KUBECONFIG": str(kubeconfig.files["template.kubeconfig"]),
        "K8S_AUTH_CONTEXT": "prod",
    }
    assert kubeconfig.files["template.kubeconfig"].read_text() == "apiVersion: v1\n"
    no_context = inject_credential(credential_type(KUBECONFIG), {"kubeconfig": "x"}, tmp_path)
    assert no_context.env["K8S_AUTH_CONTEXT"] == ""
    with pytest.raises(ValueError, match="kubeconfig"):
        inject_credential(credential_type(KUBECONFIG), {"context": "prod"}, tmp_path)


def test_every_credential_type_injects_only_what_the_collection_reads_and_no_secret_as_extra_var() -> None:
    # The connection options the collection reads: Kubernetes' and Prometheus' documentation fragments.
    fragments = REPO_ROOT / "plugins" / "doc_fragments"
    doc = "".join((fragments / name).read_text() for name in ("k8s_auth.py", "prometheus.py"))
    for ctype in load_awx_file("credential_types.yml")["controller_credential_types"]:
        assert "extra_vars" not in ctype["injectors"], ctype["name"]
        for variable in ctype["injectors"]["env"]:
            assert f"name: {variable}" in doc, f"{ctype['name']} injects {variable}, which the collection ignores"


def test_survey_answers_arrive_typed_as_awx_sends_them() -> None:
    survey = job_template(LAUNCH).survey
    sent = survey_extra_vars(survey, {"route_name": "r", "steps": "20,50", "bake_seconds": 10})
    assert sent["steps"] == "20,50" and sent["attach_to_ingress"] == "true" and sent["bake_seconds"] == 10
    assert sent["window"] == "1m" and sent["teardown"] == "false"
    # AWX refuses a string for an integer question and an answer outside the choices.
    with pytest.raises(SurveyRefused, match="bake_seconds"):
        survey_extra_vars(survey, {"route_name": "r", "bake_seconds": "10"})
    with pytest.raises(SurveyRefused, match="teardown"):
        survey_extra_vars(survey, {"route_name": "r", "teardown": "yes"})
    # The launch template does not prompt for other variables: AWX refuses them.
    with pytest.raises(SurveyRefused, match="min_requests"):
        survey_extra_vars(survey, {"route_name": "r", "min_requests": 20})


# --- jobs on the engine ------------------------------------------------------------------------------------


def test_progressive_launch_job_passes_with_survey_answers_and_leaves_no_secret(awx: AwxStand) -> None:
    kube, credentials, secret_inputs, jobs_dir = awx.kube, awx.credentials, awx.secret_inputs, awx.jobs_dir
    world, before, load = awx.world_under_load("awx-launch")
    template = job_template(LAUNCH)
    extra_vars = survey_extra_vars(template.survey, launch_answers(world))

    job = run_job(template, extra_vars, credentials, jobs_dir)
    load.stop()
    out = job.stdout
    print(f"\nlaunch job: {job.status} rc {job.rc} in {job.seconds:.1f} s, {len(job.events)} events")

    assert job.status == "successful" and job.rc == 0, out[-4000:]
    assert job.statuses[-1] == "successful"
    stats = job.stats_event()["event_data"]
    assert stats["failures"] == {} and stats["dark"] == {}, stats
    assert re.search(r"Step 20%: ok", out) and re.search(r"Step 50%: ok", out), out[-4000:]
    # The survey's strings were coerced: the role baked 20% then 50%, 10 s each, checking every 5 s.
    assert re.search(r"20% step, \d+/10 s, check 2/2: ok", out), out[-4000:]
    assert re.search(r"50% step, \d+/10 s, check 2/2: ok", out), out[-4000:]
    # The role's set_stats reaches the stats event's artifact_data (AWX's artifacts, what later workflow
    # nodes get): the outcome and the path of the HTML report, which exists and is named in the output.
    published = job.artifact_data().get("shadow_launch") or {}
    assert published.get("outcome") == "passed" and published.get("route") == world.route, published
    report = str(published.get("report_path") or "")
    assert report.endswith(".html") and Path(report).is_file() and report in out, published
    assert_no_secret(job, secret_inputs)
    assert route_as_written(kube, world) == before and not mirror_exists(kube, world)
    assert load.errors() == 0, f"users saw errors: {dict(load.statuses)}, failures {load.failures}"
    assert world.backends["canary"].total > 0, "the shadow got no copies"

    # What AWX does right after the job: delete its private data dir, the report file with it. The report
    # comes back from the cluster through a later job of its own (playbooks/shadow_report.yml on the engine).
    page = Path(report).read_text(encoding="utf-8")
    shutil.rmtree(job.private_data_dir)
    assert not Path(report).exists()
    dest = jobs_dir / "fetched.html"
    fetch = run_job(
        JobTemplate("Shadow - fetch report", "playbooks/shadow_report.yml", 120, {"spec": []}, {}),
        {"route_name": world.route, "route_namespace": world.namespace, "dest": str(dest)},
        credentials[:1],
        jobs_dir,
    )
    assert fetch.status == "successful", fetch.stdout[-3000:]
    fetched = dest.read_text(encoding="utf-8")
    assert fetched == page, "the report kept in the cluster is not the launch's own"
    launch_id = published["summary"]["launch_id"]
    assert launch_id, published
    for text in (
        f"<th>Route</th><td>{world.route}</td>",
        f"<th>Namespace</th><td>{world.namespace}</td>",
        f"<th>Launch id</th><td>{launch_id}</td>",
        "Outcome: <strong>passed</strong>",
    ):
        assert text in fetched, text
    assert published["report_configmap"] and published["report_configmap"] in fetch.stdout, fetch.stdout[-3000:]


def test_the_status_job_connects_with_the_kubeconfig_file_credential(
    operator_namespace_world: Callable[[str], Any],
    operator_kubeconfig: Path,
    jobs_dir: Path,
) -> None:
    world = operator_namespace_world("awx-kubeconfig")
    kubeconfig_text = operator_kubeconfig.read_text()
    _server, token, _ca = _kubeconfig_parts(operator_kubeconfig)
    template = job_template("Shadow - status")
    extra_vars = survey_extra_vars(template.survey, {"route_name": world.route, "route_namespace": world.namespace})

    job = run_job(template, extra_vars, [(KUBECONFIG, {"kubeconfig": kubeconfig_text})], jobs_dir)

    assert job.status == "successful", job.stdout[-3000:]
    assert world.wrr in job.stdout, job.stdout[-3000:]
    assert_no_secret(job, [token])
    env_files = [p for p in (job.private_data_dir / "env").iterdir() if p.read_text() == kubeconfig_text]
    assert len(env_files) == 1 and oct(env_files[0].stat().st_mode & 0o777) == "0o600"


def test_a_prometheus_credential_without_ca_works(
    operator_namespace_world: Callable[[str], Any],
    credentials: list[tuple[str, dict[str, Any]]],
    cluster: Any,
    jobs_dir: Path,
) -> None:
    # AWX injects PROMETHEUS_CA_CERT="" (and writes an empty file) when no CA is given; Ansible's "path"
    # option type would turn "" into the current directory, which the lookup must not take for a CA.
    world = operator_namespace_world("awx-no-ca")
    template = job_template("Shadow - anomaly check")
    extra_vars = survey_extra_vars(template.survey, {"route_name": world.route, "route_namespace": world.namespace})
    kubernetes = [c for c in credentials if c[0] == BEARER]

    job = run_job(template, extra_vars, [*kubernetes, (PROMETHEUS, {"url": cluster.prometheus_url})], jobs_dir)

    assert job.status == "successful", job.stdout[-3000:]


def test_failure_workflow_a_failing_launch_then_the_rollback_node_leaves_the_route_exactly(
    awx: AwxStand, traefik_api_get: Callable[[str], Any]
) -> None:
    kube, credentials, secret_inputs, jobs_dir = awx.kube, awx.credentials, awx.secret_inputs, awx.jobs_dir
    world, before, load = awx.world_under_load("awx-workflow")
    flow = workflow(ROLLBACK_WORKFLOW)
    launch_vars = survey_extra_vars(_survey_of_workflow(flow), launch_answers(world, steps="20", teardown="false"))
    failing = fail_shadow_while_attached(kube, world, traefik_api_get)

    launch = run_job(job_template(LAUNCH), launch_vars, credentials, jobs_dir)
    failing.join(timeout=10)
    assert launch.status == "failed" and launch.rc != 0, launch.stdout[-4000:]
    assert "rolled back" in launch.stdout and "anomalous" in launch.stdout, launch.stdout[-4000:]

    rollback = run_job(
        job_template("Shadow - disable mirroring"), rollback_node_vars(launch_vars, launch), credentials, jobs_dir
    )
    load.stop()
    print(
        f"\nworkflow: launch {launch.status} in {launch.seconds:.1f} s, "
        f"rollback {rollback.status} in {rollback.seconds:.1f} s"
    )

    assert rollback.status == "successful", rollback.stdout[-3000:]
    # The launch's own rescue had already restored the route: the failure node finds nothing to undo.
    assert "nothing to turn off" in rollback.stdout, rollback.stdout[-3000:]
    assert route_as_written(kube, world) == before and not mirror_exists(kube, world)
    assert load.errors() == 0, f"users saw errors: {dict(load.statuses)}, failures {load.failures}"
    assert world.backends["canary"].counters()["errors"] > 0, "the shadow's failures happened, on copies"
    for job in (launch, rollback):
        assert_no_secret(job, secret_inputs)


def _survey_of_workflow(flow: dict[str, Any]) -> dict[str, Any]:
    match = re.search(r"/surveys/([\w.-]+\.yml)", str(flow["survey_spec"]))
    assert match
    return load_awx_file(f"surveys/{match.group(1)}")


def test_a_job_timeout_kills_the_launch_and_the_failure_node_restores_the_route(awx: AwxStand) -> None:
    kube, credentials, jobs_dir = awx.kube, awx.credentials, awx.jobs_dir
    world, before, load = awx.world_under_load("awx-timeout")
    launch_vars = survey_extra_vars(
        _survey_of_workflow(workflow(ROLLBACK_WORKFLOW)), launch_answers(world, steps="20", bake_seconds=300)
    )
    template = job_template(LAUNCH)

    # The template's timeout (7,200 s) is honoured through ansible-runner's timeout; a short one here.
    launch = run_job(template, launch_vars, credentials, jobs_dir, timeout=40)
    seen_attached_at_end = routes_through_mirror(kube, world)
    rollback = run_job(
        job_template("Shadow - disable mirroring"), rollback_node_vars(launch_vars, launch), credentials, jobs_dir
    )
    load.stop()
    print(
        f"\ntimeout: {launch.status} rc {launch.rc} after {launch.seconds:.1f} s; attached then: {seen_attached_at_end}"
    )

    assert launch.status == "timeout" and launch.rc == 254, launch.stdout[-3000:]
    assert 40 <= launch.seconds < 80
    assert "Step 20%" not in launch.stdout, "the launch must have been stopped mid-bake"
    assert rollback.status == "successful", rollback.stdout[-3000:]
    assert route_as_written(kube, world) == before and not mirror_exists(kube, world)
    assert load.errors() == 0, f"users saw errors: {dict(load.statuses)}, failures {load.failures}"


def test_a_cancel_mid_bake_stops_the_job_and_the_watchdog_restores_the_route(awx: AwxStand) -> None:
    kube, credentials, secret_inputs, jobs_dir = awx.kube, awx.credentials, awx.secret_inputs, awx.jobs_dir
    world, before, load = awx.world_under_load("awx-cancel")
    launch_vars = survey_extra_vars(job_template(LAUNCH).survey, launch_answers(world, steps="20", bake_seconds=120))
    cancel = threading.Event()
    baking = threading.Event()

    def watch(event: dict[str, Any]) -> None:
        # The first gate check of the bake is printed: the mirror is attached and the bake runs.
        if re.search(r"20% step, \d+/120 s, check", event.get("stdout", "")):
            baking.set()

    def press_cancel_when_baking() -> None:
        if baking.wait(timeout=120):
            time.sleep(3)
        cancel.set()

    presser = threading.Thread(target=press_cancel_when_baking, daemon=True)
    presser.start()
    job = run_job(
        job_template(LAUNCH), launch_vars, credentials, jobs_dir, cancel_callback=cancel.is_set, on_event=watch
    )
    canceled_at = time.monotonic()
    # What AWX does right after a job ends: delete its private data dir, with the injected CA file.
    shutil.rmtree(job.private_data_dir)
    restored_in = wait_until(
        lambda: route_as_written(kube, world) == before and not mirror_exists(kube, world),
        timeout=60,
        what="the watchdog restores the route after the cancel",
    )
    load.stop()
    print(
        f"\ncancel: {job.status} rc {job.rc} after {job.seconds:.1f} s; "
        f"restored {time.monotonic() - canceled_at:.1f} s after the job ended"
    )

    assert baking.is_set(), "the cancel must come during the bake"
    assert job.status == "canceled" and job.rc == 254, job.stdout[-3000:]
    assert "canceled" in job.statuses
    # ansible-runner's kill stops the launch before it can roll back itself: the job never says it rolled back,
    # and the watchdog's own log says it did (the route may already be restored when the job's end is seen: the
    # watchdog is quick).
    assert "ROLLED BACK" not in job.stdout, "a killed launch cannot have rolled back itself"
    armed = re.search(r"Watchdog armed: .*\(its log: (\S+)\)\.", job.stdout)
    assert armed, "the watchdog was armed before the attach"
    watchdog_log = Path(armed.group(1)).read_text(encoding="utf-8")
    assert "rolling back: " in watchdog_log and "done: " in watchdog_log, watchdog_log
    assert restored_in < 30
    assert load.errors() == 0, f"users saw errors: {dict(load.statuses)}, failures {load.failures}"
    assert_no_secret(job, secret_inputs) if job.private_data_dir.exists() else None


# --- the execution environment definition ---------------------------------------------------------------


@pytest.fixture(scope="module")
def ansible_builder() -> Path:
    requirements = REPO_ROOT / "scripts" / "checks" / "requirements-ansible-builder.txt"
    venv = REPO_ROOT / ".state" / "venvs" / "ansible-builder"
    stamp = venv / ".requirements"
    if (
        not (venv / "bin" / "ansible-builder").exists()
        or not stamp.exists()
        or stamp.read_text() != requirements.read_text()
    ):
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True
        )
        stamp.write_text(requirements.read_text())
    return Path(venv / "bin" / "ansible-builder")


def test_ansible_builder_create_writes_a_context_with_the_collection(ansible_builder: Path, tmp_path: Path) -> None:
    ee_dir = REPO_ROOT / ".state" / "ee"
    ee_dir.mkdir(parents=True, exist_ok=True)
    built = subprocess.run(
        ["ansible-galaxy", "collection", "build", "--force", "--output-path", str(ee_dir), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    tarball = Path(re.findall(r"(/\S+\.tar\.gz)", built.stdout)[-1])
    shutil.copyfile(tarball, ee_dir / "darklaunch-traefik.tar.gz")
    context = tmp_path / "context"

    created = subprocess.run(
        [
            str(ansible_builder),
            "create",
            "-f",
            str(REPO_ROOT / "extensions/awx/execution-environment.yml"),
            "-c",
            str(context),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "none")},
    )

    assert created.returncode == 0, created.stdout + created.stderr
    # Containerfile for podman (the default), Dockerfile when ansible-builder settles on docker.
    recipe = next((context / name).read_text() for name in ("Containerfile", "Dockerfile") if (context / name).exists())
    assert 'ARG EE_BASE_IMAGE="quay.io/ansible/awx-ee:' in recipe
    assert "ansible-galaxy collection install" in recipe and "introspect.py introspect" in recipe
    shipped = context / "_build" / "collections" / "darklaunch-traefik.tar.gz"
    assert shipped.read_bytes() == (ee_dir / "darklaunch-traefik.tar.gz").read_bytes()
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert requirements["collections"] == [{"name": "collections/darklaunch-traefik.tar.gz", "type": "file"}]

    # What the image build's introspection step finds in the collection as it will be installed: its
    # Python dependencies from meta/execution-environment.yml, and no system package.
    installed = tmp_path / "installed" / "ansible_collections" / "darklaunch" / "traefik"
    installed.mkdir(parents=True)
    with tarfile.open(shipped) as tar:
        tar.extractall(installed, filter="data")
    found = subprocess.run(
        [
            str(ansible_builder.parent / "python"),
            str(context / "_build" / "scripts" / "introspect.py"),
            "introspect",
            str(tmp_path / "installed"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    dependencies = yaml.safe_load(found.stdout)
    python_requirements = sorted(line.split()[0] for line in dependencies["python"])
    assert python_requirements == sorted(
        line.split("#")[0].strip()
        for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
        if line.split("#")[0].strip()
    ), dependencies
    assert dependencies["system"] == []
