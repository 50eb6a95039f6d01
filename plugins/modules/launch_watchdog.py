#!/usr/bin/python
# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

# Documentation only: the action plugin plugins/action/launch_watchdog.py does the work, on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: launch_watchdog
short_description: Roll a shadow launch back if the ansible-playbook run driving it is interrupted
version_added: 0.1.0
description:
  - Starts (O(state=armed)) or stops (O(state=disarmed)) a watchdog process on the controller, detached
    from the C(ansible-playbook) run that arms it.
  - While armed, the watchdog looks every O(poll_seconds). It rolls the launch back, exactly as
    M(darklaunch.traefik.traefik_mirror) with O(darklaunch.traefik.traefik_mirror#module:state=absent) does
    (the IngressRoute is restored to what it was before attach, then the mirror is deleted), when
    the C(ansible-playbook) process that armed it is gone (Ctrl-C, SIGTERM, an AWX cancel or job timeout
    that leaves the execution environment running, the process killed), or when this launch's record on the
    mirror (the C(darklaunch.traefik/launch-*) annotations that
    O(darklaunch.traefik.traefik_mirror#module:launch) writes) is past its deadline by more than
    O(grace_seconds), that is the run is alive but stuck.
  - It stops without touching anything when disarmed, when a newer watchdog is armed for the same route,
    when the mirror, once seen, has been deleted by someone else, or (with O(launch_id)) when another
    launch has taken the record over.
  - Arm it before the first change of a launch and disarm it when the launch has ended (passed, or rolled
    back by the play itself). A play that ends while the watchdog is still armed is rolled back, because to
    the watchdog that looks like an interruption. The C(darklaunch.traefik.shadow_launch) role does both.
  - Arming again for the same route (same namespace and API server) replaces the earlier watchdog.
  - The watchdog's config (with the connection options) is written readable by the user only and deleted by
    the watchdog as soon as it has read it; its log (O(state=armed) returns the path) holds no secret.
author:
  - darklaunch.traefik contributors (@darklaunch)
extends_documentation_fragment:
  - darklaunch.traefik.k8s_auth
  - darklaunch.traefik.k8s_auth.api_group
  - darklaunch.traefik.attributes
  - darklaunch.traefik.attributes.actiongroup_traefik
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is started or stopped; the result says what would be done.
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - Arming always starts a new watchdog (replacing any earlier one) and reports a change.
options:
  state:
    description:
      - V(armed) starts the watchdog for the route, replacing one already watching it.
      - V(disarmed) stops it and removes its files; C(changed) only if one was running.
    type: str
    choices: [armed, disarmed]
    default: armed
  route_name:
    description:
      - Name of the IngressRoute of the launch.
    type: str
    required: true
  namespace:
    description:
      - Namespace of the IngressRoute and the mirror.
    type: str
    default: default
  route_kind:
    description:
      - The kind of route of the launch. On an V(HTTPRoute) the rollback puts the rule's saved backendRefs back
        and deletes the C({route_name}-mirror) and C({route_name}-split) TraefikServices; O(mirror_name) and
        O(wrr_name) are not used.
    type: str
    choices: [IngressRoute, HTTPRoute]
    default: IngressRoute
  mirror_name:
    description:
      - Name of the mirroring TraefikService. Default C({route_name}-mirror).
    type: str
  wrr_name:
    description:
      - Name of the weighted TraefikService the IngressRoute is restored to when the record of its
        original targets is missing. Default C({route_name}-wrr).
    type: str
  restore_ingress_to_wrr:
    description:
      - Passed to the rollback as O(darklaunch.traefik.traefik_mirror#module:restore_ingress_to_wrr), which
        restores the IngressRoute before deleting the mirror. With V(false) a mirror the IngressRoute still
        routes through is not deleted, and the rollback fails (and says so in the log).
    type: bool
    default: true
  poll_seconds:
    description:
      - How often the watchdog looks, in seconds. An interruption is noticed within about this long.
      - Each look that finds C(ansible-playbook) alive reads the mirror once from the API server.
    type: float
    default: 1.0
  grace_seconds:
    description:
      - How long after the launch record's deadline the watchdog waits before it takes the run for stuck
        and rolls back. Without a deadline on the mirror only the end of C(ansible-playbook) counts.
    type: float
    default: 60.0
  launch_id:
    description:
      - The id of this launch, as given to O(darklaunch.traefik.traefik_mirror#module:launch). Only a record with
        this id counts for the deadline, and once the record has carried it, another id on it means another
        run took the route over, and the watchdog leaves without rolling back.
      - Without it, a record counts when its deadline lies after the moment of arming, so that a stale record
        left by an earlier, interrupted run never triggers a rollback.
    type: str
notes:
  - Runs on the controller only, whatever host the task targets; the connection options and the files they
    name are read there, and the watchdog needs network access from the controller to the API server.
    It runs with the Python interpreter of C(ansible-playbook) and needs the C(kubernetes) library there.
  - It watches the C(ansible-playbook) process itself (the parent of the task's worker process). Strategy
    or connection plugins that run tasks elsewhere, such as Mitogen, are not supported.
  - What it cannot cover, because it dies too - a crash or reboot of the controller machine, and an AWX
    cancel or timeout that removes the whole execution environment container. Then the launch record on the
    mirror (its deadline no longer renewed) shows the launch as abandoned in
    M(darklaunch.traefik.traefik_traffic_info) and the status playbook, and an AWX workflow's failure path
    runs the rollback template.
  - Files live in C(darklaunch-watchdog-<uid>) under the system temp directory (mode 0700); the log of each
    route is kept there across launches.
seealso:
  - module: darklaunch.traefik.traefik_mirror
  - module: darklaunch.traefik.traefik_traffic_info
"""

EXAMPLES = r"""
- name: Arm the watchdog before changing the route
  darklaunch.traefik.launch_watchdog:
    route_name: api-service-route
    namespace: production
    state: armed
    launch_id: "{{ my_launch_id }}"
  register: watchdog

- name: Attach the mirror (rolled back by the watchdog if this run is interrupted from here on)
  darklaunch.traefik.traefik_mirror:
    route_name: api-service-route
    namespace: production
    mirror_percent: 20
    attach_to_ingress: true
    confirm_end_weighted_split: true
    launch:
      id: "{{ my_launch_id }}"
      lease_seconds: 120

- name: Disarm it once the launch has ended as planned
  darklaunch.traefik.launch_watchdog:
    route_name: api-service-route
    namespace: production
    state: disarmed

- name: Share the connection settings with the collection's other modules
  module_defaults:
    group/darklaunch.traefik.traefik:
      kubeconfig: /etc/kube/shadow-operator.yaml
      context: production
  block:
    - name: Arm, looking every 2 seconds
      darklaunch.traefik.launch_watchdog:
        route_name: api-service-route
        namespace: production
        poll_seconds: 2
"""

RETURN = r"""
armed:
  description: Whether a watchdog is watching the route after the task.
  returned: always
  type: bool
  sample: true
pid:
  description:
    - PID of the watchdog started (O(state=armed)) or stopped (O(state=disarmed)); null when there was none.
  returned: always
  type: int
  sample: 48213
controller_pid:
  description: PID of the C(ansible-playbook) process the watchdog watches.
  returned: when O(state=armed) and not in check mode
  type: int
  sample: 48170
log_path:
  description: The watchdog's log file on the controller (kept after it stops).
  returned: always
  type: str
  sample: /tmp/darklaunch-watchdog-1000/production.api-service-route.3f2a9c01bd.log
stopped:
  description: Whether a running watchdog was stopped.
  returned: when O(state=disarmed)
  type: bool
  sample: true
rolled_back:
  description:
    - Whether the watchdog had rolled the launch back before it was disarmed (the run had stopped renewing
      the launch record). The launch did not end as planned then; a warning says so too.
  returned: when O(state=disarmed)
  type: bool
  sample: false
outcome:
  description: What the watchdog had done before it was disarmed, when it did more than watch.
  returned: when O(state=disarmed) and the watchdog had acted
  type: dict
  contains:
    outcome:
      description: V(rolled_back), V(rollback_failed) or V(crashed).
      type: str
    reason:
      description: Why it acted.
      type: str
    at:
      description: When it stopped (UTC).
      type: str
    actions:
      description: What the rollback did.
      type: list
      elements: str
"""
