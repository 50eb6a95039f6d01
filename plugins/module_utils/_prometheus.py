# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small client for the Prometheus HTTP API: instant and range queries.

Only the Python standard library (``urllib.request`` + ``ssl``) is used on purpose: module_utils are
shipped to wherever Ansible runs the plugin (a laptop, a CI runner, an AWX execution environment) and
two JSON endpoints do not justify making ``requests`` a new dependency of the collection.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, NoReturn, Union

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError

# A time or a step as Prometheus accepts it: Unix seconds, or text (RFC 3339, or a duration for steps).
TimeArg = Union[float, int, str]

_QUERY_PATH = "/api/v1/query"
_QUERY_RANGE_PATH = "/api/v1/query_range"
_USER_AGENT = "darklaunch.traefik"
# Long PromQL (a regex over a thousand services) would bury the useful part of an error message.
_MAX_QUERY_IN_MESSAGE = 200
_MAX_BODY_IN_MESSAGE = 300


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Turn every redirect into an error.

    urllib would replay the Authorization header to wherever the redirect points (possibly another
    host) and would turn our POST into a GET without the query; telling the user the right URL is safer.
    """

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> None:
        return None


class PrometheusClient:
    """Runs PromQL through ``/api/v1/query`` and ``/api/v1/query_range``.

    Queries are sent as form-encoded POST bodies (supported since Prometheus 2.1) so that a regex
    matcher listing many services never hits a URL length limit of a proxy in front of Prometheus.
    ``query_count`` counts the HTTP requests issued, so callers and tests can check query budgets.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        validate_certs: bool = True,
        ca_cert: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = _normalise_base_url(url)
        self.timeout = _positive_timeout(timeout)
        self.query_count = 0
        self.warnings: list[str] = []
        self._authorization = _authorization_header(token, username, password)
        self._opener = _build_opener(self.base_url, validate_certs, ca_cert)

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
        request = urllib.request.Request(
            self.base_url + path,
            data=urllib.parse.urlencode(params).encode("ascii"),
            headers=self._headers(),
            method="POST",
        )
        self.query_count += 1
        status, body = self._send(request, promql)
        payload = _decode_payload(body, status, self.base_url)
        if status >= 400 or payload.get("status") != "success":
            _raise_for_api_error(status, payload, self.base_url, promql)
        self.warnings.extend(str(warning) for warning in payload.get("warnings") or [])
        return _result_of(payload, self.base_url)

    def _headers(self) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": _USER_AGENT,
        }
        if self._authorization is not None:
            headers["Authorization"] = self._authorization
        return headers

    def _send(self, request: urllib.request.Request, promql: str) -> tuple[int, bytes]:
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as err:
            return self._http_error_body(err, promql)
        except urllib.error.URLError as err:
            _raise_connection_error(self.base_url, err.reason, self.timeout)
        except (OSError, http.client.HTTPException) as err:
            # Timeouts while reading the body, resets and non-HTTP answers arrive here, not as URLError.
            _raise_connection_error(self.base_url, err, self.timeout)

    def _http_error_body(self, err: urllib.error.HTTPError, promql: str) -> tuple[int, bytes]:
        status = int(err.code)
        if status in (401, 403):
            raise DarklaunchError(
                f"Prometheus at {self.base_url} refused the request (HTTP {status}): check the credentials "
                "(prometheus_token, or prometheus_username and prometheus_password).",
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
                f"{self.base_url} has no Prometheus query API (HTTP 404 on {err.filename or 'the API path'}): "
                "prometheus_url must be the Prometheus base URL, the address of its web UI, without /api/v1.",
                field="prometheus_url",
                details=_details(self.base_url, status=status),
            )
        try:
            body = err.read()
        except (OSError, http.client.HTTPException):
            body = b""
        return status, body


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


def _positive_timeout(timeout: float) -> float:
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise DarklaunchError("The Prometheus timeout must be a positive number of seconds.", field="timeout")
    return value


def _authorization_header(token: str | None, username: str | None, password: str | None) -> str | None:
    if token and (username or password):
        raise DarklaunchError(
            "Give either prometheus_token or prometheus_username/prometheus_password, not both.",
            field="prometheus_token",
        )
    if token:
        return f"Bearer {token}"
    if password and not username:
        raise DarklaunchError("prometheus_password needs prometheus_username.", field="prometheus_username")
    if username:
        pair = f"{username}:{password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")
    return None


def _build_opener(base_url: str, validate_certs: bool, ca_cert: str | None) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = [_RefuseRedirects()]
    if base_url.startswith("https://"):
        handlers.append(urllib.request.HTTPSHandler(context=_tls_context(validate_certs, ca_cert)))
    return urllib.request.build_opener(*handlers)


def _tls_context(validate_certs: bool, ca_cert: str | None) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=ca_cert or None)
    except (OSError, ssl.SSLError) as err:
        raise DarklaunchError(
            f"Cannot load prometheus_ca_cert {ca_cert}: {err}. Give the path of a PEM file with the CA "
            "that signed Prometheus' certificate.",
            field="prometheus_ca_cert",
        ) from err
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _raise_connection_error(base_url: str, reason: object, timeout: float) -> NoReturn:
    details = _details(base_url, reason=str(reason))
    if isinstance(reason, ssl.SSLCertVerificationError):
        raise DarklaunchError(
            f"Cannot verify the TLS certificate of Prometheus at {base_url} ({reason.verify_message or reason}): "
            "set prometheus_ca_cert to the CA that signed it, or prometheus_validate_certs: false "
            "if you accept an unverified connection.",
            field="prometheus_ca_cert",
            details=details,
        )
    if isinstance(reason, ssl.SSLError):
        raise DarklaunchError(
            f"TLS handshake with Prometheus at {base_url} failed ({reason}): check that the URL scheme "
            "(http/https) matches the server, and prometheus_ca_cert / prometheus_validate_certs.",
            field="prometheus_ca_cert",
            details=details,
        )
    if isinstance(reason, (TimeoutError, socket.timeout)):
        raise DarklaunchError(
            f"Prometheus at {base_url} did not answer within {timeout:g} seconds: check that it is up, or ask "
            "for less (a shorter window, fewer history_windows) or a longer timeout.",
            field="prometheus_url",
            details=details,
        )
    raise DarklaunchError(
        f"Cannot reach Prometheus at {base_url} ({reason}): check prometheus_url (or the PROMETHEUS_URL "
        "environment variable) and that Prometheus is running and reachable from where Ansible runs.",
        field="prometheus_url",
        details=details,
    )


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
        raise DarklaunchError(
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
