# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PrometheusClient against a tiny real HTTP(S) server on 127.0.0.1 started by each test."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._prometheus import PrometheusClient

VECTOR = {
    "status": "success",
    "data": {
        "resultType": "vector",
        "result": [{"metric": {"service": "ns-web-80@kubernetescrd"}, "value": [1700000000, "42"]}],
    },
}
MATRIX = {
    "status": "success",
    "data": {
        "resultType": "matrix",
        "result": [
            {"metric": {"service": "ns-web-80@kubernetescrd"}, "values": [[1700000000, "1"], [1700000300, "2"]]}
        ],
    },
}
SECRET_TOKEN = "s3cr3t-token-value"
SECRET_PASSWORD = "pa55-w0rd-value"


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=lambda: VECTOR)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]


class FakePrometheusServer:
    def __init__(self, tls_context: ssl.SSLContext | None = None) -> None:
        self.replies: list[Reply] = []
        self.seen: list[Seen] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.block_on_close = False  # a test that timed out must not wait for the sleeping handler
        if tls_context is not None:
            self.server.socket = tls_context.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls_context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def reply(self, **kwargs: Any) -> None:
        self.replies.append(Reply(**kwargs))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                fake.seen.append(Seen("POST", self.path, dict(self.headers.items()), form))
                reply = fake.replies.pop(0) if fake.replies else Reply()
                time.sleep(reply.delay)
                body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    for name, value in {"Content-Type": "application/json", **reply.headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (timeout test)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib honours proxy variables (as users expect); tests talk to 127.0.0.1 directly.
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def prometheus() -> Iterator[FakePrometheusServer]:
    server = FakePrometheusServer()
    yield server
    server.stop()


def error_of(call: Any) -> DarklaunchError:
    with pytest.raises(DarklaunchError) as raised:
        call()
    return raised.value


def assert_no_secrets(err: DarklaunchError) -> None:
    for text in (str(err), json.dumps(err.details)):
        assert SECRET_TOKEN not in text
        assert SECRET_PASSWORD not in text


# ---- requests and answers -----------------------------------------------------------------------


def test_query_posts_the_form_and_returns_the_result(prometheus: FakePrometheusServer) -> None:
    client = PrometheusClient(prometheus.url, timeout=5)
    assert client.query('sum(up{job="traefik"})', time=1700000000.5) == VECTOR["data"]["result"]  # type: ignore[index]
    [seen] = prometheus.seen
    assert (seen.method, seen.path) == ("POST", "/api/v1/query")
    assert seen.form == {"query": 'sum(up{job="traefik"})', "time": "1700000000.5", "timeout": "4.5"}
    assert seen.headers["Accept"] == "application/json"
    assert "Authorization" not in seen.headers
    assert client.query_count == 1


def test_query_range_sends_start_end_and_step(prometheus: FakePrometheusServer) -> None:
    prometheus.reply(body=MATRIX)
    client = PrometheusClient(prometheus.url + "/")
    result = client.query_range("up", start=1700000000, end=1700000300.25, step=300.0)
    assert result == MATRIX["data"]["result"]  # type: ignore[index]
    [seen] = prometheus.seen
    assert seen.path == "/api/v1/query_range"
    assert (seen.form["start"], seen.form["end"], seen.form["step"]) == ("1700000000", "1700000300.25", "300")


def test_a_path_prefix_in_the_url_is_kept(prometheus: FakePrometheusServer) -> None:
    PrometheusClient(prometheus.url + "/prometheus/").query("up")
    assert prometheus.seen[0].path == "/prometheus/api/v1/query"


def test_every_request_is_counted(prometheus: FakePrometheusServer) -> None:
    client = PrometheusClient(prometheus.url)
    prometheus.reply(status=400, body={"status": "error", "errorType": "bad_data", "error": "boom"})
    error_of(lambda: client.query("up"))
    client.query("up")
    client.query_range("up", 1, 2, 1)
    assert client.query_count == 3


def test_scalar_results_are_wrapped_like_vectors(prometheus: FakePrometheusServer) -> None:
    prometheus.reply(body={"status": "success", "data": {"resultType": "scalar", "result": [1700000000, "1"]}})
    assert PrometheusClient(prometheus.url).query("1") == [{"metric": {}, "value": [1700000000, "1"]}]


def test_prometheus_warnings_are_kept(prometheus: FakePrometheusServer) -> None:
    prometheus.reply(body={**VECTOR, "warnings": ["PromQL info: metric might not be a counter"]})
    client = PrometheusClient(prometheus.url)
    client.query("up")
    assert client.warnings == ["PromQL info: metric might not be a counter"]


# ---- authentication -----------------------------------------------------------------------------


def test_bearer_token_header(prometheus: FakePrometheusServer) -> None:
    PrometheusClient(prometheus.url, token=SECRET_TOKEN).query("up")
    assert prometheus.seen[0].headers["Authorization"] == f"Bearer {SECRET_TOKEN}"


def test_basic_auth_header(prometheus: FakePrometheusServer) -> None:
    PrometheusClient(prometheus.url, username="grafana", password=SECRET_PASSWORD).query("up")
    expected = base64.b64encode(f"grafana:{SECRET_PASSWORD}".encode()).decode()
    assert prometheus.seen[0].headers["Authorization"] == f"Basic {expected}"


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_say_so_without_leaking_them(prometheus: FakePrometheusServer, status: int) -> None:
    prometheus.reply(status=status, body=b"unauthorized")
    client = PrometheusClient(prometheus.url, username="grafana", password=SECRET_PASSWORD)
    err = error_of(lambda: client.query("up"))
    assert f"HTTP {status}" in str(err)
    assert "prometheus_username and prometheus_password" in str(err)
    assert err.field == "prometheus_token"
    assert_no_secrets(err)


def test_token_and_basic_auth_together_are_refused() -> None:
    err = error_of(lambda: PrometheusClient("http://127.0.0.1:9090", token=SECRET_TOKEN, username="u", password="p"))
    assert (err.field, "not both" in str(err)) == ("prometheus_token", True)
    assert_no_secrets(err)


def test_password_without_username_is_refused() -> None:
    assert error_of(lambda: PrometheusClient("http://127.0.0.1:9090", password=SECRET_PASSWORD)).field == (
        "prometheus_username"
    )


# ---- errors -------------------------------------------------------------------------------------


def test_bad_query_shows_prometheus_error_text(prometheus: FakePrometheusServer) -> None:
    error = 'invalid parameter "query": 1:8: parse error: unexpected "}"'
    prometheus.reply(status=400, body={"status": "error", "errorType": "bad_data", "error": error})
    err = error_of(lambda: PrometheusClient(prometheus.url).query("sum(up}"))
    assert str(err) == f"Prometheus rejected the query (bad_data: {error}). Query: sum(up}}"
    assert err.details["error"] == error


def test_execution_errors_show_prometheus_error_text(prometheus: FakePrometheusServer) -> None:
    error = "query processing would load too many samples into memory in query execution"
    prometheus.reply(status=422, body={"status": "error", "errorType": "execution", "error": error})
    assert error in str(error_of(lambda: PrometheusClient(prometheus.url).query("up")))


def test_long_queries_are_shortened_in_messages(prometheus: FakePrometheusServer) -> None:
    prometheus.reply(status=400, body={"status": "error", "errorType": "bad_data", "error": "bad"})
    long_query = 'up{service=~"' + "|".join(f"svc-{index}" for index in range(500)) + '"}'
    err = error_of(lambda: PrometheusClient(prometheus.url).query(long_query))
    assert f"({len(long_query)} characters)" in str(err)
    assert len(str(err)) < 400


def test_unavailable_prometheus(prometheus: FakePrometheusServer) -> None:
    prometheus.reply(status=503, body={"status": "error", "errorType": "unavailable", "error": "not ready"})
    message = str(error_of(lambda: PrometheusClient(prometheus.url).query("up")))
    assert "HTTP 503, unavailable: not ready" in message
    assert "try again later" in message


def test_prometheus_giving_up_suggests_asking_for_less(prometheus: FakePrometheusServer) -> None:
    prometheus.reply(status=503, body={"status": "error", "errorType": "timeout", "error": "query timed out"})
    assert "shorter window" in str(error_of(lambda: PrometheusClient(prometheus.url).query("up")))


def test_wrong_path_points_at_the_base_url(prometheus: FakePrometheusServer) -> None:
    prometheus.reply(status=404, body=b"404 page not found")
    err = error_of(lambda: PrometheusClient(prometheus.url + "/api/v1").query("up"))
    assert "without /api/v1" in str(err)
    assert err.field == "prometheus_url"


def test_not_prometheus_at_all(prometheus: FakePrometheusServer) -> None:
    prometheus.reply(body=b"<html>Grafana</html>")
    message = str(error_of(lambda: PrometheusClient(prometheus.url).query("up")))
    assert "did not answer like the Prometheus API (HTTP 200, not a JSON object: <html>Grafana</html>)" in message


def test_redirects_are_not_followed_and_credentials_stay_put(prometheus: FakePrometheusServer) -> None:
    elsewhere = FakePrometheusServer()
    try:
        prometheus.reply(status=307, headers={"Location": elsewhere.url + "/api/v1/query"})
        err = error_of(lambda: PrometheusClient(prometheus.url, token=SECRET_TOKEN).query("up"))
        assert f"redirect (HTTP 307) to {elsewhere.url}/api/v1/query" in str(err)
        assert elsewhere.seen == []
        assert_no_secrets(err)
    finally:
        elsewhere.stop()


def test_unreachable_prometheus_names_the_url_and_the_options() -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    err = error_of(lambda: PrometheusClient(f"http://127.0.0.1:{port}", token=SECRET_TOKEN).query("up"))
    assert str(err).startswith(f"Cannot reach Prometheus at http://127.0.0.1:{port} (")
    assert "prometheus_url (or the PROMETHEUS_URL environment variable)" in str(err)
    assert err.field == "prometheus_url"
    assert_no_secrets(err)


def test_slow_prometheus_times_out(prometheus: FakePrometheusServer) -> None:
    # The answer would take 5 s; giving up well before it proves the 0.2 s timeout, with room for a loaded machine.
    prometheus.reply(delay=5.0)
    started = time.monotonic()
    err = error_of(lambda: PrometheusClient(prometheus.url, timeout=0.2).query("up"))
    assert time.monotonic() - started < 3.0
    assert "did not answer within 0.2 seconds" in str(err)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("", "PROMETHEUS_URL"),
        ("   ", "PROMETHEUS_URL"),
        ("prometheus:9090", "http:// or https://"),
        ("ftp://prometheus", "http:// or https://"),
        ("http://prometheus:9090/?x=1", "query string"),
        (f"http://admin:{SECRET_PASSWORD}@prometheus:9090", "must not contain credentials"),
    ],
)
def test_bad_urls_are_refused(url: str, expected: str) -> None:
    err = error_of(lambda: PrometheusClient(url))
    assert expected in str(err)
    assert err.field == "prometheus_url"
    assert_no_secrets(err)


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), "soon"])
def test_bad_timeouts_are_refused(timeout: Any) -> None:
    assert error_of(lambda: PrometheusClient("http://127.0.0.1:9090", timeout=timeout)).field == "prometheus_timeout"


