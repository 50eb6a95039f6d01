"""Refuse a collection tarball that carries test state, caches, build output or binaries, or lacks its license.

Usage: python scripts/checks/tarball_contents.py darklaunch-traefik-X.Y.Z.tar.gz
"""

from __future__ import annotations

import re
import sys
import tarfile

# Path patterns (of members, relative to the collection root) that must never ship.
FORBIDDEN_PATHS = [
    (re.compile(r"(^|/)\.state(/|$)"), "local cluster state"),
    (re.compile(r"(^|/)tests/output(/|$)"), "ansible-test output"),
    (re.compile(r"(^|/)(__pycache__|\.mypy_cache|\.ruff_cache|\.pytest_cache|\.tox|\.nox|\.cache)(/|$)"), "cache"),
    (re.compile(r"\.(pyc|pyo|so|o|a|dll|exe|whl|egg|tar|tar\.gz|tgz|zip|db|sqlite)$"), "binary or archive"),
    (re.compile(r"(^|/)(\.git|\.ci|\.github)(/|$)"), "repository metadata"),
    (re.compile(r"(^|/)docs/build(/|$)"), "built docs"),
    (re.compile(r"(^|/)bench/results(/|$)"), "benchmark results"),
    (re.compile(r"(^|/)tests/cluster/controlplane/bin(/|$)"), "test cluster binary"),
]
BINARY_MAGIC = [
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "PE executable"),
    (b"\xcf\xfa\xed\xfe", "Mach-O executable"),
    (b"PK\x03\x04", "zip archive"),
    (b"\x1f\x8b", "gzip data"),
]
MAX_FILE_BYTES = 1024 * 1024
# Every source header cites LICENSES/GPL-3.0-or-later.txt: the tarball must carry what it cites.
REQUIRED_FILES = ["LICENSES/GPL-3.0-or-later.txt", "COPYING", "MANIFEST.json", "meta/runtime.yml"]


def problems(path: str) -> list[str]:
    found: list[str] = []
    reported: list[str] = []  # forbidden directories already reported: their contents are not listed
    with tarfile.open(path, "r:gz") as tar:
        names = {member.name.removeprefix("./") for member in tar.getmembers()}
        found.extend(f"{required}: missing" for required in REQUIRED_FILES if required not in names)
        for member in tar.getmembers():
            name = member.name.removeprefix("./")
            if any(name.startswith(prefix + "/") for prefix in reported):
                continue
            hits = [why for pattern, why in FORBIDDEN_PATHS if pattern.search(name)]
            if hits:
                found.append(f"{name}{'/' if member.isdir() else ''}: {', '.join(hits)}")
                if member.isdir():
                    reported.append(name)
                continue
            if not member.isfile():
                continue
            if member.size > MAX_FILE_BYTES:
                found.append(f"{name}: {member.size} bytes (larger than {MAX_FILE_BYTES})")
            handle = tar.extractfile(member)
            head = handle.read(8192) if handle else b""
            for magic, why in BINARY_MAGIC:
                if head.startswith(magic):
                    found.append(f"{name}: {why}")
                    break
            else:
                if b"\x00" in head:
                    found.append(f"{name}: binary content (NUL bytes)")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    found = problems(argv[1])
    with tarfile.open(argv[1], "r:gz") as tar:
        count = len(tar.getmembers())
    if found:
        print(f"{argv[1]}: {len(found)} file(s) that must not ship:", file=sys.stderr)
        for line in found:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"{argv[1]}: {count} members, no state, caches or binaries")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
