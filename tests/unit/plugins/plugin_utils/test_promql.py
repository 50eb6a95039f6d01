# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""prometheus_selector parsing, matcher injection into PromQL, and the custom checks' placeholders."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._promql import add_matchers, parse_selector, substitute

SEL = 'cluster="eu"'


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("up", 'up{cluster="eu"}'),
        ("up{}", 'up{cluster="eu"}'),
        ('up{job="x"}', 'up{job="x",cluster="eu"}'),
        ('{__name__="up"}', '{__name__="up",cluster="eu"}'),
        ("rate(x_total[5m])", 'rate(x_total{cluster="eu"}[5m])'),
        (
            'histogram_quantile(0.99, sum by (le) (rate(b_bucket{service=~"a|b"}[1m])))',
            'histogram_quantile(0.99, sum by (le) (rate(b_bucket{service=~"a|b",cluster="eu"}[1m])))',
        ),
        ("sum(rate(a[1m])) by (le, service)", 'sum(rate(a{cluster="eu"}[1m])) by (le, service)'),
        ("sum without (code) (a)", 'sum without (code) (a{cluster="eu"})'),
        ("a / on(service) group_left(le) b", 'a{cluster="eu"} / on(service) group_left(le) b{cluster="eu"}'),
        ("a and b or c unless d", 'a{cluster="eu"} and b{cluster="eu"} or c{cluster="eu"} unless d{cluster="eu"}'),
        ("a > bool 1e3", 'a{cluster="eu"} > bool 1e3'),
        ("a offset 5m", 'a{cluster="eu"} offset 5m'),
        (
            'label_replace(a, "x", "$1", "y", "(up|down)")',
            'label_replace(a{cluster="eu"}, "x", "$1", "y", "(up|down)")',
        ),
        ("max_over_time(rate(a[1m])[10m:1m])", 'max_over_time(rate(a{cluster="eu"}[1m])[10m:1m])'),
        ("a # up here is a comment\n+ b", 'a{cluster="eu"} # up here is a comment\n+ b{cluster="eu"}'),
        ("job:requests:rate5m", 'job:requests:rate5m{cluster="eu"}'),
        ("topk(3, a)", 'topk(3, a{cluster="eu"})'),
        ("vector(1)", "vector(1)"),
        ('a{b="}{"}', 'a{b="}{",cluster="eu"}'),
        ("-a + .5", '-a{cluster="eu"} + .5'),
    ],
)
def test_matchers_reach_every_vector_selector(query: str, expected: str) -> None:
    assert add_matchers(query, SEL) == expected


def test_no_selector_leaves_the_query_alone() -> None:
    assert add_matchers("rate(a[1m])", "") == "rate(a[1m])"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        ("", ""),
        ('cluster="prod-eu"', 'cluster="prod-eu"'),
        ('{cluster="prod-eu", team=~"shop.*"}', 'cluster="prod-eu",team=~"shop.*"'),
        ("cluster!='x'", "cluster!='x'"),
        ({"cluster": "prod-eu", "job": 'tra"efik'}, 'cluster="prod-eu",job="tra\\"efik"'),
    ],
)
def test_selector_forms(value: Any, expected: str) -> None:
    assert parse_selector(value) == expected


@pytest.mark.parametrize("value", ["cluster=prod-eu", 'cluster="a" team="b"', "up", '1x="a"', {"a b": "c"}])
def test_bad_selectors_name_the_option(value: Any) -> None:
    with pytest.raises(DarklaunchError) as caught:
        parse_selector(value)
    assert caught.value.field == "prometheus_selector"


def test_placeholders() -> None:
    values = {"shadow": "s", "main": "m", "namespace": "ns", "route": "r", "window": "5m"}
    query = 'a{service=~"$shadow",x="${main}",n="$namespace",r="$route"}[$window] and b{re="^x$"}'
    assert substitute(query, values, "c") == 'a{service=~"s",x="m",n="ns",r="r"}[5m] and b{re="^x$"}'
    with pytest.raises(DarklaunchError, match=r"check 'c' uses an unknown placeholder \$shadows"):
        substitute("$shadows", values, "c")
