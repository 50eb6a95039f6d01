"""No secret appears in any output, at any verbosity (issue 11, item 7).

Every module, the lookup and the shadow_launch role run through ``ansible-playbook -vvv`` with a distinct
sentinel in every secret-bearing option: real tokens of the cluster's static-token users where
authentication must succeed (operator in the kubeconfig dict, admin as ``api_key``, viewer for a 403),
and recognisable junk everywhere else (kubeconfig passwords, client keys, auth-provider and exec
credentials, a 401 token, basic-auth and proxy passwords, Prometheus token and password). Successful runs,
check mode, diff mode and failures are all exercised; then stdout, stderr, the registered results and the
role's report directory are searched for every sentinel, which must appear zero times.

The first case is the leak that was reported: a kubeconfig dict's token printed in
``invocation.module_args`` of traefik_traffic_info at -vvv.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from shadow import COLLECTIONS_ROOT, REPO_ROOT

pytestmark = pytest.mark.integration

API = "traefik.io/v1alpha1"
RUN_ID = secrets.token_hex(4)


def junk(name: str) -> str:
    """A secret nobody could mistake for anything else in the output."""
    return f"dlsecret-{name}-{RUN_ID}"


@dataclass
class Sentinels:
    """Every secret handed to Ansible, by name; ``values()`` adds the decoded form of base64 ones."""

    named: dict[str, str] = field(default_factory=dict)
    decoded: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, value: str) -> str:
        assert value not in self.named.values(), f"sentinel {name} is not distinct"
        self.named[name] = value
        return value

    def add_b64(self, name: str) -> str:
        plain = junk(name)
        self.decoded[name] = plain
        return self.add(name, base64.b64encode(plain.encode()).decode())

    def hits(self, text: str) -> dict[str, int]:
        found = {name: text.count(value) for name, value in self.named.items() if value in text}
        found.update({f"{name} (decoded)": text.count(v) for name, v in self.decoded.items() if v in text})
        return found


def load_yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def kubeconfig_dict(base: dict[str, Any], token: str, s: Sentinels, tag: str) -> dict[str, Any]:
    """``base`` (server and CA of the cluster) whose current user authenticates with ``token``, and which
    carries secrets the loader never uses: a password next to the token, and three more users with
    client-certificate data, auth-provider tokens and exec credentials."""
    cluster = base["clusters"][0]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [
            {
                "name": "current",
                "user": {"token": token, "username": "ops", "password": s.add(f"{tag}-password", junk(f"{tag}-pw"))},
            },
            {
                "name": "cert-user",
                "user": {
                    "client-certificate-data": s.add_b64(f"{tag}-client-certificate-data"),
                    "client-key-data": s.add_b64(f"{tag}-client-key-data"),
                },
            },
            {
                "name": "oidc-user",
                "user": {
                    "auth-provider": {
                        "name": "oidc",
                        "config": {
                            "client-id": "kubectl",
                            "client-secret": s.add(f"{tag}-client-secret", junk(f"{tag}-client-secret")),
                            "id-token": s.add(f"{tag}-id-token", junk(f"{tag}-id-token")),
                            "refresh-token": s.add(f"{tag}-refresh-token", junk(f"{tag}-refresh-token")),
                            "access-token": s.add(f"{tag}-access-token", junk(f"{tag}-access-token")),
                        },
                    }
                },
            },
            {
                "name": "exec-user",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": "get-token",
                        "args": ["--token", s.add(f"{tag}-exec-arg", junk(f"{tag}-exec-arg"))],
                        "env": [{"name": "API_TOKEN", "value": s.add(f"{tag}-exec-env", junk(f"{tag}-exec-env"))}],
                    }
                },
            },
        ],
        "contexts": [{"name": "ctx", "context": {"cluster": cluster["name"], "user": "current"}}],
        "current-context": "ctx",
    }


@dataclass
class Run:
    name: str
    completed: subprocess.CompletedProcess[str]
    files: list[Path]

    @property
    def output(self) -> str:
        return self.completed.stdout + self.completed.stderr

    def everything(self) -> str:
        parts = [self.output]
        for path in self.files:
            candidates = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            parts.extend(p.read_text(errors="replace") for p in candidates if p.exists())
        return "\n".join(parts)


def ansible_playbook(
    playbook: Path, extra_vars: dict[str, Any], *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    vars_file = playbook.with_suffix(".vars.json")
    vars_file.write_text(json.dumps(extra_vars))
    return subprocess.run(
        ["ansible-playbook", "-vvv", str(playbook), "-e", f"@{vars_file}", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_ROOT),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            **(env or {}),
        },
        cwd=playbook.parent,
        check=False,
    )


def write_playbook(directory: Path, name: str, plays: list[dict[str, Any]]) -> Path:
    path = directory / f"{name}.yml"
    path.write_text(yaml.safe_dump(plays, sort_keys=False))
    return path


def save_results(names: Iterable[str], dest: Path) -> dict[str, Any]:
    """A task that writes the registered results (what a later task or callback could print) to ``dest``."""
    variables = {name: f"{{{{ {name} | default('not run') }}}}" for name in names}
    return {
        "name": "Save every registered result",
        "ansible.builtin.copy": {"content": "{{ __results | to_nice_json }}", "dest": str(dest), "mode": "0600"},
        "vars": {"__results": variables},
        "check_mode": False,
        "diff": False,
    }


def failed_with(results: dict[str, Any], name: str) -> str:
    result = results[name]
    assert result.get("failed"), f"{name} was meant to fail: {result}"
    return str(result.get("msg"))


@pytest.fixture(scope="module")
def world(seed_world: Callable[..., Any], bind_operator: Callable[[str], None], namespace: str) -> Any:
    bind_operator(namespace)
    return seed_world(app="sec")


@pytest.fixture(scope="module")
def credentials(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The cluster's real tokens and CA, from the harness kubeconfigs."""
    configs = {user: load_yaml(cluster.kubeconfigs[user]) for user in ("admin", "shadow-operator", "viewer")}
    base = configs["shadow-operator"]
    ca_file = tmp_path_factory.mktemp("ca") / "ca.crt"
    ca_file.write_bytes(base64.b64decode(base["clusters"][0]["cluster"]["certificate-authority-data"]))
    return {
        "base": base,
        "server": base["clusters"][0]["cluster"]["server"],
        "ca_cert": str(ca_file),
        "tokens": {user: config["users"][0]["user"]["token"] for user, config in configs.items()},
    }