# ---- TLS ----------------------------------------------------------------------------------------


@dataclass
class Pki:
    ca_file: Path
    server_context: ssl.SSLContext


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA and a server certificate for 127.0.0.1, with the extensions strict verification wants."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject: str, key: Any, issuer: Any, issuer_key: Any, is_ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        )
        if is_ca:
            usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
            builder = builder.add_extension(usage, critical=True)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            ).add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "darklaunch test CA")])
    ca_cert = certificate("darklaunch test CA", ca_key, ca_name, ca_key, True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = certificate("127.0.0.1", server_key, ca_name, ca_key, False)

    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    chain_file = directory / "server.pem"
    chain_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_file = directory / "server.key"
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain_file, key_file)
    return Pki(ca_file=ca_file, server_context=context)


@pytest.fixture
def tls_prometheus(pki: Pki) -> Iterator[FakePrometheusServer]:
    server = FakePrometheusServer(pki.server_context)
    yield server
    server.stop()


def test_tls_is_verified_by_default(tls_prometheus: FakePrometheusServer) -> None:
    err = error_of(lambda: PrometheusClient(tls_prometheus.url, token=SECRET_TOKEN).query("up"))
    assert str(err).startswith(f"Cannot verify the TLS certificate of Prometheus at {tls_prometheus.url}")
    assert "prometheus_ca_cert" in str(err) and "prometheus_validate_certs: false" in str(err)
    assert err.field == "prometheus_ca_cert"
    assert tls_prometheus.seen == []  # nothing, least of all the token, was sent
    assert_no_secrets(err)


