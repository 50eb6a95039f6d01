"""The role's and the playbooks' inputs are read by the same code as the module and the lookup that use them.

Each test compares the filters with the rule's one implementation (traefik_mirror's mirror_percent, the
traffic lookup's anomaly settings, traefik_mirror's derived names), so a second copy that disagrees, as
the role's Jinja once did ("[20, 50]" refused, "1h30m" refused), fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.darklaunch.traefik.plugins.filter.launch_inputs import FilterModule
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_params import MirrorParams, Observed
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_plan import plan_mirror
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_settings import AnomalySettings

FILTERS = FilterModule().filters()
REPO = Path(__file__).resolve().parents[4]


def module_refusal(percent: Any) -> str | None:
    """What traefik_mirror's own validation says about mirror_percent (None: accepted)."""
    try:
        MirrorParams.from_options({"route_name": "shop", "mirror_percent": percent})
    except DarklaunchError as error:
        return error.msg
    return None


def steps_refusal(value: Any, name: str = "shadow_launch_steps") -> str | None:
    try:
        FILTERS["mirror_steps"](value, name)
    except AnsibleFilterError as error:
        return str(error.message)
    return None


@pytest.mark.parametrize(
    "text", [[20, 50], "[20, 50]", "[20,50]", "20,50", "20, 50", "20 50", ["20", "50"], ("20", 50)]
)
def test_every_way_of_writing_two_steps_gives_the_same_list(text: Any) -> None:
    assert FILTERS["mirror_steps"](text) == [20, 50]


@pytest.mark.parametrize("value", [30, "30", "[30]", [30]])
def test_one_step(value: Any) -> None:
    assert FILTERS["mirror_steps"](value) == [30]


@pytest.mark.parametrize("percent", [*range(-2, 103), True, False, 12.5, "abc", None])
def test_a_step_is_valid_exactly_when_traefik_mirror_accepts_it_as_mirror_percent(percent: Any) -> None:
    module = module_refusal(percent)
    steps = steps_refusal([20, percent])
    assert (module is None) == (steps is None), (percent, module, steps)
    if module is not None and steps is not None:
        # The same rule, in the same words, naming the role's variable instead of the module's option.
        rule = module.split("mirror_percent", 1)[1].split(" To stop mirroring")[0]
        assert steps == f"shadow_launch_steps[1]{rule}"


def test_a_step_given_as_text_is_read_as_the_module_reads_a_percent_given_as_text() -> None:
    # AnsibleModule turns mirror_percent "20" into 20; the steps filter reads "20" the same way.
    assert FILTERS["mirror_steps"](["20", " 50"]) == [20, 50]
    assert "got '20.5'" in (steps_refusal(["20.5"]) or "")


def test_steps_cut_short_by_the_extra_vars_parser_say_how_to_write_them() -> None:
    message = steps_refusal("[20,") or ""
    assert message.startswith("shadow_launch_steps arrived as '[20,'")
    assert "-e steps=20,50" in message


@pytest.mark.parametrize("empty", ["", "[]", [], " , "])
def test_no_step_is_refused(empty: Any) -> None:
    assert "must name at least one mirror percentage" in (steps_refusal(empty) or "")


WINDOWS = [
    "1h30m",
    "5m",
    "30s",
    "1s",
    "500ms",
    "2d",
    "1y2w",
    " 5m ",
    300,
    "5m1h",
    "0s",
    "1h30x",
    "five minutes",
    "",
    "5",
]


def lookup_refusal(**options: Any) -> str | None:
    """What the traffic lookup's anomalies term says about these options (None: accepted)."""
    try:
        AnomalySettings.from_options(**options)
    except DarklaunchError as error:
        return error.msg
    return None


@pytest.mark.parametrize("window", WINDOWS)
def test_a_window_is_valid_exactly_when_the_lookup_accepts_it(window: Any) -> None:
    lookup = lookup_refusal(window=window) if window != "" else None  # "" means "the default" to the role
    try:
        settings = FILTERS["anomaly_settings"]({"window": window}, "shadow_launch_")
    except AnsibleFilterError as error:
        assert lookup is not None, (window, error)
        assert str(error.message) == "shadow_launch_" + lookup
        return
    assert lookup is None, (window, lookup)
    expected = AnomalySettings.from_options(window=window) if window != "" else AnomalySettings.from_options()
    assert settings["window_seconds"] == expected.window_seconds


def test_one_hour_thirty_is_5400_seconds() -> None:
    assert FILTERS["anomaly_settings"]({"window": "1h30m"})["window_seconds"] == 5400


@pytest.mark.parametrize(
    ("options", "variable"),
    [
        ({"sigma": 0}, "shadow_launch_sigma"),
        ({"sigma": "abc"}, "shadow_launch_sigma"),
        ({"history_windows": 1}, "shadow_launch_history_windows"),
        ({"min_requests": 0}, "shadow_launch_min_requests"),
    ],
)
def test_anomaly_options_are_refused_as_the_lookup_refuses_them_naming_the_role_variable(
    options: dict[str, Any], variable: str
) -> None:
    lookup = lookup_refusal(**options)
    assert lookup is not None
    with pytest.raises(AnsibleFilterError) as caught:
        FILTERS["anomaly_settings"](options, "shadow_launch_")
    assert str(caught.value.message) == "shadow_launch_" + lookup
    assert str(caught.value.message).startswith(variable)


@pytest.mark.parametrize(
    "options",
    [
        {"route_name": "shop"},
        {"route_name": "shop", "namespace": "prod", "mirror_name": "m", "wrr_name": "w"},
        {"route_name": "shop", "main_service": "a", "mirror_service": "b", "mirror_name": ""},
    ],
)
def test_mirror_names_are_the_names_traefik_mirror_resolves(options: dict[str, str]) -> None:
    names = FILTERS["mirror_names"](options)
    given = {key: value for key, value in options.items() if value}
    resolved = plan_mirror(MirrorParams(**given, state="absent"), Observed()).resolved
    compare_name = names.pop("compare_name")
    assert names == {key: resolved[key] for key in names}
    assert compare_name == f"{given['route_name']}-compare"  # the comparator module's default name


def test_mirror_names_refuse_what_traefik_mirror_refuses() -> None:
    with pytest.raises(AnsibleFilterError, match="route_name must be a DNS-1123 subdomain"):
        FILTERS["mirror_names"]({"route_name": ""})


# --- no second copy in YAML ----------------------------------------------------------------------------


def _yaml_sources() -> list[Path]:
    return sorted([*(REPO / "roles").rglob("*.yml"), *(REPO / "playbooks").glob("*.yml")])


@pytest.mark.parametrize(
    "copy",
    [
        r"regex_findall\(['\"]-?\[0-9",  # parsing steps out of text
        r"is match\(['\"]\^\(\[0-9\]\+\(ms",  # a Prometheus duration pattern
        r"mirror_percent \| int >= 1",  # a percent range check
        r"~ ['\"]-(mirror|wrr|stable|staging|compare)['\"]",  # a derived name
        r"namespace is string",  # the Jinja namespace() workaround
    ],
)
def test_the_role_and_the_playbooks_hold_no_copy_of_these_rules(copy: str) -> None:
    found = [str(path.relative_to(REPO)) for path in _yaml_sources() if re.search(copy, path.read_text())]
    assert found == [], f"{copy} is decided by the collection's Python; found a copy in {found}"