@pytest.fixture(scope="module")
def sentinels() -> Sentinels:
    return Sentinels()


@pytest.fixture(scope="module")
def operator_token(sentinels: Sentinels, credentials: dict[str, Any]) -> str:
    """The shadow operator's token, a sentinel: no run may print it."""
    return sentinels.add("operator-token", credentials["tokens"]["shadow-operator"])


def assert_no_leak(run: Run, s: Sentinels) -> None:
    hits = s.hits(run.everything())
    assert not hits, f"{run.name} printed secrets {hits}; output:\n{run.output[-6000:]}"


# --------------------------------------------------------------------------------------------------


def test_kubeconfig_dict_token_is_not_in_invocation_at_vvv(
    world: Any, credentials: dict[str, Any], sentinels: Sentinels, operator_token: str, tmp_path: Path
) -> None:
    """The reported leak: traefik_traffic_info with a kubeconfig dict, -vvv shows invocation.module_args."""
    config = kubeconfig_dict(credentials["base"], operator_token, sentinels, "repro")
    results = tmp_path / "results.json"
    playbook = write_playbook(
        tmp_path,
        "repro",
        [
            {
                "hosts": "localhost",
                "connection": "local",
                "gather_facts": False,
                "tasks": [
                    {
                        "name": "Read the route with a kubeconfig dict",
                        "darklaunch.traefik.traefik_traffic_info": {
                            "kubeconfig": "{{ k8s_config }}",
                            "namespace": world.namespace,
                            "route_name": world.route,
                        },
                        "register": "info",
                    },
                    save_results(["info"], results),
                ],
            }
        ],
    )
    run = Run("traefik_traffic_info", ansible_playbook(playbook, {"k8s_config": config}), [results])
    assert run.completed.returncode == 0, run.output
    info = json.loads(results.read_text())["info"]
    assert info["distribution"]["target"]["name"] == world.wrr, "the dict's token must have authenticated"
    assert "invocation" in run.output and "module_args" in run.output, "-vvv must show the invocation"
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in run.output, "the masked token must be where it leaked"
    assert_no_leak(run, sentinels)


