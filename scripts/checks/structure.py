# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep the code's shape (docs/dev/design.md, "Where each rule lives"): small files with one job, each default
name, verdict word and the missing-namespace error defined once, no extra var parsed by a playbook, and no block of
YAML written twice in the playbooks, the role or AWX's files.

Run by scripts/checks/static; prints each finding with its file and line and exits 1 when there is any.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 600
# The helper modules, where a file that grows past MAX_LINES is doing more than one job.
SIZED = ("plugins/module_utils", "plugins/plugin_utils")
# The one file that may spell each word, and the words (as string literals in Python code).
DEFINED_ONCE = {
    "plugins/module_utils/_default_names.py": re.compile(r"""["'][^"'\n]*-(?:mirror|wrr|stable|staging)["']"""),
    "plugins/plugin_utils/_anomaly_model.py": re.compile(r"""["'](?:anomalous|insufficient_data)["']"""),
    "plugins/module_utils/_route_reads.py": re.compile(r"does not exist: check namespace"),
}
# Text a playbook would parse (a survey's YAML answer): playbook_inputs parses it once and returns it (answers).
PARSED_IN_PLAYBOOK = re.compile(r"\b(?:from_yaml|from_json)\b")
# AWX's survey files are data AWX imports whole, one per job template: their questions repeat by design.
YAML_DIRS = ("playbooks", "roles")
YAML_BLOCK = 6  # lines: a repeated run this long is a copy to make one


def oversized() -> list[str]:
    found = []
    for folder in SIZED:
        for path in sorted((ROOT / folder).glob("*.py")):
            count = len(path.read_text(encoding="utf-8").splitlines())
            if count > MAX_LINES:
                found.append(f"{path.relative_to(ROOT)}: {count} lines, over {MAX_LINES}: split it by job")
    return found


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """Lines of Python outside docstrings and comments (module docs of plugins are YAML in strings, skipped)."""
    lines, inside = [], None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if inside:
            if inside in stripped:
                inside = None
            continue
        quote = next((quote for quote in ('"""', "'''") if quote in stripped), None)
        if quote is not None and (stripped.count(quote) == 1 or stripped.lstrip("rbuf").startswith(quote)):
            # A docstring or a DOCUMENTATION string: text, not code (one line, or until its closing quotes).
            inside = quote if stripped.count(quote) == 1 else None
            continue
        if stripped.startswith("#") or line.endswith("# a field name, not a verdict"):
            continue
        lines.append((number, line.split("  #", 1)[0]))
    return lines


def spelled_twice() -> list[str]:
    found = []
    for owner, pattern in DEFINED_ONCE.items():
        for path in sorted((ROOT / "plugins").rglob("*.py")):
            relative = str(path.relative_to(ROOT))
            if relative == owner:
                continue
            for number, line in _code_lines(path):
                for match in pattern.finditer(line):
                    found.append(f"{relative}:{number}: {match.group(0)} is defined in {owner}: use it from there")
    return found


def _yaml_lines(path: Path) -> list[tuple[int, str]]:
    kept = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and stripped not in ("---", "..."):
            kept.append((number, stripped))
    return kept


def repeated_yaml() -> list[str]:
    """Runs of YAML_BLOCK lines (comments and blank lines left out) that stand in two places."""
    seen: dict[tuple[str, ...], list[tuple[str, int]]] = defaultdict(list)
    for folder in YAML_DIRS:
        for path in sorted((ROOT / folder).rglob("*.yml")):
            lines = _yaml_lines(path)
            for start in range(len(lines) - YAML_BLOCK + 1):
                window = tuple(text for _number, text in lines[start : start + YAML_BLOCK])
                seen[window].append((str(path.relative_to(ROOT)), lines[start][0]))
    found, reported = [], set()
    for window, places in seen.items():
        if len(places) < 2 or all(len(line) < 12 for line in window):
            continue
        first, second = places[0], places[1]
        key = (first[0], second[0])
        if key in reported:
            continue  # one finding per pair of files: the first run says where to look
        reported.add(key)
        found.append(f"{first[0]}:{first[1]} repeats at {second[0]}:{second[1]} ({YAML_BLOCK}+ lines): {window[0]}")
    return found


def parsed_in_playbooks() -> list[str]:
    found = []
    for path in sorted((ROOT / "playbooks").glob("*.yml")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if PARSED_IN_PLAYBOOK.search(line) and not line.strip().startswith("#"):
                found.append(
                    f"{path.relative_to(ROOT)}:{number}: an extra var parsed in a playbook: use playbook_inputs' "
                    "answers (plugin_utils/_playbook_inputs.text_answers)"
                )
    return found


def main() -> int:
    findings = oversized() + spelled_twice() + parsed_in_playbooks() + repeated_yaml()
    for finding in findings:
        print(finding, file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
