# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which option values are secrets, so nothing the collection prints ever shows them.

Ansible hides options declared ``no_log``, but ``kubeconfig`` is a raw option: a path (not secret) or the
kubeconfig itself as a dict, whose tokens, passwords and keys are. Modules add ``auth_secrets(params)`` to
``module.no_log_values`` (Ansible then masks them in the result, ``invocation`` included); the lookup plugin,
which has no such mechanism, passes its messages through ``scrub``.
"""

from __future__ import annotations

import base64
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any, Final

MASK: Final = "********"

# Key names (lower case, "_" read as "-") whose string values are credentials wherever they appear in a
# kubeconfig: users' token/password, auth-provider config (access-token, refresh-token, id-token,
# client-secret), exec credentials. A substring match also catches spellings like "accessToken".
_SECRET_KEY_PARTS: Final = ("token", "password", "passwd", "secret", "credential", "api-key", "apikey")
# client-key-data and client-certificate-data (and the public certificate-authority-data, which does no
# harm hidden): base64 PEM blocks.
_SECRET_KEY_SUFFIX: Final = "-data"
# An exec plugin's args may carry a secret after a flag (``--token abc``) or inside it (``--token=abc``);
# its env entries carry one in ``value`` when ``name`` says so (``AWS_SECRET_ACCESS_KEY``).
_SECRET_FLAG: Final = re.compile(r"^--?[\w-]*(token|password|secret|key)[\w-]*$", re.IGNORECASE)
_SECRET_ENV_NAME: Final = re.compile(r"token|password|passwd|secret|credential|key", re.IGNORECASE)

# Auth options that are secrets as a whole (already no_log in the argspec; listed again for the lookup).
_SECRET_AUTH_OPTIONS: Final = ("api_key", "password")
# Options that are URLs: a password in their user info (https://user:secret@proxy:3128) is a secret.
_URL_AUTH_OPTIONS: Final = ("host", "proxy")
# Path options that would hold a secret if given the file's content instead of its path.
_PATH_AUTH_OPTIONS: Final = ("client_key", "client_cert", "ca_cert")
# Environment variables the auth options fall back to whose values are secrets (see _k8s_auth.AUTH_ENV_FALLBACKS).
_SECRET_AUTH_ENV: Final = ("K8S_AUTH_API_KEY", "K8S_AUTH_PASSWORD")
# proxy_headers keys holding "user:password" (no_log in the argspec), and the variables they fall back to.
_BASIC_AUTH_PROXY_HEADERS: Final = {
    "basic_auth": "K8S_AUTH_PROXY_HEADERS_BASIC_AUTH",
    "proxy_basic_auth": "K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH",
}


def is_inline_content(value: object) -> bool:
    """Whether a string given for a path option is file content instead (a kubeconfig's YAML or JSON, a PEM
    key): such a value is a secret as a whole and must never be quoted back as a path."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    return "\n" in text or text.startswith(("{", "[")) or "-----BEGIN" in text


def kubeconfig_secrets(kubeconfig: object) -> set[str]:
    """Every credential string in a kubeconfig given as a dict; nothing for a path or ``None``.

    A kubeconfig's text given where a path belongs is hidden whole, and its credentials too when it parses.
    """
    found: set[str] = set()
    if isinstance(kubeconfig, str) and is_inline_content(kubeconfig):
        found.add(kubeconfig)
        kubeconfig = _parse_yaml(kubeconfig)
    _collect(kubeconfig, found)
    return found


def _parse_yaml(text: str) -> object:
    try:
        import yaml  # the kubernetes client depends on PyYAML; without either there is nothing to connect with
    except ImportError:
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _collect(node: object, found: set[str]) -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if _is_secret_key(str(key)):
                _add_strings(value, found)
            elif key == "args" and isinstance(value, list):
                found.update(_secret_args(value))
            elif key == "env" and isinstance(value, list):
                found.update(_secret_env_values(value))
            else:
                _collect(value, found)
    elif isinstance(node, list):
        for item in node:
            _collect(item, found)


def _is_secret_key(key: str) -> bool:
    name = key.lower().replace("_", "-")
    return name.endswith(_SECRET_KEY_SUFFIX) or any(part in name for part in _SECRET_KEY_PARTS)


def _add_strings(value: object, found: set[str]) -> None:
    # A secret key may hold a string, or (for odd auth-provider configs) a nested structure of them.
    if isinstance(value, str):
        if value:
            found.add(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            _add_strings(item, found)
    elif isinstance(value, list):
        for item in value:
            _add_strings(item, found)


def _secret_args(args: list[Any]) -> set[str]:
    found: set[str] = set()
    for index, arg in enumerate(args):
        if not isinstance(arg, str):
            continue
        flag, equals, value = arg.partition("=")
        if not _SECRET_FLAG.match(flag):
            continue
        if equals and value:
            found.add(value)
        elif not equals and index + 1 < len(args) and isinstance(args[index + 1], str) and args[index + 1]:
            found.add(args[index + 1])
    return found


def _secret_env_values(env: list[Any]) -> set[str]:
    found: set[str] = set()
    for entry in env:
        if isinstance(entry, Mapping) and _SECRET_ENV_NAME.search(str(entry.get("name", ""))):
            _add_strings(entry.get("value"), found)
    return found


def url_password(url: object) -> str | None:
    """The password in ``url``'s user info (``https://user:secret@host``), if any."""
    if not isinstance(url, str) or "@" not in url:
        return None
    try:
        password = urllib.parse.urlsplit(url).password
    except ValueError:
        return None
    return password or None


def auth_secrets(params: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> set[str]:
    """Every secret among the Kubernetes auth options ``params`` (and the ``K8S_AUTH_*`` variables they fall
    back to): the credentials of a kubeconfig dict, ``api_key``, ``password`` and passwords inside URLs."""
    environ = os.environ if environ is None else environ
    found = kubeconfig_secrets(params.get("kubeconfig"))
    found |= _option_secrets(params, _SECRET_AUTH_OPTIONS, _URL_AUTH_OPTIONS)
    for option in _PATH_AUTH_OPTIONS:
        # A PEM key pasted where its path belongs (client_key is not no_log: it is normally a path).
        value = params.get(option)
        if is_inline_content(value):
            found.add(str(value))
    for variable in _SECRET_AUTH_ENV:
        _add_strings(environ.get(variable), found)
    proxy_headers = params.get("proxy_headers")
    for key, variable in _BASIC_AUTH_PROXY_HEADERS.items():
        given = proxy_headers.get(key) if isinstance(proxy_headers, Mapping) else None
        for credentials in (given, environ.get(variable)):
            found.update(_basic_auth_forms(credentials))
    return found


def _option_secrets(options: Mapping[str, Any], whole: Iterable[str], urls: Iterable[str]) -> set[str]:
    """The options ``whole`` (secrets as a whole) and the passwords inside the URLs of the options ``urls``."""
    found: set[str] = set()
    for option in whole:
        _add_strings(options.get(option), found)
    for option in urls:
        password = url_password(options.get(option))
        if password:
            found.add(password)
    return found


def _basic_auth_forms(credentials: object) -> set[str]:
    """``user:password``, the password alone and the header's base64 of both: what a message could show."""
    if not isinstance(credentials, str) or not credentials:
        return set()
    forms = {credentials, base64.b64encode(credentials.encode("utf-8")).decode("ascii")}
    password = credentials.partition(":")[2]
    if password:
        forms.add(password)
    return forms


# Prometheus options of the lookup (and the role) that are secrets as a whole.
_SECRET_PROMETHEUS_OPTIONS: Final = ("prometheus_token", "prometheus_password")
_URL_PROMETHEUS_OPTIONS: Final = ("prometheus_url", "prometheus_proxy")
_SECRET_HEADER_NAME: Final = re.compile(r"authorization|token|secret|password|key|cookie", re.IGNORECASE)


def prometheus_secrets(options: Mapping[str, Any]) -> set[str]:
    """Every secret among the Prometheus options: token, password, passwords inside URLs and the values of
    credential-like headers in ``prometheus_headers`` (``Authorization``, ``X-Api-Key``, ...)."""
    found = _option_secrets(options, _SECRET_PROMETHEUS_OPTIONS, _URL_PROMETHEUS_OPTIONS)
    headers = options.get("prometheus_headers")
    if isinstance(headers, Mapping):
        for name, value in headers.items():
            if _SECRET_HEADER_NAME.search(str(name)):
                _add_strings(value, found)
                # "Bearer abc" is masked whole, and so is the bare credential if a message shows only it.
                if isinstance(value, str) and " " in value.strip():
                    found.add(value.strip().split(None, 1)[1])
    return found


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by a mask (longest first, so a secret that
    contains another is masked whole)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
