# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which option values count as secrets, so modules and the lookup can mask them."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._redact import (
    MASK,
    auth_secrets,
    is_inline_content,
    kubeconfig_secrets,
    prometheus_secrets,
    scrub,
    url_password,
)


def kubeconfig(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": "https://k8s.example:6443", "certificate-authority-data": "Q0FEQVRB"}}
        ],
        "users": [{"name": "ops", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "ops", "namespace": "production"}}],
        "current-context": "ctx",
    }


class TestKubeconfigSecrets:
    def test_token_password_and_key_data_are_secrets(self) -> None:
        config = kubeconfig(
            {
                "token": "tok-1",
                "username": "alice",
                "password": "pw-2",
                "client-certificate-data": "Y2VydA==",
                "client-key-data": "a2V5",
            }
        )
        assert kubeconfig_secrets(config) == {"tok-1", "pw-2", "Y2VydA==", "a2V5", "Q0FEQVRB"}

    def test_names_servers_paths_and_user_names_are_not(self) -> None:
        config = kubeconfig({"client-certificate": "/etc/k8s/client.crt", "client-key": "/etc/k8s/client.key"})
        found = kubeconfig_secrets(config)
        for public in ("ops", "ctx", "production", "https://k8s.example:6443", "/etc/k8s/client.key", "alice"):
            assert public not in found

    def test_auth_provider_tokens_and_client_secret(self) -> None:
        config = kubeconfig(
            {
                "auth-provider": {
                    "name": "oidc",
                    "config": {
                        "client-id": "kubectl",
                        "client-secret": "cs-3",
                        "id-token": "id-4",
                        "refresh-token": "rt-5",
                        "access-token": "at-6",
                        "idp-issuer-url": "https://idp.example",
                    },
                }
            }
        )
        assert kubeconfig_secrets(config) == {"cs-3", "id-4", "rt-5", "at-6", "Q0FEQVRB"}

    def test_exec_plugin_args_and_env(self) -> None:
        config = kubeconfig(
            {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1",
                    "command": "get-token",
                    "args": ["--cluster", "prod", "--token", "arg-7", "--password=arg-8", "--verbose"],
                    "env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "env-9"}, {"name": "REGION", "value": "eu"}],
                }
            }
        )
        assert kubeconfig_secrets(config) == {"arg-7", "arg-8", "env-9", "Q0FEQVRB"}

    @pytest.mark.parametrize("value", [None, "", "/home/ops/.kube/config", 42, ["a"]])
    def test_a_path_or_nothing_has_no_secrets(self, value: object) -> None:
        assert kubeconfig_secrets(value) == set()

    def test_empty_and_non_string_values_are_ignored(self) -> None:
        assert kubeconfig_secrets(kubeconfig({"token": "", "password": None})) == {"Q0FEQVRB"}


class TestAuthSecrets:
    def test_options_environment_and_url_passwords(self) -> None:
        params = {
            "kubeconfig": kubeconfig({"token": "tok-1"}),
            "api_key": "key-2",
            "password": "pw-3",
            "username": "alice",
            "host": "https://admin:hostpw-4@k8s.example",
            "proxy": "http://squid:proxypw-5@proxy.example:3128",
        }
        environ = {"K8S_AUTH_API_KEY": "envkey-6", "K8S_AUTH_PASSWORD": "envpw-7", "K8S_AUTH_HOST": "https://x"}
        assert auth_secrets(params, environ) == {
            "tok-1",
            "Q0FEQVRB",
            "key-2",
            "pw-3",
            "hostpw-4",
            "proxypw-5",
            "envkey-6",
            "envpw-7",
        }

    def test_nothing_set_is_nothing_to_hide(self) -> None:
        assert auth_secrets({"kubeconfig": "/tmp/kubeconfig", "host": "https://k8s.example"}, {}) == set()


class TestPrometheusSecrets:
    def test_token_password_url_password_and_auth_headers(self) -> None:
        options = {
            "prometheus_url": "https://prom.example:9090",
            "prometheus_token": "ptok-1",
            "prometheus_username": "grafana",
            "prometheus_password": "ppw-2",
            "prometheus_proxy": "http://u:pproxy-3@proxy:3128",
            "prometheus_headers": {"Authorization": "Bearer hdr-4", "X-Scope-OrgID": "tenant-a"},
        }
        assert prometheus_secrets(options) == {"ptok-1", "ppw-2", "pproxy-3", "Bearer hdr-4", "hdr-4"}


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("https://u:p@h", "p"),
        ("https://u@h", None),
        ("https://h", None),
        ("http://[::1", None),  # unparseable: no password, no crash
        (None, None),
    ],
)
def test_url_password(url: object, password: str | None) -> None:
    assert url_password(url) == password


def test_scrub_masks_every_occurrence_longest_first() -> None:
    assert scrub("Bearer abc-def failed; abc used", ["abc", "abc-def"]) == f"Bearer {MASK} failed; {MASK} used"
    assert scrub("nothing here", []) == "nothing here"


class TestContentWhereAPathBelongs:
    KUBECONFIG_TEXT = "apiVersion: v1\nkind: Config\nusers:\n- name: ops\n  user:\n    token: text-tok-1\n"
    PEM = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMG\n-----END PRIVATE KEY-----\n"

    @pytest.mark.parametrize("value", [KUBECONFIG_TEXT, PEM, '{"apiVersion": "v1"}', "  [1]"])
    def test_text_json_and_pem_are_content(self, value: str) -> None:
        assert is_inline_content(value)

    @pytest.mark.parametrize("value", ["/home/ops/.kube/config", "~/a:~/b", "", None, {"a": 1}])
    def test_paths_and_non_strings_are_not(self, value: object) -> None:
        assert not is_inline_content(value)

    def test_kubeconfig_text_is_hidden_whole_and_its_token_too(self) -> None:
        assert kubeconfig_secrets(self.KUBECONFIG_TEXT) == {self.KUBECONFIG_TEXT, "text-tok-1"}

    def test_a_pasted_client_key_is_a_secret(self) -> None:
        assert auth_secrets({"client_key": self.PEM, "client_cert": "/etc/k8s/client.crt"}, {}) == {self.PEM}
