# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Launch reports kept in the cluster: naming, encoding and its size bound, which reports pruning deletes."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping
from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils import _report_store as store
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def body(route: str, launch_id: str, started: str, page: str = "<html>report</html>") -> dict[str, Any]:
    return store.report_body(
        name=store.report_name(route, launch_id),
        route=route,
        page=page,
        summary={"outcome": "passed", "route": route},
        annotations={"launch-id": launch_id, "started": started, "outcome": "passed", "owner": None},
    )


class FakeApi:
    """ConfigMaps in memory, with the label selector the API server applies."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.version = 0

    def list(
        self, kind: str, namespace: str | None, page_size: int = 500, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        self.calls.append(("list", kind))
        wanted = dict(part.split("=", 1) for part in (label_selector or "").split(",") if part)
        return [
            json.loads(json.dumps(obj))
            for (ns, _name), obj in sorted(self.objects.items())
            if namespace in (None, ns) and all(obj["metadata"]["labels"].get(k) == v for k, v in wanted.items())
        ]

    def create(self, kind: str, namespace: str | None, obj: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", obj["metadata"]["name"]))
        key = (str(namespace), obj["metadata"]["name"])
        assert key not in self.objects, "create of an existing ConfigMap"
        self.version += 1
        stored = json.loads(json.dumps(obj))
        stored["metadata"].update(namespace=namespace, resourceVersion=str(self.version))
        self.objects[key] = stored
        return stored

    def delete(self, kind: str, namespace: str | None, name: str, resource_version: str | None = None) -> None:
        self.calls.append(("delete", name))
        self.objects.pop((str(namespace), name), None)


def test_the_name_is_a_dns_subdomain_unique_per_launch_and_bounded() -> None:
    assert store.report_name("api-service-route", "20261127T151200Z-3f9c2a") == (
        "shadow-report-api-service-route-20261127t151200z-3f9c2a"
    )
    long_route = "r" * 250
    first, second = store.report_name(long_route, "launch-a"), store.report_name(long_route, "launch-b")
    assert len(first) <= 253 and len(second) <= 253 and first != second
    for name in (first, second, store.report_name("Odd_Route", "id:with.dots")):
        assert DNS_SUBDOMAIN.match(name), name


def test_the_route_label_is_a_valid_label_value_even_for_a_long_route() -> None:
    assert store.route_label("api-service-route") == "api-service-route"
    label = store.route_label("x" * 200)
    assert len(label) <= 63 and store.route_label("x" * 199) != label
    assert store.selector("api") == (
        "app.kubernetes.io/managed-by=darklaunch.traefik,app.kubernetes.io/component=launch-report,"
        "darklaunch.traefik/route=api"
    )


def test_the_labels_and_annotations_tell_the_launch() -> None:
    made = body("api", "L1", "2026-01-01T00:00:00.000Z")
    meta = made["metadata"]
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "darklaunch.traefik"
    assert meta["labels"]["darklaunch.traefik/route"] == "api"
    assert meta["annotations"]["darklaunch.traefik/report-outcome"] == "passed"
    assert meta["annotations"]["darklaunch.traefik/report-started"] == "2026-01-01T00:00:00.000Z"
    assert "darklaunch.traefik/report-owner" not in meta["annotations"]  # not given, not written
    assert json.loads(made["data"]["summary.json"]) == {"outcome": "passed", "route": "api"}


def test_a_small_page_is_kept_as_it_is() -> None:
    data, binary, encoding = store.encode_page("<html>é</html>")
    assert encoding == "plain" and binary == {} and store.decode_page({"data": data}) == "<html>é</html>"


def test_a_large_page_is_compressed_and_read_back_exactly() -> None:
    page = "<svg>" + "".join(f'<circle cx="{i}" cy="{i % 97}"/>' for i in range(40000)) + "</svg>"
    assert len(page) > store.PLAIN_LIMIT
    data, binary, encoding = store.encode_page(page)
    assert encoding == "gzip" and data == {}
    assert len(binary[store.GZIP_KEY]) < store.STORED_LIMIT * 4 // 3 + 4
    assert store.decode_page({"binaryData": binary}) == page


def test_a_page_too_large_even_compressed_is_not_kept_and_the_configmap_stays_far_under_1_mib() -> None:
    rng = random.Random(7)
    page = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _char in range(1_500_000))
    made = body("api", "L1", "2026-01-01T00:00:00.000Z", page)
    assert made["metadata"]["annotations"]["darklaunch.traefik/report-encoding"] == "omitted"
    assert store.decode_page(made) is None
    assert len(json.dumps(made)) < 64 * 1024


@pytest.mark.parametrize("size", [10_000, 300_000, 700_000])
def test_whatever_is_kept_is_under_the_bound(size: int) -> None:
    rng = random.Random(size)
    page = "".join(rng.choice("<>/ abcdefg0123456789") for _char in range(size))
    assert len(json.dumps(body("api", "L1", "t", page))) < 800 * 1024


def test_pruning_keeps_the_newest_by_the_launchs_start() -> None:
    reports = [body("api", f"L{i}", f"2026-01-0{i}T00:00:00.000Z") for i in (3, 1, 5, 2, 4)]
    names = {i: store.report_name("api", f"L{i}") for i in range(1, 6)}
    assert store.to_prune(reports, 5) == []
    assert store.to_prune(reports, 2) == [names[3], names[2], names[1]]
    # The report just written is kept even if its start sorts it among the old ones.
    assert names[1] not in store.to_prune(reports, 2, protect=names[1])
    assert len(store.to_prune(reports, 2, protect=names[1])) == 3
    with pytest.raises(DarklaunchError):
        store.to_prune(reports, 0)


def test_store_creates_prunes_and_is_idempotent() -> None:
    api = FakeApi()
    for i in range(1, 8):
        result = store.store_report(api, "prod", body("api", f"L{i}", f"2026-01-0{i}T00:00:00.000Z"), 3)
        assert result["action"] == "created"
    kept = store.list_reports(api, "prod", "api")
    assert [k["launch_id"] for k in kept] == ["L7", "L6", "L5"]
    again = store.store_report(api, "prod", body("api", "L7", "2026-01-07T00:00:00.000Z"), 3)
    assert again == {"changed": False, "action": "unchanged", "pruned": []}
    replaced = store.store_report(api, "prod", body("api", "L7", "2026-01-07T00:00:00.000Z", "<p>new</p>"), 3)
    assert replaced["action"] == "replaced" and store.read_report(api, "prod", "api")[1] == "<p>new</p>"
    # Only list, create and delete are used (the verbs docs/rbac/shadow-operator-role.yaml grants).
    assert {call[0] for call in api.calls} == {"list", "create", "delete"}


def test_other_routes_reports_are_never_pruned() -> None:
    api = FakeApi()
    store.store_report(api, "prod", body("other", "O1", "2020-01-01T00:00:00.000Z"), 1)
    for i in range(1, 4):
        store.store_report(api, "prod", body("api", f"L{i}", f"2026-01-0{i}T00:00:00.000Z"), 1)
    assert [k["route"] for k in store.list_reports(api, "prod")] == ["api", "other"]


def test_check_mode_writes_nothing_but_says_what_it_would_prune() -> None:
    api = FakeApi()
    for i in (1, 2):
        store.store_report(api, "prod", body("api", f"L{i}", f"2026-01-0{i}T00:00:00.000Z"), 2)
    planned = store.store_report(api, "prod", body("api", "L3", "2026-01-03T00:00:00.000Z"), 2, check_mode=True)
    assert planned["action"] == "created" and planned["pruned"] == [store.report_name("api", "L1")]
    assert len(api.objects) == 2


def test_reading_a_report_by_name_or_the_newest() -> None:
    api = FakeApi()
    for i in (1, 2):
        store.store_report(api, "prod", body("api", f"L{i}", f"2026-01-0{i}T00:00:00.000Z", f"<p>{i}</p>"), 5)
    assert store.read_report(api, "prod", "api")[1] == "<p>2</p>"
    assert store.read_report(api, "prod", "", store.report_name("api", "L1"))[1] == "<p>1</p>"
    with pytest.raises(DarklaunchError, match="no launch report of route nothing"):
        store.read_report(api, "prod", "nothing")
