# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small client for the Prometheus HTTP API: instant and range queries.

HTTP goes through ansible-core's ``ansible.module_utils.urls.Request``, so TLS (``make_context``), client
certificates, basic auth and proxies (``http_proxy`` / ``https_proxy`` / ``no_proxy``) behave as in every
other Ansible HTTP client. Only the lookup uses it, on the controller, hence ``plugin_utils``.
"""

from __future__ import annotations

import http.client
import inspect
import json
import math
import os
import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn, Union

from ansible.module_utils.urls import Request, make_context

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError

# ansible-core 2.16's Request has no ``context`` argument (the collection supports 2.16 and later).
_REQUEST_TAKES_CONTEXT = "context" in inspect.signature(Request.__init__).parameters

# A time or a step as Prometheus accepts it: Unix seconds, or text (RFC 3339, or a duration for steps).
TimeArg = Union[float, int, str]

_QUERY_PATH = "/api/v1/query"
_QUERY_RANGE_PATH = "/api/v1/query_range"
_USER_AGENT = "darklaunch.traefik"
# Long PromQL (a regex over a thousand services) would bury the useful part of an error message.
_MAX_QUERY_IN_MESSAGE = 200
_MAX_BODY_IN_MESSAGE = 300
DEFAULT_TIMEOUT = 10.0
# Request reads proxies only from these variables (urllib's getproxies), and no_proxy / NO_PROXY decides
# which hosts bypass them; prometheus_proxy is handed to it the same way, for the duration of one call.
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")
_PROXY_ENVIRONMENT_LOCK = threading.Lock()
# Headers the client sets itself: a user header of the same name would break the request.
_RESERVED_HEADERS = ("content-type", "content-length", "host")


class PrometheusQueryError(DarklaunchError):
    """Prometheus refused or failed to evaluate one query (bad PromQL, execution error).

    Unlike connection or authentication problems, this concerns one query only: a custom check reports it
    as its own ``error`` verdict, and the other checks still run.
    """


class PrometheusClient:
    """Runs PromQL through ``/api/v1/query`` and ``/api/v1/query_range``.

    Queries are sent as form-encoded POST bodies (supported since Prometheus 2.1) so that a regex
    matcher listing many services never hits a URL length limit of a proxy in front of Prometheus.
    ``query_count`` counts the HTTP requests issued, so callers and tests can check query budgets.
    ``log`` receives one line per request (path and PromQL, never a header or credential).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        validate_certs: bool = True,
        ca_cert: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        headers: Mapping[str, Any] | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        proxy: str | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.base_url = _normalise_base_url(url)
        self.timeout = _positive_timeout(DEFAULT_TIMEOUT if timeout is None else timeout)
        self.query_count = 0
        self.warnings: list[str] = []
        self.proxy = _normalise_proxy(proxy)
        self._log = log
        _check_auth(token, username, password, headers)
        request_headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
            **_user_headers(headers),
        }
        if token:
            request_headers["Authorization"] = f"Bearer {token}"
        self._request = Request(
            headers=request_headers,
            timeout=self.timeout,
            url_username=username or None,
            url_password=password or "" if username else None,
            # Send basic auth up front, as Prometheus' own basic_auth and most proxies never send a challenge.
            force_basic_auth=bool(username),
            http_agent=_USER_AGENT,
            # A redirect would replay the Authorization header wherever it points and turn the POST into a
            # GET without the query; telling the user the right URL is safer.
            follow_redirects="none",
            **_tls_options(self.base_url, validate_certs, ca_cert, client_cert, client_key),
        )

    def query(self, promql: str, time: TimeArg | None = None) -> list[dict[str, Any]]:
        """Evaluate ``promql`` at one instant (default: now) and return ``data.result``."""
        params = {"query": promql}
        if time is not None:
            params["time"] = _format_time(time)
        return self._call(_QUERY_PATH, params, promql)

    def query_range(self, promql: str, start: TimeArg, end: TimeArg, step: TimeArg) -> list[dict[str, Any]]:
        """Evaluate ``promql`` at ``start``, ``start + step``, ... up to ``end``; return ``data.result``."""
        params = {
            "query": promql,
            "start": _format_time(start),
            "end": _format_time(end),
            "step": _format_time(step),
        }
        return self._call(_QUERY_RANGE_PATH, params, promql)

    def _call(self, path: str, params: dict[str, str], promql: str) -> list[dict[str, Any]]:
        # Ask Prometheus to give up on its own slightly before we stop waiting, so a heavy query ends
        # with Prometheus' explanation instead of a bare socket timeout. Plain seconds: the API does not
        # accept fractional Go-style durations such as "4.5s".
        params["timeout"] = _format_time(max(self.timeout * 0.9, 0.001))
        if self._log is not None:
            extra = " ".join(f"{key}={value}" for key, value in params.items() if key not in ("query", "timeout"))
            self._log(f"Prometheus {self.base_url}{path}{' ' + extra if extra else ''}: {promql}")
        self.query_count += 1
        status, body = self._send(path, urllib.parse.urlencode(params).encode("ascii"))
        payload = _decode_payload(body, status, self.base_url)
        if status >= 400 or payload.get("status") != "success":
            _raise_for_api_error(status, payload, self.base_url, promql)
        self.warnings.extend(str(warning) for warning in payload.get("warnings") or [])
        return _result_of(payload, self.base_url)

    def _send(self, path: str, data: bytes) -> tuple[int, bytes]:
        try:
            with (
                _proxy_environment(self.proxy),
                self._request.open("POST", self.base_url + path, data=data) as response,
            ):
                return int(response.status), response.read()
        except urllib.error.HTTPError as err:
            return self._http_error_body(err)
        except urllib.error.URLError as err:
            self._raise_connection_error(err.reason)
        except (OSError, http.client.HTTPException) as err:
            # Timeouts while reading the body, resets and non-HTTP answers arrive here, not as URLError.
            self._raise_connection_error(err)

    def _http_error_body(self, err: urllib.error.HTTPError) -> tuple[int, bytes]:
        status = int(err.code)
        try:
            body = err.read() if err.fp is not None else b""
        except (OSError, http.client.HTTPException):
            body = b""
        if status == 407:
            raise DarklaunchError(
                f"The proxy {self._proxy_words()} refused the request (HTTP 407 Proxy Authentication Required): "
                "give its user and password in prometheus_proxy (http://user:password@proxy:3128).",
                field="prometheus_proxy",
                details=_details(self.base_url, status=status),
            )
        if status in (401, 403):
            raise DarklaunchError(
                f"Prometheus at {self.base_url} refused the request (HTTP {status}{_excerpt(body)}): check the "
                "credentials (prometheus_token, or prometheus_username and prometheus_password), the headers a "
                "multi-tenant Prometheus needs (prometheus_headers, e.g. X-Scope-OrgID) and the client "
                "certificate (prometheus_client_cert and prometheus_client_key).",
                field="prometheus_token",
                details=_details(self.base_url, status=status),
            )
        if 300 <= status < 400:
            location = _without_userinfo(err.headers.get("Location", "") if err.headers else "")
            raise DarklaunchError(
                f"Prometheus at {self.base_url} answered with a redirect (HTTP {status}) to {location or 'elsewhere'}; "
                "set prometheus_url to the final address (redirects are not followed so credentials stay put).",
                field="prometheus_url",
                details=_details(self.base_url, status=status),
            )
        if status == 404:
            raise DarklaunchError(
                f"{self.base_url} has no Prometheus query API (HTTP 404 on {_without_userinfo(err.url or '')}): "
                "prometheus_url must be the Prometheus base URL, the address of its web UI, without /api/v1.",
                field="prometheus_url",
                details=_details(self.base_url, status=status),
            )
        return status, body

    def _proxy_words(self) -> str:
        proxy, source = effective_proxy(self.base_url, self.proxy)
        return f"{_without_userinfo(proxy)} (from {source})" if proxy else "in between"

    def _raise_connection_error(self, reason: object) -> NoReturn:
        base_url = self.base_url
        details = _details(base_url, reason=str(reason))
        proxy, source = effective_proxy(base_url, self.proxy)
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise DarklaunchError(
                f"Cannot verify the TLS certificate of Prometheus at {base_url} ({reason.verify_message or reason}): "
                "set prometheus_ca_cert to the CA that signed it, or prometheus_validate_certs: false "
                "if you accept an unverified connection.",
                field="prometheus_ca_cert",
                details=details,
            )
        if isinstance(reason, ssl.SSLError) and _asks_for_client_certificate(reason):
            raise DarklaunchError(
                f"Prometheus at {base_url} refused the TLS connection ({reason}): it wants a client certificate it "
                "trusts; set prometheus_client_cert and prometheus_client_key.",
                field="prometheus_client_cert",
                details=details,
            )
        if isinstance(reason, ssl.SSLError):
            raise DarklaunchError(
                f"TLS handshake with Prometheus at {base_url} failed ({reason}): check that the URL scheme "
                "(http/https) matches the server, prometheus_ca_cert / prometheus_validate_certs, and "
                "prometheus_client_cert / prometheus_client_key if it asks for a client certificate.",
                field="prometheus_ca_cert",
                details=details,
            )
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise DarklaunchError(
                f"Prometheus at {base_url} did not answer within {self.timeout:g} seconds: check that it is up, "
                "ask for less (a shorter window, fewer history_windows) or raise prometheus_timeout.",
                field="prometheus_timeout",
                details=details,
            )
        if proxy:
            raise DarklaunchError(
                f"Cannot reach Prometheus at {base_url} through the proxy {_without_userinfo(proxy)} (from {source}): "
                f"{reason}. Check that proxy (prometheus_proxy), or list the Prometheus host in no_proxy / NO_PROXY "
                "if it must be reached directly.",
                field="prometheus_proxy",
                details={**details, "proxy": _without_userinfo(proxy)},
            )
        raise DarklaunchError(
            f"Cannot reach Prometheus at {base_url} ({reason}): check prometheus_url (or the PROMETHEUS_URL "
            "environment variable) and that Prometheus is running and reachable from where Ansible runs; "
            "set prometheus_proxy if it is only reachable through an HTTP proxy.",
            field="prometheus_url",
            details=details,
        )