def test_modules_in_every_mode_print_no_secret(
    world: Any, kube: Any, credentials: dict[str, Any], sentinels: Sentinels, operator_token: str, tmp_path: Path
) -> None:
    s, operator = sentinels, operator_token
    admin = s.add("admin-token", credentials["tokens"]["admin"])
    viewer = s.add("viewer-token", credentials["tokens"]["viewer"])
    server = credentials["server"]
    k8s_auth = {"kubeconfig": kubeconfig_dict(credentials["base"], operator, s, "modules")}
    host_auth = {
        "host": server,
        "api_key": admin,
        "username": "ops",
        "password": s.add("basic-password", junk("basic-password")),
        "ca_cert": credentials["ca_cert"],
    }

    def own_secrets(run: str) -> dict[str, Any]:
        """host_auth with a token and a password of the run's own, so a leak names the run."""
        token, password = f"{run}-run-token", f"{run}-run-password"
        return {**host_auth, "api_key": s.add(token, junk(token)), "password": s.add(password, junk(password))}

    mirror = {
        "route_name": world.route,
        "namespace": world.namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service("canary"),
    }
    results = tmp_path / "results.json"
    registered: list[str] = []

    def task(name: str, module: str, args: dict[str, Any], **keywords: Any) -> dict[str, Any]:
        register = f"r_{len(registered)}"
        registered.append(register)
        return {"name": name, f"darklaunch.traefik.{module}": args, "register": register, **keywords}

    tasks = [
        task(
            "Mirror at 20% (kubeconfig dict via module_defaults, diff)",
            "traefik_mirror",
            {**mirror, "mirror_percent": 20},
        ),
        task(
            "Mirror at 30% in check mode",
            "traefik_mirror",
            {**mirror, "mirror_percent": 30},
            check_mode=True,
        ),
        task("Read the route", "traefik_traffic_info", {"namespace": world.namespace, "route_name": world.route}),
        task(
            "Read the route with host and api_key",
            "traefik_traffic_info",
            {**host_auth, "namespace": world.namespace, "route_name": world.route},
        ),
        task(
            "Mirror again with host and api_key (no change)",
            "traefik_mirror",
            {**host_auth, **mirror, "mirror_percent": 20},
        ),
        task(
            "401: a token the API server does not know",
            "traefik_traffic_info",
            {"kubeconfig": kubeconfig_dict(credentials["base"], s.add("bad-token", junk("bad-token")), s, "bad")},
            ignore_errors=True,
        ),
        task(
            "403: the viewer may not write",
            "traefik_mirror",
            {"kubeconfig": kubeconfig_dict(credentials["base"], viewer, s, "viewer"), **mirror, "mirror_percent": 40},
            ignore_errors=True,
        ),
        task(
            "A kubeconfig dict whose context names a missing user",
            "traefik_traffic_info",
            {
                "kubeconfig": {
                    **kubeconfig_dict(credentials["base"], s.add("broken-token", junk("broken-token")), s, "broken"),
                    "contexts": [{"name": "ctx", "context": {"cluster": "nowhere", "user": "nobody"}}],
                },
                "namespace": world.namespace,
            },
            ignore_errors=True,
        ),
        task(
            "An unreachable proxy with a password in its URL",
            "traefik_traffic_info",
            {
                **own_secrets("proxy"),
                "proxy": f"http://squid:{s.add('proxy-password', junk('proxy-password'))}@127.0.0.1:9",
                "namespace": world.namespace,
            },
            ignore_errors=True,
        ),
        task(
            "Mirror 101% is refused",
            "traefik_mirror",
            {**mirror, "mirror_percent": 101},
            ignore_errors=True,
        ),
        task(
            "A kubeconfig's text where its path belongs",
            "traefik_traffic_info",
            {
                "kubeconfig": yaml.safe_dump(
                    kubeconfig_dict(credentials["base"], s.add("text-token", junk("text-token")), s, "text")
                ),
                "namespace": world.namespace,
            },
            ignore_errors=True,
        ),
        task(
            "A PEM key where its path belongs",
            "traefik_traffic_info",
            {
                **own_secrets("pem"),
                "client_key": "-----BEGIN PRIVATE KEY-----\n"
                + s.add("pem-key", junk("pem-key"))
                + "\n-----END PRIVATE KEY-----\n",
                "namespace": world.namespace,
            },
            ignore_errors=True,
        ),
    ]
    playbook = write_playbook(
        tmp_path,
        "modules",
        [
            {
                "hosts": "localhost",
                "connection": "local",
                "gather_facts": False,
                "module_defaults": {"group/darklaunch.traefik.traefik": "{{ k8s_auth }}"},
                "tasks": [*tasks, save_results(registered, results)],
            }
        ],
    )
    run = Run("the modules", ansible_playbook(playbook, {"k8s_auth": k8s_auth}, "--diff"), [results])
    assert run.completed.returncode == 0, run.output
    by_name = json.loads(results.read_text())
    r = [by_name[name] for name in registered]
    assert r[0]["changed"] and r[0]["diff"], "diff mode must have shown the change"
    assert r[1]["changed"] and r[1]["diff"], "check mode must have reported the change"
    assert r[2]["distribution"]["traffic_split"]["type"] in ("weighted", "direct", "mirror")
    assert r[3]["distribution"]["route"] == world.route
    assert r[4]["changed"] is False
    assert "401" in failed_with(by_name, registered[5])
    assert "may not" in failed_with(by_name, registered[6])
    assert failed_with(by_name, registered[7])
    assert "proxy" in failed_with(by_name, registered[8])
    assert "mirror_percent" in failed_with(by_name, registered[9])
    assert "not a path" in failed_with(by_name, registered[10])
    assert "not its content" in failed_with(by_name, registered[11])
    mirror_object = kube.get(API, "TraefikService", f"{world.route}-mirror", world.namespace)
    assert mirror_object["spec"]["mirroring"]["mirrors"][0]["percent"] == 20, "check mode and failures changed nothing"
    assert_no_leak(run, s)

    # AWX-style: the credentials arrive as environment variables of the whole run.
    env_playbook = write_playbook(
        tmp_path,
        "modules_env",
        [
            {
                "hosts": "localhost",
                "connection": "local",
                "gather_facts": False,
                "tasks": [
                    task(
                        "401 with K8S_AUTH_* from the environment",
                        "traefik_traffic_info",
                        {"namespace": world.namespace},
                        ignore_errors=True,
                    ),
                    save_results(registered[-1:], tmp_path / "env_results.json"),
                ],
            }
        ],
    )
    env = {
        "K8S_AUTH_HOST": server,
        "K8S_AUTH_API_KEY": s.add("env-api-key", junk("env-api-key")),
        "K8S_AUTH_USERNAME": "ops",
        "K8S_AUTH_PASSWORD": s.add("env-password", junk("env-password")),
        "K8S_AUTH_CA_CERT": credentials["ca_cert"],
    }
    env_run = Run(
        "the modules with K8S_AUTH_*", ansible_playbook(env_playbook, {}, env=env), [tmp_path / "env_results.json"]
    )
    assert "401" in failed_with(json.loads((tmp_path / "env_results.json").read_text()), registered[-1])
    assert_no_leak(env_run, s)


