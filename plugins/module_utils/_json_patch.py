# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RFC 6902 JSON Patch as the API server applies it, and the ops the planner writes with (resourceVersion tests)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError

JsonPatch = list[dict[str, Any]]


def escape_pointer(token: str) -> str:
    """RFC 6901: '~' -> '~0', '/' -> '~1' (label and annotation keys contain '/')."""
    return token.replace("~", "~0").replace("/", "~1")


def _pointer_tokens(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer must start with '/': {path!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _container_and_key(document: Any, path: str) -> tuple[Any, str]:
    tokens = _pointer_tokens(path)
    target = document
    for token in tokens[:-1]:
        target = target[int(token)] if isinstance(target, list) else target[token]
    return target, tokens[-1]


def apply_json_patch(document: Mapping[str, Any], ops: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Apply add/remove/replace/test ops to a copy of ``document`` (what the API server will do)."""
    result: dict[str, Any] = copy.deepcopy(dict(document))
    for op in ops:
        container, key = _container_and_key(result, str(op["path"]))
        verb = op["op"]
        if isinstance(container, list):
            position = len(container) if key == "-" else int(key)
            if verb == "add":
                container.insert(position, copy.deepcopy(op["value"]))
            elif verb == "remove":
                del container[position]
            elif verb == "replace":
                container[position] = copy.deepcopy(op["value"])
            elif verb == "test" and container[position] != op["value"]:
                raise DarklaunchError(f"JSON Patch test failed at {op['path']}.")
            continue
        if verb in ("add", "replace"):
            container[key] = copy.deepcopy(op["value"])
        elif verb == "remove":
            del container[key]
        elif verb == "test" and container.get(key) != op["value"]:
            raise DarklaunchError(f"JSON Patch test failed at {op['path']}.")
    return result


def set_op(ops: JsonPatch, container: Mapping[str, Any], base: str, key: str, value: Any) -> bool:
    """Append add/replace for ``base/key`` when the stored value differs; True if an op was added."""
    if key not in container:
        ops.append({"op": "add", "path": f"{base}/{escape_pointer(key)}", "value": value})
        return True
    if container[key] != value or type(container[key]) is not type(value):
        ops.append({"op": "replace", "path": f"{base}/{escape_pointer(key)}", "value": value})
        return True
    return False


def version_test(obj: Mapping[str, Any], kind: str) -> dict[str, Any]:
    version = obj.get("metadata", {}).get("resourceVersion")
    if not version:
        name = obj.get("metadata", {}).get("name")
        raise DarklaunchError(
            f"{kind} {name} was read without metadata.resourceVersion; read it from the API before planning."
        )
    return {"op": "test", "path": "/metadata/resourceVersion", "value": version}
