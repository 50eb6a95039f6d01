"""Request matching for mirrors (mirror_methods / mirror_match): rule syntax, priorities, the added route,
and the planner's attach, rerun, ramp, update and exact restore through it."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._json_patch import apply_json_patch
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_match import (
    ROUTES_ANNOTATION,
    RequestMatch,
    added_priority,
    annotation_ops,
    combined_rule,
    parse_request_match,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_params import MirrorParams, Observed
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_plan import plan_mirror
from ansible_collections.darklaunch.traefik.plugins.module_utils._traefik_rule import (
    SyntaxMismatch,
    route_syntax,
    rule_error,
)

OBJECTS = Path(__file__).parent / "fixtures" / "objects"
GET_HEAD = RequestMatch(("GET", "HEAD"))
MIRROR = "api-service-route-mirror"


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((OBJECTS / f"{name}.yaml").read_text())
    return loaded


# --- rule syntax (_traefik_rule) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        "Host(`a.example.com`) && PathPrefix(`/v1`)",
        "(Host(`a`)) && ((Path(`/b`)) || !Method(`POST`))",
        'pathprefix("/api") || HOST(`a`) || Pathprefix(`/x`)',
        "Header(`X-Shadow`, `yes`) && Query(`debug`)",
        "Method(`GET`,)",
        "Host(`a`)\n  && PathRegexp(`^/v[0-9]+`)",
    ],
)
def test_v3_rules_that_traefik_parses(rule: str) -> None:
    assert rule_error(rule, "v3") is None


@pytest.mark.parametrize(
    ("rule", "v3_error", "v2_error"),
    [
        ("Host(`a`,`b`)", "takes 1 value in v3", None),
        ("Headers(`a`, `b`)", "not a v3 matcher", None),
        ("Header(`a`, `b`)", None, "not a v2 matcher"),
        ("Headers(`a`)", "not a v3 matcher", "key/value pairs"),
        ("PathPrefix(`/a`", "expected ',' or ')'", "expected ',' or ')'"),
        ("Host(`a`) // comment", "unexpected '/'", "unexpected '/'"),
        ("Host('a')", 'unexpected "\'"', 'unexpected "\'"'),
        ("Host(`a`) Path(`/b`)", "expected '&&', '||'", "expected '&&', '||'"),
        ("Foo(`x`)", "Foo is not a v3 matcher", "Foo is not a v2 matcher"),
        ("Path(`x`)", "must start with '/'", "must start with '/'"),
        ("Host(`a`) && (Path(`/b`)", "expected ')'", "expected ')'"),
        ("Host(`unterminated)", "unterminated string", "unterminated string"),
        ("", "empty", "empty"),
        ("Host(`a`) & Path(`/b`)", "unexpected '&'", "unexpected '&'"),
    ],
)
def test_rules_that_traefik_refuses(rule: str, v3_error: str | None, v2_error: str | None) -> None:
    for syntax, expected in (("v3", v3_error), ("v2", v2_error)):
        error = rule_error(rule, syntax)
        if expected is None:
            assert error is None, (syntax, error)
        else:
            assert error is not None and expected in error, (syntax, error)


def test_the_route_syntax_comes_from_the_route_then_the_group_then_the_rules() -> None:
    v2_rule = {"match": "Host(`a`, `b`)"}
    assert route_syntax({"match": "Host(`a`)", "syntax": "v2"}, "", "traefik.io") == "v2"
    assert route_syntax({"match": "Host(`a`)"}, "", "traefik.containo.us") == "v2"
    assert route_syntax({"match": "Host(`a`)"}, "", "traefik.io") == "v3"
    assert route_syntax(v2_rule, "", "traefik.io") == "v2"
    assert route_syntax({"match": "Host(`a`)"}, "Headers(`x`, `y`)", "traefik.io") == "v2"
    with pytest.raises(SyntaxMismatch, match="v2 syntax"):
        route_syntax(v2_rule, "Header(`x`, `y`)", "traefik.io")
    with pytest.raises(SyntaxMismatch):
        route_syntax({"match": "Host(`a`)", "syntax": "v3"}, "Headers(`x`, `y`)", "traefik.io")
    with pytest.raises(ValueError, match="does not parse"):
        route_syntax({"match": "Host(`a`"}, "", "traefik.io")


# --- the options -----------------------------------------------------------------------------------------


def test_options_unset_mean_every_request() -> None:
    assert parse_request_match(None, None, attach=False, present=True) is None


def test_methods_are_upper_cased_and_deduplicated() -> None:
    request = parse_request_match(["get", " HEAD", "GET"], None, attach=True, present=True)
    assert request == RequestMatch(("GET", "HEAD"), "")
    assert request.describe() == "GET and HEAD requests"
    assert request.only_safe_methods()
    assert RequestMatch(("GET",), "PathPrefix(`/api`)").describe() == "GET requests matching PathPrefix(`/api`)"


@pytest.mark.parametrize(
    ("methods", "match", "attach", "field", "fragment"),
    [
        (["GET", "FETCH"], None, True, "mirror_methods", "'FETCH' is not an HTTP method"),
        ([], None, True, "mirror_methods", "empty list"),
        ("GET", None, True, "mirror_methods", "must be a list"),
        ([1], None, True, "mirror_methods", "is not an HTTP method"),
        (None, "  ", True, "mirror_match", "mirror_match is empty"),
        (None, "PathPrefix(`/api`", True, "mirror_match", "not a rule Traefik can parse"),
        (None, "Bogus(`x`)", True, "mirror_match", "Bogus is not a v3 matcher"),
        (["GET"], None, False, "mirror_methods", "needs attach_to_ingress=true"),
        (None, "Path(`/x`)", False, "mirror_match", "needs attach_to_ingress=true"),
    ],
)
def test_refused_options_name_their_field(
    methods: Any, match: str | None, attach: bool, field: str, fragment: str
) -> None:
    with pytest.raises(DarklaunchError) as caught:
        parse_request_match(methods, match, attach=attach, present=True)
    assert caught.value.field == field
    assert fragment in caught.value.msg


def test_teardown_takes_the_options_without_attach() -> None:
    assert parse_request_match(["GET"], None, attach=False, present=False) == RequestMatch(("GET",))


# --- the combined rule and its priority --------------------------------------------------------------------


def test_the_combined_rule_means_the_same_in_both_syntaxes() -> None:
    both = RequestMatch(("GET", "HEAD"), "PathPrefix(`/api`)")
    rule = combined_rule("Host(`a`) || Host(`b`)", both)
    assert rule == "(Host(`a`) || Host(`b`)) && (Method(`GET`) || Method(`HEAD`)) && (PathPrefix(`/api`))"
    assert rule_error(rule, "v3") is None and rule_error(rule, "v2") is None
    assert combined_rule("Host(`a`)", RequestMatch(("GET",))) == "(Host(`a`)) && Method(`GET`)"


def route(match: str, priority: int | None = None) -> dict[str, Any]:
    return {"match": match, "kind": "Rule", **({"priority": priority} if priority is not None else {})}


def test_the_added_route_sits_just_above_its_source() -> None:
    # Explicit even where the longer rule's length would win: a route written later above the source stays above.
    routes = [route("Host(`a`)"), route("Host(`b.example.com`) && PathPrefix(`/very/long/prefix/here`)")]
    assert added_priority(routes, 0, (), GET_HEAD) == 10


def test_an_explicit_priority_is_beaten_by_one() -> None:
    assert added_priority([route("Host(`a`)", 10)], 0, (), GET_HEAD) == 11
    assert added_priority([route("Host(`a`)", -1)], 0, (), GET_HEAD) == 1


def test_a_route_between_the_two_lengths_keeps_its_place() -> None:
    # Route 1 (length 24) beats route 0 (length 9); the added route (length 50 unset) stays below it.
    routes = [route("Host(`a`)"), route("Host(`a`) && Path(`/x`)")]
    assert added_priority(routes, 0, (), GET_HEAD) == 10


def test_a_tie_with_another_route_is_refused() -> None:
    routes = [route("Host(`a`)", 10), route("Host(`a`) && Path(`/x`)", 11)]
    with pytest.raises(DarklaunchError, match="cannot be combined safely") as caught:
        added_priority(routes, 0, (), GET_HEAD)
    assert caught.value.field == "mirror_methods"
    assert "route 1 has priority 11" in caught.value.msg
    # A route for another host never takes route 0's requests: no tie.
    assert added_priority([route("Host(`a`)", 10), route("Host(`b`)", 11)], 0, (), GET_HEAD) == 11


def test_the_highest_priority_cannot_be_beaten() -> None:
    with pytest.raises(DarklaunchError, match="highest Traefik accepts"):
        added_priority([route("Host(`a`)", 2**63 - 1 - 1000)], 0, (), GET_HEAD)


def test_annotation_ops_keep_other_annotations_and_drop_an_emptied_map() -> None:
    key = "darklaunch.traefik~1mirror-request-routes"
    assert annotation_ops(None, {ROUTES_ANNOTATION: "{}"}) == [
        {"op": "add", "path": "/metadata/annotations", "value": {ROUTES_ANNOTATION: "{}"}}
    ]
    assert annotation_ops({"a": "1"}, {ROUTES_ANNOTATION: "{}"}) == [
        {"op": "add", "path": f"/metadata/annotations/{key}", "value": "{}"}
    ]
    assert annotation_ops({ROUTES_ANNOTATION: "{}"}, {ROUTES_ANNOTATION: None}) == [
        {"op": "remove", "path": "/metadata/annotations"}
    ]
    assert annotation_ops({"a": "1", ROUTES_ANNOTATION: "{}"}, {ROUTES_ANNOTATION: None}) == [
        {"op": "remove", "path": f"/metadata/annotations/{key}"}
    ]
    assert annotation_ops({"a": "1"}, {ROUTES_ANNOTATION: None}) == []


# --- the planner -------------------------------------------------------------------------------------------


class Cluster:
    """One namespace in memory; patches are applied by the jsonpatch library, as the API server would."""

    def __init__(self, *names: str) -> None:
        self.objects = {(o["kind"], o["metadata"]["name"]): o for o in (load(name) for name in names)}
        self.versions = itertools.count(9000)
        self.writes = 0

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind, name))
        return copy.deepcopy(found) if found else None

    def run(self, **options: Any) -> Any:
        base = {
            "route_name": "api-service-route",
            "namespace": "production",
            "main_service": "api-service-stable",
            "mirror_service": "api-service-canary",
            "api_group": "traefik.io",
        }
        params = MirrorParams.from_options({**base, **options})
        observed = Observed(
            mirror=self.get("TraefikService", params.mirror_name),
            ingress_route=self.get("IngressRoute", params.route_name),
            wrr=self.get("TraefikService", params.wrr_name),
            main=self.get(params.main_kind, params.main_service),
            mirror_target=self.get("Service", params.mirror_service),
        )
        plan = plan_mirror(params, observed)
        for action in plan.actions:
            self.writes += 1
            key = (action.kind, action.name)
            if action.verb == "create":
                self.objects[key] = copy.deepcopy(action.body)
            elif action.verb == "patch":
                preview = apply_json_patch(self.objects[key], action.body)
                self.objects[key] = jsonpatch.apply_patch(self.objects[key], action.body)
                assert preview == self.objects[key]
            else:
                del self.objects[key]
                continue
            self.objects[key]["metadata"]["resourceVersion"] = str(next(self.versions))
        return plan


def attach(**options: Any) -> dict[str, Any]:
    return {"mirror_percent": 20, "attach_to_ingress": True, "confirm_end_weighted_split": True, **options}


def user_visible(obj: dict[str, Any] | None) -> dict[str, Any]:
    assert obj is not None
    meta = obj["metadata"]
    return {"spec": obj["spec"], "labels": meta.get("labels"), "annotations": meta.get("annotations")}


def wrr_cluster(ingress_route: str = "ir-to-wrr", wrr: str = "ts-wrr-100-0") -> Cluster:
    """Users all on stable through the weighted split (canary weight 0), as before a shadow launch."""
    return Cluster(ingress_route, wrr, "svc-api-service-stable", "svc-api-service-canary")


def test_a_live_split_is_refused_because_the_other_requests_would_stay_on_it() -> None:
    cluster = wrr_cluster(wrr="ts-wrr-50-50")
    with pytest.raises(DarklaunchError, match="writes included") as caught:
        cluster.run(**attach(mirror_methods=["GET", "HEAD"]))
    assert caught.value.field == "mirror_methods" and cluster.writes == 0
    assert "api-service-canary would keep answering real users' requests" in caught.value.msg
    assert "main_kind=TraefikService, main_service=api-service-route-wrr" in caught.value.msg


def test_attach_adds_a_route_for_the_methods_and_restore_removes_exactly_it() -> None:
    cluster = wrr_cluster()
    original = cluster.get("IngressRoute", "api-service-route")

    plan = cluster.run(**attach(mirror_methods=["GET", "HEAD"]))
    assert [(a.verb, a.kind) for a in plan.actions] == [("create", "TraefikService"), ("patch", "IngressRoute")]
    assert plan.status == "active"
    assert "route 2 added at priority 11" in plan.actions[1].summary
    after = cluster.get("IngressRoute", "api-service-route") or {}
    routes = after["spec"]["routes"]
    assert routes[:2] == original["spec"]["routes"]  # the original routes are untouched
    assert routes[2] == {
        "kind": "Rule",
        "match": "(Host(`api.example.com`) && PathPrefix(`/v1`)) && (Method(`GET`) || Method(`HEAD`))",
        "priority": 11,
        "middlewares": [{"name": "api-ratelimit"}, {"name": "strip-v1", "namespace": "production"}],
        "services": [{"name": MIRROR, "kind": "TraefikService"}],
    }
    assert after["metadata"]["labels"] == original["metadata"]["labels"]
    assert "darklaunch.traefik/pre-mirror-services" not in after["metadata"]["annotations"]
    assert any("only copies of GET and HEAD requests" in warning for warning in plan.warnings)

    # rerun: nothing to write; ramp: only the percent
    writes = cluster.writes
    assert not cluster.run(**attach(mirror_methods=["GET", "HEAD"])).changed
    assert cluster.writes == writes
    ramp = cluster.run(**attach(mirror_methods=["GET", "HEAD"], mirror_percent=50))
    assert [(a.verb, a.kind) for a in ramp.actions] == [("patch", "TraefikService")]

    # other methods: the added route is replaced in place
    update = cluster.run(**attach(mirror_methods=["GET"], mirror_percent=50))
    assert [op["op"] for op in update.actions[0].body[1:3]] == ["replace", "add"]
    assert update.actions[0].body[1]["path"] == "/spec/routes/2"
    assert len((cluster.get("IngressRoute", "api-service-route") or {})["spec"]["routes"]) == 3

    # restore: the IngressRoute exactly as before, the mirror gone; a second teardown does nothing
    teardown = cluster.run(state="absent", mirror_methods=["GET"])
    assert [(a.verb, a.kind) for a in teardown.actions] == [("patch", "IngressRoute"), ("delete", "TraefikService")]
    assert user_visible(cluster.get("IngressRoute", "api-service-route")) == user_visible(original)
    assert cluster.get("TraefikService", MIRROR) is None
    assert not cluster.run(state="absent").changed


def test_a_route_without_priority_is_beaten_by_its_length_plus_one_and_a_match_is_anded() -> None:
    cluster = Cluster("ir-direct", "svc-api-service-stable", "svc-api-service-canary")
    original = cluster.get("IngressRoute", "api-service-route")
    plan = cluster.run(**attach(mirror_methods=["get"], mirror_match="PathPrefix(`/api`)"))
    added = (cluster.get("IngressRoute", "api-service-route") or {})["spec"]["routes"][1]
    assert added["match"] == "(Host(`api.example.com`)) && Method(`GET`) && (PathPrefix(`/api`))"
    assert added["priority"] == len("Host(`api.example.com`)") + 1
    assert added["services"] == [{"name": MIRROR, "kind": "TraefikService"}]
    assert plan.distribution is not None
    assert not cluster.run(**attach(mirror_methods=["GET"], mirror_match="PathPrefix(`/api`)")).changed
    cluster.run(state="absent")
    assert user_visible(cluster.get("IngressRoute", "api-service-route")) == user_visible(original)


def test_unsafe_methods_are_warned_about() -> None:
    plan = wrr_cluster().run(**attach(mirror_methods=["GET", "POST"]))
    assert any("includes POST" in warning for warning in plan.warnings)


def test_check_mode_preview_matches_the_applied_object() -> None:
    cluster = wrr_cluster()
    plan = cluster.run(**attach(mirror_methods=["GET"]))
    assert user_visible(plan.ingress_route_after) == user_visible(cluster.get("IngressRoute", "api-service-route"))


def refusal(cluster: Cluster, **options: Any) -> DarklaunchError:
    writes = cluster.writes
    with pytest.raises(DarklaunchError) as caught:
        cluster.run(**options)
    assert cluster.writes == writes
    return caught.value


def test_switching_between_every_request_and_some_is_refused() -> None:
    cluster = wrr_cluster()
    cluster.run(**attach())
    error = refusal(cluster, **attach(mirror_methods=["GET"]))
    assert error.field == "mirror_methods" and "run state=absent first" in error.msg

    cluster = wrr_cluster()
    cluster.run(**attach(mirror_methods=["GET"]))
    error = refusal(cluster, **attach())
    assert error.field == "mirror_methods" and "copies only some requests" in error.msg


def test_a_match_in_another_syntax_than_the_route_is_refused_before_any_write() -> None:
    v2_match = attach(mirror_match="Headers(`X-Shadow`, `yes`)", api_group="traefik.containo.us")
    assert wrr_cluster().run(**v2_match).changed
    cluster = wrr_cluster()
    error = refusal(cluster, **attach(mirror_match="Header(`X-Shadow`, `yes`)", api_group="traefik.containo.us"))
    assert error.field == "mirror_match" and "not a v2 matcher" in error.msg
    cluster.objects[("IngressRoute", "api-service-route")]["spec"]["routes"][0]["syntax"] = "v3"
    error = refusal(cluster, **attach(mirror_match="Headers(`X-Shadow`, `yes`)"))
    assert error.field == "mirror_match" and "not a v3 matcher" in error.msg


def test_a_route_whose_rule_does_not_parse_is_refused() -> None:
    cluster = wrr_cluster()
    cluster.objects[("IngressRoute", "api-service-route")]["spec"]["routes"][0]["match"] = "Host(`a`) // all"
    error = refusal(cluster, **attach(mirror_methods=["GET"]))
    assert error.field == "mirror_methods" and "cannot be combined safely" in error.msg


def test_a_removed_added_route_is_reported_and_added_again() -> None:
    cluster = wrr_cluster()
    cluster.run(**attach(mirror_methods=["GET"]))
    ingress_route = cluster.objects[("IngressRoute", "api-service-route")]
    del ingress_route["spec"]["routes"][2]
    plan = cluster.run(**attach(mirror_methods=["GET"]))
    assert any("changed or removed by someone else" in warning for warning in plan.warnings)
    assert len((cluster.get("IngressRoute", "api-service-route") or {})["spec"]["routes"]) == 3
