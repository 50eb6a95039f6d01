# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection errors name the option at fault without quoting a credential back."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s_auth import (
    build_configuration,
    resolve_auth_options,
)

TOKEN = "msg-secret-token-1"
KUBECONFIG_TEXT = f"apiVersion: v1\nkind: Config\nusers:\n- name: ops\n  user:\n    token: {TOKEN}\n"
PEM = "-----BEGIN PRIVATE KEY-----\nmsg-secret-key-2\n-----END PRIVATE KEY-----\n"


def error_for(params: dict[str, Any]) -> DarklaunchError:
    with pytest.raises(DarklaunchError) as caught:
        build_configuration(resolve_auth_options(params, environ={}))
    return caught.value


def test_kubeconfig_text_instead_of_a_path_is_refused_without_quoting_it() -> None:
    error = error_for({"kubeconfig": KUBECONFIG_TEXT})
    assert error.field == "kubeconfig"
    assert "not a path" in str(error) and "from_yaml" in str(error)
    assert TOKEN not in str(error) and "apiVersion" not in str(error)


def test_a_list_is_neither_a_path_nor_a_kubeconfig() -> None:
    error = error_for({"kubeconfig": [{"users": [{"user": {"token": TOKEN}}]}]})
    assert error.field == "kubeconfig"
    assert str(error) == "kubeconfig must be a path or a dictionary, not a list"


@pytest.mark.parametrize("option", ["client_key", "client_cert", "ca_cert"])
def test_pem_content_instead_of_a_path_is_refused_without_quoting_it(option: str) -> None:
    error = error_for({"host": "https://k8s.example", option: PEM})
    assert error.field == option
    assert "path of a PEM file, not its content" in str(error)
    assert "msg-secret-key-2" not in str(error) and "BEGIN" not in str(error)


def test_a_dict_whose_context_is_missing_does_not_quote_its_token() -> None:
    config = {
        "apiVersion": "v1",
        "clusters": [{"name": "c", "cluster": {"server": "https://k8s.example"}}],
        "users": [{"name": "ops", "user": {"token": TOKEN, "password": "msg-secret-pw-3"}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "nowhere", "user": "ops"}}],
        "current-context": "ctx",
    }
    error = error_for({"kubeconfig": config})
    assert error.field == "kubeconfig"
    assert TOKEN not in str(error) and "msg-secret-pw-3" not in str(error)


# proxy_headers: resolved key by key, and its credentials are secrets for the lookup's scrubbing too


def test_proxy_headers_come_key_by_key_from_option_then_variable() -> None:
    environ = {
        "K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH": "env-user:env-pass",
        "K8S_AUTH_PROXY_HEADERS_USER_AGENT": "env-agent/1",
    }

    resolved = resolve_auth_options({"proxy_headers": {"proxy_basic_auth": "ops:opt-pass"}}, environ=environ)

    assert resolved["proxy_headers"] == {"proxy_basic_auth": "ops:opt-pass", "user_agent": "env-agent/1"}
    assert "proxy_headers" not in resolve_auth_options({}, environ={})


def test_proxy_headers_become_the_configuration_s_proxy_headers() -> None:
    auth = resolve_auth_options(
        {
            "host": "https://k8s.example:6443",
            "api_key": "t",
            "proxy": "http://proxy.example:3128",
            "proxy_headers": {"proxy_basic_auth": "ops:pw", "user_agent": "ops-automation/1.0"},
        },
        environ={},
    )

    configuration = build_configuration(auth)

    assert configuration.proxy == "http://proxy.example:3128"
    assert configuration.proxy_headers == {"proxy-authorization": "Basic b3BzOnB3", "user-agent": "ops-automation/1.0"}


@pytest.mark.parametrize("value", [["ops:pw"], {"proxy_auth": "ops:pw"}])
def test_malformed_proxy_headers_are_refused_without_quoting_them(value: Any) -> None:
    error = error_for({"host": "https://k8s.example", "api_key": "t", "proxy_headers": value})
    assert error.field == "proxy_headers"
    assert "ops:pw" not in str(error)


def test_proxy_credentials_are_secrets_for_the_lookup() -> None:
    from ansible_collections.darklaunch.traefik.plugins.module_utils._redact import auth_secrets

    found = auth_secrets(
        {"proxy_headers": {"proxy_basic_auth": "ops:opt-pass", "user_agent": "agent/1"}},
        environ={"K8S_AUTH_PROXY_HEADERS_BASIC_AUTH": "env-user:env-pass"},
    )

    assert {"ops:opt-pass", "opt-pass", "b3BzOm9wdC1wYXNz", "env-user:env-pass", "env-pass"} <= found
    assert "agent/1" not in found
