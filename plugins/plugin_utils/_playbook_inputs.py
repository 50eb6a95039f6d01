# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The extra vars each playbook of the collection takes, how unknown ones are judged, and which cluster and
namespace a run acts on (kubectl's convention: the kubeconfig context's namespace when none is given).

Used by the ``darklaunch.traefik.playbook_inputs`` action, the first task of every playbook.

Judging unknown extra vars: AWX and ansible-runner add their own extra vars (``awx_*``, ``tower_*``, a
credential type's injectors, ...), so an unknown name is refused only when it looks like one of this
collection's: the name of another playbook's extra var, a close match (difflib) of one of this playbook's,
or the first words of one (``bake`` for ``bake_seconds``). Other names are left alone.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import yaml

from ansible_collections.darklaunch.traefik.plugins.module_utils._argspec import auth_argument_spec
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError

# The playbooks' namespace extra var. ``namespace`` itself is reserved by Ansible (2.19 warns on every run),
# so the old name is refused with the new one.
NAMESPACE_VAR: Final = "route_namespace"
RENAMED: Final = {"namespace": NAMESPACE_VAR}

# Extra vars AWX gives every job.
AWX_JOB_VARS: Final = frozenset({"awx_job_id", "tower_job_id"})
# Extra vars of other tools, never judged.
FOREIGN_PREFIXES: Final = ("awx_", "tower_", "ansible_", "molecule_", "_")

# kubernetes.core's connection options, with their aliases: the modules' own names (module_utils/_argspec.py).
CONNECTION: Final = frozenset(auth_argument_spec())
CONNECTION_ALIASES: Final = {
    alias: name for name, option in auth_argument_spec().items() for alias in option.get("aliases") or ()
}
_TARGET: Final = frozenset({"route_name", NAMESPACE_VAR, "api_group"})
_MIRROR_NAMES: Final = frozenset({"mirror_name"})
_MIRROR_WRITE: Final = frozenset({"max_body_size", "mirror_body", "propagation_seconds"})
# The requests to copy (traefik_mirror's mirror_methods / mirror_match): only where the mirror is attached.
_MIRROR_MATCH: Final = frozenset({"mirror_methods", "mirror_match"})
_SERVICES: Final = frozenset({"main_service", "mirror_service"})
_PROMETHEUS: Final = frozenset(
    {
        "prometheus_url",
        "prometheus_selector",
        "prometheus_token",
        "prometheus_username",
        "prometheus_password",
        "prometheus_headers",
        "prometheus_timeout",
        "prometheus_validate_certs",
        "prometheus_ca_cert",
        "prometheus_client_cert",
        "prometheus_client_key",
        "prometheus_proxy",
    }
)
_GATE: Final = frozenset({"sigma", "window", "history_windows", "min_requests", "metrics"})
# Judge the answers: the comparator between the mirror and the shadow, and the gate's difference check.
_COMPARE: Final = frozenset(
    {
        "compare",
        "compare_service",
        "compare_port",
        "compare_max_diff_rate",
        "compare_secondary_service",
        "compare_image",
        "compare_resources",
        "compare_labels",
        "compare_ignore_json_pointers",
        "compare_ignore_headers",
        "compare_wait_seconds",
    }
)
_LAUNCH: Final = (
    _TARGET
    | _MIRROR_NAMES
    | _MIRROR_WRITE
    | _MIRROR_MATCH
    | _SERVICES
    | _PROMETHEUS
    | _GATE
    | _COMPARE
    | {
        "route_kind",
        "rule_index",
        "main_kind",
        "main_port",
        "mirror_port",
        "wrr_name",
        "steps",
        "mirror_percent",
        "bake_seconds",
        "attach_to_ingress",
        "confirm_end_weighted_split",
        "restore_ingress_to_wrr",
        "anomaly_gate",
        "client_error_codes",
        "teardown",
        "interval",
        "failure_limit",
        "inconclusive_limit",
        "error_limit",
        "takeover",
        "fail_on_insufficient_data",
        "lease_seconds",
        "watchdog",
        "report",
        "report_dir",
        "report_keep",
    }
)
_CONTROL: Final = _TARGET | _MIRROR_NAMES

# Each playbook's own extra vars (besides the connection options, which every playbook takes).
PLAYBOOKS: Final[dict[str, frozenset[str]]] = {
    "mirror_enable": _TARGET
    | _MIRROR_NAMES
    | _MIRROR_WRITE
    | _MIRROR_MATCH
    | _SERVICES
    | {"mirror_percent", "main_port", "mirror_port", "attach_to_ingress", "confirm_end_weighted_split"}
    | {"route_kind", "rule_index"},
    "mirror_ramp": _TARGET
    | _MIRROR_NAMES
    | _MIRROR_WRITE
    | _SERVICES
    | {"mirror_percent", "confirm_end_weighted_split", "route_kind", "rule_index"},
    "mirror_disable": _TARGET | _MIRROR_NAMES | {"restore_ingress_to_wrr", "propagation_seconds", "route_kind"},
    "shadow_status": _TARGET,
    "shadow_report": _TARGET | {"report_name", "dest"},
    "shadow_reap": frozenset({NAMESPACE_VAR, "namespaces", "api_group", "dry_run"}),
    "anomaly_check": _TARGET | _PROMETHEUS | _GATE | {"fail_on_anomaly"},
    "shadow_pause": _CONTROL,
    "shadow_resume": _CONTROL,
    "shadow_abort": _CONTROL,
    "shadow_launch": _LAUNCH,
    "shadow_launch_fleet": _LAUNCH | {"fleet_waves", "rollback_launched_on_failure", "k8s_auth"},
}
VOCABULARY: Final = frozenset().union(*PLAYBOOKS.values()) | CONNECTION | frozenset(CONNECTION_ALIASES)

# How alike a name must be to one of the playbook's to be taken for a misspelling of it (difflib's ratio).
CLOSE_MATCH: Final = 0.8


def known_names(playbook: str) -> frozenset[str]:
    """Every extra var ``playbook`` takes: its own and the connection options (with their aliases)."""
    return PLAYBOOKS[playbook] | CONNECTION | frozenset(CONNECTION_ALIASES)


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name ``name`` most likely misspells: difflib's closest match, else a name it starts
    (``bake`` for ``bake_seconds``), else None."""
    ordered = sorted(known)
    match = difflib.get_close_matches(name, ordered, n=1, cutoff=CLOSE_MATCH)
    if match:
        return match[0]
    starts = [candidate for candidate in ordered if candidate.startswith(name + "_")]
    return starts[0] if len(starts) == 1 else None


def judge_extra_vars(playbook: str, names: Iterable[str]) -> None:
    """Refuse the extra vars ``playbook`` does not take and that look like this collection's, each with the
    name to use instead; raise one DarklaunchError naming all of them. Nothing is read or written."""
    if playbook not in PLAYBOOKS:
        raise DarklaunchError(f"unknown playbook {playbook}; one of {', '.join(sorted(PLAYBOOKS))}", field="playbook")
    known = known_names(playbook)
    names = set(names)
    # An AWX workflow gives every node the workflow's survey answers and the earlier nodes' set_stats, so there
    # another playbook's extra vars are the workflow's, not a mistake.
    in_awx = bool(names & AWX_JOB_VARS)
    problems: list[str] = []
    for name in sorted(names):
        if name in known or name.startswith(FOREIGN_PREFIXES):
            continue
        if name in RENAMED:
            problems.append(
                f"the extra var {name} was renamed {RENAMED[name]} (Ansible reserves the name {name}): "
                f"use -e {RENAMED[name]}=..."
            )
        elif name in VOCABULARY:
            if not in_awx:
                problems.append(f"{name} is not an extra var of this playbook (it belongs to others of the collection)")
        else:
            match = closest(name, known)
            if match is not None:
                problems.append(f"unknown extra var {name}: did you mean {match}?")
    if problems:
        raise DarklaunchError(
            f"playbooks/{playbook}.yml refuses its extra vars before doing anything: {'; '.join(problems)}. "
            f"Its extra vars are: {', '.join(sorted(PLAYBOOKS[playbook]))}, and the connection options "
            f"{', '.join(sorted(CONNECTION))}.",
            field=NAMESPACE_VAR if names & set(RENAMED) else None,
        )


def connection_extra_vars(extra_vars: Mapping[str, Any]) -> dict[str, Any]:
    """The connection options among the extra vars, aliases under their option's name; unset ones left out."""
    options: dict[str, Any] = {}
    for name, value in extra_vars.items():
        option = CONNECTION_ALIASES.get(name, name)
        if option in CONNECTION and value not in (None, "", [], {}):
            options[option] = value
    return options


# The Prometheus connection options a playbook passes on as given (the lookup's names); the URL and the selector
# are the gate's own variables, not connection options.
PROMETHEUS_CONNECTION: Final = _PROMETHEUS - {"prometheus_url", "prometheus_selector"}


def prometheus_extra_vars(extra_vars: Mapping[str, Any]) -> dict[str, Any]:
    """The Prometheus connection options among the extra vars; unset and empty ones (a survey's blank answer)
    left out, so the lookup's environment fallbacks (the AWX credential) still apply."""
    return {
        name: value
        for name, value in sorted(extra_vars.items())
        if name in PROMETHEUS_CONNECTION and value not in (None, "", [], {})
    }


# --- the launch role's variables ------------------------------------------------------------------------

# The launch playbooks pass each launch extra var the user gave to the role variable of the same name behind
# this prefix, and nothing else: the role's defaults (roles/shadow_launch/defaults/main.yml) stand for the rest.
ROLE_PREFIX: Final = "shadow_launch_"
# Extra vars that are not a role variable of their own name: the namespace and the connection options arrive
# resolved (namespace, k8s_auth, prometheus_auth); one mirror_percent is the single step.
_NOT_ROLE_VARS: Final = frozenset({NAMESPACE_VAR, "mirror_percent"}) | PROMETHEUS_CONNECTION
LAUNCH_ROLE_VARS: Final = _LAUNCH - _NOT_ROLE_VARS
# The playbooks that run the role; the fleet's clusters may set launch variables as host vars.
LAUNCH_PLAYBOOKS: Final = frozenset({"shadow_launch", "shadow_launch_fleet"})
HOST_VARS_PLAYBOOKS: Final = frozenset({"shadow_launch_fleet"})


def launch_role_vars(
    given: Mapping[str, Any], namespace: str, k8s_auth: Mapping[str, Any], prometheus_auth: Mapping[str, Any]
) -> dict[str, Any]:
    """The role variables a launch playbook sets: the resolved namespace and connections, and each launch
    variable given (an empty survey answer is not given). Text stays text: the role reads survey answers with
    the collection's own rules, except ``metrics``, a YAML or JSON list in a survey's text box."""
    values: dict[str, Any] = {
        ROLE_PREFIX + "namespace": namespace,
        ROLE_PREFIX + "k8s_auth": dict(k8s_auth),
        ROLE_PREFIX + "prometheus_auth": dict(prometheus_auth),
    }
    for name in sorted(LAUNCH_ROLE_VARS):
        if _given(given.get(name)):
            values[ROLE_PREFIX + name] = given[name]
    if ROLE_PREFIX + "steps" not in values and _given(given.get("mirror_percent")):
        values[ROLE_PREFIX + "steps"] = given["mirror_percent"]
    for name, value in text_answers(given).items():
        if ROLE_PREFIX + name in values:
            values[ROLE_PREFIX + name] = value
    return values


# Survey answers that arrive as text: a YAML or JSON value in a text box, or a comma-separated list.
_TEXT_AS_YAML: Final = {
    "metrics": '[{"name": "p99", "query": "...", "max": 0.5}]',
    "compare_resources": '{"limits": {"cpu": "500m", "memory": "128Mi"}}',
    "compare_labels": '{"team": "shop"}',
}
_TEXT_AS_LIST: Final = ("compare_ignore_json_pointers", "compare_ignore_headers")


def text_answers(given: Mapping[str, Any]) -> dict[str, Any]:
    """The extra vars among ``given`` that a survey's text box gives as text (``metrics``, ...), parsed once here
    for the playbooks and the role: a YAML or JSON value, or a comma-separated list. Values that are not text
    (given with -e as YAML) and unset ones are left out; text that is not YAML is refused by name."""
    answers: dict[str, Any] = {}
    for name, example in _TEXT_AS_YAML.items():
        text = given.get(name)
        if isinstance(text, str) and _given(text):
            answers[name] = _yaml_answer(name, text, example)
    for name in _TEXT_AS_LIST:
        text = given.get(name)
        if isinstance(text, str) and _given(text):
            listed = text.strip().startswith("[")
            answers[name] = (
                _yaml_answer(name, text, "[a, b]")
                if listed
                else [item.strip() for item in text.split(",") if item.strip()]
            )
    return answers


def _yaml_answer(name: str, text: str, example: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise DarklaunchError(
            f"{name} is not valid YAML or JSON ({error.__class__.__name__}); give a value such as {example}.",
            field=name,
        ) from None


def _given(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


# --- which cluster, which namespace ----------------------------------------------------------------------

EVERY_NAMESPACE: Final = "neither route_name nor route_namespace given"
IN_CLUSTER_NAMESPACE_FILE: Final = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclass(frozen=True)
class Target:
    """Where a run acts: the API server, the kubeconfig context (None without a kubeconfig), the namespace
    and where that namespace came from."""

    server: str
    context: str | None
    namespace: str
    namespace_source: str

    def describe(self) -> str:
        context = f"context {self.context}" if self.context else "no kubeconfig context"
        namespace = f"namespace {self.namespace}" if self.namespace else "every namespace"
        return f"cluster {self.server} ({context}), {namespace} ({self.namespace_source})"


def in_cluster_namespace(path: str = IN_CLUSTER_NAMESPACE_FILE) -> str | None:
    """The namespace of the pod's service account (kubectl's default inside a pod), if any."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def choose_namespace(
    given: Any, context: str | None, context_namespace: str | None, in_cluster: str | None
) -> tuple[str, str]:
    """The namespace a run acts on and where it came from: ``route_namespace`` when given, else the context's
    namespace, else the pod's service account namespace (no kubeconfig), else ``default``."""
    if given not in (None, ""):
        return str(given), NAMESPACE_VAR
    if context_namespace:
        return context_namespace, f"the namespace of context {context}"
    if context is None and in_cluster:
        return in_cluster, "the namespace of the pod's service account"
    return "default", "default, as neither route_namespace nor the kubeconfig context sets one"