def effective_proxy(base_url: str, proxy: str | None) -> tuple[str | None, str]:
    """The proxy a request to ``base_url`` goes through, and where it comes from: ``prometheus_proxy`` or
    a proxy environment variable, unless ``no_proxy`` lists the host (urllib's rules, as in ansible-core)."""
    parsed = urllib.parse.urlsplit(base_url)
    with _proxy_environment(proxy):
        chosen = urllib.request.getproxies().get(parsed.scheme)
        bypass = bool(chosen) and bool(urllib.request.proxy_bypass(parsed.netloc))
    if not chosen or bypass:
        return None, ""
    if proxy:
        return chosen, "prometheus_proxy"
    names = [name for name in _PROXY_VARIABLES if name.lower().startswith(parsed.scheme + "_") and os.environ.get(name)]
    return chosen, f"the {names[0] if names else parsed.scheme + '_proxy'} environment variable"


@contextmanager
def _proxy_environment(proxy: str | None) -> Iterator[None]:
    """Let ``Request`` (which has no proxy argument) find ``proxy`` where it looks for one.

    Only the proxy variables change, only during one call, and under a lock; ``no_proxy`` is left alone so
    it applies to ``prometheus_proxy`` exactly as to a proxy from the environment.
    """
    if not proxy:
        yield
        return
    with _PROXY_ENVIRONMENT_LOCK:
        saved = {name: os.environ.get(name) for name in _PROXY_VARIABLES}
        try:
            for name in _PROXY_VARIABLES:
                os.environ[name] = proxy
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            # Request installs the opener it built (with this proxy) as the process-wide default of
            # urllib.request.urlopen; without this, every later urlopen in the controller process, ours or
            # another plugin's, would go through prometheus_proxy. The next urlopen builds a fresh default
            # from the restored environment.
            urllib.request.install_opener(None)


