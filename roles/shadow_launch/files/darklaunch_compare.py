#!/usr/bin/env python
# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""darklaunch_compare: judge a shadow's answers, not only its error rate.

Traefik copies a share of the users' requests to this program (the mirror's target) and discards its
answers. For safe methods the program sends the same request to the candidate (the shadow), the primary
(the main service) and a secondary (the main again, or a second stable instance), concurrently and each
with a timeout, and compares status, chosen headers and bodies (JSON field by field, other content types
byte for byte). A difference that also appears between primary and secondary is noise (timestamps, ids),
not a regression. Unsafe methods go to the candidate only and are never replayed to the main service.

Results are exported as Prometheus metrics and a bounded, redacted sample of differing pairs:
GET /__darklaunch/metrics, /__darklaunch/samples, /__darklaunch/healthz (and /metrics, /samples unless
--control-prefix-only). Standard library only: runs on a stock Python 3 image. See docs/comparator.md.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import http.client
import json
import re
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

__version__ = "1.0.0"

RESULTS = ("same", "different", "noise", "skipped", "error")
UPSTREAMS = ("candidate", "primary", "secondary")
CONTROL_PREFIX = "/__darklaunch"
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Not forwarded upstream: recomputed here (content-length), handled here (expect), or making the three
# answers incomparable (accept-encoding: compressed bodies cannot be compared field by field).
NOT_FORWARDED = HOP_BY_HOP | {"content-length", "expect", "accept-encoding"}
NOT_RETURNED = HOP_BY_HOP | {"content-length"}  # nor compared with --compare-header '*'
NOT_COPIED_BACK = NOT_RETURNED | {"date", "server"}  # this server sends its own
DEFAULT_REDACT_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie")
# Query keys, header names and JSON keys whose values are never kept in samples.
SECRET_NAME = re.compile(r"token|passw|pwd|secret|key|auth|session|cookie|signature|credential|jwt", re.IGNORECASE)
REDACTED = "[redacted]"
ABSENT = "(absent)"
MAX_DIFFS = 1000  # differences collected per comparison (CPU and memory bound)
MAX_SAMPLE_DIFFS = 20  # differences kept per sample
MAX_SAMPLE_HEADERS = 30


