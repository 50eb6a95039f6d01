# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One HTTP request to the Kubernetes API through the kubernetes client's ``ApiClient``, answered as
``(status, body bytes)``: no model classes and no deserialisation, the callers parse the JSON they need.

The client's public request entry point changed with its generator: ``call_api(method, url, ...)`` from
kubernetes 32 on, ``request(method, url, ...)`` before. Both go through the client's own REST layer, so its
TLS settings, proxy (with ``proxy_headers``), ``no_proxy`` and token refresh apply as for any client user.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import urlencode

from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s_auth import CONNECT_TIMEOUT_SECONDS
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s_errors import (
    connection_error,
    looks_like_tls,
    tls_error,
)

try:
    import urllib3
    from kubernetes.client import ApiClient
    from kubernetes.client.exceptions import ApiException

    try:
        from urllib3 import HTTPHeaderDict  # urllib3 >= 2
    except ImportError:  # urllib3 1.26
        from urllib3.response import HTTPHeaderDict  # type: ignore[attr-defined]
except ImportError:  # reported by _k8s_auth.HAS_KUBERNETES
    pass

USER_AGENT: Final = "darklaunch.traefik"


class Transport:
    """Sends requests to the API server of one ``kubernetes.client.Configuration``."""

    def __init__(
        self,
        configuration: Any,
        *,
        request_timeout: float,
        impersonate_user: str | None = None,
        impersonate_groups: Iterable[str] = (),
    ) -> None:
        # A refused connection is tried once more (an API server restarting); a request that was sent is
        # never repeated: a read that timed out would take the whole timeout again, and a write may have
        # been applied. Redirects are returned, not followed (the token must not go elsewhere).
        configuration.retries = urllib3.Retry(
            total=1, connect=1, read=0, status=0, other=0, redirect=False, backoff_factor=0.5
        )
        if not configuration.verify_ssl:
            # The user switched verification off on purpose; one warning per request is noise.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self._configuration = configuration
        # Typed as Any: the entry point used depends on the client's version (see the module docstring).
        self._api_client: Any = ApiClient(configuration)
        self._modern = hasattr(self._api_client, "param_serialize")
        self.host: str = str(configuration.host).rstrip("/")
        self.request_timeout = request_timeout
        self._timeout = (min(CONNECT_TIMEOUT_SECONDS, request_timeout), request_timeout)
        self._impersonate_user = impersonate_user
        self._impersonate_groups = tuple(impersonate_groups)

    def send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> tuple[int, bytes]:
        """``(status, body)`` of the API's answer, whatever the status; an answer that never came raises
        ``ApiUnavailableError`` (or a ``DarklaunchError`` naming the TLS or proxy option at fault)."""
        url = f"{self.host}{path}?{urlencode(query)}" if query else f"{self.host}{path}"
        headers = self._headers(content_type)
        try:
            if self._modern:
                answer = self._api_client.call_api(
                    method, url, header_params=headers, body=body, _request_timeout=self._timeout
                )
                return int(answer.status), bytes(answer.read())
            response = self._api_client.request(
                method, url, headers=headers, body=body, _preload_content=False, _request_timeout=self._timeout
            )
            return int(response.status), bytes(response.data)
        except ApiException as error:
            if not error.status:
                # The client turns a TLS failure into an ApiException with status 0 and the error as reason.
                text = " ".join(str(error.reason or "").split())
                if looks_like_tls(text):
                    raise tls_error(text, self.host) from None
                raise
            # kubernetes < 32 raises for any answer that is not 2xx; the answer itself is what counts.
            return int(error.status), _body_bytes(error.body)
        except (urllib3.exceptions.HTTPError, OSError) as error:
            request = f"{method} {path}"
            raise connection_error(
                error, self.host, self._configuration.proxy, request, self.request_timeout
            ) from error

    def _headers(self, content_type: str | None) -> Any:
        headers = HTTPHeaderDict({"Accept": "application/json", "User-Agent": USER_AGENT})
        if content_type:
            headers["Content-Type"] = content_type
        # auth_settings() runs the kubeconfig's token refresh hook (exec plugins, expiring tokens).
        for setting in self._configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[str(setting["key"])] = str(setting["value"])
        if "Authorization" not in headers and self._configuration.username and self._configuration.password:
            credentials = f"{self._configuration.username}:{self._configuration.password}"
            headers.update(urllib3.util.make_headers(basic_auth=credentials))
        if self._impersonate_user:
            headers["Impersonate-User"] = self._impersonate_user
        for group in self._impersonate_groups:
            headers.add("Impersonate-Group", group)  # one header line per group, as the API server expects
        return headers


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")