def test_lookup_prints_no_secret(
    world: Any, cluster: Any, credentials: dict[str, Any], sentinels: Sentinels, operator_token: str, tmp_path: Path
) -> None:
    s, operator = sentinels, operator_token
    config = kubeconfig_dict(credentials["base"], operator, s, "lookup")
    prometheus = cluster.prometheus_url
    lookups = {
        "distribution": (
            "lookup('darklaunch.traefik.traffic', 'distribution', route_name=route, namespace=ns,"
            " kubeconfig=k8s_config)"
        ),
        "anomalies_token": (
            "lookup('darklaunch.traefik.traffic', 'anomalies', route_name=route, namespace=ns, kubeconfig=k8s_config,"
            " prometheus_url=prom, prometheus_token=prom_token)"
        ),
        "anomalies_basic": (
            "lookup('darklaunch.traefik.traffic', 'anomalies', route_name=route, namespace=ns, kubeconfig=k8s_config,"
            " prometheus_url=prom, prometheus_username='grafana', prometheus_password=prom_password)"
        ),
        "wrong_prometheus": (
            "lookup('darklaunch.traefik.traffic', 'anomalies', kubeconfig=k8s_config,"
            " prometheus_url='http://127.0.0.1:9', prometheus_token=prom_token2)"
        ),
        "prometheus_url_with_password": (
            "lookup('darklaunch.traefik.traffic', 'anomalies', kubeconfig=k8s_config, prometheus_url=prom_url_pw)"
        ),
        "anomalies_headers": (
            "lookup('darklaunch.traefik.traffic', 'anomalies', route_name=route, namespace=ns, kubeconfig=k8s_config,"
            " prometheus_url=prom, prometheus_headers={'Authorization': 'Bearer ' ~ prom_header_token,"
            " 'X-Scope-OrgID': 'tenant-a'}, prometheus_timeout=20)"
        ),
        "headers_wrong_prometheus": (
            "lookup('darklaunch.traefik.traffic', 'anomalies', kubeconfig=k8s_config,"
            " prometheus_url='http://127.0.0.1:9', prometheus_headers={'X-Api-Key': prom_api_key})"
        ),
        "prometheus_proxy_password": (
            "lookup('darklaunch.traefik.traffic', 'anomalies', kubeconfig=k8s_config, prometheus_url=prom,"
            " prometheus_proxy=prom_proxy_url)"
        ),
        "unauthorized": "lookup('darklaunch.traefik.traffic', 'routes', namespace=ns, kubeconfig=bad_config)",
        "broken_kubeconfig": "lookup('darklaunch.traefik.traffic', 'routes', namespace=ns, kubeconfig=broken_config)",
        "proxy": (
            "lookup('darklaunch.traefik.traffic', 'routes', namespace=ns, host=server, api_key=proxy_token,"
            " username='ops', password=proxy_password, proxy=proxy_url, ca_cert=ca_cert)"
        ),
    }
    results = tmp_path / "results.json"
    tasks: list[dict[str, Any]] = []
    for name, expression in lookups.items():
        tasks.append(
            {
                "name": f"Lookup {name}",
                "ansible.builtin.debug": {"msg": f"{{{{ {expression} }}}}"},
                "register": name,
                "ignore_errors": True,
            }
        )
    broken = kubeconfig_dict(credentials["base"], s.add("lookup-broken-token", junk("lookup-broken-token")), s, "lb")
    broken["contexts"] = [{"name": "ctx", "context": {"cluster": "nowhere", "user": "nobody"}}]
    extra_vars = {
        "route": world.route,
        "ns": world.namespace,
        "prom": prometheus,
        "server": credentials["server"],
        "ca_cert": credentials["ca_cert"],
        "k8s_config": config,
        "bad_config": kubeconfig_dict(
            credentials["base"], s.add("lookup-bad-token", junk("lookup-bad-token")), s, "lookup-bad"
        ),
        "broken_config": broken,
        "prom_token": s.add("prometheus-token", junk("prometheus-token")),
        "prom_token2": s.add("prometheus-token-2", junk("prometheus-token-2")),
        "prom_password": s.add("prometheus-password", junk("prometheus-password")),
        "prom_url_pw": f"http://grafana:{s.add('prometheus-url-password', junk('prom-url-password'))}@127.0.0.1:9",
        "prom_header_token": s.add("prometheus-header-token", junk("prometheus-header-token")),
        "prom_api_key": s.add("prometheus-api-key", junk("prometheus-api-key")),
        "prom_proxy_url": f"http://squid:{s.add('prometheus-proxy-password', junk('prom-proxy-password'))}@127.0.0.1:9",
        "proxy_token": s.add("lookup-proxy-token", junk("lookup-proxy-token")),
        "proxy_password": s.add("lookup-proxy-basic-password", junk("lookup-proxy-basic-password")),
        "proxy_url": f"http://squid:{s.add('lookup-proxy-password', junk('lookup-proxy-password'))}@127.0.0.1:9",
    }
    playbook = write_playbook(
        tmp_path,
        "lookup",
        [
            {
                "hosts": "localhost",
                "connection": "local",
                "gather_facts": False,
                "tasks": [*tasks, save_results(lookups, results)],
            }
        ],
    )
    run = Run("the lookup", ansible_playbook(playbook, extra_vars, "--diff"), [results])
    assert run.completed.returncode == 0, run.output
    by_name = json.loads(results.read_text())
    assert by_name["distribution"]["msg"]["route"] == world.route, "the dict's token must have authenticated"
    for name in ("anomalies_token", "anomalies_basic", "anomalies_headers"):
        assert by_name[name]["msg"]["verdict"] in ("ok", "anomalous", "insufficient_data"), by_name[name]
    assert "Prometheus" in failed_with(by_name, "wrong_prometheus")
    assert "prometheus_url" in failed_with(by_name, "prometheus_url_with_password")
    assert "Cannot reach Prometheus" in failed_with(by_name, "headers_wrong_prometheus")
    assert "through the proxy http://127.0.0.1:9 (from prometheus_proxy)" in failed_with(
        by_name, "prometheus_proxy_password"
    )
    assert "401" in failed_with(by_name, "unauthorized")
    assert failed_with(by_name, "broken_kubeconfig")
    assert "proxy" in failed_with(by_name, "proxy")
    assert_no_leak(run, s)


