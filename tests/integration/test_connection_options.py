# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kubernetes.core connection options that go beyond a kubeconfig, against the local cluster.

``proxy`` with ``proxy_headers``: a loopback HTTP CONNECT proxy started here tunnels the modules' and the
lookup's requests to the real API server and records what it was sent (``Proxy-Authorization``,
``User-Agent``), or refuses wrong credentials with 407. ``persist_config``: a loopback OpenID Connect
provider started here refreshes an expired id-token of a kubeconfig's ``oidc`` auth-provider, handing out
the cluster's real operator token; the module authenticates with it, and the kubeconfig file holds the new
tokens afterwards only when ``persist_config`` is true. No credential appears in any output.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import select
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from modrun import run_module
from shadow import COLLECTIONS_ROOT
from test_traefik_mirror_safety import build_static_world

pytestmark = pytest.mark.integration

RUN_ID = secrets.token_hex(4)
PROXY_USER = "ops"
PROXY_PASSWORD = f"dl-proxy-pass-{RUN_ID}"
PROXY_CREDENTIALS = f"{PROXY_USER}:{PROXY_PASSWORD}"
USER_AGENT = f"darklaunch-connection-test/{RUN_ID}"


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


# --------------------------------------------------------------------------------------------------
# A loopback CONNECT proxy


@dataclass
class ProxySeen:
    method: str
    target: str
    headers: dict[str, str]


@dataclass
class ConnectProxy:
    """Tunnels CONNECT requests to loopback targets; records every request line and its headers."""

    require: str | None = None  # the Proxy-Authorization value to insist on (407 otherwise)
    seen: list[ProxySeen] = field(default_factory=list)
    url: str = ""


