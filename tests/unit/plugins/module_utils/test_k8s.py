# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for ``_k8s``: auth resolution on the built Configuration, error translation from real
``ApiException`` objects, and the HTTP side against a tiny API server on 127.0.0.1 started here."""

from __future__ import annotations

import importlib.util
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from kubernetes.config import incluster_config

from ansible_collections.darklaunch.traefik.plugins.module_utils import _k8s, _k8s_auth
from ansible_collections.darklaunch.traefik.plugins.module_utils._argspec import auth_argument_spec, with_auth
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import (
    ApiUnavailableError,
    ConflictError,
    DarklaunchError,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s import CRDS_MISSING_MESSAGE, KubeClient
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s_auth import (
    PROXY_HEADER_ENV,
    build_configuration,
    request_timeout_seconds,
    resolve_auth_options,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s_errors import ApiCall, translate_api_error

REPO_ROOT = Path(__file__).resolve().parents[4]

# --------------------------------------------------------------------------------------------------
# Fixtures: a clean environment and a tiny API server


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No K8S_AUTH_* / KUBECONFIG / in-cluster variables, and a HOME without ~/.kube/config."""
    for option_env in _k8s_auth.AUTH_ENV_FALLBACKS:
        for name in option_env[1]:
            monkeypatch.delenv(name, raising=False)
    for name in PROXY_HEADER_ENV.values():
        monkeypatch.delenv(name, raising=False)
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: Any  # http.client.HTTPMessage: get_all() shows repeated headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[[RecordedRequest], tuple[int, Any]]


@dataclass
class FakeApiServer:
    """Routes (method, path) to canned or computed JSON answers and records every request."""

    routes: dict[tuple[str, str], Responder | tuple[int, Any]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    url: str = ""

    def route(self, method: str, path: str, answer: Responder | tuple[int, Any]) -> None:
        self.routes[(method, path)] = answer

    def respond(self, request: RecordedRequest) -> tuple[int, Any]:
        answer = self.routes.get((request.method, request.path))
        if answer is None:
            return 404, status_body(404, "NotFound", "the server could not find the requested resource")
        return answer(request) if callable(answer) else answer

    def client(self, **params: Any) -> KubeClient:
        return KubeClient.from_params({"host": self.url, "api_key": "test-token", **params})

    def paths(self) -> list[str]:
        return [request.path for request in self.requests]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        request = RecordedRequest(self.command, url.path, query, self.headers, body)
        self.server.fake.requests.append(request)
        status, payload = self.server.fake.respond(request)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeApiServer


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = FakeApiServer(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield server.fake
    finally:
        server.shutdown()
        server.server_close()


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }


def traefik_service(name: str, namespace: str = "production", resource_version: str = "1") -> dict[str, Any]:
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TraefikService",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": resource_version},
        "spec": {"weighted": {"services": [{"name": f"{name}-stable", "port": 80}]}},
    }


def paged_list(items: list[dict[str, Any]], list_kind: str, api_version: str) -> Responder:
    """A list endpoint honouring limit/continue the way the API server does (continue = next offset)."""

    def answer(request: RecordedRequest) -> tuple[int, Any]:
        start = int(request.query.get("continue", "0"))
        limit = int(request.query.get("limit", str(len(items))))
        end = min(start + limit, len(items))
        metadata = {"resourceVersion": "100"}
        if end < len(items):
            metadata["continue"] = str(end)
        return 200, {"kind": list_kind, "apiVersion": api_version, "metadata": metadata, "items": items[start:end]}

    return answer


def empty_list(group: str) -> tuple[int, Any]:
    return 200, {"kind": "TraefikServiceList", "apiVersion": f"{group}/v1alpha1", "metadata": {}, "items": []}


TRAEFIK_IO = "/apis/traefik.io/v1alpha1"
CONTAINO = "/apis/traefik.containo.us/v1alpha1"

# --------------------------------------------------------------------------------------------------
# Auth resolution, checked on the built Configuration


