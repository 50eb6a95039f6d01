"""The collection as users get it: build the tarball, install it into a fresh collections path, run a
playbook that uses the FQCNs and ``module_defaults: group/darklaunch.traefik.traefik`` against the local
cluster, and check that Ansible ran the installed copy, not this checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_BIN = Path(sys.executable).parent


def _ansible(command: str) -> str:
    """The ansible-* command next to this Python (the same ansible-core the tests import)."""
    candidate = ANSIBLE_BIN / command
    return str(candidate) if candidate.exists() else command


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build the tarball from the checkout and install it into an empty collections path."""
    base = tmp_path_factory.mktemp("install")
    build_dir, collections, workdir = base / "build", base / "collections", base / "work"
    for directory in (build_dir, collections, workdir):
        directory.mkdir()
    env = _isolated_env(collections)
    _run(
        [_ansible("ansible-galaxy"), "collection", "build", "--output-path", str(build_dir), str(REPO_ROOT)], base, env
    )
    version = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text(encoding="utf-8"))["version"]
    tarball = build_dir / f"darklaunch-traefik-{version}.tar.gz"
    assert tarball.is_file(), sorted(p.name for p in build_dir.iterdir())
    _run(
        [_ansible("ansible-galaxy"), "collection", "install", "--offline", "-p", str(collections), str(tarball)],
        base,
        env,
    )
    return {"tarball": tarball, "collections": collections, "workdir": workdir}


def _isolated_env(collections: Path) -> dict[str, str]:
    """Only the fresh collections path: not the checkout's .state/collections (tests/conftest.py sets
    ANSIBLE_COLLECTIONS_PATH to it), not collections next to a playbook, not site-packages."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.pop("PYTHONPATH", None)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(collections),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        ANSIBLE_RETRY_FILES_ENABLED="false",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
    )
    return env


def test_tarball_installs_like_galaxy_would(installed: dict[str, Path]) -> None:
    root = installed["collections"] / "ansible_collections" / "darklaunch" / "traefik"
    manifest = json.loads((root / "MANIFEST.json").read_text(encoding="utf-8"))
    assert (manifest["collection_info"]["namespace"], manifest["collection_info"]["name"]) == ("darklaunch", "traefik")
    for path in ("meta/runtime.yml", "plugins/modules/traefik_traffic_info.py", "plugins/lookup/traffic.py"):
        assert (root / path).is_file(), path
    with tarfile.open(installed["tarball"]) as tar:
        names = tar.getnames()
    assert not [
        n for n in names if n.startswith((".state", "tests/output")) or "__pycache__" in n or n.endswith(".pyc")
    ]
    env = _isolated_env(installed["collections"])
    listing = _run(
        [_ansible("ansible-galaxy"), "collection", "list", "darklaunch.traefik", "--format", "json"],
        installed["workdir"],
        env,
    )
    found = json.loads(listing.stdout)
    assert list(found) == [str(installed["collections"] / "ansible_collections")], found
    # ansible-doc resolves the plugins the way ansible-playbook does: to the installed files.
    for kind, name, path in (
        ("module", "traefik_traffic_info", "plugins/modules/traefik_traffic_info.py"),
        ("module", "traefik_mirror", "plugins/modules/traefik_mirror.py"),
        ("lookup", "traffic", "plugins/lookup/traffic.py"),
    ):
        doc = _run(
            [_ansible("ansible-doc"), "--json", "-t", kind, f"darklaunch.traefik.{name}"], installed["workdir"], env
        )
        filename = json.loads(doc.stdout)[f"darklaunch.traefik.{name}"]["doc"]["filename"]
        assert Path(filename).resolve() == (root / path).resolve(), filename


PLAYBOOK = """
- name: Read the route through the installed collection
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/darklaunch.traefik.traefik:
      kubeconfig: "{{ install_kubeconfig }}"
  tasks:
    - name: Traffic split of the seed route
      darklaunch.traefik.traefik_traffic_info:
        namespace: "{{ install_namespace }}"
        route_name: "{{ install_route }}"
      register: install_info

    - name: The same route through the lookup
      ansible.builtin.set_fact:
        install_lookup: >-
          {{ lookup('darklaunch.traefik.traffic', 'distribution', route_name=install_route,
                    namespace=install_namespace, kubeconfig=install_kubeconfig) }}

    - name: Both answered
      ansible.builtin.assert:
        that:
          - install_info is not changed
          - install_info.distribution.traffic_split.type == 'weighted'
          - install_info.distribution.target.name == install_route ~ '-wrr'
          - install_lookup.traffic_split.type == 'weighted'

    - name: Hand the answers to the test
      ansible.builtin.copy:
        content: "{{ {'info': install_info, 'lookup': install_lookup} | to_json }}"
        dest: "{{ install_result }}"
        mode: "0600"
"""


def test_playbook_uses_the_installed_collection(
    installed: dict[str, Path], admin_kubeconfig: Path, seed_world: Callable[..., Any]
) -> None:
    world = seed_world(app="install-app")
    workdir = installed["workdir"]
    playbook = workdir / "install.yml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")
    result_file = workdir / "result.json"
    extra_vars = {
        "install_kubeconfig": str(admin_kubeconfig),
        "install_namespace": world.namespace,
        "install_route": world.route,
        "install_result": str(result_file),
    }
    env = _isolated_env(installed["collections"])
    # K8S_AUTH_* from the cluster fixture must not stand in for the module_defaults under test.
    env = {key: value for key, value in env.items() if not key.startswith("K8S_AUTH_")}
    run = _run(
        [_ansible("ansible-playbook"), "-vvv", "-i", "localhost,", "-e", json.dumps(extra_vars), str(playbook)],
        workdir,
        env,
    )

    answers = json.loads(result_file.read_text(encoding="utf-8"))
    distribution = answers["info"]["distribution"]
    assert (distribution["route"], distribution["namespace"]) == (world.route, world.namespace)
    assert distribution["traffic_split"]["type"] == "weighted"
    assert answers["lookup"]["route"] == world.route

    installed_root = installed["collections"] / "ansible_collections" / "darklaunch" / "traefik"
    module_files = [
        line.split("Using module file", 1)[1].strip()
        for line in run.stdout.splitlines()
        if "Using module file" in line and "traefik_traffic_info" in line
    ]
    assert module_files, run.stdout[-4000:]
    for module_file in module_files:
        assert Path(module_file).resolve() == (installed_root / "plugins/modules/traefik_traffic_info.py").resolve()
    for checkout_path in (REPO_ROOT / "plugins", REPO_ROOT / ".state" / "collections"):
        assert str(checkout_path) not in run.stdout, f"the playbook loaded something from {checkout_path}"
