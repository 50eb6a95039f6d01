"""Make the repository importable as ``ansible_collections.darklaunch.traefik``.

The repository root is the collection root, so tests (and ansible-playbook runs started by
tests) see it through a symlink under ``.state/collections`` instead of a copy. When the checkout
already sits at ``.../ansible_collections/darklaunch/traefik`` (as ``ansible-test units`` and
scripts/checks/sanity place it), that tree is used as it is.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if REPO_ROOT.parts[-3:-1] == ("ansible_collections", "darklaunch") and REPO_ROOT.name == "traefik":
    COLLECTIONS_ROOT = REPO_ROOT.parents[2]
else:
    COLLECTIONS_ROOT = REPO_ROOT / ".state" / "collections"


def _link_collection() -> None:
    link = COLLECTIONS_ROOT / "ansible_collections" / "darklaunch" / "traefik"
    if link.resolve() != REPO_ROOT:
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            with contextlib.suppress(FileExistsError):  # another worker won the race
                link.symlink_to(REPO_ROOT, target_is_directory=True)
    if str(COLLECTIONS_ROOT) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS_ROOT))
    os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", str(COLLECTIONS_ROOT))


_link_collection()