def test_tls_with_the_ca_cert(tls_prometheus: FakePrometheusServer, pki: Pki) -> None:
    client = PrometheusClient(tls_prometheus.url, token=SECRET_TOKEN, ca_cert=str(pki.ca_file))
    assert client.query("up") == VECTOR["data"]["result"]  # type: ignore[index]
    assert tls_prometheus.seen[0].headers["Authorization"] == f"Bearer {SECRET_TOKEN}"


def test_tls_without_verification_when_asked(tls_prometheus: FakePrometheusServer) -> None:
    assert PrometheusClient(tls_prometheus.url, validate_certs=False).query("up") == VECTOR["data"]["result"]  # type: ignore[index]


def test_unreadable_ca_cert(tmp_path: Path) -> None:
    err = error_of(lambda: PrometheusClient("https://127.0.0.1:9090", ca_cert=str(tmp_path / "missing.pem")))
    assert err.field == "prometheus_ca_cert"
    assert "missing.pem" in str(err)


def test_https_url_to_a_plain_http_server(prometheus: FakePrometheusServer) -> None:
    https_url = prometheus.url.replace("http://", "https://")
    err = error_of(lambda: PrometheusClient(https_url).query("up"))
    assert "TLS handshake with Prometheus" in str(err)
    assert "(http/https)" in str(err)