def _asks_for_client_certificate(error: ssl.SSLError) -> bool:
    text = str(error).lower()
    return any(
        words in text for words in ("certificate required", "bad certificate", "unknown ca", "handshake failure")
    )


def _normalise_base_url(url: str) -> str:
    if not url or not str(url).strip():
        raise DarklaunchError(
            "No Prometheus URL: set prometheus_url (or the PROMETHEUS_URL environment variable) to the "
            "Prometheus base URL, for example http://prometheus.monitoring.svc:9090.",
            field="prometheus_url",
        )
    parsed = urllib.parse.urlsplit(str(url).strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise DarklaunchError(
            "prometheus_url must be an http:// or https:// URL with a host, for example "
            "http://prometheus.monitoring.svc:9090.",
            field="prometheus_url",
        )
    if parsed.username is not None or parsed.password is not None:
        # The URL is echoed in every error message, so credentials must not live in it.
        raise DarklaunchError(
            "prometheus_url must not contain credentials: use prometheus_username and prometheus_password "
            "(or prometheus_token) instead.",
            field="prometheus_url",
        )
    if parsed.query or parsed.fragment:
        raise DarklaunchError("prometheus_url must not have a query string or fragment.", field="prometheus_url")
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path.rstrip("/"), "", ""))


def _normalise_proxy(proxy: str | None) -> str | None:
    if proxy is None or not str(proxy).strip():
        return None
    text = str(proxy).strip()
    try:
        parsed = urllib.parse.urlsplit(text)
        valid = parsed.scheme in ("http", "https") and bool(parsed.hostname) and parsed.port is not None
    except ValueError:
        valid = False
    if not valid:
        raise DarklaunchError(
            f"prometheus_proxy {_without_userinfo(text)!r} must be an http:// URL with a host and a port, for example "
            "http://proxy.example.com:3128 (or http://user:password@proxy.example.com:3128).",
            field="prometheus_proxy",
        )
    return text


