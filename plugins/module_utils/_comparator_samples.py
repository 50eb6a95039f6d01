# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One redacted sample per differing path, from what a comparator's ``/__darklaunch/samples`` answered: pure.

The launch report shows, next to each differing JSON path, one request that differed there: its request line,
the primary's and the candidate's status and both values. The comparator already redacts its samples
(docs/comparator.md); a comparator the user runs may be of another version, so this keeps only those fields
and redacts again what looks secret (query values and values under secret-looking keys), never headers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

SAMPLES_PATH: Final = "/__darklaunch/samples"
REDACTED: Final = "[redacted]"
MAX_VALUE_CHARS: Final = 200
MAX_REQUEST_CHARS: Final = 300
# The comparator's own pattern for names whose values are never kept (darklaunch_compare.SECRET_NAME).
_SECRET_NAME: Final = re.compile(
    r"token|passw|pwd|secret|key|auth|session|cookie|signature|credential|jwt", re.IGNORECASE
)
_INDEX: Final = re.compile(r"/\d+(?=/|$)")


def parse(body: bytes) -> list[Mapping[str, Any]]:
    """The samples list a comparator answered; anything else raises ValueError (told as unavailable)."""
    samples = json.loads(body.decode("utf-8", "replace"))
    if not isinstance(samples, list):
        raise ValueError("the comparator's samples are not a JSON list")
    return [sample for sample in samples if isinstance(sample, Mapping)]


def one_per_path(samples: list[Mapping[str, Any]], max_paths: int = 50) -> dict[str, dict[str, Any]]:
    """``{label: sample}``: the newest sample of each differing path (the label as the metric counts it, array
    indexes as ``*``), at most ``max_paths`` of them."""
    chosen: dict[str, dict[str, Any]] = {}
    for sample in reversed(samples):  # newest last in the comparator's answer
        status = sample.get("status") if isinstance(sample.get("status"), Mapping) else {}
        for difference in sample.get("differences") or []:
            if not isinstance(difference, Mapping) or not isinstance(difference.get("path"), str):
                continue
            path = str(difference["path"])
            label = str(difference.get("label") or _INDEX.sub("/*", path))
            if label in chosen or len(chosen) >= max_paths:
                continue
            secret = any(_SECRET_NAME.search(part) for part in path.split("/") if part)
            chosen[label] = {
                "time": str(sample.get("time") or ""),
                "request": _request_line(sample.get("request")),
                "status": {side: status.get(side) for side in ("primary", "candidate")},
                "path": path,
                "primary": REDACTED if secret else _value(difference.get("primary")),
                "candidate": REDACTED if secret else _value(difference.get("candidate")),
            }
    return chosen


def _request_line(value: Any) -> str:
    words = str(value or "").split(" ")
    if len(words) >= 2:
        words[1] = _redact_query(words[1])
    line = " ".join(words)
    return line if len(line) <= MAX_REQUEST_CHARS else line[:MAX_REQUEST_CHARS] + "...(truncated)"


def _redact_query(target: str) -> str:
    path, sep, query = target.partition("?")
    if not sep:
        return target
    pairs = []
    for part in query.split("&"):
        key, eq, value = part.partition("=")
        pairs.append(key + eq + (REDACTED if eq and _SECRET_NAME.search(key) else value))
    return path + "?" + "&".join(pairs)


def _value(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "...(truncated)"