def test_extra_headers_are_sent(prometheus: FakePrometheusServer) -> None:
    client = PrometheusClient(prometheus.url, headers={"X-Scope-OrgID": "tenant-a"})
    client.query("up")
    # Header names are case-insensitive (urllib sends "X-scope-orgid").
    sent = {name.lower(): value for name, value in prometheus.seen[-1].headers.items()}
    assert sent["x-scope-orgid"] == "tenant-a"


@pytest.mark.parametrize(
    "headers",
    [{"Bad Name": "x"}, {"Content-Type": "text/plain"}, {"X-Ok": "two\nlines"}, {"X-Ok": ["list"]}, "X-Ok: 1"],
)
def test_bad_headers_are_refused_without_quoting_values(headers: Any) -> None:
    err = error_of(lambda: PrometheusClient("http://127.0.0.1:9090", headers=headers))
    assert err.field == "prometheus_headers" and "lines" not in str(err)


def test_authorization_twice_is_refused() -> None:
    err = error_of(lambda: PrometheusClient("http://127.0.0.1:9090", token="t", headers={"authorization": "x"}))
    assert err.field == "prometheus_headers"


@pytest.mark.parametrize("proxy", ["proxy:3128", "socks5://proxy:1080", "http://proxy"])
def test_bad_proxies_are_refused(proxy: str) -> None:
    assert error_of(lambda: PrometheusClient("http://127.0.0.1:9090", proxy=proxy)).field == "prometheus_proxy"


def test_explicit_proxy_is_used_and_the_environment_is_restored(prometheus: FakePrometheusServer) -> None:
    # The fake server answers absolute-form requests too, so it can stand in for the proxy.
    client = PrometheusClient("http://prometheus.invalid:9090", proxy=prometheus.url)
    client.query("up")
    assert prometheus.seen[-1].path == "http://prometheus.invalid:9090/api/v1/query"
    assert "http_proxy" not in os.environ and "HTTP_PROXY" not in os.environ
    # Nor does the proxy stay in urllib's process-wide opener: a later plain urlopen goes direct.
    with urllib.request.urlopen(prometheus.url + "/api/v1/query", data=b"query=up", timeout=5):
        pass
    assert prometheus.seen[-1].path == "/api/v1/query"


def test_missing_files_are_named_before_any_request(tmp_path: Path) -> None:
    for option, kwargs in (
        ("prometheus_ca_cert", {"ca_cert": str(tmp_path / "nope.pem")}),
        ("prometheus_client_cert", {"client_cert": str(tmp_path / "nope.pem")}),
        ("prometheus_client_key", {"client_key": str(tmp_path / "key.pem")}),
    ):
        assert error_of(lambda kwargs=kwargs: PrometheusClient("https://127.0.0.1:9", **kwargs)).field == option
