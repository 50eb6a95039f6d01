# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which kubeconfig context the connection options select, and the connection a printed command must name.

A command printed for later (the rollback of an abandoned launch) runs in another shell, perhaps after the
kubeconfig's current context has changed: it names the context this run used, and the kubeconfig file when
one was given as an option, so it acts on the same cluster. Nothing else of the connection is named: the
host and credentials come from where they came from (an AWX credential, the environment), and a secret is
never printed. Reads files only; no request.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError


@dataclass(frozen=True)
class CommandConnection:
    """The connection extra vars a printed command carries: the kubeconfig given (a path) and the context."""

    kubeconfig: str | None = None
    context: str | None = None

    def extra_vars(self) -> str:
        """`` -e kubeconfig=<path> -e context=<name>`` for the parts that are known, shell-quoted; or ""."""
        parts = [(name, value) for name, value in (("kubeconfig", self.kubeconfig), ("context", self.context)) if value]
        return "".join(f" -e {shlex.quote(f'{name}={value}')}" for name, value in parts)


def host_has_own_credentials(auth: Mapping[str, Any]) -> bool:
    """kubernetes.core skips the kubeconfig for host+api_key and host+username+password; a host with a
    client certificate is just as complete, and loading a kubeconfig there would send its token elsewhere."""
    if not auth.get("host"):
        return False
    return bool(
        auth.get("api_key")
        or (auth.get("username") and auth.get("password"))
        or (auth.get("client_cert") and auth.get("client_key"))
    )


def kubeconfig_context(auth: Mapping[str, Any], default_kubeconfig: str) -> tuple[str | None, str | None]:
    """The kubeconfig context the connection options select and its namespace: (None, None) when no
    kubeconfig is read (a host with its own credentials, or none exists)."""
    source = auth.get("kubeconfig")
    if host_has_own_credentials(auth):
        return None, None
    if source is None:
        paths = [path for path in default_kubeconfig.split(os.pathsep) if path]
        if not any(os.path.exists(os.path.expanduser(path)) for path in paths):
            return None, None
        source = default_kubeconfig
    contexts, current = _contexts(source)
    chosen = auth.get("context") or current
    if not chosen:
        return None, None
    if chosen not in contexts:
        where = "the kubeconfig dict" if isinstance(source, Mapping) else f"the kubeconfig {source}"
        raise DarklaunchError(
            f"context {chosen} is not in {where}; its contexts are: {', '.join(sorted(contexts)) or 'none'}",
            field="context",
        )
    return str(chosen), contexts[chosen]


def _contexts(source: Any) -> tuple[dict[str, str | None], str | None]:
    """Context name -> its namespace, and the current context, of a kubeconfig dict or file(s)."""
    documents: list[Mapping[str, Any]] = []
    if isinstance(source, Mapping):
        documents.append(source)
    else:
        import yaml  # a dependency of ansible-core and of the kubernetes client

        for path in str(source).split(os.pathsep):
            full = os.path.expanduser(path)
            if path and os.path.isfile(full):
                with open(full, encoding="utf-8") as handle:
                    loaded = yaml.safe_load(handle)
                if isinstance(loaded, Mapping):
                    documents.append(loaded)
    contexts: dict[str, str | None] = {}
    current: str | None = None
    # kubectl merges several files first-wins, for the contexts and for current-context.
    for document in documents:
        for entry in document.get("contexts") or []:
            if isinstance(entry, Mapping) and entry.get("name") and entry["name"] not in contexts:
                namespace = (entry.get("context") or {}).get("namespace")
                contexts[str(entry["name"])] = str(namespace) if namespace else None
        if current is None and document.get("current-context"):
            current = str(document["current-context"])
    return contexts, current


def default_kubeconfig() -> str:
    """The kubeconfig file(s) read when no kubeconfig option is given, as the modules read them (at call
    time: the client's KUBE_CONFIG_DEFAULT_LOCATION is frozen when kubernetes is imported)."""
    return os.environ.get("KUBECONFIG") or "~/.kube/config"


def command_connection(params: Mapping[str, Any], auth: Mapping[str, Any]) -> CommandConnection:
    """What a printed command names for the connection of ``params`` (the module's options) resolved as
    ``auth``: the kubeconfig when given as an option and a path (a dict holds credentials), and the context
    this run used (given, or the kubeconfig's current context)."""
    given = params.get("kubeconfig")
    kubeconfig = given if isinstance(given, str) and given else None
    try:
        context = kubeconfig_context(auth, default_kubeconfig())[0]
    except Exception:  # YAML, OS and our own errors alike: the client was built, the command still prints
        # What cannot be read again names the context only when it was given.
        context = auth.get("context") or None
    return CommandConnection(kubeconfig=kubeconfig, context=str(context) if context else None)
