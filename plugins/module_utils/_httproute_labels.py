# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``service`` labels Traefik's Gateway provider gives an HTTPRoute's own backendRefs, as patterns (pure).

While traefik_mirror is attached, a mirrored rule's backends are reached through TraefikServices of the CRD
provider (``<ns>-<svc>-<port>@kubernetescrd``); before, Traefik's Gateway provider named them, in a form that
changed across releases (read from each release's pkg/provider/kubernetes/gateway):

- 3.0-3.1: ``<ns>-<svc>-<endpoint port>`` (the port of the Service's endpoints, not the backendRef's);
- 3.2-3.7.5: ``<ns>-<svc>-http-<port>``;
- from 3.7.6: ``httproute-<ns>-<route>-gw-<gw ns>-<gw>-ep-<entry point>-<rule>-<hash of the match>-svc-<ns>-<svc>-
  <backendRef index>``, one per Gateway listener and match.

The running release is not known from the API, so a backend's pre-launch series is found by all three patterns
(regular expressions valid in Prometheus' RE2 and in Python: names are normalised to letters, digits and '-').
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    normalise_traefik_name,
    traefik_service_label,
)

GATEWAY_SUFFIX = "@kubernetesgateway"
_NAME = "[A-Za-z0-9-]+"
# (releases, the form in words), in release order; the patterns below follow the same order.
GATEWAY_FORMS = (
    ("3.0-3.1", "<ns>-<svc>-<port>@kubernetesgateway"),
    ("3.2-3.7.5", "<ns>-<svc>-http-<port>@kubernetesgateway"),
    ("3.7.6 and later", "httproute-<ns>-<route>-gw-...-<rule>-<hash>-svc-<ns>-<svc>-<index>@kubernetesgateway"),
)


def gateway_label_patterns(
    route_namespace: str, route: str, rule: int, index: int, namespace: str, service: str, port: int
) -> tuple[str, str, str]:
    """The three patterns of one backendRef (rule ``rule``, position ``index``) of an HTTPRoute."""
    svc = normalise_traefik_name(f"{namespace}-{service}")
    route_key = normalise_traefik_name(f"httproute-{route_namespace}-{route}")
    return (
        f"{svc}-[0-9]+{GATEWAY_SUFFIX}",
        f"{svc}-http-{int(port)}{GATEWAY_SUFFIX}",
        f"{route_key}-gw-{_NAME}-ep-{_NAME}-{int(rule)}(-[0-9a-f]+)?-svc-{namespace}-{service}-{int(index)}"
        f"{GATEWAY_SUFFIX}",
    )


def form_of(label: str) -> str:
    """Which release's form a Gateway provider label is, in words ("" for any other label)."""
    if not label.endswith(GATEWAY_SUFFIX):
        return ""
    if label.startswith("httproute-") and "-svc-" in label:
        releases, words = GATEWAY_FORMS[2]
    elif re.fullmatch(rf"{_NAME}-http-[0-9]+{GATEWAY_SUFFIX}", label):
        releases, words = GATEWAY_FORMS[1]
    else:
        releases, words = GATEWAY_FORMS[0]
    return f"Traefik {releases} ({words})"


def pre_launch_patterns(
    route_namespace: str, route: str, saved: Mapping[str, Sequence[Mapping[str, Any]]]
) -> dict[str, tuple[str, ...]]:
    """For each Service a mirrored rule served before attach (the backendRefs traefik_mirror saved, by rule
    index): its CRD-provider label (what it is called while the mirror is on) -> its Gateway provider patterns."""
    found: dict[str, dict[str, None]] = {}
    for rule, refs in saved.items():
        if not str(rule).isdigit():
            continue
        for index, ref in enumerate(refs):
            port, name = ref.get("port"), ref.get("name")
            if not isinstance(port, int) or isinstance(port, bool) or not isinstance(name, str) or not name:
                continue
            namespace = str(ref.get("namespace") or route_namespace)
            label = traefik_service_label(namespace, name, port)
            patterns = gateway_label_patterns(route_namespace, route, int(rule), index, namespace, name, port)
            found.setdefault(label, {}).update(dict.fromkeys(patterns))
    return {label: tuple(patterns) for label, patterns in found.items()}
