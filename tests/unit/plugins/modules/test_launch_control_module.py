# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The launch_control module as Ansible runs it (arguments in, one JSON result out), on an in-memory mirror:
what it returns, check and diff mode, failures with ``field``, and no credential in anything it prints."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from ansible.module_utils import basic

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import ConflictError
from ansible_collections.darklaunch.traefik.plugins.module_utils._kubeconfig_context import CommandConnection
from ansible_collections.darklaunch.traefik.plugins.modules import launch_control

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19

    @contextlib.contextmanager  # type: ignore[no-redef]
    def patch_module_args(args: dict[str, Any] | None = None) -> Iterator[None]:
        with mock.patch.object(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode()):
            yield


NS = "production"
ROUTE = "api-service-route"
MIRROR = "api-service-route-mirror"
TOKEN = "kubeconfig-token-sentinel-91c2"
API_KEY = "api-key-sentinel-44d0"


def mirror(deadline: str = "2999-01-01T00:00:00.000Z", **control: str) -> dict[str, Any]:
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TraefikService",
        "metadata": {
            "name": MIRROR,
            "namespace": NS,
            "resourceVersion": "71",
            "labels": {"team": "payments"},
            "annotations": {
                "team.example.com/owner": "payments-oncall",
                "darklaunch.traefik/launch-id": "20251127T140211Z-3f9c2a",
                "darklaunch.traefik/launch-owner": "alice@laptop via ansible-playbook",
                "darklaunch.traefik/launch-route": ROUTE,
                "darklaunch.traefik/launch-step": "50",
                "darklaunch.traefik/launch-deadline": deadline,
                **{f"darklaunch.traefik/{key.replace('_', '-')}": value for key, value in control.items()},
            },
        },
        "spec": {"mirroring": {"name": "api-service-stable", "port": 80, "mirrors": []}},
    }


class FakeClient:
    """KubeClient's three calls used by launch_control, on one object; ``conflicts`` patches fail first."""

    connection = CommandConnection()  # the rollback command names no cluster

    def __init__(self, obj: dict[str, Any] | None, conflicts: int = 0) -> None:
        self.obj = obj
        self.conflicts = conflicts
        self.patches: list[Any] = []
        self.params: dict[str, Any] = {}

    def traefik_group(self, requested: str | None = None) -> str:
        return requested or "traefik.io"

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.obj) if (namespace, name) == (NS, MIRROR) else None

    def json_patch(self, kind: str, namespace: str | None, name: str, ops: Any) -> dict[str, Any]:
        self.patches.append(ops)
        if self.conflicts:
            self.conflicts -= 1
            raise ConflictError(f"TraefikService {name} changed since it was read; re-read it and retry")
        assert self.obj is not None
        annotations = self.obj["metadata"]["annotations"]
        for op in ops[1:]:
            key = op["path"].rsplit("/", 1)[1].replace("~1", "/")
            if op["op"] == "remove":
                del annotations[key]
            else:
                annotations[key] = op["value"]
        return copy.deepcopy(self.obj)


def run_module(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    client: FakeClient,
    args: dict[str, Any],
) -> tuple[dict[str, Any], str]:
    """The module's result and everything it printed."""

    def from_params(params: Any) -> FakeClient:
        client.params = dict(params)
        return client

    monkeypatch.setattr(launch_control.KubeClient, "from_params", staticmethod(from_params))
    with patch_module_args(args), pytest.raises(SystemExit):
        launch_control.main()
    printed = capsys.readouterr().out
    return json.loads(printed), printed


def args(command: str, **extra: Any) -> dict[str, Any]:
    return {"route_name": ROUTE, "namespace": NS, "command": command, "by": "carol@ops", **extra}


