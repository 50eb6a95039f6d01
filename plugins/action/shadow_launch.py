# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of ``darklaunch.traefik.shadow_launch`` (documented in plugins/modules/shadow_launch.py).

Runs the launch engine (``plugin_utils/_launch_engine``) on the controller, like the traffic lookup and the
watchdog: the engine writes through traefik_mirror's own Python (``run_mirror``), judges through the traffic
lookup, and prints one line per check while the task runs (``ansible-playbook`` shows them live, AWX
receives them as events). Nothing is sent to a managed host.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.darklaunch.traefik.plugins.module_utils import _default_names as default_names
from ansible_collections.darklaunch.traefik.plugins.module_utils._argspec import (
    auth_argument_spec,
    mirror_match_spec,
    mirror_target_spec,
    route_spec,
    with_auth,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_plan import KIND_HTTP_ROUTE
from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_runner import (
    UNSUPPORTED,
    ingress_route_only,
    route_kind,
    run_httproute_mirror,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s import KubeClient
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s_auth import (
    HAS_KUBERNETES,
    build_configuration,
    kubernetes_missing_error,
    resolve_auth_options,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_record import rollback_command, status_command
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_runner import run_mirror
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import TRAEFIK_GROUPS
from ansible_collections.darklaunch.traefik.plugins.module_utils._redact import (
    auth_secrets,
    prometheus_secrets,
    scrub,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._traffic_view import read_distribution
from ansible_collections.darklaunch.traefik.plugins.modules.traefik_mirror import (
    argument_spec as mirror_argument_spec,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_settings import parse_prometheus_duration
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._controller_action import ControllerAction
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._launch_engine import LaunchEngine
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._launch_ports import JudgeUnavailable, LaunchPlan
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._launch_rules import (
    GateRules,
    check_rules,
    checks_per_step,
    interval_seconds,
    lease_seconds,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._watchdog_control import arm_for_route, disarm_route
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._watchdog_files import route_files, state_dir

display = Display()

# The mirror's options the launch passes through to traefik_mirror unchanged.
_MIRROR_WRITE_OPTIONS = ("mirror_body", "max_body_size", "propagation_seconds")
_MIRROR_OPTIONS = (*mirror_target_spec(), *_MIRROR_WRITE_OPTIONS)
# The options that choose which requests are copied: passed only on the writes that attach (and the plan),
# as traefik_mirror refuses them without attach_to_ingress (the launch's first write does not attach).
_MIRROR_MATCH_OPTIONS = tuple(mirror_match_spec())
# What an HTTPRoute's traefik_mirror does not take (refused when given, see _refuse_ingress_route_options).
_INGRESS_ROUTE_ONLY = (*UNSUPPORTED, "main_kind")


def argument_spec() -> dict[str, Any]:
    return with_auth(
        {
            **route_spec(),
            "route_kind": {"type": "str", "choices": ["IngressRoute", "HTTPRoute"]},
            "rule_index": {"type": "int"},
            **mirror_target_spec(),
            **mirror_match_spec(),
            "steps": {"type": "list", "elements": "int", "required": True},
            "bake_seconds": {"type": "int", "default": 300},
            "attach_to_ingress": {"type": "bool", "default": False},
            "confirm_end_weighted_split": {"type": "bool", "default": False},
            "restore_ingress_to_wrr": {"type": "bool", "default": True},
            "teardown": {"type": "bool", "default": False},
            "gate": {"type": "bool", "default": True},
            "interval": {"type": "int", "default": 60},
            "failure_limit": {"type": "int", "default": 1},
            "inconclusive_limit": {"type": "int", "default": 3},
            "error_limit": {"type": "int", "default": 3},
            "fail_on_insufficient_data": {"type": "bool", "default": True},
            "lease_seconds": {"type": "int", "default": 0},
            "watchdog": {"type": "bool", "default": True},
            "takeover": {"type": "bool", "default": False},
            "launch_id": {"type": "str", "required": True},
            "owner": {"type": "str"},
            "comparator": {"type": "str"},
            "anomaly": {"type": "dict", "default": {}},
            "api_group": {"type": "str", "choices": list(TRAEFIK_GROUPS)},
            # traefik_mirror's options for the mirror it writes; unset means the module's default.
            **{name: {"type": mirror_argument_spec()[name]["type"]} for name in _MIRROR_WRITE_OPTIONS},
        }
    )


class ActionModule(ControllerAction):
    spec = staticmethod(argument_spec)

    def run(self, tmp: str | None = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result, validated = self.start(tmp, task_vars)
        # Plain Python values, as a module would receive them: templated strings arrive as Ansible's own str
        # subclasses, and the planner treats a value of another type as a change (a rerun would write).
        params: dict[str, Any] = json.loads(json.dumps(validated))
        secrets = auth_secrets(params) | prometheus_secrets(params["anomaly"])
        try:
            engine = self._engine(params, task_vars or {}, lambda line: display.display(scrub(line, secrets)))
        except DarklaunchError as error:
            result.update(failed=True, outcome="refused", msg=scrub(error.msg, secrets), changed=False)
            if error.field is not None:
                result["field"] = error.field
            return result
        launch = engine.run()
        data = launch.to_dict()
        result.update(
            {key: value for key, value in data.items() if key not in ("msg", "cause")},
            msg=scrub(launch.msg, secrets),
            cause=scrub(launch.cause, secrets) if launch.cause else None,
            changed=bool(launch.changes),
            failed=launch.failed,
        )
        return result

    def _engine(self, params: dict[str, Any], task_vars: dict[str, Any], say: Any) -> LaunchEngine:
        if not HAS_KUBERNETES:
            raise kubernetes_missing_error()
        steps = params["steps"]
        if not steps or any(not 1 <= step <= 100 for step in steps):
            raise DarklaunchError(
                f"steps must be percentages from 1 to 100 (got {steps}).", field="shadow_launch_steps"
            )
        window = str(params["anomaly"].get("window") or "1m")
        window_seconds = parse_prometheus_duration(window)
        rules = GateRules(
            bake_seconds=params["bake_seconds"],
            interval_seconds=interval_seconds(params["interval"], window_seconds),
            failure_limit=params["failure_limit"],
            inconclusive_limit=params["inconclusive_limit"],
            error_limit=params["error_limit"],
            fail_on_insufficient_data=params["fail_on_insufficient_data"],
            gate=params["gate"],
        )
        check_rules(rules)
        if params["lease_seconds"] < 0:
            raise DarklaunchError("shadow_launch_lease_seconds must be 0 or more.", field="shadow_launch_lease_seconds")
        match = request_match_options(params)
        if match and not params["attach_to_ingress"]:
            given = next(iter(match))
            raise DarklaunchError(
                f"shadow_launch_{given} needs shadow_launch_attach_to_ingress=true: the requests to copy are chosen by "
                "a route the attach adds to the IngressRoute, and without the attach nothing routes through the "
                f"mirror. Nothing was changed. Set shadow_launch_attach_to_ingress=true, or leave "
                f"shadow_launch_{given} empty.",
                field=f"shadow_launch_{given}",
            )
        plan = LaunchPlan(
            route_name=params["route_name"],
            namespace=params["namespace"],
            steps=tuple(steps),
            rules=rules,
            attach=params["attach_to_ingress"],
            teardown=params["teardown"],
            launch_id=params["launch_id"],
            takeover=params["takeover"],
            check_mode=bool(self._task.check_mode),
            restore_to_wrr=params["restore_ingress_to_wrr"],
            window_seconds=window_seconds,
            window=window,
        )
        auth = resolve_auth_options({name: params.get(name) for name in auth_argument_spec()})
        cluster = _Cluster(params, auth, lease_seconds(params["lease_seconds"], rules))
        # The route's kind settles once, before anything is written: every later call goes the same way.
        params = cluster.params
        judge = _Judge(self, params, task_vars, checks_per_step(rules)) if rules.gate else None
        watchdog = _Watchdog(params, auth) if params["watchdog"] and not plan.check_mode else None
        return LaunchEngine(plan, cluster, judge, watchdog, _Clock(), say)


def request_match_options(params: dict[str, Any]) -> dict[str, Any]:
    """traefik_mirror's mirror_methods / mirror_match from the launch's: an empty list or text (the role's
    default, an empty survey answer) means every request, so the option is left out; methods given as text
    ("GET,HEAD") arrive as a list already, split by the argument spec, with empty entries dropped here."""
    options: dict[str, Any] = {}
    methods = [str(method).strip() for method in params.get("mirror_methods") or [] if str(method).strip()]
    if methods:
        options["mirror_methods"] = methods
    extra = str(params.get("mirror_match") or "").strip()
    if extra:
        options["mirror_match"] = extra
    return options


class _Clock:
    """Wall time, and sleeps that end this worker when the ansible-playbook that forked it is gone.

    A killed ansible-playbook (SIGKILL, a crash) cannot stop its worker, which would go on renewing the
    launch record and writing steps that nobody watches, and race the watchdog's rollback. The worker is
    reparented then, so it checks its parent while it waits and exits at once, writing nothing more: the
    watchdog (or, without one, the record's deadline and the abandoned-launch report) takes it from there.
    """

    SLICE_SECONDS = 0.5

    def __init__(self) -> None:
        self._parent = os.getppid()

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            if os.getppid() != self._parent:
                os._exit(1)
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, self.SLICE_SECONDS))


class _Cluster:
    """traefik_mirror's Python and by-name reads, on one client for the whole launch."""

    def __init__(self, params: dict[str, Any], auth: dict[str, Any], lease: int) -> None:
        self._lease = lease
        self._client = KubeClient.from_params({**auth, "api_group": params["api_group"]})
        self._auth = auth
        self._names: dict[str, Any] = {}
        # route_kind as given, else found (an HTTPRoute when only an HTTPRoute has the name).
        self._params = {**params, "route_kind": route_kind(self._client, params)}
        if self._params["route_kind"] == KIND_HTTP_ROUTE:
            _refuse_ingress_route_options(self._params)

    @property
    def params(self) -> dict[str, Any]:
        """The launch's options with ``route_kind`` settled."""
        return self._params

    @property
    def _http_route(self) -> bool:
        return bool(self._params["route_kind"] == KIND_HTTP_ROUTE)

    def _match(self, attach: bool) -> dict[str, Any]:
        """mirror_methods / mirror_match for a write that attaches; nothing for one that does not (nor on an
        HTTPRoute, which does not take them)."""
        return request_match_options(self._params) if attach and not self._http_route else {}

    def _mirror(self, check_mode: bool = False, **options: Any) -> dict[str, Any]:
        """One traefik_mirror run with the module's own argument spec (its defaults included)."""
        names = ("route_name", "namespace", "api_group", "route_kind", *_MIRROR_OPTIONS)
        given = {name: self._params[name] for name in names}
        if self._http_route:
            # Refused up front when given (_refuse_ingress_route_options); main_kind's default is one of them.
            given = {name: value for name, value in given.items() if name not in _INGRESS_ROUTE_ONLY}
            given["rule_index"] = self._params["rule_index"]
        given.update(options)
        checked = ArgumentSpecValidator(mirror_argument_spec()).validate(
            {name: value for name, value in given.items() if value is not None}
        )
        if checked.error_messages:
            raise DarklaunchError("; ".join(checked.error_messages))
        answer: dict[str, Any]
        if self._http_route:
            answer = run_httproute_mirror(self._client, checked.validated_parameters, check_mode=check_mode)
        else:
            answer = run_mirror(self._client, checked.validated_parameters, check_mode=check_mode).plan.to_dict()
        if answer.get("resolved"):
            self._names = dict(answer["resolved"])
        return answer

    def _launch(self, percent: int, record: str, progress: str | None) -> dict[str, Any]:
        return {
            "id": self._params["launch_id"],
            "owner": self._params["owner"],
            "step": percent,
            "lease_seconds": self._lease,
            "state": record,
            "progress": progress,
            "comparator": self._params["comparator"] or None,
        }

    def plan(self, percent: int) -> dict[str, Any]:
        attach = self._params["attach_to_ingress"]
        return self._mirror(
            check_mode=True,
            state="present",
            mirror_percent=percent,
            # Always with the attach: only then does traefik_mirror refuse a missing main or shadow Service.
            attach_to_ingress=True,
            # Without an attach there is no weighted split to end, so nothing to sign off.
            confirm_end_weighted_split=self._params["confirm_end_weighted_split"] or not attach,
            # Checked before anything changes: an unknown method or a rule Traefik cannot parse is refused here.
            **self._match(True),
        )

    def apply(self, percent: int, attach: bool, record: str, progress: str | None) -> dict[str, Any]:
        return self._mirror(
            state="present",
            mirror_percent=percent,
            attach_to_ingress=attach,
            confirm_end_weighted_split=self._params["confirm_end_weighted_split"],
            launch=self._launch(percent, record, progress),
            **self._match(attach),
        )

    def restore(self) -> dict[str, Any]:
        return self._mirror(state="absent", restore_ingress_to_wrr=self._params["restore_ingress_to_wrr"])

    def _mirror_name(self) -> str:
        route_name = self._params["route_name"]
        return self._names.get("mirror_name") or self._params["mirror_name"] or default_names.mirror_name(route_name)

    def observe(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        namespace = self._params["namespace"]
        return (
            self._client.get("TraefikService", namespace, self._mirror_name()),
            self._client.get(self._params["route_kind"], namespace, self._params["route_name"]),
        )

    def rollback_command(self) -> str:
        params = self._params
        return rollback_command(params["route_name"], params["namespace"], self._mirror_name(), self._client.connection)

    def status_command(self) -> str:
        return status_command(self._params["route_name"], self._params["namespace"], self._client.connection)

    def read_route(self) -> dict[str, Any] | None:
        try:
            distribution = read_distribution(
                self._client,
                namespace=self._params["namespace"],
                route_name=self._params["route_name"],
                api_group=self._params["api_group"],
                route_kind=self._params["route_kind"],
            )
        except DarklaunchError:
            return None
        return distribution.to_dict()


def _refuse_ingress_route_options(params: dict[str, Any]) -> None:
    """An HTTPRoute launch given an option only IngressRoutes take: refused, naming it, before any write."""
    given = ingress_route_only(params)
    if not given:
        return
    names = ", ".join(f"shadow_launch_{name}" for name in given)
    raise DarklaunchError(
        f"{names} {'applies' if len(given) == 1 else 'apply'} to IngressRoutes only, and {params['namespace']}/"
        f"{params['route_name']} is an HTTPRoute (route_kind HTTPRoute). Nothing was changed. Leave "
        f"{'it' if len(given) == 1 else 'them'} unset, or launch on an IngressRoute.",
        field=f"shadow_launch_{given[0]}",
    )


class _Judge:
    """The traffic lookup's ``anomalies`` answer, with the options and environment it would get in a task."""

    def __init__(self, action: ActionBase, params: dict[str, Any], task_vars: dict[str, Any], checks: int) -> None:
        self._action = action
        self._task_vars = task_vars
        auth = {name: params[name] for name in auth_argument_spec() if params.get(name) is not None}
        self._options = {
            # A step's checks share sigma's false-alarm budget (the lookup's checks_per_step).
            "checks_per_step": checks,
            **{key: value for key, value in params["anomaly"].items() if value not in (None, "", [], {})},
            **auth,
            "route_name": params["route_name"],
            "namespace": params["namespace"],
        }
        if params["api_group"]:
            self._options["api_group"] = params["api_group"]

    def check(self, since: float | None = None) -> dict[str, Any]:
        lookup = self._action._shared_loader_obj.lookup_loader.get(
            "darklaunch.traefik.traffic", loader=self._action._loader, templar=self._action._templar
        )
        options = dict(self._options, mirror_since=since) if since is not None else self._options
        try:
            answer = lookup.run(["anomalies"], variables=self._task_vars, **options)
        except (AnsibleError, DarklaunchError, OSError) as error:
            raise JudgeUnavailable(str(error).strip()) from None
        return dict(answer[0])


class _Watchdog:
    def __init__(self, params: dict[str, Any], auth: dict[str, Any]) -> None:
        self._params = params
        self._auth = auth
        api_server = str(build_configuration(auth).host)
        self._files = route_files(state_dir(), params["namespace"], params["route_name"], api_server)

    def arm(self) -> str | None:
        arm_for_route(self._files, self._params, self._auth, __file__)
        return str(self._files.log)

    def disarm(self) -> dict[str, Any] | None:
        stopped = disarm_route(self._files)
        return stopped.outcome if stopped.outcome else None
