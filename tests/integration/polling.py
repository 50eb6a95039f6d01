"""A background sampler for tests that watch the cluster change while a launch runs (a route, a mirror)."""

from __future__ import annotations

import threading
from typing import Any


class Poller:
    """Calls ``sample()`` every ``period`` seconds on a daemon thread while the ``with`` block runs."""

    period = 0.2

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.period)
