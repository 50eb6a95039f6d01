"""The playbooks' extra vars, as an operator types them (``ansible-playbook playbooks/<name>.yml -e k=v``):

- ``-e context=<other>`` acts on that other cluster, in that context's namespace (kubectl's convention), and
  the line printed before any change names its API server, the context and the namespace;
- a misspelled extra var (``-e bake_second=600``) is refused naming ``bake_seconds``, with no change made;
- the old ``-e namespace=x`` is refused naming ``route_namespace``;
- no run prints Ansible's warning about the reserved name ``namespace``.

Two clusters: the session's and a second instance of the harness without Prometheus (state
``.state/cluster-inputs-b``, ports +300; ``DARKLAUNCH_INPUTS_B_STATE_DIR`` / ``DARKLAUNCH_INPUTS_B_PORT_OFFSET``
choose others), both reached through one kubeconfig with a context each.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from clusters import second_cluster
from dlcluster.backends import BackendsClient
from dlcluster.testing import Cluster
from dlcluster.world import SeedWorld, create_world, remove_world_backends
from routes import mirror_exists, route_as_written
from shadow import REPO_ROOT, playbook_env

pytestmark = pytest.mark.integration

RESERVED_NAME_WARNING = "reserved name"


@pytest.fixture(scope="module")
def cluster_b() -> Iterator[Cluster]:
    """A second apiserver with Traefik and backends (no Prometheus: no test here judges traffic)."""
    with second_cluster(
        "inputs-b", "DARKLAUNCH_INPUTS_B_STATE_DIR", "DARKLAUNCH_INPUTS_B_PORT_OFFSET", 300, "--no-prometheus"
    ) as member:
        yield member


@pytest.fixture(scope="module")
def worlds(
    cluster: Cluster, cluster_b: Cluster, make_namespace: Callable[[str], str]
) -> Iterator[dict[str, SeedWorld]]:
    """The same route in the same namespace of both clusters, as a fleet deploys it."""
    namespace = make_namespace("inputs")
    made: dict[str, SeedWorld] = {}
    clients: list[tuple[BackendsClient, SeedWorld]] = []
    for name, member in (("a", cluster), ("b", cluster_b)):
        backends = BackendsClient(member.backends_url or "")
        made[name] = create_world(member.kube("admin"), backends, namespace, "inputs")
        clients.append((backends, made[name]))
    yield made
    for backends, world in clients:
        remove_world_backends(backends, world)


@pytest.fixture(scope="module")
def two_contexts(cluster: Cluster, cluster_b: Cluster, worlds: dict[str, SeedWorld], tmp_path_factory: Any) -> Path:
    """One kubeconfig: context "a" (current, no namespace) on the session's cluster, context "b" on the second
    one with the worlds' namespace as its namespace."""
    merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []}
    for name, member in (("a", cluster), ("b", cluster_b)):
        source = yaml.safe_load(member.kubeconfigs["admin"].read_text())
        merged["clusters"].append({"name": name, "cluster": source["clusters"][0]["cluster"]})
        merged["users"].append({"name": name, "user": source["users"][0]["user"]})
        context = {"cluster": name, "user": name}
        if name == "b":
            context["namespace"] = worlds["b"].namespace
        merged["contexts"].append({"name": name, "context": context})
    merged["current-context"] = "a"
    path = Path(tmp_path_factory.mktemp("inputs")) / "two-contexts.kubeconfig"
    path.write_text(yaml.safe_dump(merged))
    path.chmod(0o600)
    return path


def server_of(member: Cluster) -> str:
    return str(yaml.safe_load(member.kubeconfigs["admin"].read_text())["clusters"][0]["cluster"]["server"])