def _positive_timeout(timeout: Any) -> float:
    try:
        value = float(timeout) if not isinstance(timeout, bool) else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise DarklaunchError(
            f"prometheus_timeout must be a positive number of seconds, got {timeout!r}.", field="prometheus_timeout"
        )
    return value


def _check_auth(
    token: str | None, username: str | None, password: str | None, headers: Mapping[str, Any] | None
) -> None:
    if token and (username or password):
        raise DarklaunchError(
            "Give either prometheus_token or prometheus_username/prometheus_password, not both.",
            field="prometheus_token",
        )
    if password and not username:
        raise DarklaunchError("prometheus_password needs prometheus_username.", field="prometheus_username")
    if (token or username) and any(str(name).lower() == "authorization" for name in headers or {}):
        raise DarklaunchError(
            "prometheus_headers sets Authorization, and so does prometheus_token or prometheus_username: give one.",
            field="prometheus_headers",
        )


def _user_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise DarklaunchError(
            "prometheus_headers must be a mapping of header names to values, for example {X-Scope-OrgID: tenant-a}.",
            field="prometheus_headers",
        )
    checked: dict[str, str] = {}
    for name, value in headers.items():
        text = str(name).strip()
        if not text or any(char in text for char in ":\r\n ") or text.lower() in _RESERVED_HEADERS:
            raise DarklaunchError(
                f"prometheus_headers has an invalid header name {text!r} (or one the client sets itself).",
                field="prometheus_headers",
            )
        if not isinstance(value, (str, int, float)) or isinstance(value, bool) or any(c in str(value) for c in "\r\n"):
            # The value may be a credential, so it is never quoted.
            raise DarklaunchError(
                f"prometheus_headers: the value of {text} must be a single-line string.", field="prometheus_headers"
            )
        checked[text] = str(value)
    return checked


def _tls_options(
    base_url: str, validate_certs: Any, ca_cert: str | None, client_cert: str | None, client_key: str | None
) -> dict[str, Any]:
    """Request's TLS arguments: the context itself where Request takes one (ansible-core 2.17 and later),
    else the same settings as separate arguments (2.16), from which Request builds the same context."""
    context = _tls_context(base_url, validate_certs, ca_cert, client_cert, client_key)
    if _REQUEST_TAKES_CONTEXT:
        return {"context": context}
    return {
        "validate_certs": validate_certs not in (False, "false", "False", "no", "0", 0),
        "ca_path": ca_cert or None,
        "client_cert": client_cert or None,
        "client_key": client_key or None,
    }


def _tls_context(
    base_url: str, validate_certs: Any, ca_cert: str | None, client_cert: str | None, client_key: str | None
) -> ssl.SSLContext | None:
    """ansible-core's ``make_context``, built once so a bad file is named before any request is sent."""
    if client_key and not client_cert:
        raise DarklaunchError("prometheus_client_key needs prometheus_client_cert.", field="prometheus_client_key")
    for option, path in (
        ("prometheus_ca_cert", ca_cert),
        ("prometheus_client_cert", client_cert),
        ("prometheus_client_key", client_key),
    ):
        if path and not os.path.isfile(path):
            raise DarklaunchError(f"{option} {path} is not a readable file: give the path of a PEM file.", field=option)
    if not base_url.startswith("https://"):
        return None
    validate = validate_certs not in (False, "false", "False", "no", "0", 0)
    try:
        make_context(cafile=ca_cert or None, validate_certs=validate)
    except (OSError, ssl.SSLError) as err:
        raise DarklaunchError(
            f"Cannot load prometheus_ca_cert {ca_cert}: {err}. Give the path of a PEM file with the CA "
            "that signed Prometheus' certificate.",
            field="prometheus_ca_cert",
        ) from err
    try:
        context: ssl.SSLContext = make_context(
            cafile=ca_cert or None,
            validate_certs=validate,
            client_cert=client_cert or None,
            client_key=client_key or None,
        )
        return context
    except (OSError, ssl.SSLError) as err:
        raise DarklaunchError(
            f"Cannot load the client certificate prometheus_client_cert {client_cert} with its key "
            f"(prometheus_client_key): {err}. Give PEM files of a certificate and its unencrypted private key.",
            field="prometheus_client_cert",
        ) from err