def test_pause_returns_the_launch_the_command_and_one_sentence(monkeypatch: Any, capsys: Any) -> None:
    client = FakeClient(mirror())
    result, _output = run_module(monkeypatch, capsys, client, args("pause"))

    assert result["changed"] is True and not result.get("failed")
    assert result["msg"] == (
        "Launch 20251127T140211Z-3f9c2a (owner alice@laptop via ansible-playbook) on production/api-service-route "
        "is paused: from its next check it holds step 50% and keeps judging until resumed."
    )
    assert result["launch"]["id"] == "20251127T140211Z-3f9c2a" and result["launch"]["step"] == 50
    assert result["control"]["state"] == "paused" and result["control"]["by"] == "carol@ops"
    assert result["previous_control"] is None
    assert (result["api_group"], result["mirror_name"]) == ("traefik.io", MIRROR)
    assert len(client.patches) == 1
    assert "diff" not in result


def test_resume_of_a_running_launch_is_no_change(monkeypatch: Any, capsys: Any) -> None:
    client = FakeClient(mirror())
    result, _output = run_module(monkeypatch, capsys, client, args("resume"))
    assert result["changed"] is False and result["control"] is None and client.patches == []


def test_abort_of_a_paused_launch_reports_the_pause_it_replaced(monkeypatch: Any, capsys: Any) -> None:
    paused = mirror(control="paused", control_by="bob", control_at="2025-11-27T14:03:00.000Z")
    result, _output = run_module(monkeypatch, capsys, FakeClient(paused), args("abort"))
    assert result["changed"] is True
    assert result["previous_control"] == {"state": "paused", "by": "bob", "at": "2025-11-27T14:03:00.000Z"}
    assert result["control"]["state"] == "aborted"


def test_check_and_diff_mode_write_nothing_and_show_the_annotations(monkeypatch: Any, capsys: Any) -> None:
    client = FakeClient(mirror())
    before = copy.deepcopy(client.obj)
    result, _output = run_module(
        monkeypatch, capsys, client, args("pause", _ansible_check_mode=True, _ansible_diff=True)
    )
    assert result["changed"] is True and client.patches == [] and client.obj == before
    assert "darklaunch.traefik/control" not in result["diff"]["before"]["annotations"]
    assert result["diff"]["after"]["annotations"]["darklaunch.traefik/control"] == "paused"
    assert result["diff"]["after"]["annotations"]["team.example.com/owner"] == "payments-oncall"


@pytest.mark.parametrize(
    ("obj", "command", "field", "words"),
    [
        (None, "pause", "route_name", ("No launch is running", ROUTE, NS, MIRROR)),
        (mirror(deadline="2020-01-01T00:00:00.000Z"), "abort", "route_name", ("abandoned", "mirror_disable")),
        (mirror(control="aborted"), "resume", "command", ("already being aborted",)),
    ],
    ids=["no-mirror", "abandoned", "aborted"],
)
def test_refusals_fail_with_the_field_and_write_nothing(
    monkeypatch: Any, capsys: Any, obj: Any, command: str, field: str, words: tuple[str, ...]
) -> None:
    client = FakeClient(obj)
    result, _output = run_module(monkeypatch, capsys, client, args(command))
    assert result["failed"] is True and result["field"] == field
    assert all(word in result["msg"] for word in words), result["msg"]
    assert client.patches == []


def test_a_conflict_is_retried(monkeypatch: Any, capsys: Any) -> None:
    client = FakeClient(mirror(), conflicts=1)
    result, _output = run_module(monkeypatch, capsys, client, args("abort"))
    assert result["changed"] is True and len(client.patches) == 2


def test_credentials_never_appear_in_the_result(monkeypatch: Any, capsys: Any) -> None:
    kubeconfig = {
        "apiVersion": "v1",
        "clusters": [{"name": "c", "cluster": {"server": "https://k8s.example"}}],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    extra = {"kubeconfig": kubeconfig, "api_key": API_KEY}
    for obj, command in ((mirror(), "pause"), (None, "abort")):
        client = FakeClient(obj)
        result, printed = run_module(monkeypatch, capsys, client, args(command, **extra))
        assert client.params["kubeconfig"]["users"][0]["user"]["token"] == TOKEN  # the client got them
        assert TOKEN not in printed and API_KEY not in printed, result
        assert "invocation" in result  # the arguments were echoed, masked
