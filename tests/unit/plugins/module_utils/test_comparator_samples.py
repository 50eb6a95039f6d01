"""One redacted sample per differing path from a comparator's samples (_comparator_samples), and the
comparator_samples module's answer when they cannot be read (never a failure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._comparator_samples import one_per_path, parse
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.modules.comparator_samples import read


def sample(request: str, *differences: tuple[str, str, str], label: str | None = None) -> dict[str, Any]:
    return {
        "time": "2026-12-05T02:00:00Z",
        "request": request,
        "request_headers": {"host": "shop.test", "x-forwarded-for": "10.1.2.3"},
        "status": {"primary": 200, "candidate": 500, "secondary": 200},
        "differences": [
            {"path": path, "primary": a, "candidate": b, **({"label": label} if label else {})}
            for path, a, b in differences
        ],
        "more_differences": 0,
        "noise": ["/timestamp"],
    }


def test_the_newest_sample_of_each_path_with_only_the_fields_the_report_shows() -> None:
    samples = [
        sample("GET /a HTTP/1.1", ("/price", "10", "11")),
        sample("GET /b HTTP/1.1", ("/price", "10", "12"), ("/items/3/id", "1", "2")),
        sample("GET /c HTTP/1.1", ("/items/0/price", "1", "2"), label="/items/*/price"),
    ]
    chosen = one_per_path(samples)
    assert chosen == {
        "/items/*/price": {
            "time": "2026-12-05T02:00:00Z", "request": "GET /c HTTP/1.1", "status": {"primary": 200, "candidate": 500},
            "path": "/items/0/price", "primary": "1", "candidate": "2",
        },
        "/price": {
            "time": "2026-12-05T02:00:00Z", "request": "GET /b HTTP/1.1", "status": {"primary": 200, "candidate": 500},
            "path": "/price", "primary": "10", "candidate": "12",
        },
        # Without a label (another comparator version), array indexes become * as the metric counts them.
        "/items/*/id": {
            "time": "2026-12-05T02:00:00Z", "request": "GET /b HTTP/1.1", "status": {"primary": 200, "candidate": 500},
            "path": "/items/3/id", "primary": "1", "candidate": "2",
        },
    }  # fmt: skip
    assert "10.1.2.3" not in json.dumps(chosen)  # request headers are never passed on
    assert list(one_per_path(samples, max_paths=1)) == ["/items/*/price"]


def test_secret_looking_values_are_redacted_again() -> None:
    chosen = one_per_path(
        [
            sample(
                "GET /u?api_key=k3y&page=2&session=s1 HTTP/1.1",
                ("/user/password", '"hunter2"', '"x"'),
                ("/n", "1", "2"),
            )
        ]
    )
    text = json.dumps(chosen)
    assert "k3y" not in text and "s1 " not in text and "hunter2" not in text
    assert chosen["/n"]["request"] == "GET /u?api_key=[redacted]&page=2&session=[redacted] HTTP/1.1"
    assert chosen["/user/password"]["primary"] == chosen["/user/password"]["candidate"] == "[redacted]"
    long = one_per_path([sample("GET /l HTTP/1.1", ("/v", "x" * 500, "y"))])["/v"]["primary"]
    assert long.endswith("...(truncated)") and len(long) < 250


def test_parse_takes_only_a_list() -> None:
    assert parse(b'[{"request": "GET / HTTP/1.1"}, 3]') == [{"request": "GET / HTTP/1.1"}]
    for body in (b"<html>", b'{"samples": []}'):
        with pytest.raises(ValueError):
            parse(body)


class Client:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.asked: list[tuple[str, str, str, str]] = []

    def service_proxy_get(self, namespace: str, service: str, port: str, path: str) -> bytes:
        self.asked.append((namespace, service, port, path))
        if isinstance(self.answer, Exception):
            raise self.answer
        return bytes(self.answer)


def test_the_module_reads_through_the_service_proxy_and_never_fails_on_unreadable_samples() -> None:
    client = Client(json.dumps([sample("GET / HTTP/1.1", ("/price", "10", "11"))]).encode())
    found = read(client, "prod", "shop-compare", "8099", 50)
    assert client.asked == [("prod", "shop-compare", "8099", "/__darklaunch/samples")]
    assert found["available"] and found["samples_read"] == 1 and list(found["by_path"]) == ["/price"]
    forbidden = DarklaunchError('user "ops" may not get services/proxy', details={"api_status": 403})
    for answer, said in (
        (forbidden, 'user "ops" may not get services/proxy'),
        (b"not json", "Service prod/shop-compare:8099 answered no samples list"),
    ):
        result = read(Client(answer), "prod", "shop-compare", "8099", 50)
        assert not result["available"] and result["by_path"] == {} and result["message"].startswith(said), result