class Upstream:
    """One service the comparator calls: scheme, host, port and an optional base path."""

    def __init__(self, name: str, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--{name}: expected http://HOST[:PORT][/BASE] or https://..., got {url!r}")
        self.name = name
        self.url = url
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.base = parts.path.rstrip("/")

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


class Answer:
    """An upstream's answer: status, headers, body (at most max_body bytes) or the reason it failed."""

    __slots__ = ("body", "error", "headers", "status", "too_big")

    def __init__(
        self,
        status: int = 0,
        headers: Optional[list[tuple[str, str]]] = None,
        body: bytes = b"",
        too_big: bool = False,
        error: str = "",
    ) -> None:
        self.status = status
        self.headers = headers or []
        self.body = body
        self.too_big = too_big
        self.error = error

    def header(self, name: str) -> Optional[str]:
        values = [value for key, value in self.headers if key.lower() == name]
        return ", ".join(values) if values else None


class Diff:
    """One difference: where ('status', 'header:NAME', 'body' or a JSON pointer) and both values."""

    __slots__ = ("label", "other", "primary", "tokens", "where")

    def __init__(self, where: str, primary: Any, other: Any, tokens: Optional[tuple[Any, ...]] = None) -> None:
        self.where = where
        self.primary = primary
        self.other = other
        self.tokens = tokens  # JSON pointer tokens (str keys, int indexes); None for status/header/body
        if tokens is None:
            self.label = where
        else:
            self.label = pointer(tuple("*" if isinstance(token, int) else token for token in tokens))


def pointer(tokens: tuple[Any, ...]) -> str:
    return "".join("/" + str(token).replace("~", "~0").replace("/", "~1") for token in tokens)


def parse_pointer_pattern(text: str) -> tuple[str, ...]:
    if text in ("", "/"):
        raise ValueError("--ignore-json-pointer: the whole document cannot be ignored")
    if not text.startswith("/"):
        raise ValueError(f"--ignore-json-pointer: a JSON pointer starts with '/': {text!r}")
    return tuple(part.replace("~1", "/").replace("~0", "~") for part in text[1:].split("/"))


def _is_noise(diff: Diff, noise: list[Diff]) -> bool:
    for other in noise:
        if other.where == diff.where:
            return True
        if diff.tokens is not None:
            if other.where == "body":
                return True
            if other.tokens is not None and diff.tokens[: len(other.tokens)] == other.tokens:
                return True
    return False


def _same_json(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


class Config:
    """The command line, checked."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.listen_host, self.listen_port = parse_listen(args.listen)
        self.primary = Upstream("primary", args.primary)
        self.secondary = Upstream("secondary", args.secondary)
        self.candidate = Upstream("candidate", args.candidate)
        self.ignore_pointers = [parse_pointer_pattern(text) for text in args.ignore_json_pointer]
        self.ignore_headers = {name.strip().lower() for name in args.ignore_header}
        compare = [name.strip().lower() for name in (args.compare_header or ["content-type"])]
        self.compare_all_headers = "*" in compare
        self.compare_headers = [name for name in compare if name != "*" and name not in self.ignore_headers]
        self.safe_methods = {m.strip().upper() for m in ",".join(args.safe_methods).split(",") if m.strip()}
        self.redact_headers = set(DEFAULT_REDACT_HEADERS) | {name.strip().lower() for name in args.redact_header}
        self.redact_query = {key.strip().lower() for key in args.redact_query}
        for name, value in (("--timeout", args.timeout), ("--max-body", args.max_body)):
            if value <= 0:
                raise ValueError(f"{name} must be positive")
        for name, value in (("--samples", args.samples), ("--max-paths", args.max_paths)):
            if value < 0:
                raise ValueError(f"{name} must not be negative")
        if args.max_inflight < 1:
            raise ValueError("--max-inflight must be at least 1")
        self.timeout = float(args.timeout)
        self.max_body = int(args.max_body)
        self.samples = int(args.samples)
        self.max_paths = int(args.max_paths)
        self.max_inflight = int(args.max_inflight)
        self.max_value_chars = max(0, int(args.max_value_chars))
        self.control_prefix_only = bool(args.control_prefix_only)
        self.access_log = bool(args.access_log)
        route = (args.route or "").strip()
        if route and (route.count("/") != 1 or not all(route.split("/"))):
            raise ValueError(f"--route: expected NAMESPACE/NAME, got {args.route!r}")
        # Every series carries the route, so the launch's gate selects this comparator's metrics whatever
        # labels Prometheus' scrape configuration adds (or does not add).
        self.route_label = f'darklaunch_route="{_label(route)}"' if route else ""


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen: expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class Comparator:
    """Calls the three upstreams, judges the answers, keeps the counters and samples (thread-safe)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.inflight = 0
        self.results = dict.fromkeys(RESULTS, 0)
        self.upstream_errors = dict.fromkeys(UPSTREAMS, 0)
        self.upstream_calls = dict.fromkeys(UPSTREAMS, 0)
        self.differences: dict[str, int] = {}
        self.samples: collections.deque[dict[str, Any]] = collections.deque(maxlen=config.samples)
        # Each admitted request uses at most three workers; requests beyond --max-inflight never queue here.
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=3 * config.max_inflight + 3, thread_name_prefix="darklaunch-upstream"
        )

    # -- admission and counters ------------------------------------------------------------------------
    def enter(self) -> bool:
        with self.lock:
            if self.inflight >= self.config.max_inflight:
                return False
            self.inflight += 1
            return True

    def leave(self) -> None:
        with self.lock:
            self.inflight -= 1

    def count(self, result: str, diffs: Optional[list[Diff]] = None, sample: Optional[dict[str, Any]] = None) -> None:
        with self.lock:
            self.results[result] += 1
            for label in sorted({diff.label for diff in diffs or []}):
                if label not in self.differences and len(self.differences) >= self.config.max_paths:
                    label = "other"
                self.differences[label] = self.differences.get(label, 0) + 1
            if sample is not None and self.config.samples:
                self.samples.append(sample)

    # -- upstream calls --------------------------------------------------------------------------------
    def _fetch(
        self,
        upstream: Upstream,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: Optional[bytes],
        holder: list[Any],
    ) -> Answer:
        conn = upstream.connection(self.config.timeout)
        holder.append(conn)
        try:
            conn.putrequest(method, upstream.base + target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            declared = response.getheader("Content-Length", "")
            if declared.isdigit() and int(declared) > self.config.max_body:
                return Answer(response.status, response.getheaders(), b"", too_big=True)
            data = response.read(self.config.max_body + 1)
            if len(data) > self.config.max_body:
                return Answer(response.status, response.getheaders(), b"", too_big=True)
            return Answer(response.status, response.getheaders(), data)
        finally:
            conn.close()

    def call(
        self, upstreams: list[Upstream], method: str, target: str, headers: list[tuple[str, str]], body: Optional[bytes]
    ) -> dict[str, Answer]:
        """Call the upstreams concurrently; every call ends by the deadline, answered or as an error."""
        deadline = time.monotonic() + self.config.timeout
        holders: dict[str, list[Any]] = {u.name: [] for u in upstreams}
        futures = {
            u.name: self.pool.submit(self._fetch, u, method, target, headers, body, holders[u.name]) for u in upstreams
        }
        answers: dict[str, Answer] = {}
        for name, future in futures.items():
            try:
                answers[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except concurrent.futures.TimeoutError:
                future.cancel()
                for conn in holders[name]:
                    _abort(conn)
                answers[name] = Answer(error=f"timeout after {self.config.timeout:g}s")
            except Exception as exc:  # any failure of one upstream is an 'error' result
                answers[name] = Answer(error=f"{type(exc).__name__}: {exc}"[:200])
        with self.lock:
            for name, answer in answers.items():
                self.upstream_calls[name] += 1
                if answer.error:
                    self.upstream_errors[name] += 1
        return answers

    # -- comparison ------------------------------------------------------------------------------------
    def _ignored(self, tokens: tuple[Any, ...]) -> bool:
        for pattern in self.config.ignore_pointers:
            if len(pattern) == len(tokens) and all(
                part in ("*", str(token)) for part, token in zip(pattern, tokens, strict=True)
            ):
                return True
        return False

    def _walk(self, a: Any, b: Any, tokens: tuple[Any, ...], out: list[Diff]) -> None:
        if len(out) >= MAX_DIFFS or (tokens and self._ignored(tokens)):
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                self._walk(a.get(key, _ABSENT), b.get(key, _ABSENT), (*tokens, key), out)
        elif isinstance(a, list) and isinstance(b, list):
            for index in range(max(len(a), len(b))):
                self._walk(
                    a[index] if index < len(a) else _ABSENT,
                    b[index] if index < len(b) else _ABSENT,
                    (*tokens, index),
                    out,
                )
        elif a is _ABSENT or b is _ABSENT or not _same_json(a, b):
            out.append(Diff(pointer(tokens), a, b, tokens))

    def _headers_to_compare(self, a: Answer, b: Answer) -> list[str]:
        if not self.config.compare_all_headers:
            return self.config.compare_headers
        names = {pair[0].lower() for pair in a.headers} | {pair[0].lower() for pair in b.headers}
        names -= NOT_RETURNED | self.config.ignore_headers
        return sorted(names | set(self.config.compare_headers))

    def differences_between(self, a: Answer, b: Answer) -> list[Diff]:
        out: list[Diff] = []
        if a.status != b.status:
            out.append(Diff("status", a.status, b.status))
        for name in self._headers_to_compare(a, b):
            if a.header(name) != b.header(name):
                out.append(Diff("header:" + name, a.header(name), b.header(name)))
        if a.body != b.body:
            ja, jb = _as_json(a), _as_json(b)
            if ja is not _NOT_JSON and jb is not _NOT_JSON:
                self._walk(ja, jb, (), out)
            else:
                out.append(Diff("body", _body_summary(a.body), _body_summary(b.body)))
        return out

    def judge(self, answers: dict[str, Answer]) -> tuple[str, list[Diff], list[Diff]]:
        """('same'|'different'|'noise'|'skipped'|'error', regressions, noise) for one request."""
        if any(answer.error for answer in answers.values()):
            return "error", [], []
        if any(answer.too_big for answer in answers.values()):
            return "skipped", [], []
        found = self.differences_between(answers["primary"], answers["candidate"])
        if not found:
            return "same", [], []
        stable = self.differences_between(answers["primary"], answers["secondary"])
        noise = [diff for diff in found if _is_noise(diff, stable)]
        real = [diff for diff in found if not _is_noise(diff, stable)]
        return ("different" if real else "noise"), real, noise

    # -- samples ---------------------------------------------------------------------------------------
    def _value(self, diff: Diff, value: Any) -> Any:
        limit = self.config.max_value_chars
        if limit == 0:
            return None
        if diff.where.startswith("header:") and diff.where[7:] in self.config.redact_headers:
            return REDACTED
        if diff.tokens and any(isinstance(t, str) and SECRET_NAME.search(t) for t in diff.tokens):
            return REDACTED
        text = ABSENT if value is _ABSENT else value if isinstance(value, str) and diff.tokens is None else None
        if text is None:
            text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        return text if len(text) <= limit else text[:limit] + "...(truncated)"

    def sample(
        self, method: str, target: str, version: str, headers: list[tuple[str, str]], answers: dict[str, Answer],
        real: list[Diff], noise: list[Diff],
    ) -> dict[str, Any]:  # fmt: skip
        kept = {}
        for name, value in headers[:MAX_SAMPLE_HEADERS]:
            lower = name.lower()
            if lower in self.config.redact_headers or lower in HOP_BY_HOP or SECRET_NAME.search(lower):
                continue
            kept[lower] = value[:200]
        return {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "request": f"{method} {self.redact_target(target)} {version}",
            "request_headers": kept,
            "status": {name: answers[name].status for name in ("primary", "candidate", "secondary")},
            "differences": [
                # label: the path as darklaunch_compare_differences_total counts it (array indexes as *).
                {
                    "path": d.where,
                    "label": d.label,
                    "primary": self._value(d, d.primary),
                    "candidate": self._value(d, d.other),
                }
                for d in real[:MAX_SAMPLE_DIFFS]
            ],
            "more_differences": max(0, len(real) - MAX_SAMPLE_DIFFS),
            "noise": sorted({d.where for d in noise})[:MAX_SAMPLE_DIFFS],
        }

    def redact_target(self, target: str) -> str:
        path, sep, query = target.partition("?")
        if not sep:
            return path
        pairs = []
        for part in query.split("&"):
            key, eq, value = part.partition("=")
            name = urllib.parse.unquote_plus(key).lower()
            if eq and (name in self.config.redact_query or SECRET_NAME.search(name)):
                value = REDACTED
            pairs.append(key + eq + value)
        return path + "?" + "&".join(pairs)

    # -- control endpoints -----------------------------------------------------------------------------
    def metrics_text(self) -> str:
        with self.lock:
            results = dict(self.results)
            diffs = dict(self.differences)
            errors = dict(self.upstream_errors)
            calls = dict(self.upstream_calls)
            inflight = self.inflight
        lines = [
            "# HELP darklaunch_compare_requests_total Mirrored requests received, by comparison result.",
            "# TYPE darklaunch_compare_requests_total counter",
        ]
        route = "," + self.config.route_label if self.config.route_label else ""
        lines += [f'darklaunch_compare_requests_total{{result="{r}"{route}}} {results[r]}' for r in RESULTS]
        lines += [
            "# HELP darklaunch_compare_differences_total Requests whose candidate answer differed from the primary's"
            " (noise excluded), by JSON pointer (array indexes as *), 'status', 'header:NAME' or 'body'.",
            "# TYPE darklaunch_compare_differences_total counter",
        ]
        lines += [
            f'darklaunch_compare_differences_total{{path="{_label(p)}"{route}}} {n}' for p, n in sorted(diffs.items())
        ]
        lines += [
            "# HELP darklaunch_compare_upstream_calls_total Calls to each upstream.",
            "# TYPE darklaunch_compare_upstream_calls_total counter",
        ]
        lines += [f'darklaunch_compare_upstream_calls_total{{upstream="{u}"{route}}} {calls[u]}' for u in UPSTREAMS]
        lines += [
            "# HELP darklaunch_compare_upstream_errors_total Failed or timed-out calls to each upstream.",
            "# TYPE darklaunch_compare_upstream_errors_total counter",
        ]
        lines += [f'darklaunch_compare_upstream_errors_total{{upstream="{u}"{route}}} {errors[u]}' for u in UPSTREAMS]
        lines += [
            "# HELP darklaunch_compare_inflight Mirrored requests being handled now.",
            "# TYPE darklaunch_compare_inflight gauge",
            f"darklaunch_compare_inflight{{{self.config.route_label}}} {inflight}"
            if self.config.route_label
            else f"darklaunch_compare_inflight {inflight}",
        ]
        return "\n".join(lines) + "\n"

    def samples_json(self) -> str:
        with self.lock:
            samples = list(self.samples)
        return json.dumps(samples, ensure_ascii=False, indent=1)

    def control_path(self, method: str, path: str) -> Optional[str]:
        """The control endpoint a request asks for, or None when it is a mirrored copy to handle."""
        if method not in ("GET", "HEAD"):
            return None
        if path.startswith(CONTROL_PREFIX + "/"):
            return path[len(CONTROL_PREFIX) :]
        if not self.config.control_prefix_only and path in ("/metrics", "/samples"):
            return path
        return None


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_ABSENT: Any = _Marker("ABSENT")
_NOT_JSON: Any = _Marker("NOT_JSON")


def _as_json(answer: Answer) -> Any:
    media = (answer.header("content-type") or "").split(";")[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        return _NOT_JSON
    try:
        return json.loads(answer.body.decode("utf-8"))
    except (ValueError, RecursionError):
        return _NOT_JSON


def _body_summary(body: bytes) -> str:
    return f"{len(body)} bytes: " + body[:400].decode("utf-8", "replace")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _abort(conn: http.client.HTTPConnection) -> None:
    """Wake a worker blocked on this connection (close() alone does not interrupt a blocked recv)."""
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    """One connection from Traefik's mirror (or from Prometheus / an operator for the control paths)."""

    protocol_version = "HTTP/1.1"
    server_version = "darklaunch-compare/" + __version__
    timeout = 60  # seconds a client connection may stay idle or stall while sending a request
    server: Server

    def __getattr__(self, name: str) -> Any:
        # Any method (GET, POST, PROPFIND, ...) is handled by _handle.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def setup(self) -> None:
        super().setup()
        # The headers and the body of an answer are two writes: with Nagle's algorithm on, the body waits for
        # the client's delayed ACK of the headers, about 40 ms per answer (bench/comparator.py measured it).
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.comparator.config.access_log:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]], close: bool = False) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _read_body(self) -> Optional[bytes]:
        """The request body, b'' when there is none, None when it is bigger than --max-body."""
        limit = self.server.comparator.config.max_body
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(1024)
                length = int(line.split(b";")[0].strip() or b"0", 16)
                if length == 0:
                    while self.rfile.readline(1024).strip():
                        pass  # trailers
                    return b"".join(chunks)
                size += length
                if size > limit:
                    return None
                chunks.append(self.rfile.read(length))
                self.rfile.readline(16)
        declared = self.headers.get("Content-Length")
        if declared is None:
            return b""
        length = int(declared)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > limit:
            return None
        return self.rfile.read(length)

    def _handle(self) -> None:
        comparator = self.server.comparator
        config = comparator.config
        method = self.command.upper()
        target = self.path
        if not target.startswith("/"):  # absolute-form request target
            parts = urllib.parse.urlsplit(target)
            target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        control = comparator.control_path(method, target.partition("?")[0])
        if control is not None:
            self._control(control)
            return
        if not comparator.enter():
            comparator.count("skipped")
            self._send(503, b"darklaunch_compare: busy (--max-inflight)\n", [("X-Darklaunch-Compare", "skipped")], True)
            return
        try:
            status, body, headers, close = self._mirror(comparator, config, method, target)
        finally:
            comparator.leave()  # counted and out of the in-flight gauge before the copy is answered
        self._send(status, body, headers, close)

    def _mirror(
        self, comparator: Comparator, config: Config, method: str, target: str
    ) -> tuple[int, bytes, list[tuple[str, str]], bool]:
        """Handle one copy; return the answer to send back (status, body, headers, close the connection)."""
        try:
            body = self._read_body()
        except ValueError:
            comparator.count("error")
            return 400, b"darklaunch_compare: bad request body\n", [], True
        if body is None:
            comparator.count("skipped")
            return 413, b"darklaunch_compare: request body over --max-body\n", [], True
        connection_tokens = {t.strip().lower() for t in self.headers.get("Connection", "").split(",")}
        headers = [
            (name, value)
            for name, value in self.headers.items()
            if name.lower() not in NOT_FORWARDED and name.lower() not in connection_tokens
        ]
        send_body = body if body or "Content-Length" in self.headers or "Transfer-Encoding" in self.headers else None
        if method not in config.safe_methods:
            answers = comparator.call([config.candidate], method, target, headers, send_body)
            result = "skipped"
            comparator.count(result)
        else:
            answers = comparator.call(
                [config.candidate, config.primary, config.secondary], method, target, headers, send_body
            )
            sample = None
            try:
                result, real, noise = comparator.judge(answers)
                if result == "different":
                    sample = comparator.sample(method, target, self.request_version, headers, answers, real, noise)
            except Exception as exc:  # a body the comparison cannot handle (too deep) is an error, not a crash
                self.log_error("comparison failed: %s: %s", type(exc).__name__, exc)
                result, real = "error", []
            comparator.count(result, real, sample)
        candidate = answers["candidate"]
        if candidate.error:
            message = f"darklaunch_compare: candidate: {candidate.error}\n".encode()
            return 502, message, [("X-Darklaunch-Compare", result)], False
        returned = [(k, v) for k, v in candidate.headers if k.lower() not in NOT_COPIED_BACK]
        return candidate.status, candidate.body, [*returned, ("X-Darklaunch-Compare", result)], False

    def _control(self, what: str) -> None:
        comparator = self.server.comparator
        if what == "/metrics":
            self._send(
                200, comparator.metrics_text().encode(), [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")]
            )
        elif what == "/samples":
            self._send(200, comparator.samples_json().encode(), [("Content-Type", "application/json")])
        elif what == "/healthz":
            self._send(200, b"ok\n", [("Content-Type", "text/plain")])
        else:
            self._send(404, b"unknown control path\n", [("Content-Type", "text/plain")])


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, comparator: Comparator) -> None:
        self.comparator = comparator
        host = comparator.config.listen_host
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, comparator.config.listen_port), Handler)

    def server_close(self) -> None:
        super().server_close()
        self.comparator.pool.shutdown(wait=False, cancel_futures=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="darklaunch_compare",
        description=(
            "Receive the copies Traefik mirrors to a shadow, replay safe requests to the candidate, the primary and "
            "the secondary, compare the answers (noise between primary and secondary cancelled) and export "
            "Prometheus metrics and redacted samples. Unsafe methods go to the candidate only."
        ),
        epilog=(
            "Control paths (GET): /__darklaunch/metrics, /__darklaunch/samples, /__darklaunch/healthz, and /metrics, "
            "/samples unless --control-prefix-only. See docs/comparator.md of the darklaunch.traefik collection."
        ),
    )
    parser.add_argument("--listen", required=True, metavar="HOST:PORT", help="address to listen on (port 0: any)")
    parser.add_argument("--primary", required=True, metavar="URL", help="the main (stable) service")
    parser.add_argument("--secondary", required=True, metavar="URL", help="the main again, or a second stable one")
    parser.add_argument("--candidate", required=True, metavar="URL", help="the shadow (new version)")
    parser.add_argument(
        "--ignore-json-pointer", action="append", default=[], metavar="POINTER",
        help="JSON pointer not compared, with its subtree; '*' matches any key or index (/items/*/id); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--ignore-header", action="append", default=[], metavar="NAME",
        help="response header never compared (case-insensitive); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--compare-header", action="append", default=None, metavar="NAME",
        help="response header compared (case-insensitive); '*' for all; repeatable (default: content-type)",
    )  # fmt: skip
    parser.add_argument(
        "--safe-methods", action="append", default=None, metavar="M1,M2",
        help="methods replayed to primary and secondary and compared (default: GET,HEAD,OPTIONS)",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per upstream call (default: 5)")
    parser.add_argument(
        "--max-body", type=int, default=1048576, metavar="BYTES",
        help="bigger request or response bodies are not compared: 'skipped' (default: 1048576)",
    )  # fmt: skip
    parser.add_argument("--samples", type=int, default=50, help="differing pairs kept (default: 50)")
    parser.add_argument(
        "--max-inflight", type=int, default=64,
        help="requests handled at once; beyond it a copy is answered 503 and counted 'skipped' (default: 64)",
    )  # fmt: skip
    parser.add_argument(
        "--max-paths", type=int, default=100,
        help="distinct path label values of darklaunch_compare_differences_total, then path=\"other\" (default: 100)",
    )  # fmt: skip
    parser.add_argument(
        "--redact-header", action="append", default=[], metavar="NAME",
        help="request header never kept in samples (Authorization, Proxy-Authorization, Cookie, Set-Cookie always)",
    )  # fmt: skip
    parser.add_argument(
        "--redact-query", action="append", default=[], metavar="KEY",
        help="query key whose value is redacted in samples (keys like token, password, secret, key always)",
    )  # fmt: skip
    parser.add_argument(
        "--max-value-chars", type=int, default=200,
        help="differing values in samples are truncated to this length; 0 keeps no values (default: 200)",
    )  # fmt: skip
    parser.add_argument(
        "--control-prefix-only", action="store_true",
        help="serve control endpoints under /__darklaunch/ only; /metrics and /samples are then mirrored copies",
    )  # fmt: skip
    parser.add_argument(
        "--route", default="", metavar="NAMESPACE/NAME",
        help="the mirrored route, added to every metric as the label darklaunch_route (the gate selects on it)",
    )  # fmt: skip
    parser.add_argument("--access-log", action="store_true", help="log every request to stderr")
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    return parser


def make_server(argv: list[str]) -> Server:
    """Parse the command line and bind the server (raises SystemExit on bad arguments)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.safe_methods = args.safe_methods or ["GET,HEAD,OPTIONS"]
    try:
        config = Config(args)
    except ValueError as exc:
        parser.error(str(exc))
    return Server(Comparator(config))


def main(argv: Optional[list[str]] = None) -> int:
    server = make_server(sys.argv[1:] if argv is None else argv)

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    host, port = str(server.server_address[0]), server.server_address[1]
    config = server.comparator.config
    print(
        f"darklaunch_compare {__version__} listening on {host}:{port}; primary {config.primary.url}, "
        f"secondary {config.secondary.url}, candidate {config.candidate.url}",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
