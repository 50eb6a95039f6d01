# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a report page on the controller, shared by the launch_report and fleet_report actions."""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any


def write_page(result: dict[str, Any], path: str, page: str, what: str) -> dict[str, Any]:
    """Write ``page`` to ``path`` whole or not at all (a reader never opens half a page); ``result`` says how."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".launch-report-")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(page)
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    except OSError as error:
        result.update(failed=True, msg=f"cannot write the {what} to {path}: {error.strerror}; check dest_dir")
        result["field"] = "dest_dir"
        return result
    result["changed"] = True
    return result


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-") or "x"
