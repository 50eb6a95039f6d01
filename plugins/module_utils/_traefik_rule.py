# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Traefik HTTP router rules: does a rule parse, and in which syntax (v2 or v3).

Pure. Read from Traefik's own source (``pkg/muxer/http`` and ``pkg/rules`` of v2.11 and v3.x) and the parser
it uses (``github.com/vulcand/predicate``, on top of Go's ``go/parser.ParseExpr``):

- A rule is a Go expression: matcher calls whose arguments are string literals (backquoted or
  double-quoted), ``&&``, ``||``, ``!`` and parentheses. A matcher name is accepted as written in Traefik,
  lower case, upper case or capitalised (``PathPrefix``, ``pathprefix``, ``PATHPREFIX``, ``Pathprefix``).
- v3 syntax: one method per ``Method`` (``Method(`GET`) || Method(`HEAD`)``), ``Header``, ``PathRegexp``, ...;
  v2 syntax: ``Method(`GET`, `HEAD`)``, ``Headers``, ``HostHeader``, ...
- An IngressRoute route's syntax is its ``syntax`` field on Traefik v3 (``v2``, anything else is parsed as
  v3), otherwise Traefik's default (``core.defaultRuleSyntax``, v3 unless set).

Regular expressions are not compiled here (Go's and Python's differ); everything else Traefik checks
when it builds a router from a rule is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SYNTAX_V2 = "v2"
SYNTAX_V3 = "v3"
LEGACY_API_GROUP = "traefik.containo.us"  # served by Traefik v2 only: rules are v2 syntax there

# Matcher -> the argument counts it accepts (None: one or more). v3: pkg/muxer/http/matcher.go httpFuncs;
# v2: matcher_v2.go httpFuncsV2 (gorilla/mux: Headers and HeadersRegexp take key/value pairs).
_ONE_OR_MORE = None
_PAIRS = "pairs"
_MATCHERS: dict[str, dict[str, Any]] = {
    SYNTAX_V3: {
        "ClientIP": (1,),
        "Method": (1,),
        "Host": (1,),
        "HostRegexp": (1,),
        "Path": (1,),
        "PathRegexp": (1,),
        "PathPrefix": (1,),
        "Header": (2,),
        "HeaderRegexp": (2,),
        "Query": (1, 2),
        "QueryRegexp": (1, 2),
    },
    SYNTAX_V2: {
        "Host": _ONE_OR_MORE,
        "HostHeader": _ONE_OR_MORE,
        "HostRegexp": _ONE_OR_MORE,
        "ClientIP": _ONE_OR_MORE,
        "Path": _ONE_OR_MORE,
        "PathPrefix": _ONE_OR_MORE,
        "Method": _ONE_OR_MORE,
        "Headers": _PAIRS,
        "HeadersRegexp": _PAIRS,
        "Query": _ONE_OR_MORE,
    },
}


