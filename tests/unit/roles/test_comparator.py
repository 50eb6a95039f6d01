# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The comparator (roles/shadow_launch/files/darklaunch_compare.py) against real local HTTP servers.

Primary, secondary and candidate are stub servers on 127.0.0.1 ephemeral ports whose answers each test
sets; the comparator runs in-process on its own ephemeral port. Every request has a short timeout, so a
regression fails the test instead of hanging it.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

PROGRAM = Path(__file__).resolve().parents[3] / "roles" / "shadow_launch" / "files" / "darklaunch_compare.py"

Reply = tuple[int, dict[str, str], bytes]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("darklaunch_compare", PROGRAM)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["darklaunch_compare"] = module
    spec.loader.exec_module(module)
    return module


dc = _load()


def json_reply(document: Any, status: int = 200) -> Reply:
    return status, {"Content-Type": "application/json"}, json.dumps(document).encode()


class Stub:
    """A backend whose answer is `reply(method, path, headers, body)`; it records every request."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.reply: Callable[[str, str, dict[str, str], bytes], Reply] = lambda *_: json_reply({"ok": True})
        self.release = threading.Event()  # set at teardown: wakes handlers told to wait
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                stub.requests.append((self.command, self.path, headers, body))
                status, reply_headers, reply_body = stub.reply(self.command, self.path, headers, body)
                self.send_response(status)
                for key, value in reply_headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply_body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply_body)

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Env:
    def __init__(self) -> None:
        self.primary, self.secondary, self.candidate = Stub("primary"), Stub("secondary"), Stub("candidate")
        self.servers: list[Any] = []

    def start(self, *extra: str) -> Any:
        argv = [
            "--listen", "127.0.0.1:0",
            "--primary", self.primary.url, "--secondary", self.secondary.url, "--candidate", self.candidate.url,
            "--timeout", "2", *extra,
        ]  # fmt: skip
        server = dc.make_server(argv)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.servers.append(server)
        self.port = server.server_address[1]
        self.comparator = server.comparator
        return server

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def results(self) -> dict[str, int]:
        return dict(self.comparator.results)

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        for stub in (self.primary, self.secondary, self.candidate):
            stub.close()


@pytest.fixture
def env() -> Iterator[Env]:
    environment = Env()
    try:
        yield environment
    finally:
        environment.close()


def only(results: dict[str, int], **expected: int) -> None:
    assert results == {name: expected.get(name, 0) for name in dc.RESULTS}


def answer(price: int, timestamp: int) -> Callable[..., Reply]:
    return lambda *_: json_reply({"price": price, "timestamp": timestamp, "items": [{"id": 1}]})


def test_same_answers_are_same(env: Env) -> None:
    env.start()
    status, headers, body = env.request("GET", "/items?x=1")
    assert (status, json.loads(body), headers["x-darklaunch-compare"]) == (200, {"ok": True}, "same")
    only(env.results(), same=1)
    assert [r[:2] for r in env.primary.requests] == [("GET", "/items?x=1")]
    assert len(env.secondary.requests) == len(env.candidate.requests) == 1


def test_different_status(env: Env) -> None:
    env.start()
    env.candidate.reply = lambda *_: json_reply({"ok": True}, status=500)
    status = env.request("GET", "/a")[0]
    assert status == 500  # the candidate's answer goes back to Traefik, which discards it
    only(env.results(), different=1)
    assert env.comparator.differences == {"status": 1}


def test_different_json_field_is_reported_with_both_values(env: Env) -> None:
    env.start()
    env.primary.reply = env.secondary.reply = lambda *_: json_reply({"items": [{"price": 10}, {"price": 20}]})
    env.candidate.reply = lambda *_: json_reply({"items": [{"price": 10}, {"price": 21}], "extra": None})
    env.request("GET", "/cart")
    only(env.results(), different=1)
    assert env.comparator.differences == {"/items/*/price": 1, "/extra": 1}
    (sample,) = json.loads(env.request("GET", "/__darklaunch/samples")[2])
    assert sample["request"] == "GET /cart HTTP/1.1"
    assert sample["status"] == {"primary": 200, "candidate": 200, "secondary": 200}
    assert {d["path"]: (d["primary"], d["candidate"]) for d in sample["differences"]} == {
        "/extra": ("(absent)", "null"),
        "/items/1/price": ("20", "21"),
    }
    # Each difference also names the path as the metric counts it, so the report can match it to its table.
    assert {d["path"]: d["label"] for d in sample["differences"]} == {
        "/extra": "/extra",
        "/items/1/price": "/items/*/price",
    }


def test_noise_between_primary_and_secondary_is_cancelled(env: Env) -> None:
    env.start()
    # The timestamp differs between two calls to the stable version: noise.
    env.primary.reply, env.secondary.reply, env.candidate.reply = answer(10, 1), answer(10, 2), answer(10, 3)
    env.request("GET", "/p")
    only(env.results(), noise=1)
    # A changed price is a regression even while the timestamp is noise.
    env.candidate.reply = answer(11, 3)
    env.request("GET", "/p")
    only(env.results(), noise=1, different=1)
    assert env.comparator.differences == {"/price": 1}
    (sample,) = env.comparator.samples
    assert sample["noise"] == ["/timestamp"]


def test_ignore_lists(env: Env) -> None:
    env.start("--ignore-json-pointer", "/meta", "--ignore-json-pointer", "/items/*/id", "--compare-header", "*",
              "--ignore-header", "Date", "--ignore-header", "X-Request-Id", "--ignore-header", "Server")  # fmt: skip
    n = iter(range(1000))

    def varying(*_: Any) -> Reply:
        i = next(n)
        status, headers, body = json_reply({"meta": {"at": i}, "items": [{"id": i, "v": 1}]})
        return status, {**headers, "X-Request-Id": str(i)}, body

    env.primary.reply = env.secondary.reply = env.candidate.reply = varying
    env.request("GET", "/i")
    only(env.results(), same=1)
    env.candidate.reply = lambda *_: (200, {"Content-Type": "application/json", "X-New": "1"}, b'{"items":[{"v":1}]}')
    env.request("GET", "/i")
    only(env.results(), same=1, different=1)
    assert env.comparator.differences == {"header:x-new": 1}


def test_non_json_bodies_are_compared_by_bytes(env: Env) -> None:
    env.start()
    env.primary.reply = env.secondary.reply = lambda *_: (200, {"Content-Type": "text/html"}, b"<p>a</p>")
    env.candidate.reply = lambda *_: (200, {"Content-Type": "text/html"}, b"<p>b</p>")
    env.request("GET", "/")
    only(env.results(), different=1)
    assert env.comparator.differences == {"body": 1}


def test_unsafe_method_goes_to_the_candidate_only(env: Env) -> None:
    env.start()
    status = env.request("POST", "/orders", body=b'{"n":1}', headers={"Content-Type": "application/json"})[0]
    assert status == 200
    env.request("DELETE", "/orders/1")
    assert [(m, p, b) for m, p, _headers, b in env.candidate.requests] == [
        ("POST", "/orders", b'{"n":1}'),
        ("DELETE", "/orders/1", b""),
    ]
    assert env.primary.requests == env.secondary.requests == []
    only(env.results(), skipped=2)
    assert env.comparator.upstream_calls == {"candidate": 2, "primary": 0, "secondary": 0}


def test_timeout_is_an_error_and_never_hangs(env: Env) -> None:
    env.start("--timeout", "0.3")

    def slow(*_: Any) -> Reply:
        env.primary.release.wait(5)
        return json_reply({})

    env.primary.reply = slow
    started = time.monotonic()
    status = env.request("GET", "/slow")[0]
    assert time.monotonic() - started < 1.5
    assert status == 200  # the candidate answered; the comparison could not be made
    only(env.results(), error=1)
    assert env.comparator.upstream_errors == {"candidate": 0, "primary": 1, "secondary": 0}
    env.candidate.reply = slow
    started = time.monotonic()
    assert env.request("GET", "/slow")[0] == 502
    assert time.monotonic() - started < 1.5
    only(env.results(), error=2)


def test_unreachable_candidate_is_an_error(env: Env) -> None:
    env.candidate.close()
    env.start()
    assert env.request("GET", "/x")[0] == 502
    only(env.results(), error=1)


def test_body_over_max_is_skipped(env: Env) -> None:
    env.start("--max-body", "100")
    env.candidate.reply = lambda *_: (200, {"Content-Type": "text/plain"}, b"x" * 101)
    env.request("GET", "/big")
    env.candidate.reply = lambda *_: json_reply({"ok": True})
    assert env.request("POST", "/up", body=b"y" * 200)[0] == 413
    only(env.results(), skipped=2)


def test_metrics_text_format(env: Env) -> None:
    env.start()
    env.candidate.reply = lambda *_: json_reply({"ok": False, 'we"ird\\': 1})
    env.request("GET", "/m")
    for path in ("/__darklaunch/metrics", "/metrics"):
        status, headers, body = env.request("GET", path)
        assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
        samples: dict[str, float] = {}
        for line in body.decode().splitlines():
            if line.startswith("#"):
                assert re.fullmatch(r"# (HELP|TYPE) darklaunch_compare_\w+ .+", line)
                continue
            match = re.fullmatch(r'([a-z_]+(?:\{[a-z_]+="(?:[^"\\]|\\.)*"\})?) (\d+(?:\.\d+)?)', line)
            assert match, line
            samples[match.group(1)] = float(match.group(2))
        assert samples['darklaunch_compare_requests_total{result="different"}'] == 1
        assert samples['darklaunch_compare_requests_total{result="same"}'] == 0
        assert samples['darklaunch_compare_differences_total{path="/ok"}'] == 1
        assert samples['darklaunch_compare_differences_total{path="/we\\"ird\\\\"}'] == 1
        assert samples["darklaunch_compare_inflight"] == 0
    # The control paths are not mirrored copies: nothing reached the upstreams for them.
    assert len(env.candidate.requests) == 1


def test_route_labels_every_series(env: Env) -> None:
    # The launch's gate selects a route's comparator by this label, whatever Prometheus' scrape config adds.
    env.start("--route", "prod/shop")
    env.request("GET", "/m")
    lines = [line for line in env.request("GET", "/metrics")[2].decode().splitlines() if not line.startswith("#")]
    assert lines and all('darklaunch_route="prod/shop"' in line for line in lines)
    assert 'darklaunch_compare_requests_total{result="same",darklaunch_route="prod/shop"} 1' in lines
    assert 'darklaunch_compare_inflight{darklaunch_route="prod/shop"} 0' in lines


def test_control_prefix_only_mirrors_plain_metrics(env: Env) -> None:
    env.start("--control-prefix-only")
    status, _headers, body = env.request("GET", "/metrics")
    assert (status, json.loads(body)) == (200, {"ok": True})
    only(env.results(), same=1)


def test_samples_are_redacted(env: Env) -> None:
    env.start("--redact-header", "X-Tenant")
    env.candidate.reply = lambda *_: json_reply({"ok": False, "password": "hunter2"})
    env.primary.reply = env.secondary.reply = lambda *_: json_reply({"ok": True, "password": "swordfish"})
    secret = "Bearer s3cr3t-T0KEN"
    env.request(
        "GET",
        "/u?access_token=abc123&page=2&password=pw1",
        headers={"Authorization": secret, "Cookie": "sid=c00kie", "X-Tenant": "acme-private", "Accept": "x/y"},
    )
    assert env.request("GET", "/__darklaunch/samples")[2] == env.request("GET", "/samples")[2]
    raw = env.request("GET", "/__darklaunch/samples")[2].decode()
    for leaked in ("s3cr3t", "c00kie", "acme-private", "abc123", "pw1", "hunter2", "swordfish"):
        assert leaked not in raw
    (sample,) = json.loads(raw)
    assert sample["request"] == "GET /u?access_token=[redacted]&page=2&password=[redacted] HTTP/1.1"
    assert sample["request_headers"]["accept"] == "x/y"
    assert not {"authorization", "cookie", "x-tenant"} & set(sample["request_headers"])
    # The upstreams still received the request as it was.
    assert env.primary.requests[0][2]["authorization"] == secret


def test_samples_are_bounded_and_values_truncated(env: Env) -> None:
    env.start("--samples", "3", "--max-value-chars", "10", "--max-paths", "2")
    env.candidate.reply = lambda _m, path, *_: json_reply({path.strip("/"): "v" * 50})
    for i in range(6):
        env.request("GET", f"/k{i}")
    samples = json.loads(env.request("GET", "/samples")[2])
    assert [s["request"] for s in samples] == [f"GET /k{i} HTTP/1.1" for i in (3, 4, 5)]
    assert samples[0]["differences"][0]["candidate"] == '"vvvvvvvvv...(truncated)'
    assert env.comparator.differences == {"/k0": 1, "/ok": 6, "other": 5}  # 2 distinct paths, then "other"


def test_max_inflight_answers_503_instead_of_queueing(env: Env) -> None:
    env.start("--max-inflight", "1")
    entered = threading.Event()

    def blocked(*_: Any) -> Reply:
        entered.set()
        env.candidate.release.wait(5)
        return json_reply({"ok": True})

    env.candidate.reply = blocked
    first = threading.Thread(target=env.request, args=("GET", "/first"), daemon=True)
    first.start()
    assert entered.wait(2)
    assert env.comparator.inflight == 1
    started = time.monotonic()
    status, headers, _body = env.request("GET", "/second")
    assert (status, headers["x-darklaunch-compare"]) == (503, "skipped")
    assert time.monotonic() - started < 1
    only(env.results(), skipped=1)
    env.candidate.release.set()
    first.join(3)
    assert env.comparator.inflight == 0
    only(env.results(), skipped=1, same=1)


def test_head_and_hop_by_hop_headers(env: Env) -> None:
    env.start()
    status, _headers, body = env.request(
        "HEAD", "/h", headers={"Connection": "keep-alive, X-Hop", "X-Hop": "1", "X-K": "2"}
    )
    assert (status, body) == (200, b"")
    only(env.results(), same=1)
    for stub in (env.primary, env.secondary, env.candidate):
        ((method, _path, headers, _body),) = stub.requests
        assert method == "HEAD" and headers["x-k"] == "2" and "x-hop" not in headers


def test_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    out = subprocess.run(
        [sys.executable, str(PROGRAM), "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert out.returncode == 0 and "--ignore-json-pointer" in out.stdout
    assert PROGRAM.stat().st_mode & 0o111
    assert PROGRAM.read_text(encoding="utf-8").startswith("#!/usr/bin/env python\n")  # ansible-test sanity: shebang
    for argv, complaint in (
        (["--listen", "x"], "--listen"),
        (["--listen", ":0", "--primary", "ftp://h"], "--primary"),
        (["--listen", ":0", "--timeout", "0"], "--timeout"),
        (["--listen", ":0", "--ignore-json-pointer", "timestamp"], "JSON pointer"),
        (["--listen", ":0", "--route", "shop"], "--route"),
    ):
        base = {"--primary": "http://a", "--secondary": "http://b", "--candidate": "http://c"}
        for i in range(0, len(argv), 2):
            base[argv[i]] = argv[i + 1]
        with pytest.raises(SystemExit) as exit_info:
            dc.make_server([word for pair in base.items() for word in pair])
        assert exit_info.value.code == 2
        assert complaint in capsys.readouterr().err


def test_bad_bodies_never_crash_it(env: Env) -> None:
    env.start()
    deep = b"[" * 5000 + b"]" * 5000
    env.primary.reply = env.secondary.reply = lambda *_: (200, {"Content-Type": "application/json"}, deep)
    env.candidate.reply = lambda *_: (200, {"Content-Type": "application/json"}, b"{not json")
    env.request("GET", "/bad")
    only(env.results(), different=1)
    assert env.comparator.differences == {"body": 1}
    # Ancestor noise: primary and secondary differ at /meta, so the candidate's /meta/at is noise.
    env.primary.reply = lambda *_: json_reply({"meta": {"at": 1}})
    env.secondary.reply = lambda *_: json_reply({"meta": "x"})
    env.candidate.reply = lambda *_: json_reply({"meta": {"at": 2}})
    env.request("GET", "/meta")
    only(env.results(), different=1, noise=1)
    assert env.request("GET", "/__darklaunch/healthz")[:3:2] == (200, b"ok\n")