class _ProxyHandler(socketserver.StreamRequestHandler):
    server: _ProxyServer

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _colon, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        proxy = self.server.proxy
        proxy.seen.append(ProxySeen(method, target, headers))
        if proxy.require is not None and headers.get("proxy-authorization") != proxy.require:
            self.request.sendall(
                b'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\n'
                b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            return
        host, _colon, port = target.rpartition(":")
        if method != "CONNECT" or host not in ("127.0.0.1", "localhost"):
            self.request.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        with socket.create_connection((host, int(port)), timeout=10) as upstream:
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _pipe(self.request, upstream)


def _pipe(client: socket.socket, upstream: socket.socket) -> None:
    sockets = [client, upstream]
    while True:
        readable, _w, _x = select.select(sockets, [], [], 30)
        if not readable:
            return
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            (upstream if sock is client else client).sendall(data)


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: ConnectProxy


@pytest.fixture
def connect_proxy() -> Iterator[Callable[..., ConnectProxy]]:
    servers: list[_ProxyServer] = []

    def start(require: str | None = None) -> ConnectProxy:
        server = _ProxyServer(("127.0.0.1", 0), _ProxyHandler)
        server.proxy = ConnectProxy(require=require, url=f"http://127.0.0.1:{server.server_address[1]}")
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.proxy

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------------------------------
# Fixtures: a world, and the API server's address


@pytest.fixture(scope="module")
def world(kube: Any, make_namespace: Callable[[str], str], bind_operator: Callable[[str], None]) -> Any:
    namespace = make_namespace("conn")
    bind_operator(namespace)  # the shipped operator Role: the modules run with least privilege
    return build_static_world(kube, namespace, "conn")


@pytest.fixture(scope="module")
def api_target(operator_kubeconfig: Path) -> str:
    server = yaml.safe_load(operator_kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    parts = urlsplit(server)
    return f"{parts.hostname}:{parts.port}"


def assert_no_secret(text: str, *secrets_: str) -> None:
    for secret in secrets_:
        assert secret not in text, f"a secret ({secret[:6]}...) appears in the output"


PROXY_SECRETS = (PROXY_PASSWORD, PROXY_CREDENTIALS, base64.b64encode(PROXY_CREDENTIALS.encode()).decode())


# --------------------------------------------------------------------------------------------------
# proxy_headers


def test_proxy_headers_reach_the_proxy_and_the_module_works_through_it(
    connect_proxy: Callable[..., ConnectProxy], world: Any, operator_kubeconfig: Path, api_target: str
) -> None:
    proxy = connect_proxy(require=basic(PROXY_CREDENTIALS))
    args = {
        "kubeconfig": str(operator_kubeconfig),
        "namespace": world.namespace,
        "route_name": world.route,
        "proxy": proxy.url,
        "proxy_headers": {"proxy_basic_auth": PROXY_CREDENTIALS, "user_agent": USER_AGENT},
    }

    raw = run_module("traefik_traffic_info", args, raw=True)

    assert not raw.get("failed"), raw.get("msg")
    assert raw["distribution"]["route"] == world.route  # the real cluster answered through the tunnel
    connects = [seen for seen in proxy.seen if seen.method == "CONNECT"]
    assert connects and all(seen.target == api_target for seen in connects)
    assert connects[0].headers["proxy-authorization"] == basic(PROXY_CREDENTIALS)
    assert connects[0].headers["user-agent"] == USER_AGENT
    assert_no_secret(json.dumps(raw), *PROXY_SECRETS)


def test_a_write_goes_through_the_proxy_too(
    connect_proxy: Callable[..., ConnectProxy], world: Any, operator_kubeconfig: Path, kube: Any
) -> None:
    proxy = connect_proxy(require=basic(PROXY_CREDENTIALS))
    args = {
        "kubeconfig": str(operator_kubeconfig),
        "route_name": world.route,
        "namespace": world.namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service("canary"),
        "mirror_percent": 20,
        "proxy": proxy.url,
        "proxy_headers": {"proxy_basic_auth": PROXY_CREDENTIALS},
    }

    raw = run_module("traefik_mirror", args, raw=True)

    assert not raw.get("failed"), raw.get("msg")
    mirror = kube.get(f"{world.api_group}/v1alpha1", "TraefikService", f"{world.route}-mirror", world.namespace)
    assert mirror["spec"]["mirroring"]["mirrors"][0]["percent"] == 20
    assert proxy.seen and all(
        seen.headers.get("proxy-authorization") == basic(PROXY_CREDENTIALS) for seen in proxy.seen
    )
    assert_no_secret(json.dumps(raw), *PROXY_SECRETS)


def test_proxy_headers_come_from_their_environment_variables(
    connect_proxy: Callable[..., ConnectProxy], world: Any, operator_kubeconfig: Path
) -> None:
    proxy = connect_proxy(require=basic(PROXY_CREDENTIALS))
    env = {
        "K8S_AUTH_PROXY": proxy.url,
        "K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH": PROXY_CREDENTIALS,
        "K8S_AUTH_PROXY_HEADERS_USER_AGENT": USER_AGENT,
    }

    result = run_module(
        "traefik_traffic_info", {"kubeconfig": str(operator_kubeconfig), "namespace": world.namespace}, env=env
    )

    assert not result.get("failed"), result.get("msg")
    assert proxy.seen[0].headers["user-agent"] == USER_AGENT
    assert proxy.seen[0].headers["proxy-authorization"] == basic(PROXY_CREDENTIALS)


def test_a_proxy_refusing_the_credentials_fails_naming_the_proxy_and_no_secret(
    connect_proxy: Callable[..., ConnectProxy], world: Any, operator_kubeconfig: Path
) -> None:
    proxy = connect_proxy(require=basic("ops:the-right-one"))
    args = {
        "kubeconfig": str(operator_kubeconfig),
        "namespace": world.namespace,
        "proxy": proxy.url,
        "proxy_headers": {"proxy_basic_auth": PROXY_CREDENTIALS},
    }

    raw = run_module("traefik_traffic_info", args, raw=True)

    assert raw.get("failed")
    assert raw["field"] == "proxy"
    assert "407" in raw["msg"] and proxy.url in raw["msg"]
    assert_no_secret(json.dumps(raw), *PROXY_SECRETS)


def test_the_lookup_uses_proxy_headers_and_prints_no_secret_at_vvv(
    connect_proxy: Callable[..., ConnectProxy], world: Any, operator_kubeconfig: Path, tmp_path: Path
) -> None:
    good = connect_proxy(require=basic(PROXY_CREDENTIALS))
    refusing = connect_proxy(require=basic("ops:the-right-one"))
    headers = {"proxy_basic_auth": PROXY_CREDENTIALS, "user_agent": USER_AGENT}

    def lookup(proxy: ConnectProxy) -> str:
        return (
            "{{ lookup('darklaunch.traefik.traffic', 'routes', namespace=ns, kubeconfig=kc, "
            f"proxy='{proxy.url}', proxy_headers=headers) | to_json }}}}"
        )

    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"ns": world.namespace, "kc": str(operator_kubeconfig), "headers": headers},
            "tasks": [
                {"name": "Through the proxy", "ansible.builtin.debug": {"msg": lookup(good)}},
                {
                    "name": "Refused by the proxy",
                    "ansible.builtin.debug": {"msg": lookup(refusing)},
                    "ignore_errors": True,
                },
            ],
        }
    ]
    playbook = tmp_path / "lookup.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))

    done = subprocess.run(
        ["ansible-playbook", "-vvv", str(playbook)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_ROOT), "ANSIBLE_NOCOLOR": "1"},
        check=False,
    )

    output = done.stdout + done.stderr
    assert "ok=2" in output and "failed=0" in output and "ignored=1" in output, output[-3000:]
    assert good.seen[0].headers["proxy-authorization"] == basic(PROXY_CREDENTIALS)
    assert good.seen[0].headers["user-agent"] == USER_AGENT
    assert "407" in output  # the refusal is explained...
    assert_no_secret(output, *PROXY_SECRETS)  # ...and nothing of the credentials is shown