_TOKEN = re.compile(
    r"""(?P<space>[ \t\r\n]+)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<raw>`[^`]*`)
      | (?P<quoted>"(?:[^"\\\n]|\\(?:[abfnrtv\\"]|[0-7]{3}|x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}))*")
      | (?P<op>&&|\|\||[!(),])""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def _tokens(rule: str) -> list[_Token]:
    tokens = []
    position = 0
    while position < len(rule):
        found = _TOKEN.match(rule, position)
        if found is None:
            char = rule[position]
            what = "an unterminated string" if char in '`"' else f"unexpected {char!r}"
            raise ValueError(f"{what} at character {position + 1}")
        kind = str(found.lastgroup)
        if kind != "space":
            tokens.append(_Token(kind, found.group(), position))
        position = found.end()
    return tokens


@dataclass
class _Parser:
    """Recursive descent over the rule grammar: or := and {'||' and}; and := not {'&&' not};
    not := '!' not | '(' or ')' | matcher '(' [string {',' string} [',']] ')'."""

    tokens: list[_Token]
    matchers: Mapping[str, Any]
    syntax: str
    position: int = 0
    calls: list[tuple[str, list[str]]] = field(default_factory=list)
    # Each level returns the hosts a request it matches must have (lower case), None for any host.
    hosts: frozenset[str] | None = None

    def peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, text: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "op" and token.text == text:
            self.position += 1
            return True
        return False

    def fail(self, expected: str) -> ValueError:
        token = self.peek()
        found = f"{token.text!r} at character {token.position + 1}" if token else "the end of the rule"
        return ValueError(f"expected {expected}, found {found}")

    def parse(self) -> list[tuple[str, list[str]]]:
        if not self.tokens:
            raise ValueError("the rule is empty")
        self.hosts = self.or_expr()
        if self.peek() is not None:
            raise self.fail("'&&', '||' or the end of the rule")
        return self.calls

    def or_expr(self) -> frozenset[str] | None:
        hosts = [self.and_expr()]
        while self.take("||"):
            hosts.append(self.and_expr())
        known = [part for part in hosts if part is not None]
        return frozenset().union(*known) if len(known) == len(hosts) else None

    def and_expr(self) -> frozenset[str] | None:
        hosts = [self.not_expr()]
        while self.take("&&"):
            hosts.append(self.not_expr())
        known = [part for part in hosts if part is not None]
        return frozenset.intersection(*known) if known else None

    def not_expr(self) -> frozenset[str] | None:
        if self.take("!"):
            self.not_expr()
            return None
        if self.take("("):
            hosts = self.or_expr()
            if not self.take(")"):
                raise self.fail("')'")
            return hosts
        token = self.peek()
        if token is None or token.kind != "ident":
            raise self.fail("a matcher such as Host(`example.com`), '!' or '('")
        self.position += 1
        name = _canonical_matcher(token.text, self.matchers)
        if name is None:
            known = ", ".join(sorted(self.matchers))
            raise ValueError(f"{token.text} is not a {self.syntax} matcher (those are {known})")
        if not self.take("("):
            raise self.fail(f"'(' after {token.text}")
        values = self.arguments(name)
        self.calls.append((name, values))
        # Host and (v2) HostHeader compare the request's host without regard to case, any value matching.
        return frozenset(value.lower() for value in values) if name in ("Host", "HostHeader") else None

    def arguments(self, name: str) -> list[str]:
        values: list[str] = []
        while not self.take(")"):
            token = self.peek()
            if token is None or token.kind not in ("raw", "quoted"):
                raise self.fail(f"a quoted value or ')' in {name}(...)")
            self.position += 1
            values.append(_string_value(token))
            if not self.take(","):
                if not self.take(")"):
                    raise self.fail(f"',' or ')' in {name}(...)")
                break
        _check_arguments(name, values, self.matchers[name], self.syntax)
        return values


def _canonical_matcher(written: str, matchers: Iterable[str]) -> str | None:
    """pkg/rules/parser.go: each matcher as written, lower, UPPER and Title case (``Pathprefix``)."""
    for name in matchers:
        if written in (name, name.lower(), name.upper(), name.lower().capitalize()):
            return name
    return None


def _string_value(token: _Token) -> str:
    if token.kind == "raw":
        return token.text[1:-1].replace("\r", "")
    decoded: str = json.loads(re.sub(r"\\(\\|[0-7]{3}|x[0-9A-Fa-f]{2}|U[0-9A-Fa-f]{8}|[abv])", _escape, token.text))
    return decoded


def _escape(found: re.Match[str]) -> str:
    code = found.group(1)
    if code == "\\":
        return "\\\\"
    simple = {"a": 7, "b": 8, "v": 11}
    if code in simple:
        value = simple[code]
    elif code[0] == "x" or code[0] == "U":
        value = int(code[1:], 16)
    else:
        value = int(code, 8)
    return json.dumps(chr(value))[1:-1] if value < 0x110000 else ""


def _check_arguments(name: str, values: Sequence[str], accepted: Any, syntax: str) -> None:
    count = len(values)
    if accepted is _ONE_OR_MORE:
        ok = count >= 1
        wanted = "one or more values"
    elif accepted == _PAIRS:
        ok = count >= 2 and count % 2 == 0
        wanted = "key/value pairs"
    else:
        ok = count in accepted
        wanted = " or ".join(str(n) for n in accepted) + " value" + ("" if accepted == (1,) else "s")
    if not ok:
        raise ValueError(f"{name} takes {wanted} in {syntax} syntax; got {count}")
    if name in ("Path", "PathPrefix") and not all(value.startswith("/") for value in values):
        raise ValueError(f"{name}: a path must start with '/'")
    if name in ("Host", "HostRegexp", "HostHeader") and not all(value.isascii() for value in values):
        raise ValueError(f"{name} values must be ASCII (use the punycode form of the domain)")


def rule_error(rule: str, syntax: str) -> str | None:
    """Why Traefik's ``syntax`` parser would refuse ``rule``; None when it parses."""
    try:
        _Parser(_tokens(rule), _MATCHERS[syntax], syntax).parse()
    except ValueError as error:
        return str(error)
    return None


def required_hosts(rule: str, syntax: str) -> frozenset[str] | None:
    """The hosts (lower case) one of which a request must have for ``rule`` to match it; None when the rule
    matches any host as far as its Host matchers tell (none, under a ``!``, beside a matcher without one in an
    ``||``, HostRegexp) or it does not parse. Two rules with disjoint hosts never match the same request."""
    parser = _Parser(_tokens(rule), _MATCHERS[syntax], syntax)
    try:
        parser.parse()
    except ValueError:
        return None
    return parser.hosts


def route_syntax(route: Mapping[str, Any], extra: str, api_group: str) -> str:
    """The syntax Traefik parses ``route``'s rule with, as far as the objects tell; raises when the rule or
    ``extra`` cannot be parsed in it.

    The route's ``syntax`` field decides on Traefik v3 (``v2``, else v3). Without it, the traefik.containo.us
    group means Traefik v2; on traefik.io it is v3 unless Traefik runs with core.defaultRuleSyntax=v2 or is
    2.10/2.11: the syntax in which both the route's rule and ``extra`` parse is taken, v3 first.
    """
    declared = route.get("syntax")
    match = str(route.get("match") or "")
    if isinstance(declared, str) and declared:
        candidates = [SYNTAX_V2 if declared == SYNTAX_V2 else SYNTAX_V3]
    elif api_group == LEGACY_API_GROUP:
        candidates = [SYNTAX_V2]
    else:
        candidates = [SYNTAX_V3, SYNTAX_V2]
    parsed = [syntax for syntax in candidates if rule_error(match, syntax) is None]
    if not parsed:
        raise ValueError(f"its rule {match!r} does not parse: {rule_error(match, candidates[0])}")
    if not extra:
        return parsed[0]
    for syntax in parsed:
        if rule_error(extra, syntax) is None:
            return syntax
    raise SyntaxMismatch(f"{rule_error(extra, parsed[0])}; the route's rule is {join_words(parsed)} syntax")


class SyntaxMismatch(ValueError):
    """The route's rule parses, the extra expression does not in the same syntax."""


def join_words(words: Sequence[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]
