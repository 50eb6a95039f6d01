"""Small loopback servers for the Prometheus connection tests: a reverse proxy in front of the real
Prometheus that demands something (a tenant header, a bearer token, basic auth, a client certificate)
or answers slowly, a plain HTTP forward proxy, a Prometheus exporter serving what a test hands it,
and a throwaway PKI (CA, server and client certificates) for the TLS cases.

Every server counts what it forwarded, so a test can prove that a request really went through it.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# A check on the incoming request's headers: None lets it through, else (status, message) refuses it.
Requirement = Callable[[Any], "tuple[int, str] | None"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # refused TLS handshakes are what some tests are about; no tracebacks on stderr


class _Base:
    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        self.server = _Server(("127.0.0.1", port), handler)
        self.forwarded = 0
        self.refused = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> _Base:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self, forwarded: bool) -> None:
        with self.lock:
            if forwarded:
                self.forwarded += 1
            else:
                self.refused += 1


def _forward(upstream: str, method: str, path: str, headers: Any, body: bytes) -> tuple[int, bytes, str]:
    """Send the request on to ``upstream`` (no proxies from the environment) and return its answer."""
    request = urllib.request.Request(upstream + path, data=body or None, method=method)
    for name in ("Content-Type", "Accept"):
        if headers.get(name):
            request.add_header(name, headers[name])
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "application/json")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("Content-Type", "application/json")


class GuardedPrometheus(_Base):
    """A reverse proxy to ``upstream`` (the real Prometheus) that lets a request through only when
    ``requirement`` accepts its headers; optionally over TLS (with a client certificate demanded by the
    SSL context) and with a delay before each answer."""

    def __init__(
        self,
        upstream: str,
        requirement: Requirement | None = None,
        tls: ssl.SSLContext | None = None,
        delay: float = 0.0,
    ) -> None:
        guard = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                refusal = requirement(self.headers) if requirement else None
                if refusal is not None:
                    guard.count(False)
                    self._reply(refusal[0], refusal[1].encode(), "text/plain")
                    return
                if delay:
                    time.sleep(delay)
                status, answer, content_type = _forward(upstream, self.command, self.path, self.headers, body)
                guard.count(True)
                self._reply(status, answer, content_type)

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _serve

        super().__init__(Handler)
        self.scheme = "http"
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"


def header_equals(name: str, value: str, status: int = 401, message: str = "") -> Requirement:
    def check(headers: Any) -> tuple[int, str] | None:
        if headers.get(name) == value:
            return None
        return status, message or f"missing or wrong {name}"

    return check


def basic_auth(user: str, password: str) -> Requirement:
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return header_equals("Authorization", expected, 401, "basic auth required")


class ForwardProxy(_Base):
    """A plain HTTP forward proxy (requests in absolute form: ``POST http://host:port/path``). Requests
    for ``only_via_proxy`` (a host:port nothing listens on) go to ``upstream``: that address works
    through the proxy only. ``credentials`` (user, password) makes it demand Proxy-Authorization."""

    def __init__(self, upstream: str, only_via_proxy: str, credentials: tuple[str, str] | None = None) -> None:
        proxy = self
        expected = (
            "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode() if credentials else None
        )

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if expected is not None and self.headers.get("Proxy-Authorization") != expected:
                    proxy.count(False)
                    self.send_response(407)
                    self.send_header("Proxy-Authenticate", 'Basic realm="test proxy"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                target = urllib.parse.urlsplit(self.path)
                base = upstream if target.netloc == only_via_proxy else f"{target.scheme}://{target.netloc}"
                path = target.path + (f"?{target.query}" if target.query else "")
                status, answer, content_type = _forward(base, self.command, path, self.headers, body)
                proxy.count(True)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = _serve

        super().__init__(Handler)

    def url(self, credentials: tuple[str, str] | None = None) -> str:
        auth = f"{credentials[0]}:{credentials[1]}@" if credentials else ""
        return f"http://{auth}127.0.0.1:{self.port}"


class Exporter(_Base):
    """Serves ``/metrics`` in the Prometheus text format, computed by ``render`` at each scrape."""

    def __init__(self, port: int, render: Callable[[], str]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler, port)


# --- a throwaway PKI ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoopbackPki:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # signed by another CA: a client certificate the server does not trust
    stranger_key: Path

    def server_context(self, require_client_cert: bool) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.ca_cert)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    usage: str,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_name, issuer_key = issuer if issuer else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=usage == "ca", path_length=None), critical=True)
    )
    if usage == "server":
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif usage == "client":
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def make_pki(directory: Path) -> LoopbackPki:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("darklaunch test prometheus CA", ca_key, None, "ca")
    ca_cert = _write(directory, "ca", ca, ca_key)[0]
    issued = {}
    for name, usage in (("server", "server"), ("client", "client")):
        key = ec.generate_private_key(ec.SECP256R1())
        issued[name] = _write(directory, name, _issue(f"darklaunch test {name}", key, (ca.subject, ca_key), usage), key)
    other_ca_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = _issue("another CA", other_ca_key, None, "ca")
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger = _write(
        directory,
        "stranger",
        _issue("stranger", stranger_key, (other_ca.subject, other_ca_key), "client"),
        stranger_key,
    )
    return LoopbackPki(ca_cert, *issued["server"], *issued["client"], *stranger)
