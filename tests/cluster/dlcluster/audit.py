"""Read the kube-apiserver audit log: which requests reached the API after a marker."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


class AuditLog:
    """Each audited request is one JSON line (stage ResponseComplete, level Metadata).

    Audited: every verb on traefik.io and traefik.containo.us objects, Services, Namespaces and ConfigMaps,
    except requests by Traefik itself.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def mark(self) -> int:
        """A position in the log; pass it to ``events_since``."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _read_from(self, mark: int) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(mark)
                data = handle.read()
        except FileNotFoundError:
            return []
        # A line still being written has no newline yet: leave it for the next read.
        complete = data[: data.rfind(b"\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def events_since(
        self,
        mark: int,
        *,
        verbs: Iterable[str] | None = None,
        user: str | None = None,
        namespace: str | None = None,
        resource: str | None = None,
        settle: float = 0.5,
    ) -> list[dict[str, Any]]:
        """Events after ``mark`` matching the filters. Waits until no matching event came for ``settle``
        seconds, because the apiserver writes an event just after it sent the response (events of other
        namespaces or users, from tests running beside this one, do not prolong the wait)."""
        wanted_verbs = set(verbs) if verbs is not None else None

        def matching() -> list[dict[str, Any]]:
            result = []
            for event in self._read_from(mark):
                ref = event.get("objectRef", {})
                if wanted_verbs is not None and event.get("verb") not in wanted_verbs:
                    continue
                if user is not None and event.get("user", {}).get("username") != user:
                    continue
                if namespace is not None and ref.get("namespace") != namespace:
                    continue
                if resource is not None and ref.get("resource") != resource:
                    continue
                result.append(event)
            return result

        events = matching()
        deadline = time.monotonic() + 10 * settle
        while True:
            time.sleep(settle)
            again = matching()
            if len(again) == len(events) or time.monotonic() > deadline:
                return again
            events = again

    def writes_since(self, mark: int, **filters: Any) -> list[dict[str, Any]]:
        """Write requests (create/update/patch/delete) after ``mark``, including refused ones."""
        return self.events_since(mark, verbs=WRITE_VERBS, **filters)


def summarize(events: Iterable[dict[str, Any]]) -> list[str]:
    """Compact one-line form for assertion messages: ``patch traefikservices ns/name -> 200``."""
    lines = []
    for event in events:
        ref = event.get("objectRef", {})
        code = event.get("responseStatus", {}).get("code")
        lines.append(
            f"{event.get('verb')} {ref.get('resource')} {ref.get('namespace')}/{ref.get('name')} "
            f"by {event.get('user', {}).get('username')} -> {code}"
        )
    return lines
