# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The playbooks' extra vars: what is refused (with the name to use), what is left to other tools, and which
context and namespace a run acts on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._kubeconfig_context import kubeconfig_context
from ansible_collections.darklaunch.traefik.plugins.plugin_utils import _playbook_inputs as inputs


def refusal(playbook: str, *names: str) -> str:
    with pytest.raises(DarklaunchError) as caught:
        inputs.judge_extra_vars(playbook, names)
    return caught.value.msg


def test_a_misspelled_extra_var_names_the_right_one() -> None:
    message = refusal("shadow_launch", "route_name", "bake_second")
    assert "unknown extra var bake_second: did you mean bake_seconds?" in message


def test_the_first_words_of_a_name_count_as_a_misspelling() -> None:
    assert "did you mean bake_seconds?" in refusal("shadow_launch", "bake")


def test_the_old_namespace_extra_var_names_route_namespace() -> None:
    message = refusal("mirror_disable", "route_name", "namespace")
    assert "namespace was renamed route_namespace" in message and "-e route_namespace=" in message


def test_an_extra_var_of_another_playbook_is_refused() -> None:
    assert "steps is not an extra var of this playbook" in refusal("mirror_enable", "steps")


@pytest.mark.parametrize(
    "names",
    [
        # AWX and ansible-runner: every variable AWX adds to a job's extra vars.
        ("awx_job_id", "awx_job_template_name", "tower_job_id", "awx_user_name", "ansible_python_interpreter"),
        # Names that look like nothing of the collection's (another tool's, a credential injector's).
        ("slack_channel", "my_token", "x"),
    ],
)
def test_other_tools_extra_vars_are_left_alone(names: tuple[str, ...]) -> None:
    for playbook in inputs.PLAYBOOKS:
        inputs.judge_extra_vars(playbook, ("route_name", *names) if playbook != "shadow_reap" else names)


@pytest.mark.parametrize("playbook", sorted(inputs.PLAYBOOKS))
def test_every_playbook_takes_the_connection_options_and_route_namespace(playbook: str) -> None:
    names = ("route_namespace", "kubeconfig", "context", "host", "api_key", "verify_ssl", "ssl_ca_cert", "api_group")
    inputs.judge_extra_vars(playbook, names)


def test_connection_aliases_are_gathered_under_the_option_name() -> None:
    options = inputs.connection_extra_vars(
        {"verify_ssl": False, "cert_file": "/c", "context": "b", "route_name": "r", "host": "", "kubeconfig": None}
    )
    assert options == {"validate_certs": False, "client_cert": "/c", "context": "b"}


KUBECONFIG: dict[str, Any] = {
    "contexts": [
        {"name": "a", "context": {"cluster": "a", "user": "u", "namespace": "team-a"}},
        {"name": "b", "context": {"cluster": "b", "user": "u"}},
    ],
    "current-context": "a",
}


def test_the_current_context_and_its_namespace() -> None:
    assert kubeconfig_context({"kubeconfig": KUBECONFIG}, "~/.kube/config") == ("a", "team-a")


def test_the_given_context() -> None:
    assert kubeconfig_context({"kubeconfig": KUBECONFIG, "context": "b"}, "") == ("b", None)


def test_an_unknown_context_names_the_known_ones() -> None:
    with pytest.raises(DarklaunchError) as caught:
        kubeconfig_context({"kubeconfig": KUBECONFIG, "context": "c"}, "")
    assert caught.value.field == "context" and "its contexts are: a, b" in caught.value.msg


def test_a_host_with_its_own_credentials_reads_no_kubeconfig() -> None:
    auth = {"kubeconfig": KUBECONFIG, "host": "https://k", "api_key": "t"}
    assert kubeconfig_context(auth, "") == (None, None)


