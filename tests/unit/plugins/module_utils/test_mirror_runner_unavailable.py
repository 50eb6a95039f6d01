# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runner when the Kubernetes API stops answering between two writes: nothing is undone (the undo
could delete a mirror the unanswered write routed users through), and the message says what was
written, what state the route is in and how to finish. A refused write still undoes the run's part."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import ApiUnavailableError, DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_runner import run_mirror
from ansible_collections.darklaunch.traefik.tests.unit.plugins.module_utils.seed_objects import (
    ATTACH,
    ATTACHED,
    TEARDOWN,
    WORLD,
    load,
)


class FlakyKube:
    """An in-memory API that fails the write number ``fail_at`` (1-based) with ``failure``."""

    def __init__(self, names: list[str], fail_at: int, failure: Exception) -> None:
        self.objects = {(obj["kind"], obj["metadata"]["name"]): obj for obj in map(load, names)}
        self.fail_at = fail_at
        self.failure = failure
        self.writes: list[str] = []

    def traefik_group(self, requested: str | None = None) -> str:
        return requested or "traefik.io"

    def namespace_exists(self, name: str) -> bool:
        return True

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind, name))
        return copy.deepcopy(found) if found else None

    def list(self, kind: str, namespace: str | None, page_size: int = 500) -> list[dict[str, Any]]:
        return [copy.deepcopy(obj) for (k, _name), obj in self.objects.items() if k == kind]

    def _write(self, what: str) -> None:
        self.writes.append(what)
        if len(self.writes) == self.fail_at:
            raise self.failure

    def create(self, kind: str, namespace: str | None, body: Any) -> dict[str, Any]:
        self._write(f"create {kind} {body['metadata']['name']}")
        created = copy.deepcopy(dict(body))
        created["metadata"]["resourceVersion"] = "100"
        self.objects[(kind, body["metadata"]["name"])] = created
        return created

    def json_patch(self, kind: str, namespace: str | None, name: str, ops: Any) -> dict[str, Any]:
        self._write(f"patch {kind} {name}")
        patched = copy.deepcopy(self.objects[(kind, name)])
        patched["metadata"]["resourceVersion"] = "101"
        return patched

    def delete(self, kind: str, namespace: str | None, name: str, resource_version: str | None = None) -> None:
        self._write(f"delete {kind} {name}")
        self.objects.pop((kind, name), None)


def unavailable(sent: bool) -> ApiUnavailableError:
    return ApiUnavailableError(
        "the Kubernetes API at https://k8s did not answer PATCH /x within 5 s", request_sent=sent
    )


def interrupted(
    objects: list[str], args: dict[str, Any], fail_at: int, sent: bool = False
) -> tuple[FlakyKube, ApiUnavailableError]:
    """run_mirror with the API unavailable at write ``fail_at``: the writes it tried, and its error."""
    kube = FlakyKube(objects, fail_at=fail_at, failure=unavailable(sent))
    with pytest.raises(ApiUnavailableError) as caught:
        run_mirror(kube, args, check_mode=False)
    return kube, caught.value


@pytest.mark.parametrize("sent", [False, True], ids=["refused", "unanswered"])
def test_attach_interrupted_after_the_mirror_is_created_keeps_it_and_says_how_to_finish(sent: bool) -> None:
    kube, error = interrupted(WORLD, ATTACH, fail_at=2, sent=sent)

    # No undo: the mirror stays (the IngressRoute may already route through it).
    assert kube.writes == ["create TraefikService api-service-route-mirror", "patch IngressRoute api-service-route"]
    msg = error.msg
    assert msg.startswith("the Kubernetes API at https://k8s did not answer PATCH /x within 5 s.")
    assert "Done before that: create TraefikService api-service-route-mirror copying 20%" in msg
    if sent:
        assert "Unanswered (the API may or may not have applied it): patch IngressRoute api-service-route" in msg
        assert "either routes as before or already goes through the mirror api-service-route-mirror" in msg
    else:
        assert "Unanswered (it was not sent): patch IngressRoute api-service-route" in msg
        assert "The IngressRoute api-service-route is unchanged: users are routed as before" in msg
    assert "rerun this task once the API answers" in msg and "state=absent" in msg
    assert error.details["done"][0].startswith("create TraefikService api-service-route-mirror")
    assert error.details["unanswered"].startswith("patch IngressRoute api-service-route")
    assert error.details["not_done"] == []
    assert error.request_sent is sent


def test_attach_interrupted_at_the_first_write_lists_what_was_not_done() -> None:
    msg = interrupted(WORLD, ATTACH, fail_at=1)[1].msg
    assert "Nothing was written before that." in msg
    assert "Not done: patch IngressRoute api-service-route" in msg
    assert "is unchanged" in msg


@pytest.mark.parametrize("sent", [False, True], ids=["refused", "unanswered"])
def test_teardown_interrupted_after_the_restore_says_the_route_is_restored(sent: bool) -> None:
    kube, error = interrupted(ATTACHED, TEARDOWN, fail_at=2, sent=sent)

    assert kube.writes == ["patch IngressRoute api-service-route", "delete TraefikService api-service-route-mirror"]
    msg = error.msg
    assert "The IngressRoute api-service-route is restored: it no longer goes through the mirror" in msg
    assert "Unanswered" in msg and "delete TraefikService api-service-route-mirror" in msg
    assert "rerun this task (state=absent) once the API answers" in msg


def test_teardown_interrupted_at_the_restore_says_the_mirror_still_carries_the_route() -> None:
    msg = interrupted(ATTACHED, TEARDOWN, fail_at=1)[1].msg
    assert "still goes through the mirror api-service-route-mirror, which still exists" in msg
    assert "Not done: delete TraefikService api-service-route-mirror" in msg


def test_the_api_unreachable_before_any_write_says_nothing_was_written() -> None:
    class Down(FlakyKube):
        def traefik_group(self, requested: str | None = None) -> str:
            raise unavailable(False)

    with pytest.raises(ApiUnavailableError) as caught:
        run_mirror(Down(WORLD, fail_at=0, failure=unavailable(False)), ATTACH, check_mode=False)

    assert "Nothing was written before that." in caught.value.msg


def test_a_refused_write_still_undoes_the_runs_own_part() -> None:
    kube = FlakyKube(WORLD, fail_at=2, failure=DarklaunchError("admission webhook denied the patch"))

    with pytest.raises(DarklaunchError) as caught:
        run_mirror(kube, ATTACH, check_mode=False)

    assert not isinstance(caught.value, ApiUnavailableError)
    assert kube.writes[-1] == "delete TraefikService api-service-route-mirror"
    assert "undone" in caught.value.msg