def role_variables() -> set[str]:
    spec = load_yaml(REPO_ROOT / "roles" / "shadow_launch" / "meta" / "argument_specs.yml")
    return {name for entry in spec["argument_specs"].values() for name in entry.get("options", {})}


def role_playbook(directory: Path, name: str) -> Path:
    return write_playbook(
        directory,
        name,
        [
            {
                "hosts": "localhost",
                "connection": "local",
                "gather_facts": False,
                "tasks": [
                    {
                        "name": "Run the shadow launch role",
                        "ansible.builtin.include_role": {"name": "darklaunch.traefik.shadow_launch"},
                    }
                ],
            }
        ],
    )


def test_role_prints_no_secret(
    world: Any,
    kube: Any,
    cluster: Any,
    credentials: dict[str, Any],
    sentinels: Sentinels,
    operator_token: str,
    tmp_path: Path,
) -> None:
    s, operator = sentinels, operator_token
    report_dir = tmp_path / "reports"
    # What the role leaves behind besides its output: its report (when this version writes one) and the logs
    # and outcomes of its controller watchdog.
    left_behind = [report_dir, *sorted(Path(tempfile.gettempdir()).glob(f"darklaunch-watchdog-{os.getuid()}"))]
    base_vars = {
        "shadow_launch_route_name": world.route,
        "shadow_launch_namespace": world.namespace,
        "shadow_launch_main_service": world.service("stable"),
        "shadow_launch_mirror_service": world.service("canary"),
        "shadow_launch_steps": [20],
        "shadow_launch_bake_seconds": 0,
        "shadow_launch_attach_to_ingress": True,
        "shadow_launch_confirm_end_weighted_split": True,
        "shadow_launch_teardown": True,
        "shadow_launch_fail_on_insufficient_data": False,
        "shadow_launch_k8s_auth": {"kubeconfig": kubeconfig_dict(credentials["base"], operator, s, "role")},
    }
    if "shadow_launch_report_dir" in role_variables():
        base_vars["shadow_launch_report_dir"] = str(report_dir)
    playbook = role_playbook(tmp_path, "role")
    mirror_name = f"{world.route}-mirror"
    # Start from no mirror, whatever the module test left behind.
    existing = kube.get(API, "TraefikService", mirror_name, world.namespace)
    if existing is not None:
        kube.delete(API, "TraefikService", mirror_name, world.namespace)

    # Gate on, against the cluster's Prometheus, with a bearer token it ignores.
    passing = {
        **base_vars,
        "shadow_launch_prometheus_url": cluster.prometheus_url,
        "shadow_launch_prometheus_auth": {
            "prometheus_token": s.add("role-prom-token", junk("role-prom-token")),
            "prometheus_headers": {"X-Api-Key": s.add("role-prom-api-key", junk("role-prom-api-key"))},
            "prometheus_timeout": 20,
        },
    }
    runs = [Run("the role (gate on)", ansible_playbook(playbook, passing, "--diff"), left_behind)]
    assert runs[-1].completed.returncode == 0, runs[-1].output

    # Check mode, gate off.
    check = {**base_vars, "shadow_launch_anomaly_gate": False}
    runs.append(Run("the role (check mode)", ansible_playbook(playbook, check, "--check", "--diff"), left_behind))
    assert runs[-1].completed.returncode == 0, runs[-1].output
    assert kube.get(API, "TraefikService", mirror_name, world.namespace) is None, "check mode wrote a mirror"

    # Failure: the gate cannot reach Prometheus, so the launch fails (before any change, or rolled back) with
    # the lookup's error, which Ansible prints at -vvv even though the task is no_log.
    failing = {
        **base_vars,
        "shadow_launch_prometheus_url": "http://127.0.0.1:9",
        "shadow_launch_prometheus_auth": {
            "prometheus_username": "grafana",
            "prometheus_password": s.add("role-prom-password", junk("role-prom-password")),
        },
    }
    runs.append(Run("the role (Prometheus down)", ansible_playbook(playbook, failing, "--diff"), left_behind))
    assert runs[-1].completed.returncode != 0, runs[-1].output
    assert "Cannot reach Prometheus at http://127.0.0.1:9" in runs[-1].output, runs[-1].output[-4000:]
    assert kube.get(API, "TraefikService", mirror_name, world.namespace) is None, "the rollback left a mirror"

    # Failure: the apiserver refuses the viewer (403) before anything changes.
    forbidden = {
        **base_vars,
        "shadow_launch_anomaly_gate": False,
        "shadow_launch_k8s_auth": {
            "kubeconfig": kubeconfig_dict(
                credentials["base"],
                s.named.get("viewer-token") or s.add("viewer-token", credentials["tokens"]["viewer"]),
                s,
                "role-viewer",
            )
        },
    }
    runs.append(Run("the role (403)", ansible_playbook(playbook, forbidden, "--diff"), left_behind))
    assert runs[-1].completed.returncode != 0, runs[-1].output
    assert "may not" in runs[-1].output, runs[-1].output[-4000:]
    for run in runs:
        assert_no_leak(run, s)
