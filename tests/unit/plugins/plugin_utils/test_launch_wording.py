# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The attach's line: who answered users before and after, on the rule the mirror went on."""

from __future__ import annotations

from ansible_collections.darklaunch.traefik.plugins.plugin_utils._launch_wording import users_line

SPLIT = "User responses come 50% from a-stable, 50% from a-canary; nothing is mirrored."
AFTER = "User responses come 50% from a-stable, 50% from a-canary; 20% of requests are copied to a-staging."
BEFORE = {
    "explanation": "All user responses come from a-stable; nothing is mirrored (for rule 0, ...).",
    "routes": [{"explanation": "All user responses come from a-stable; nothing is mirrored."}, {"explanation": SPLIT}],
}
SERVING = [{"name": "a-stable", "user_share_percent": 50}, {"name": "a-canary", "user_share_percent": 50}]


def test_an_httproute_attach_speaks_of_the_rule_the_mirror_went_on() -> None:
    attached = {"distribution": {"explanation": AFTER, "main_sink": SERVING}, "resolved": {"rule_index": 1}}
    assert users_line(BEFORE, attached) == (
        f"Before: {SPLIT} After: {AFTER} Real users keep their weighted split; the shadow gets copies on top of it."
    )


def test_an_ingressroute_attach_speaks_of_the_route() -> None:
    attached = {"distribution": {"explanation": AFTER, "main_sink": SERVING[:1]}, "resolved": {}}
    assert users_line(BEFORE, attached).startswith(f"Before: {BEFORE['explanation']} After: {AFTER}")