def test_several_kubeconfig_files_merge_first_wins(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    first.write_text(yaml.safe_dump({"contexts": [{"name": "a", "context": {"namespace": "first"}}]}))
    second.write_text(yaml.safe_dump({**KUBECONFIG, "current-context": "b"}))
    paths = os.pathsep.join([str(first), str(second)])
    assert kubeconfig_context({}, paths) == ("b", None)
    assert kubeconfig_context({"context": "a"}, paths) == ("a", "first")


def test_no_kubeconfig_file_means_no_context(tmp_path: Path) -> None:
    assert kubeconfig_context({}, str(tmp_path / "missing")) == (None, None)


@pytest.mark.parametrize(
    ("given", "context", "context_namespace", "in_cluster", "expected"),
    [
        ("prod", "a", "team-a", None, ("prod", "route_namespace")),
        ("", "a", "team-a", None, ("team-a", "the namespace of context a")),
        (
            None,
            "b",
            None,
            "pod-ns",
            ("default", "default, as neither route_namespace nor the kubeconfig context sets one"),
        ),
        (None, None, None, "pod-ns", ("pod-ns", "the namespace of the pod's service account")),
    ],
)
def test_the_namespace_follows_kubectl(
    given: Any, context: Any, context_namespace: Any, in_cluster: Any, expected: tuple[str, str]
) -> None:
    assert inputs.choose_namespace(given, context, context_namespace, in_cluster) == expected


def test_the_target_line_names_server_context_and_namespace() -> None:
    target = inputs.Target("https://10.0.0.1:6443", "b", "team-b", "the namespace of context b")
    assert target.describe() == (
        "cluster https://10.0.0.1:6443 (context b), namespace team-b (the namespace of context b)"
    )
    assert "every namespace" in inputs.Target("https://k", None, "", inputs.EVERY_NAMESPACE).describe()


def test_an_awx_workflow_node_gets_the_other_nodes_answers() -> None:
    # The workflow "Shadow launch with rollback on failure" hands its launch survey's answers (and the launch's
    # set_stats) to its failure node, playbooks/mirror_disable.yml.
    root = Path(__file__).resolve().parents[4] / "extensions" / "awx" / "surveys"
    launch_survey = {
        question["variable"] for question in yaml.safe_load((root / "shadow_launch.yml").read_text())["spec"]
    }
    names = {*launch_survey, "awx_job_id", "tower_job_id", "shadow_launch", "restore_ingress_to_wrr"}
    inputs.judge_extra_vars("mirror_disable", names)
    # Outside AWX the same answers are a mistake, and a misspelling is one everywhere.
    assert "steps is not an extra var" in refusal("mirror_disable", *sorted(launch_survey))
    assert "did you mean mirror_name?" in refusal("mirror_disable", "awx_job_id", "mirror_nme")


def test_prometheus_connection_extra_vars_are_passed_on_as_given() -> None:
    given = {
        "prometheus_token": "s3cret",
        "prometheus_timeout": 20,
        "prometheus_headers": "",  # a survey's blank answer: the environment's value stands
        "prometheus_url": "http://prom:9090",  # the gate's own variable, not a connection option
        "sigma": 3,
    }
    assert inputs.prometheus_extra_vars(given) == {"prometheus_timeout": 20, "prometheus_token": "s3cret"}


def test_the_launch_role_gets_only_the_variables_given() -> None:
    given = {
        "route_name": "shop",
        "bake_seconds": "120",  # a survey's text: the role reads it
        "sigma": "",  # a blank survey answer: the role's default stands
        "mirror_percent": 30,
        "metrics": '[{"name": "p99", "query": "up", "max": 1}]',
        "prometheus_token": "s3cret",  # arrives resolved, in prometheus_auth
        "route_namespace": "web",  # arrives resolved, as namespace
    }
    role_vars = inputs.launch_role_vars(given, "web", {"context": "prod"}, {"prometheus_token": "s3cret"})
    assert role_vars == {
        "shadow_launch_namespace": "web",
        "shadow_launch_k8s_auth": {"context": "prod"},
        "shadow_launch_prometheus_auth": {"prometheus_token": "s3cret"},
        "shadow_launch_route_name": "shop",
        "shadow_launch_bake_seconds": "120",
        "shadow_launch_steps": 30,
        "shadow_launch_metrics": [{"name": "p99", "query": "up", "max": 1}],
    }
    assert inputs.launch_role_vars({"steps": "20,50", "mirror_percent": 30}, "web", {}, {})["shadow_launch_steps"] == (
        "20,50"
    )


def test_metrics_that_are_not_yaml_are_refused_by_name() -> None:
    with pytest.raises(DarklaunchError) as caught:
        inputs.launch_role_vars({"metrics": "[{name: p99"}, "web", {}, {})
    assert caught.value.field == "metrics"


def test_survey_text_is_parsed_once_for_the_playbooks() -> None:
    # anomaly_check.yml uses these answers (playbook_inputs' answers) instead of parsing metrics itself.
    checks = [{"name": "p99", "query": "up", "max": 1}]
    given = {"metrics": '[{"name": "p99", "query": "up", "max": 1}]', "compare_ignore_headers": "date, x-id"}
    assert inputs.text_answers(given) == {"metrics": checks, "compare_ignore_headers": ["date", "x-id"]}
    # Given with -e as YAML already, or left blank: nothing to parse, the extra var is used as it is.
    assert inputs.text_answers({"metrics": checks, "compare_labels": "", "sigma": "2"}) == {}
    with pytest.raises(DarklaunchError) as caught:
        inputs.text_answers({"metrics": "[{name: p99"})
    assert caught.value.field == "metrics" and "not valid YAML or JSON" in caught.value.msg


def test_survey_text_for_the_comparator_is_read_as_yaml_or_a_list() -> None:
    role_vars = inputs.launch_role_vars(
        {
            "compare_resources": "{limits: {cpu: 500m}}",
            "compare_ignore_json_pointers": "/ts, /id",
            "compare_ignore_headers": '["Date"]',
        },
        "web",
        {},
        {},
    )
    assert role_vars["shadow_launch_compare_resources"] == {"limits": {"cpu": "500m"}}
    assert role_vars["shadow_launch_compare_ignore_json_pointers"] == ["/ts", "/id"]
    assert role_vars["shadow_launch_compare_ignore_headers"] == ["Date"]