def playbook(name: str, kubeconfig: Path, *pairs: str) -> tuple[int, str]:
    """``ansible-playbook playbooks/<name>.yml -e k=v ...`` with ``kubeconfig`` as K8S_AUTH_KUBECONFIG."""
    command = ["ansible-playbook", str(REPO_ROOT / "playbooks" / f"{name}.yml")]
    for pair in pairs:
        command += ["-e", pair]
    env = {**playbook_env(), "K8S_AUTH_KUBECONFIG": str(kubeconfig)}
    env.pop("K8S_AUTH_CONTEXT", None)
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120, check=False)
    output = done.stdout + done.stderr
    assert RESERVED_NAME_WARNING not in output or any(p.startswith("namespace=") for p in pairs), output
    return done.returncode, output


def test_context_acts_on_the_other_cluster_in_its_namespace(
    cluster: Cluster, cluster_b: Cluster, worlds: dict[str, SeedWorld], two_contexts: Path
) -> None:
    a, b = worlds["a"], worlds["b"]
    kube_a, kube_b = cluster.kube("admin"), cluster_b.kube("admin")
    before_a = route_as_written(kube_a, a)
    rc, out = playbook(
        "mirror_enable",
        two_contexts,
        "context=b",
        f"route_name={b.route}",
        "mirror_percent=20",
        f"main_service={b.service('stable')}",
        f"mirror_service={b.service('canary')}",
    )
    assert rc == 0, out
    expected = f"cluster {server_of(cluster_b)} (context b), namespace {b.namespace} (the namespace of context b)"
    assert expected in out, out
    assert mirror_exists(kube_b, b), "the mirror must be created in the cluster of context b"
    assert not mirror_exists(kube_a, a) and route_as_written(kube_a, a) == before_a, "cluster a was touched"

    # Without -e context the kubeconfig's current context (a) is used, with route_namespace.
    rc, out = playbook("shadow_status", two_contexts, f"route_name={a.route}", f"route_namespace={a.namespace}")
    assert rc == 0, out
    assert f"cluster {server_of(cluster)} (context a), namespace {a.namespace} (route_namespace)" in out, out
    assert "No TraefikService is mirroring traffic" in out, out

    rc, out = playbook("mirror_disable", two_contexts, "context=b", f"route_name={b.route}")
    assert rc == 0, out
    assert not mirror_exists(kube_b, b)


def world_a(cluster: Cluster, worlds: dict[str, SeedWorld]) -> tuple[SeedWorld, Any, dict[str, Any]]:
    """The world of the session's cluster, its admin client, and its route as written before the test."""
    kube_a = cluster.kube("admin")
    return worlds["a"], kube_a, route_as_written(kube_a, worlds["a"])


def test_a_misspelled_extra_var_is_refused_naming_the_right_one(
    cluster: Cluster, worlds: dict[str, SeedWorld], two_contexts: Path
) -> None:
    a, kube_a, before = world_a(cluster, worlds)
    rc, out = playbook(
        "shadow_launch",
        two_contexts,
        f"route_name={a.route}",
        f"route_namespace={a.namespace}",
        f"main_service={a.service('stable')}",
        f"mirror_service={a.service('canary')}",
        "confirm_end_weighted_split=true",
        "anomaly_gate=false",
        "bake_second=600",
    )
    assert rc != 0, out
    assert "unknown extra var bake_second: did you mean bake_seconds?" in out, out
    assert not mirror_exists(kube_a, a) and route_as_written(kube_a, a) == before


def test_the_old_namespace_extra_var_is_refused_naming_route_namespace(
    cluster: Cluster, worlds: dict[str, SeedWorld], two_contexts: Path
) -> None:
    a, kube_a, before = world_a(cluster, worlds)
    rc, out = playbook(
        "mirror_enable", two_contexts, f"route_name={a.route}", f"namespace={a.namespace}", "mirror_percent=20"
    )
    assert rc != 0, out
    assert "the extra var namespace was renamed route_namespace" in out and "-e route_namespace=" in out, out
    assert not mirror_exists(kube_a, a) and route_as_written(kube_a, a) == before
