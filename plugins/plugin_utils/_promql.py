# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure text work on PromQL: the ``prometheus_selector`` option, adding its matchers to every vector
selector of a query, and the ``$shadow`` / ``$main`` / ... placeholders of custom checks.

Adding matchers needs to know where the vector selectors are, so this has a small lexer: it skips
strings, comments, durations and numbers, the label lists of ``by`` / ``without`` / ``on`` /
``ignoring`` / ``group_left`` / ``group_right``, and names followed by ``(`` (functions and aggregations);
every other name is a metric name, and every ``{`` outside a string opens a selector's matchers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError

_LABEL_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_STRING = r'"(?:[^"\\\n]|\\.)*"' + r"|'(?:[^'\\\n]|\\.)*'"
_MATCHER = re.compile(rf"\s*({_LABEL_NAME})\s*(=~|!~|!=|=)\s*({_STRING})\s*")
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"[0-9.][0-9A-Za-z_.]*")
# Keywords after which a parenthesised list of label names follows (not an expression).
_LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
# Words that are operators or literals, never metric names.
_RESERVED_WORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end"})
_PLACEHOLDER = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
PLACEHOLDERS = ("shadow", "main", "namespace", "route", "window")


def parse_selector(value: Any) -> str:
    """``prometheus_selector`` as the text of label matchers (``cluster="prod-eu",team!="x"``), or ``""``.

    Accepts the matchers as text, with or without braces, or a mapping of label names to values (equality).
    """
    if value is None or value == "" or value == {}:
        return ""
    if isinstance(value, Mapping):
        matchers = []
        for name, label_value in value.items():
            if not re.fullmatch(_LABEL_NAME, str(name)) or isinstance(label_value, (Mapping, list)):
                raise DarklaunchError(
                    f"prometheus_selector: {name!r} is not a label name with a plain value.",
                    field="prometheus_selector",
                )
            matchers.append(f"{name}={_quoted(str(label_value))}")
        return ",".join(matchers)
    text = str(value).strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    matchers = []
    position = 0
    while position < len(text):
        match = _MATCHER.match(text, position)
        if match is None:
            raise DarklaunchError(
                f"prometheus_selector {value!r} is not a list of label matchers: write them as in PromQL, for "
                'example cluster="prod-eu" or cluster="prod-eu",team=~"shop.*".',
                field="prometheus_selector",
            )
        matchers.append(f"{match.group(1)}{match.group(2)}{match.group(3)}")
        position = match.end()
        if position < len(text):
            if text[position] != ",":
                raise DarklaunchError(
                    f"prometheus_selector {value!r}: separate the matchers with commas.", field="prometheus_selector"
                )
            position += 1
    return ",".join(matchers)


def _quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def add_matchers(promql: str, matchers: str) -> str:
    """``promql`` with ``matchers`` added to each of its vector selectors (unchanged when empty).

    ``rate(x[5m]) / on(le) y{a="b"}`` with ``c="d"`` gives ``rate(x{c="d"}[5m]) / on(le) y{a="b",c="d"}``.
    """
    if not matchers:
        return promql
    out: list[str] = []
    position = 0
    length = len(promql)
    skip_next_list = False
    while position < length:
        char = promql[position]
        if char in "\"'`":
            end = _string_end(promql, position)
            out.append(promql[position:end])
            position = end
        elif char == "#":
            end = promql.find("\n", position)
            end = length if end < 0 else end
            out.append(promql[position:end])
            position = end
        elif char == "[":
            end = promql.find("]", position)
            end = length if end < 0 else end + 1
            out.append(promql[position:end])
            position = end
        elif char == "{":
            end = _brace_end(promql, position)
            out.append(_with_matchers(promql[position + 1 : end - 1], matchers))
            position = end
        elif char == "(" and skip_next_list:
            end = promql.find(")", position)
            end = length if end < 0 else end + 1
            out.append(promql[position:end])
            position = end
            skip_next_list = False
        elif char.isdigit() or (char == "." and position + 1 < length and promql[position + 1].isdigit()):
            number = _NUMBER.match(promql, position)
            end = number.end() if number else position + 1
            out.append(promql[position:end])
            position = end
        elif (name_match := _NAME.match(promql, position)) is not None:
            name = name_match.group(0)
            end = name_match.end()
            following = _next_significant(promql, end)
            out.append(name)
            position = end
            lowered = name.lower()
            if lowered in _LABEL_LIST_KEYWORDS:
                skip_next_list = following == "("
            elif lowered in _RESERVED_WORDS or following == "(":
                skip_next_list = False
            elif following == "{":
                pass  # the braces that follow get the matchers
            elif _is_aggregation_modifier_next(promql, end):
                pass  # sum by (x) (...): "sum" is an aggregation written before its modifier
            else:
                out.append("{" + matchers + "}")
        else:
            out.append(char)
            position += 1
            if not char.isspace():
                skip_next_list = False
    return "".join(out)


def _with_matchers(inside: str, matchers: str) -> str:
    stripped = inside.strip().rstrip(",").strip()
    return "{" + (f"{stripped},{matchers}" if stripped else matchers) + "}"


def _string_end(text: str, start: int) -> int:
    quote = text[start]
    position = start + 1
    while position < len(text):
        if text[position] == "\\" and quote != "`":
            position += 2
            continue
        if text[position] == quote:
            return position + 1
        position += 1
    return len(text)


def _brace_end(text: str, start: int) -> int:
    position = start + 1
    while position < len(text):
        if text[position] in "\"'`":
            position = _string_end(text, position)
            continue
        if text[position] == "}":
            return position + 1
        position += 1
    return len(text)


def _next_significant(text: str, position: int) -> str:
    while position < len(text) and text[position].isspace():
        position += 1
    return text[position] if position < len(text) else ""


def _is_aggregation_modifier_next(text: str, position: int) -> bool:
    match = _NAME.match(text, _skip_spaces(text, position))
    return match is not None and match.group(0).lower() in ("by", "without")


def _skip_spaces(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def substitute(query: str, values: Mapping[str, str], check_name: str) -> str:
    """Replace ``$shadow``, ``${main}``, ... with ``values``; an unknown placeholder is an error naming
    the check (a typo such as ``$shaddow`` would otherwise reach Prometheus as a parse error)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in PLACEHOLDERS:
            raise DarklaunchError(
                f"metrics: check {check_name!r} uses an unknown placeholder ${name}; the placeholders are "
                + ", ".join("$" + known for known in PLACEHOLDERS)
                + ".",
                field="metrics",
            )
        return values[name]

    return _PLACEHOLDER.sub(replace, query)


def placeholders_in(query: str) -> set[str]:
    return {match.group(1) or match.group(2) for match in _PLACEHOLDER.finditer(query)}
