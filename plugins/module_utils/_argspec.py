# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs shared by the modules, composed rather than copied.

The auth options use kubernetes.core's names and aliases so ``module_defaults`` carry over; they pair
with the ``darklaunch.traefik.k8s_auth`` doc fragment. Their ``K8S_AUTH_*`` fallbacks are applied by
``_k8s_auth.resolve_auth_options`` (an argspec fallback would hide them from the lookup plugin).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

ArgumentSpec = dict[str, dict[str, Any]]

_AUTH_ARGUMENT_SPEC: Final[ArgumentSpec] = {
    "kubeconfig": {"type": "raw"},
    "context": {"type": "str"},
    "host": {"type": "str"},
    "api_key": {"type": "str", "no_log": True},
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "validate_certs": {"type": "bool", "aliases": ["verify_ssl"]},
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"]},
    "client_cert": {"type": "path", "aliases": ["cert_file"]},
    # A path, not a secret: the explicit no_log=False answers the sanity test's "key" heuristic.
    "client_key": {"type": "path", "aliases": ["key_file"], "no_log": False},
    "proxy": {"type": "str"},
    "no_proxy": {"type": "str"},
    "proxy_headers": {
        "type": "dict",
        "options": {
            "basic_auth": {"type": "str", "no_log": True},
            "proxy_basic_auth": {"type": "str", "no_log": True},
            "user_agent": {"type": "str"},
        },
    },
    "persist_config": {"type": "bool"},
    "impersonate_user": {"type": "str"},
    "impersonate_groups": {"type": "list", "elements": "str"},
    "request_timeout": {"type": "float"},
}


def auth_argument_spec() -> ArgumentSpec:
    """The Kubernetes auth options (a fresh copy: callers may change it)."""
    return copy.deepcopy(_AUTH_ARGUMENT_SPEC)


def with_auth(spec: Mapping[str, Mapping[str, Any]]) -> ArgumentSpec:
    """``spec`` plus the auth options; a module redefining an auth option is a bug, so it is refused."""
    clashes = sorted(set(spec) & set(_AUTH_ARGUMENT_SPEC))
    if clashes:
        raise ValueError(f"options {', '.join(clashes)} are auth options; do not redefine them")
    merged = auth_argument_spec()
    merged.update({name: dict(option) for name, option in spec.items()})
    return merged


_ROUTE_SPEC: Final[ArgumentSpec] = {
    "route_name": {"type": "str", "required": True},
    "namespace": {"type": "str", "default": "default"},
}


def route_spec() -> ArgumentSpec:
    """The options that name the route a module or action acts on (a fresh copy)."""
    return copy.deepcopy(_ROUTE_SPEC)


_MIRROR_TARGET_SPEC: Final[ArgumentSpec] = {
    "main_service": {"type": "str"},
    "main_kind": {"type": "str", "choices": ["Service", "TraefikService"], "default": "Service"},
    "main_port": {"type": "raw"},
    "mirror_service": {"type": "str"},
    "mirror_port": {"type": "raw"},
    "mirror_name": {"type": "str"},
    "wrr_name": {"type": "str"},
}


def mirror_target_spec() -> ArgumentSpec:
    """traefik_mirror's options that name the main service, the shadow and the TraefikServices (a fresh copy):
    the launch engine passes them through unchanged, so both take exactly the same."""
    return copy.deepcopy(_MIRROR_TARGET_SPEC)


_MIRROR_MATCH_SPEC: Final[ArgumentSpec] = {
    "mirror_methods": {"type": "list", "elements": "str"},
    "mirror_match": {"type": "str"},
}


def mirror_match_spec() -> ArgumentSpec:
    """traefik_mirror's options that choose which requests are copied (a fresh copy). Apart from
    mirror_target_spec(): they need attach_to_ingress=true, so a caller that also writes the mirror without
    attaching (the launch's first write) passes them only with the attach."""
    return copy.deepcopy(_MIRROR_MATCH_SPEC)
