# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Gateway provider's labels of an HTTPRoute backend, per Traefik release, as read from each release's
/metrics on the local cluster (docs/compatibility.md), and the targets that carry them for a mirrored rule."""

from __future__ import annotations

import re

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_labels import (
    form_of,
    gateway_label_patterns,
)

PATTERNS = gateway_label_patterns("shop", "web-route", 1, 1, "shop", "web-canary", 8080)


@pytest.mark.parametrize(
    ("label", "release"),
    [
        ("shop-web-canary-31337@kubernetesgateway", "3.0-3.1"),  # the endpoints' port
        ("shop-web-canary-http-8080@kubernetesgateway", "3.2-3.7.5"),
        (
            "httproute-shop-web-route-gw-darklaunch-system-traefik-gateway-ep-web-1-4a99d300094a93cec00d-svc-shop-"
            "web-canary-1@kubernetesgateway",
            "3.7.6 and later",
        ),
    ],
)
def test_each_release_form_is_matched_and_named(label: str, release: str) -> None:
    assert [bool(re.fullmatch(pattern, label)) for pattern in PATTERNS].count(True) == 1
    assert form_of(label).startswith(f"Traefik {release} (")


@pytest.mark.parametrize(
    "label",
    [
        "shop-web-stable-http-8080@kubernetesgateway",  # another Service
        "shop-web-canary-http-9090@kubernetesgateway",  # another port
        "httproute-shop-web-route-gw-gw-ep-web-0-4a99d300094a93cec00d-svc-shop-web-canary-1@kubernetesgateway",  # rule
        "httproute-shop-web-route-gw-gw-ep-web-1-4a99d300094a93cec00d-svc-shop-web-canary-0@kubernetesgateway",  # index
        "shop-web-canary-8080@kubernetescrd",
    ],
)
def test_other_backends_are_not_matched(label: str) -> None:
    assert not any(re.fullmatch(pattern, label) for pattern in PATTERNS)
