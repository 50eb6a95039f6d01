"""Make the repository importable as ``ansible_collections.darklaunch.traefik``.

The repository root is the collection root, so tests (and ansible-playbook runs started by
tests) see it through a symlink under ``.state/collections`` instead of a copy. Under
``ansible-test units`` (scripts/checks/sanity), which runs a copy placed at
``.../ansible_collections/darklaunch/traefik``, the link points at that copy and changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS_ROOT = REPO_ROOT / ".state" / "collections"


def _link_collection() -> None:
    link = COLLECTIONS_ROOT / "ansible_collections" / "darklaunch" / "traefik"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        with contextlib.suppress(FileExistsError):  # another worker won the race
            link.symlink_to(REPO_ROOT, target_is_directory=True)
    if str(COLLECTIONS_ROOT) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS_ROOT))
    os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", str(COLLECTIONS_ROOT))
    # Ansible's temporary files and caches (it and the playbooks tests run) stay out of ~/.ansible,
    # as in scripts/test.
    os.environ.setdefault("ANSIBLE_HOME", str(REPO_ROOT / ".state" / "ansible-home"))


_link_collection()
