"""The test backends' fault knobs (tests/cluster/dlcluster/backends.py), on a backend started in this process:
no cluster needed, so they check the code of this checkout whatever instance is running.

The slow tail and the hung backend are what bench/verdict_quality.py sets on a shadow."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator

import pytest
from dlcluster import backends as backends_module
from dlcluster.backends import Backend, BackendHandle


@pytest.fixture
def backend() -> Iterator[tuple[Backend, BackendHandle]]:
    server = Backend("knobs", 0)
    try:
        yield server, BackendHandle("local/knobs", "knobs", server.port)
    finally:
        server.stop()


def _get(port: int, timeout: float = 10.0) -> tuple[int, float]:
    """One GET on a fresh connection: (status, seconds)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request("GET", "/x")
        response = conn.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    finally:
        conn.close()


def test_a_slow_tail_is_deterministic(backend: tuple[Backend, BackendHandle]) -> None:
    _server, handle = backend
    knobs = handle.set_knobs(slow_rate=0.25, slow_ms=300)
    assert knobs["slow_rate"] == 0.25 and knobs["slow_ms"] == 300 and knobs["hang"] is False
    times = [_get(handle.port)[1] for _attempt in range(8)]
    slow = [n for n, seconds in enumerate(times, start=1) if seconds >= 0.3]
    assert slow == [4, 8], times  # floor(k * 0.25) steps up at k = 4 and 8
    counters = handle.counters()
    assert counters["total"] == 8 and counters["slow"] == 2 and counters["errors"] == 0


def test_error_status_404_and_the_old_knobs_stay(backend: tuple[Backend, BackendHandle]) -> None:
    _server, handle = backend
    handle.set_knobs(error_rate=0.5, error_status=404)
    assert [_get(handle.port)[0] for _attempt in range(4)] == [200, 404, 200, 404]
    knobs = handle.set_knobs(latency_ms=10)  # one knob changed, the others stay
    assert knobs["error_rate"] == 0.5 and knobs["error_status"] == 404 and knobs["latency_ms"] == 10
    with pytest.raises(RuntimeError, match=r"slow_rate must be within 0\.\.1"):
        handle.set_knobs(slow_rate=1.5)


def test_a_hung_backend_holds_requests_without_blocking_others(backend: tuple[Backend, BackendHandle]) -> None:
    server, handle = backend
    handle.set_knobs(hang=True)
    answers: list[tuple[int, float]] = []
    held = [threading.Thread(target=lambda: answers.append(_get(handle.port)), daemon=True) for _attempt in range(3)]
    for thread in held:
        thread.start()
    deadline = time.monotonic() + 5
    while handle.counters()["hanging"] < 3 and time.monotonic() < deadline:  # control endpoints still answer
        time.sleep(0.05)
    time.sleep(0.5)
    assert answers == [] and handle.counters()["hanging"] == 3
    handle.set_knobs(hang=False)  # released: answered as usual, at once
    for thread in held:
        thread.join(timeout=5)
    assert [status for status, _s in answers] == [200, 200, 200]
    assert handle.counters()["hung"] == 3 and server.hanging == 0


def test_a_held_request_ends_when_its_client_leaves_or_at_the_cap(
    backend: tuple[Backend, BackendHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, handle = backend
    handle.set_knobs(hang=True)
    with pytest.raises(TimeoutError):
        _get(handle.port, timeout=0.5)  # the client gives up and closes its connection
    deadline = time.monotonic() + 5
    while server.hanging and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.hanging == 0

    monkeypatch.setattr(backends_module, "HANG_CAP_SECONDS", 0.3)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        _get(handle.port)  # closed without an answer once the cap is reached
    assert handle.counters()["hung"] == 2
