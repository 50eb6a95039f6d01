"""What a printed command names for the connection: the context this run used, the kubeconfig when given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s_auth import resolve_auth_options
from ansible_collections.darklaunch.traefik.plugins.module_utils._kubeconfig_context import (
    CommandConnection,
    command_connection,
)

KUBECONFIG: dict[str, Any] = {
    "contexts": [
        {"name": "prod", "context": {"cluster": "p", "user": "u"}},
        {"name": "staging cluster", "context": {"cluster": "s", "user": "u"}},
    ],
    "current-context": "prod",
}


@pytest.fixture
def kubeconfig_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("KUBECONFIG", "K8S_AUTH_KUBECONFIG", "K8S_AUTH_CONTEXT", "K8S_AUTH_HOST", "K8S_AUTH_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "kube config"
    path.write_text(yaml.safe_dump(KUBECONFIG), encoding="utf-8")
    return path


def connection_of(params: dict[str, Any]) -> CommandConnection:
    return command_connection(params, resolve_auth_options(params))


def test_a_given_kubeconfig_and_its_current_context_are_named_shell_quoted(kubeconfig_file: Path) -> None:
    connection = connection_of({"kubeconfig": str(kubeconfig_file)})
    assert connection == CommandConnection(kubeconfig=str(kubeconfig_file), context="prod")
    assert connection.extra_vars() == f" -e 'kubeconfig={kubeconfig_file}' -e context=prod"


def test_a_given_context_wins_over_the_current_one(kubeconfig_file: Path) -> None:
    connection = connection_of({"kubeconfig": str(kubeconfig_file), "context": "staging cluster"})
    assert connection.context == "staging cluster"
    assert connection.extra_vars().endswith(" -e 'context=staging cluster'")


def test_a_kubeconfig_from_the_environment_is_not_named_but_its_context_is(
    kubeconfig_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # K8S_AUTH_KUBECONFIG on AWX is a file of the job's private data dir, gone when someone runs the command.
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", str(kubeconfig_file))
    assert connection_of({}) == CommandConnection(context="prod")
    monkeypatch.delenv("K8S_AUTH_KUBECONFIG")
    monkeypatch.setenv("KUBECONFIG", f"/nonexistent{':'}{kubeconfig_file}")
    assert connection_of({}) == CommandConnection(context="prod")


def test_a_kubeconfig_dict_is_never_printed(kubeconfig_file: Path) -> None:
    assert connection_of({"kubeconfig": KUBECONFIG}) == CommandConnection(context="prod")


def test_a_host_with_its_own_credentials_names_nothing(kubeconfig_file: Path) -> None:
    connection = connection_of({"kubeconfig": KUBECONFIG, "host": "https://k", "api_key": "secret-token"})
    assert connection == CommandConnection() and connection.extra_vars() == ""


def test_an_unreadable_kubeconfig_names_only_the_given_context(tmp_path: Path, kubeconfig_file: Path) -> None:
    broken = tmp_path / "broken"
    broken.write_text("{not yaml", encoding="utf-8")
    assert connection_of({"kubeconfig": str(broken), "context": "prod"}) == CommandConnection(str(broken), "prod")
    assert connection_of({"kubeconfig": str(broken)}) == CommandConnection(str(broken), None)