def _excerpt(body: bytes) -> str:
    text = body[:_MAX_BODY_IN_MESSAGE].decode("utf-8", "replace").strip()
    try:
        payload = json.loads(text)
        if isinstance(payload, dict) and payload.get("error"):
            text = str(payload["error"])
    except ValueError:
        pass
    return f": {text}" if text else ""


def _decode_payload(body: bytes, status: int, base_url: str) -> dict[str, Any]:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        payload = None
    if not isinstance(payload, dict):
        excerpt = body[:_MAX_BODY_IN_MESSAGE].decode("utf-8", "replace").strip()
        raise DarklaunchError(
            f"{base_url} did not answer like the Prometheus API (HTTP {status}, not a JSON object"
            f"{': ' + excerpt if excerpt else ''}): check that prometheus_url is the Prometheus base URL.",
            field="prometheus_url",
            details=_details(base_url, status=status),
        )
    return payload


def _raise_for_api_error(status: int, payload: dict[str, Any], base_url: str, promql: str) -> NoReturn:
    error_type = str(payload.get("errorType") or "error")
    error_text = str(payload.get("error") or "no error text")
    shown_query = _shorten(promql)
    details = _details(base_url, status=status, error_type=error_type, error=error_text, query=shown_query)
    if status in (400, 422) or error_type in ("bad_data", "execution"):
        raise PrometheusQueryError(
            f"Prometheus rejected the query ({error_type}: {error_text}). Query: {shown_query}",
            details=details,
        )
    if error_type in ("timeout", "canceled"):
        raise DarklaunchError(
            f"Prometheus gave up on the query ({error_type}: {error_text}): ask for less (a shorter window, "
            "fewer history_windows) or raise the timeout.",
            details=details,
        )
    raise DarklaunchError(
        f"Prometheus at {base_url} failed (HTTP {status}, {error_type}: {error_text}); try again later "
        "or check the Prometheus server's health.",
        details=details,
    )


def _result_of(payload: dict[str, Any], base_url: str) -> list[dict[str, Any]]:
    data = payload.get("data")
    if not isinstance(data, dict) or "result" not in data:
        raise DarklaunchError(
            f"Prometheus at {base_url} answered without data.result; is prometheus_url really Prometheus?",
            field="prometheus_url",
        )
    result = data["result"]
    if data.get("resultType") in ("scalar", "string"):
        # Scalars come as a bare [time, value] pair; wrap them so every caller sees the same shape.
        return [{"metric": {}, "value": result}]
    if not isinstance(result, list):
        raise DarklaunchError(f"Prometheus at {base_url} answered with an unexpected result shape.")
    return [sample for sample in result if isinstance(sample, dict)]


def _format_time(value: TimeArg) -> str:
    if isinstance(value, bool):
        raise DarklaunchError("A Prometheus time or step must be a number of seconds or a string.")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise DarklaunchError("A Prometheus time or step must be finite.")
        # Prometheus works in milliseconds; more digits would only add noise.
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def _without_userinfo(url: str) -> str:
    try:
        parsed = urllib.parse.urlsplit(url)
    except ValueError:
        return ""
    if "@" not in parsed.netloc:
        return url
    host = parsed.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit((parsed.scheme, host, parsed.path, parsed.query, ""))


def _shorten(text: str) -> str:
    if len(text) <= _MAX_QUERY_IN_MESSAGE:
        return text
    return text[:_MAX_QUERY_IN_MESSAGE] + f"... ({len(text)} characters)"


def _details(base_url: str, **extra: Any) -> dict[str, Any]:
    return {"prometheus_url": base_url, **extra}