def kubeconfig(contexts: dict[str, tuple[str, str]], current: str, **cluster_extra: Any) -> dict[str, Any]:
    """A kubeconfig with one cluster and one token user per context: {context: (server, token)}."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": current,
        "clusters": [
            {"name": name, "cluster": {"server": server, **cluster_extra}}
            for name, (server, _token) in contexts.items()
        ],
        "users": [{"name": name, "user": {"token": token}} for name, (_server, token) in contexts.items()],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}} for name in contexts],
    }


TWO_CLUSTERS = {"prod": ("https://prod.example:6443", "prod-token"), "staging": ("https://staging.example:6443", "stg")}


def write_kubeconfig(path: Path, content: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content))
    return path


def configuration_for(params: dict[str, Any]) -> Any:
    return build_configuration(resolve_auth_options(params))


def bearer(configuration: Any) -> str:
    return str(configuration.auth_settings()["BearerToken"]["value"])


def test_kubeconfig_path_loads_server_token_and_tls_settings(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("not parsed before connecting")
    path = write_kubeconfig(tmp_path / "kc.yml", kubeconfig(TWO_CLUSTERS, "prod", **{"certificate-authority": str(ca)}))

    configuration = configuration_for({"kubeconfig": str(path)})

    assert configuration.host == "https://prod.example:6443"
    assert bearer(configuration) == "Bearer prod-token"
    assert configuration.ssl_ca_cert == str(ca)
    assert configuration.verify_ssl is True


def test_kubeconfig_dict_is_loaded_without_a_file() -> None:
    configuration = configuration_for({"kubeconfig": kubeconfig(TWO_CLUSTERS, "staging")})

    assert configuration.host == "https://staging.example:6443"
    assert bearer(configuration) == "Bearer stg"


@pytest.mark.parametrize("how", ["param", "env"])
def test_context_selects_cluster_and_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    path = write_kubeconfig(tmp_path / "kc.yml", kubeconfig(TWO_CLUSTERS, "prod"))
    params: dict[str, Any] = {"kubeconfig": str(path)}
    if how == "param":
        params["context"] = "staging"
    else:
        monkeypatch.setenv("K8S_AUTH_CONTEXT", "staging")

    configuration = configuration_for(params)

    assert configuration.host == "https://staging.example:6443"
    assert bearer(configuration) == "Bearer stg"


def test_unknown_context_is_blamed_on_the_context_option(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kc.yml", kubeconfig(TWO_CLUSTERS, "prod"))

    with pytest.raises(DarklaunchError) as caught:
        configuration_for({"kubeconfig": str(path), "context": "nowhere"})

    assert caught.value.field == "context"
    assert "nowhere" in str(caught.value)


def test_missing_kubeconfig_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DarklaunchError) as caught:
        configuration_for({"kubeconfig": str(tmp_path / "absent.yml")})

    assert caught.value.field == "kubeconfig"
    assert "absent.yml does not exist" in str(caught.value)


def test_host_and_api_key_need_no_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("{not: [valid")
    monkeypatch.setenv("KUBECONFIG", str(broken))  # would fail if it were read

    configuration = configuration_for({"host": "k8s.example:6443/", "api_key": "abc"})

    assert configuration.host == "https://k8s.example:6443"
    assert bearer(configuration) == "Bearer abc"


def test_environment_fallbacks_reach_the_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca, cert, key = (tmp_path / name for name in ("ca.pem", "client.pem", "client.key"))
    for path in (ca, cert, key):
        path.write_text("read when connecting")
    environment = {
        "K8S_AUTH_HOST": "https://env.example:6443",
        "K8S_AUTH_API_KEY": "env-token",
        "K8S_AUTH_VERIFY_SSL": "no",
        "K8S_AUTH_SSL_CA_CERT": str(ca),
        "K8S_AUTH_CERT_FILE": str(cert),
        "K8S_AUTH_KEY_FILE": str(key),
        "K8S_AUTH_PROXY": "http://proxy.example:3128",
        "K8S_AUTH_NO_PROXY": "10.0.0.0/8",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    configuration = configuration_for({})

    assert configuration.host == "https://env.example:6443"
    assert bearer(configuration) == "Bearer env-token"
    assert configuration.verify_ssl is False
    assert configuration.ssl_ca_cert == str(ca)
    assert configuration.cert_file == str(cert)
    assert configuration.key_file == str(key)
    assert configuration.proxy == "http://proxy.example:3128"
    assert configuration.no_proxy == "10.0.0.0/8"


@pytest.mark.parametrize("option", ["ca_cert", "client_cert", "client_key"])
def test_missing_certificate_files_are_named_before_connecting(tmp_path: Path, option: str) -> None:
    with pytest.raises(DarklaunchError) as caught:
        configuration_for({"host": "https://k8s.example", "api_key": "t", option: str(tmp_path / "absent.pem")})

    assert caught.value.field == option
    assert str(caught.value) == f"{option} {tmp_path / 'absent.pem'} does not exist or is not a file"


def test_params_win_over_environment_and_option_named_variables_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8S_AUTH_HOST", "https://env.example")
    monkeypatch.setenv("K8S_AUTH_VERIFY_SSL", "false")
    monkeypatch.setenv("K8S_AUTH_VALIDATE_CERTS", "true")
    monkeypatch.setenv("K8S_AUTH_IMPERSONATE_GROUPS", "team-a, viewers")

    resolved = resolve_auth_options({"host": "https://param.example", "api_key": "t", "password": None})

    assert resolved == {
        "host": "https://param.example",
        "api_key": "t",
        "validate_certs": True,
        "impersonate_groups": ["team-a", "viewers"],
    }


def test_validate_certs_false_overrides_the_kubeconfig(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kc.yml", kubeconfig(TWO_CLUSTERS, "prod"))

    configuration = configuration_for({"kubeconfig": str(path), "validate_certs": False, "host": "https://other:6443"})

    assert configuration.verify_ssl is False
    assert configuration.host == "https://other:6443"
    assert bearer(configuration) == "Bearer prod-token"  # kubernetes.core keeps the kubeconfig user


def test_kubeconfig_environment_variable_is_read_at_call_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_kubeconfig(tmp_path / "kc.yml", kubeconfig(TWO_CLUSTERS, "staging"))
    monkeypatch.setenv("KUBECONFIG", str(path))

    assert configuration_for({}).host == "https://staging.example:6443"


def test_home_kubeconfig_is_the_default(isolated_environment: Path) -> None:
    write_kubeconfig(isolated_environment / ".kube" / "config", kubeconfig(TWO_CLUSTERS, "prod"))

    assert configuration_for({}).host == "https://prod.example:6443"


@pytest.fixture
def in_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = tmp_path / "token"
    token.write_text("pod-token")
    ca = tmp_path / "ca.crt"
    ca.write_text("cluster ca")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")


@pytest.mark.usefixtures("in_cluster")
def test_in_cluster_service_account_is_the_last_resort() -> None:
    configuration = configuration_for({})

    assert configuration.host == "https://10.0.0.1:443"
    assert bearer(configuration) == "bearer pod-token"


@pytest.mark.usefixtures("in_cluster")
def test_a_kubeconfig_file_wins_over_the_service_account(isolated_environment: Path) -> None:
    write_kubeconfig(isolated_environment / ".kube" / "config", kubeconfig(TWO_CLUSTERS, "prod"))

    assert configuration_for({}).host == "https://prod.example:6443"


def test_no_credentials_anywhere_says_what_to_set() -> None:
    with pytest.raises(DarklaunchError) as caught:
        configuration_for({})

    assert caught.value.field == "kubeconfig"
    assert "no Kubernetes credentials found" in str(caught.value)
    assert "api_key" in str(caught.value)


def test_missing_kubernetes_library_is_reported_through_missing_required_lib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_k8s, "HAS_KUBERNETES", False)
    monkeypatch.setattr(_k8s_auth, "KUBERNETES_IMPORT_ERROR", "Traceback: No module named 'kubernetes'")

    with pytest.raises(DarklaunchError) as caught:
        KubeClient.from_params({"host": "https://k8s.example"})

    assert str(caught.value).startswith("the kubernetes Python library is required")
    assert "Failed to import the required Python library (kubernetes)" in str(caught.value)
    assert caught.value.details["exception"] == "Traceback: No module named 'kubernetes'"


def test_requests_carry_token_and_impersonation_headers(api: FakeApiServer) -> None:
    api.route("GET", f"{TRAEFIK_IO}/traefikservices", lambda _request: empty_list("traefik.io"))
    client = api.client(impersonate_user="alice", impersonate_groups=["team-a", "viewers"])

    client.list("TraefikService", None)

    headers = api.requests[-1].headers
    assert headers.get_all("Authorization") == ["Bearer test-token"]
    assert headers.get_all("Impersonate-User") == ["alice"]
    assert headers.get_all("Impersonate-Group") == ["team-a", "viewers"]  # one header line per group
    assert headers.get("Accept") == "application/json"
    assert headers.get("Accept-Encoding") in (None, "identity")


def test_username_and_password_become_basic_auth(api: FakeApiServer) -> None:
    api.route("GET", "/api/v1/namespaces/default", (200, {"kind": "Namespace", "metadata": {"name": "default"}}))
    client = KubeClient.from_params({"host": api.url, "username": "admin", "password": "s3cret"})

    assert client.namespace_exists("default") is True
    assert api.requests[-1].headers.get("Authorization") == "Basic YWRtaW46czNjcmV0"


# --------------------------------------------------------------------------------------------------
# Error translation, straight from an answer's status and body


def api_exception(status: int, reason: str, body: dict[str, Any] | str) -> tuple[int, bytes]:
    """The API's answer as the transport hands it over (``reason`` is the status line's, for the reader)."""
    return status, (body if isinstance(body, str) else json.dumps(body)).encode()


PATCH_MIRROR = ApiCall("patch", "TraefikService", "traefikservices.traefik.io", "production", "web-mirror", crd=True)
LIST_ALL = ApiCall("list", "TraefikService", "traefikservices.traefik.io", None, crd=True)


def test_401_points_at_the_credentials() -> None:
    error = api_exception(401, "Unauthorized", status_body(401, "Unauthorized", "Unauthorized"))

    translated = translate_api_error(*error, PATCH_MIRROR, host="https://k8s.example:6443")

    assert not isinstance(translated, ConflictError)
    assert "https://k8s.example:6443 rejected the credentials" in str(translated)
    assert "api_key" in str(translated)


def test_403_names_user_verb_resource_and_namespace() -> None:
    message = (
        'traefikservices.traefik.io "web-mirror" is forbidden: User "alice" cannot patch resource '
        '"traefikservices" in API group "traefik.io" in the namespace "production"'
    )
    error = api_exception(403, "Forbidden", status_body(403, "Forbidden", message))

    translated = translate_api_error(*error, PATCH_MIRROR)

    assert str(translated) == (
        'user "alice" may not patch traefikservices.traefik.io "web-mirror" in namespace "production"; grant it '
        'with a Role in namespace "production": apiGroups ["traefik.io"], resources [traefikservices], verbs [patch] '
        "(see docs/rbac in the darklaunch.traefik collection)"
    )
    assert translated.details["api_status"] == 403
    assert translated.details["api_message"] == message


def test_403_on_a_cluster_wide_list_suggests_setting_namespace() -> None:
    message = (
        'traefikservices.traefik.io is forbidden: User "system:serviceaccount:ci:deployer" cannot list resource '
        '"traefikservices" in API group "traefik.io" at the cluster scope'
    )
    error = api_exception(403, "Forbidden", status_body(403, "Forbidden", message))

    translated = translate_api_error(*error, LIST_ALL)

    assert str(translated).startswith(
        'user "system:serviceaccount:ci:deployer" may not list traefikservices.traefik.io in all namespaces; '
        "set namespace"
    )
    assert translated.field == "namespace"


def test_403_for_impersonation_blames_the_impersonation_options() -> None:
    message = (
        'users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" '
        "at the cluster scope"
    )
    error = api_exception(403, "Forbidden", status_body(403, "Forbidden", message))

    translated = translate_api_error(*error, PATCH_MIRROR)

    assert translated.field == "impersonate_user"
    assert str(translated).startswith('user "alice" may not impersonate')


def test_404_on_a_crd_collection_means_the_crds_are_missing() -> None:
    error = api_exception(404, "Not Found", "404 page not found")

    translated = translate_api_error(*error, LIST_ALL)

    assert translated.field == "api_group"
    assert "Traefik CRDs are not installed" in str(translated)
    assert "install them or set api_group" in str(translated)


def test_404_for_a_missing_namespace_on_create_names_the_namespace() -> None:
    body = status_body(404, "NotFound", 'namespaces "staging" not found', {"name": "staging", "kind": "namespaces"})
    call = ApiCall("create", "TraefikService", "traefikservices.traefik.io", "staging", "web-mirror", crd=True)

    translated = translate_api_error(*api_exception(404, "Not Found", body), call)

    assert str(translated) == 'namespace "staging" does not exist'
    assert translated.field == "namespace"


def test_404_for_the_patched_object_is_a_conflict() -> None:
    body = status_body(
        404,
        "NotFound",
        'traefikservices.traefik.io "web-mirror" not found',
        {"name": "web-mirror", "group": "traefik.io", "kind": "traefikservices"},
    )

    translated = translate_api_error(*api_exception(404, "Not Found", body), PATCH_MIRROR)

    assert isinstance(translated, ConflictError)
    assert "was deleted since it was read" in str(translated)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("Conflict", "changed since it was read"), ("AlreadyExists", "already exists: it was created since it was read")],
)
def test_409_is_a_conflict(reason: str, expected: str) -> None:
    body = status_body(409, reason, 'Operation cannot be fulfilled on traefikservices.traefik.io "web-mirror"')

    translated = translate_api_error(*api_exception(409, "Conflict", body), PATCH_MIRROR)

    assert isinstance(translated, ConflictError)
    assert str(translated).startswith(f"TraefikService production/web-mirror {expected}")


def test_422_from_a_failed_json_patch_test_is_a_conflict() -> None:
    # kube-apiserver drops the json-patch error text: a failed `test` op yields exactly this Status.
    body = status_body(422, "Invalid", "the server rejected our request due to an error in our request")
    call = ApiCall("patch", "IngressRoute", "ingressroutes.traefik.io", "production", "web", True, json_patch_test=True)

    translated = translate_api_error(*api_exception(422, "Unprocessable Entity", body), call)

    assert isinstance(translated, ConflictError)
    assert "IngressRoute production/web changed since it was read" in str(translated)


def test_422_schema_validation_is_not_a_conflict() -> None:
    causes = [{"reason": "FieldValueInvalid", "message": "Invalid value: 150", "field": "spec.mirroring.mirrors[0]"}]
    message = 'TraefikService.traefik.io "web-mirror" is invalid: spec.mirroring.mirrors[0].percent: Invalid value'
    body = status_body(422, "Invalid", message, {"causes": causes})
    call = ApiCall("patch", "TraefikService", "traefikservices.traefik.io", "production", "web-mirror", True, True)

    translated = translate_api_error(*api_exception(422, "Unprocessable Entity", body), call)

    assert not isinstance(translated, ConflictError)
    assert str(translated) == f"the API server rejected TraefikService production/web-mirror: {message}"
    assert translated.details["api_causes"] == causes


def test_other_statuses_keep_the_server_message() -> None:
    body = status_body(500, "InternalError", "etcdserver: request timed out")

    translated = translate_api_error(*api_exception(500, "Internal Server Error", body), LIST_ALL, host="https://k")

    assert str(translated) == (
        "the Kubernetes API at https://k failed to list traefikservices.traefik.io in all namespaces: "
        "500 Internal Server Error etcdserver: request timed out"
    )


# --------------------------------------------------------------------------------------------------
# Pagination and API-group detection against the local server


def test_list_follows_continue_tokens_page_by_page(api: FakeApiServer) -> None:
    items = [traefik_service(f"svc-{index:04d}") for index in range(1203)]
    api.route("GET", f"{TRAEFIK_IO}/traefikservices", paged_list(items, "TraefikServiceList", "traefik.io/v1alpha1"))
    client = api.client(api_group="traefik.io")

    listed = client.list("TraefikService", None, page_size=500)

    assert [item["metadata"]["name"] for item in listed] == [item["metadata"]["name"] for item in items]
    assert [request.query for request in api.requests] == [
        {"limit": "500"},
        {"limit": "500", "continue": "500"},
        {"limit": "500", "continue": "1000"},
    ]


def test_namespaced_list_of_core_services_gets_type_meta(api: FakeApiServer) -> None:
    services = [{"metadata": {"name": f"web-{index}", "namespace": "production"}} for index in range(3)]
    api.route("GET", "/api/v1/namespaces/production/services", paged_list(services, "ServiceList", "v1"))
    client = api.client()

    listed = client.list("Service", "production", page_size=2)

    assert len(api.requests) == 2
    assert all(item["kind"] == "Service" and item["apiVersion"] == "v1" for item in listed)
    assert [item["metadata"]["name"] for item in listed] == ["web-0", "web-1", "web-2"]


def test_group_detection_prefers_traefik_io_with_one_request(api: FakeApiServer) -> None:
    api.route("GET", f"{TRAEFIK_IO}/traefikservices", lambda _request: empty_list("traefik.io"))
    client = api.client()

    assert client.traefik_group(None) == "traefik.io"
    assert client.traefik_group(None) == "traefik.io"  # remembered
    assert api.paths() == [f"{TRAEFIK_IO}/traefikservices"]
    assert api.requests[0].query == {"limit": "1"}


def test_group_detection_falls_back_to_traefik_containo_us(api: FakeApiServer) -> None:
    api.route("GET", f"{CONTAINO}/traefikservices", lambda _request: empty_list("traefik.containo.us"))
    api.route("GET", f"{CONTAINO}/namespaces/production/ingressroutes/web", (200, {"metadata": {"name": "web"}}))
    client = api.client()

    route = client.get("IngressRoute", "production", "web")
    client.get("IngressRoute", "production", "web")

    assert route == {"metadata": {"name": "web"}}
    # The read itself is the probe: tried in traefik.io (unknown path there), then in traefik.containo.us,
    # which is kept for the next read.
    assert api.paths() == [
        f"{TRAEFIK_IO}/namespaces/production/ingressroutes/web",
        f"{CONTAINO}/namespaces/production/ingressroutes/web",
        f"{CONTAINO}/namespaces/production/ingressroutes/web",
    ]
    assert client.traefik_group() == "traefik.containo.us"
    assert len(api.requests) == 3


def test_the_first_read_settles_the_group_without_a_probe(api: FakeApiServer) -> None:
    missing = status_body(404, "NotFound", 'traefikservices.traefik.io "web-mirror" not found', {"name": "web-mirror"})
    api.route("GET", f"{TRAEFIK_IO}/namespaces/production/traefikservices/web-mirror", (404, missing))
    api.route("GET", f"{TRAEFIK_IO}/namespaces/production/ingressroutes/web", (200, {"metadata": {"name": "web"}}))
    client = api.client()

    # A missing object named in the 404 proves that traefik.io serves traefikservices.
    assert client.get("TraefikService", "production", "web-mirror") is None
    assert client.get("IngressRoute", "production", "web") == {"metadata": {"name": "web"}}
    assert client.traefik_group() == "traefik.io"
    assert api.paths() == [
        f"{TRAEFIK_IO}/namespaces/production/traefikservices/web-mirror",
        f"{TRAEFIK_IO}/namespaces/production/ingressroutes/web",
    ]


def test_a_forbidden_first_read_is_settled_by_discovery_and_reported_as_forbidden(api: FakeApiServer) -> None:
    forbidden = status_body(
        403, "Forbidden", 'User "alice" cannot get resource "traefikservices" in API group "traefik.io"'
    )
    api.route("GET", f"{TRAEFIK_IO}/namespaces/production/traefikservices/web-mirror", (403, forbidden))
    api.route("GET", TRAEFIK_IO, (200, {"kind": "APIResourceList", "resources": [{"name": "traefikservices"}]}))
    client = api.client()

    with pytest.raises(DarklaunchError) as caught:
        client.get("TraefikService", "production", "web-mirror")

    assert 'user "alice" may not get traefikservices.traefik.io "web-mirror"' in str(caught.value)
    assert client.traefik_group() == "traefik.io"
    assert api.paths() == [f"{TRAEFIK_IO}/namespaces/production/traefikservices/web-mirror", TRAEFIK_IO]


def test_group_detection_without_crds_says_so(api: FakeApiServer) -> None:
    client = api.client()

    with pytest.raises(DarklaunchError) as caught:
        client.list("IngressRoute", "production")

    assert str(caught.value) == CRDS_MISSING_MESSAGE
    assert caught.value.field == "api_group"


def test_explicit_api_group_is_honoured_without_probing(api: FakeApiServer) -> None:
    api.route("GET", f"{CONTAINO}/middlewares", lambda _request: empty_list("traefik.containo.us"))
    client = api.client(api_group="traefik.containo.us")

    assert client.list("Middleware", None) == []
    assert api.paths() == [f"{CONTAINO}/middlewares"]


def test_unknown_api_group_is_refused() -> None:
    with pytest.raises(DarklaunchError) as caught:
        KubeClient.from_params({"host": "https://k8s.example", "api_key": "t", "api_group": "traefik.example"})

    assert caught.value.field == "api_group"


def test_forbidden_probe_is_settled_by_the_group_discovery_document(api: FakeApiServer) -> None:
    forbidden = status_body(
        403, "Forbidden", 'User "alice" cannot list resource "traefikservices" at the cluster scope'
    )
    api.route("GET", f"{TRAEFIK_IO}/traefikservices", (403, forbidden))
    api.route("GET", TRAEFIK_IO, (200, {"kind": "APIResourceList", "resources": [{"name": "traefikservices"}]}))
    client = api.client()

    assert client.traefik_group(None) == "traefik.io"


def test_missing_crd_on_get_raises_but_missing_object_is_none(api: FakeApiServer) -> None:
    not_found = status_body(
        404, "NotFound", 'traefikservices.traefik.io "gone" not found', {"name": "gone", "kind": "traefikservices"}
    )
    api.route("GET", f"{TRAEFIK_IO}/namespaces/production/traefikservices/gone", (404, not_found))
    client = api.client(api_group="traefik.io")

    assert client.get("TraefikService", "production", "gone") is None
    with pytest.raises(DarklaunchError) as caught:
        client.get("IngressRoute", "production", "web")  # generic 404: the CRD itself is missing
    assert caught.value.field == "api_group"


@pytest.mark.parametrize(("status", "exists"), [(200, True), (404, False), (403, True)])
def test_namespace_exists_treats_forbidden_as_existing(api: FakeApiServer, status: int, exists: bool) -> None:
    api.route("GET", "/api/v1/namespaces/production", (status, {"metadata": {"name": "production"}}))

    assert api.client().namespace_exists("production") is exists


# --------------------------------------------------------------------------------------------------
# Writes


def test_writes_use_the_right_verbs_content_types_and_bodies(api: FakeApiServer) -> None:
    base = f"{TRAEFIK_IO}/namespaces/production/traefikservices"
    created = traefik_service("web-mirror")
    api.route("POST", base, (201, created))
    api.route("PATCH", f"{base}/web-mirror", (200, created))
    api.route("DELETE", f"{base}/web-mirror", (200, status_body(200, "", "")))
    client = api.client(api_group="traefik.io")
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "replace", "path": "/spec/mirroring/mirrors/0/percent", "value": 20},
    ]

    assert client.create("TraefikService", "production", created) == created
    assert client.json_patch("TraefikService", "production", "web-mirror", ops) == created
    client.delete("TraefikService", "production", "web-mirror", resource_version="7")

    assert [(request.method, request.headers.get("Content-Type")) for request in api.requests] == [
        ("POST", "application/json"),
        ("PATCH", "application/json-patch+json"),
        ("DELETE", "application/json"),
    ]
    assert api.requests[1].json() == ops
    assert [request.query for request in api.requests] == [{"fieldManager": "darklaunch.traefik"}] * 2 + [{}]
    assert api.requests[2].json() == {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "preconditions": {"resourceVersion": "7"},
    }


def test_failed_patch_test_explains_who_changed_the_object(api: FakeApiServer) -> None:
    path = f"{TRAEFIK_IO}/namespaces/production/traefikservices/web-mirror"
    generic_invalid = status_body(422, "Invalid", "the server rejected our request due to an error in our request")
    current = traefik_service("web-mirror", resource_version="9")
    current["metadata"]["managedFields"] = [
        {"manager": "darklaunch.traefik", "operation": "Update", "time": "2025-01-01T10:00:00Z", "fieldsV1": {}},
        {
            "manager": "kubectl-edit",
            "operation": "Update",
            "time": "2025-01-01T11:00:00Z",
            "fieldsV1": {"f:spec": {"f:mirroring": {"f:mirrors": {}}}, "f:metadata": {"f:labels": {"f:team": {}}}},
        },
    ]
    api.route("PATCH", path, (422, generic_invalid))
    api.route("GET", path, (200, current))
    client = api.client(api_group="traefik.io")
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": "5"}, {"op": "remove", "path": "/spec/x"}]

    with pytest.raises(ConflictError) as caught:
        client.json_patch("TraefikService", "production", "web-mirror", ops)

    assert str(caught.value) == (
        "TraefikService production/web-mirror changed since it was read (resourceVersion 5 -> 9; last written by "
        '"kubectl-edit" (Update) at 2025-01-01T11:00:00Z, owning spec.mirroring, metadata.labels); '
        "re-read it and retry"
    )
    assert [request.method for request in api.requests] == ["PATCH", "GET"]  # one write, one read to explain


def test_patch_failing_on_an_unchanged_object_is_a_bug_not_a_conflict(api: FakeApiServer) -> None:
    path = f"{TRAEFIK_IO}/namespaces/production/traefikservices/web-mirror"
    generic_invalid = status_body(422, "Invalid", "the server rejected our request due to an error in our request")
    api.route("PATCH", path, (422, generic_invalid))
    api.route("GET", path, (200, traefik_service("web-mirror", resource_version="5")))
    client = api.client(api_group="traefik.io")
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": "5"}, {"op": "remove", "path": "/spec/x"}]

    with pytest.raises(DarklaunchError) as caught:
        client.json_patch("TraefikService", "production", "web-mirror", ops)

    assert not isinstance(caught.value, ConflictError)
    assert "has not changed since it was read (resourceVersion 5)" in str(caught.value)


def test_delete_of_an_object_already_gone(api: FakeApiServer) -> None:
    path = f"{TRAEFIK_IO}/namespaces/production/traefikservices/web-mirror"
    gone = status_body(404, "NotFound", "not found", {"name": "web-mirror", "kind": "traefikservices"})
    api.route("DELETE", path, (404, gone))
    api.route("GET", path, (404, gone))
    client = api.client(api_group="traefik.io")

    client.delete("TraefikService", "production", "web-mirror")  # no precondition: already absent is fine
    with pytest.raises(ConflictError) as caught:
        client.delete("TraefikService", "production", "web-mirror", resource_version="3")
    assert str(caught.value) == (
        "TraefikService production/web-mirror was deleted since it was read; re-read it and retry"
    )


# --------------------------------------------------------------------------------------------------
# Connection failures


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_connection_refused_names_the_host_and_the_option() -> None:
    host = f"http://127.0.0.1:{unused_port()}"
    client = KubeClient.from_params({"host": host, "api_key": "t"})

    with pytest.raises(DarklaunchError) as caught:
        client.namespace_exists("default")

    assert caught.value.field == "host"
    assert str(caught.value).startswith(f"cannot connect to the Kubernetes API at {host}: ")
    assert "Check host" in str(caught.value)


def test_tls_failure_points_at_ca_cert_and_validate_certs(api: FakeApiServer) -> None:
    host = api.url.replace("http://", "https://")  # TLS against a plain HTTP server
    client = KubeClient.from_params({"host": host, "api_key": "t"})

    with pytest.raises(DarklaunchError) as caught:
        client.namespace_exists("default")

    assert caught.value.field == "ca_cert"
    assert str(caught.value).startswith(f"TLS error talking to the Kubernetes API at {host}")
    assert "validate_certs: false" in str(caught.value)


# --------------------------------------------------------------------------------------------------
# The argument spec and the doc fragment describe the same options


def load_doc_fragment() -> Any:
    spec = importlib.util.spec_from_file_location("k8s_auth_fragment", REPO_ROOT / "plugins/doc_fragments/k8s_auth.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ModuleDocFragment


def test_argspec_doc_fragment_and_env_fallbacks_agree() -> None:
    fragment = load_doc_fragment()
    module_options = yaml.safe_load(fragment.DOCUMENTATION)["options"]
    plugin_options = yaml.safe_load(fragment.PLUGINS)["options"]
    argspec = auth_argument_spec()

    assert set(argspec) == set(module_options) == set(plugin_options) == set(_k8s_auth.AUTH_OPTION_NAMES)
    for option, env_names, _type in _k8s_auth.AUTH_ENV_FALLBACKS:
        assert argspec[option].get("aliases", []) == module_options[option].get("aliases", [])
        plugin_env = [env["name"] for env in plugin_options[option].get("env", [])]
        assert plugin_env == list(reversed(env_names))  # last one wins
        assert all(f"E({name})" in " ".join(module_options[option]["description"]) for name in env_names)
    # proxy_headers: one variable per key, named in the key's own description (and in the lookup's text).
    suboptions = module_options["proxy_headers"]["suboptions"]
    assert set(suboptions) == set(argspec["proxy_headers"]["options"]) == set(PROXY_HEADER_ENV)
    for key, env_name in PROXY_HEADER_ENV.items():
        assert f"E({env_name})" in " ".join(suboptions[key]["description"])
        assert f"E({env_name})" in " ".join(plugin_options["proxy_headers"]["description"])
    assert argspec["proxy_headers"]["options"]["basic_auth"]["no_log"] is True
    assert argspec["proxy_headers"]["options"]["proxy_basic_auth"]["no_log"] is True
    assert argspec["api_key"]["no_log"] is True
    assert argspec["password"]["no_log"] is True


def test_with_auth_merges_and_refuses_to_redefine_auth_options() -> None:
    merged = with_auth({"namespace": {"type": "str", "default": "default"}})

    assert merged["namespace"] == {"type": "str", "default": "default"}
    assert merged["kubeconfig"] == {"type": "raw"}
    with pytest.raises(ValueError, match="host"):
        with_auth({"host": {"type": "str"}})


# --------------------------------------------------------------------------------------------------
# Request timeout: an API server that stops answering fails the call within request_timeout


def test_request_timeout_defaults_to_20_seconds_and_comes_from_option_or_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def timeout(params: dict[str, Any]) -> float:
        return request_timeout_seconds(resolve_auth_options(params).get("request_timeout"))

    assert timeout({"host": "http://127.0.0.1:1", "api_key": "t"}) == 20.0
    assert timeout({"host": "http://127.0.0.1:1", "api_key": "t", "request_timeout": 3}) == 3.0
    monkeypatch.setenv("K8S_AUTH_REQUEST_TIMEOUT", "7.5")
    assert timeout({"host": "http://127.0.0.1:1", "api_key": "t"}) == 7.5


@pytest.mark.parametrize("value", [0, -1, "soon", True, 4000])
def test_a_bad_request_timeout_is_refused_with_its_field(value: Any) -> None:
    with pytest.raises(DarklaunchError) as caught:
        KubeClient.from_params({"host": "http://127.0.0.1:1", "api_key": "t", "request_timeout": value})
    assert caught.value.field == "request_timeout"
    assert "request_timeout must be a number of seconds" in str(caught.value)


def test_an_api_that_does_not_answer_fails_once_within_the_timeout_and_says_the_request_may_have_applied() -> None:
    received: list[bytes] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _address = listener.accept()
            except OSError:
                return
            held.append(connection)  # read the request, never answer
            received.append(connection.recv(65536))

    threading.Thread(target=accept, daemon=True).start()
    host = f"http://127.0.0.1:{listener.getsockname()[1]}"
    client = KubeClient.from_params({"host": host, "api_key": "t", "request_timeout": 0.5, "api_group": "traefik.io"})
    try:
        with pytest.raises(ApiUnavailableError) as caught:
            client.json_patch("IngressRoute", "ns", "r", [{"op": "add", "path": "/x", "value": 1}])
    finally:
        listener.close()
        for connection in held:
            connection.close()

    error = caught.value
    assert error.request_sent is True
    assert error.field == "request_timeout"
    assert str(error).startswith(f"the Kubernetes API at {host} did not answer PATCH ")
    assert "within 0.5 s (request_timeout)" in str(error)
    assert len(received) == 1, "a request that was sent is never repeated"


def test_a_refused_connection_is_unavailable_and_nothing_was_sent() -> None:
    client = KubeClient.from_params({"host": f"http://127.0.0.1:{unused_port()}", "api_key": "t"})
    with pytest.raises(ApiUnavailableError) as caught:
        client.get("Service", "ns", "x")
    assert caught.value.request_sent is False
    assert caught.value.details["request"] == "GET /api/v1/namespaces/ns/services/x"


def test_service_proxy_get_reads_through_the_api_server_and_names_the_right_to_grant(api: FakeApiServer) -> None:
    path = "/api/v1/namespaces/production/services/shop-compare:8099/proxy/__darklaunch/samples"
    api.route("GET", path, (200, [{"request": "GET / HTTP/1.1"}]))
    client = api.client()
    assert json.loads(client.service_proxy_get("production", "shop-compare", 8099, "/__darklaunch/samples")) == [
        {"request": "GET / HTTP/1.1"}
    ]
    assert api.requests[-1].headers["Authorization"] == "Bearer test-token"  # the API server's own credentials
    message = 'User "ops" cannot get resource "services/proxy" in API group "" in the namespace "production"'
    api.route("GET", path, (403, status_body(403, "Forbidden", message)))
    with pytest.raises(DarklaunchError) as forbidden:
        client.service_proxy_get("production", "shop-compare", 8099, "__darklaunch/samples")
    assert forbidden.value.details["api_status"] == 403
    assert 'user "ops" may not get services/proxy "shop-compare:8099"' in str(forbidden.value)
    api.route("GET", path, (503, status_body(503, "ServiceUnavailable", 'no endpoints available for service "x"')))
    with pytest.raises(DarklaunchError) as unavailable:
        client.service_proxy_get("production", "shop-compare", 8099, "/__darklaunch/samples")
    assert unavailable.value.details["api_status"] == 503 and str(unavailable.value) == (
        "the API server answered 503 to GET /__darklaunch/samples on Service production/shop-compare:8099 "
        '(no endpoints available for service "x")'
    )