# --------------------------------------------------------------------------------------------------
# persist_config: a refreshed OIDC token written back to the kubeconfig file


@dataclass
class OidcProvider:
    """Hands out ``id_token`` (and a new refresh token) for the refresh token it was given."""

    id_token: str
    refresh_token: str
    url: str = ""
    refreshes: list[dict[str, str]] = field(default_factory=list)


class _OidcHandler(BaseHTTPRequestHandler):
    server: _OidcServer

    def do_GET(self) -> None:
        if self.path == "/.well-known/openid-configuration":
            self._json(200, {"issuer": self.server.provider.url, "token_endpoint": f"{self.server.provider.url}/token"})
        else:
            self._json(404, {})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(pair.split("=", 1) for pair in self.rfile.read(length).decode().split("&") if "=" in pair)
        provider = self.server.provider
        provider.refreshes.append(form)
        self._json(
            200,
            {
                "access_token": f"access-{RUN_ID}",
                "token_type": "Bearer",
                "expires_in": 3600,
                "id_token": provider.id_token,
                "refresh_token": provider.refresh_token,
            },
        )

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass


class _OidcServer(ThreadingHTTPServer):
    daemon_threads = True
    provider: OidcProvider


@pytest.fixture
def oidc_provider(operator_kubeconfig: Path) -> Iterator[OidcProvider]:
    operator_token = yaml.safe_load(operator_kubeconfig.read_text())["users"][0]["user"]["token"]
    server = _OidcServer(("127.0.0.1", 0), _OidcHandler)
    server.provider = OidcProvider(id_token=operator_token, refresh_token=f"refresh-2-{RUN_ID}")
    server.provider.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.provider
    server.shutdown()
    server.server_close()


def expired_jwt() -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'sub': 'ops', 'exp': int(time.time()) - 3600})}.sig"


def oidc_kubeconfig(path: Path, base: Path, issuer: str) -> Path:
    cluster = yaml.safe_load(base.read_text())["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [
            {
                "name": "oidc",
                "user": {
                    "auth-provider": {
                        "name": "oidc",
                        "config": {
                            "client-id": "darklaunch",
                            "client-secret": f"client-secret-{RUN_ID}",
                            "id-token": expired_jwt(),
                            "refresh-token": f"refresh-1-{RUN_ID}",
                            "idp-issuer-url": issuer,
                        },
                    }
                },
            }
        ],
        "contexts": [{"name": "oidc", "context": {"cluster": cluster["name"], "user": "oidc"}}],
        "current-context": "oidc",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("persist", [True, False])
def test_persist_config_writes_the_refreshed_tokens_back_only_when_asked(
    oidc_provider: OidcProvider,
    world: Any,
    operator_kubeconfig: Path,
    tmp_path: Path,
    persist: bool,
) -> None:
    kubeconfig = oidc_kubeconfig(tmp_path / "oidc.kubeconfig", operator_kubeconfig, oidc_provider.url)
    before = kubeconfig.read_text()
    args = {"kubeconfig": str(kubeconfig), "namespace": world.namespace, "persist_config": persist}
    # oauthlib refuses a plain-http token endpoint unless told this is a test.
    env = {"OAUTHLIB_INSECURE_TRANSPORT": "1"}

    raw = run_module("traefik_traffic_info", args, env=env, raw=True)

    # The expired id-token was refreshed once, and the fresh one (the operator's real token) got in.
    assert oidc_provider.refreshes and oidc_provider.refreshes[0]["refresh_token"] == f"refresh-1-{RUN_ID}"
    assert not raw.get("failed"), raw.get("msg")
    assert raw["namespace"] == world.namespace
    written = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["auth-provider"]["config"]
    if persist:
        assert written["id-token"] == oidc_provider.id_token
        assert written["refresh-token"] == oidc_provider.refresh_token
    else:
        assert kubeconfig.read_text() == before
    assert_no_secret(
        json.dumps(raw),
        oidc_provider.id_token,
        oidc_provider.refresh_token,
        f"refresh-1-{RUN_ID}",
        f"client-secret-{RUN_ID}",
    )
