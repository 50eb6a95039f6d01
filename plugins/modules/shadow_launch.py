#!/usr/bin/python
# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

# Documentation only: the action plugin plugins/action/shadow_launch.py does the work, on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: shadow_launch
short_description: Run a whole progressive shadow launch on a Traefik IngressRoute or HTTPRoute (the launch engine)
version_added: 0.3.0
description:
  - The engine behind the P(darklaunch.traefik.shadow_launch#role) role, which is the usual way to run it.
  - "Preflight, with nothing written: the route must not be owned by another running launch (see O(takeover)),
    M(darklaunch.traefik.traefik_mirror)'s dry run of the first step with the attach must pass (both Services
    exist, the end of a live weighted split is signed off), Prometheus must answer when O(gate=true), and the
    IngressRoute must exist and resolve. A mirror left at a percentage by an earlier run resumes from there."
  - "Then: arm the watchdog (M(darklaunch.traefik.launch_watchdog)), create the mirror at the first step,
    attach it when O(attach_to_ingress=true), and for each step set the percentage and bake it, checking every
    O(interval) seconds. Each check reads the mirror and the route, renews the launch record, asks the
    P(darklaunch.traefik.traffic#lookup) lookup for anomalies and prints one line."
  - "A step passes only when its last check is a conclusive C(ok), its anomalous checks stay under
    O(failure_limit), its inconclusive ones under O(inconclusive_limit), and fewer than O(error_limit) checks
    in a row could not ask Prometheus. Any limit is acted on at the check that reaches it, so a failure is
    rolled back within one interval. O(fail_on_insufficient_data=false) lets a step whose last check was not
    C(ok) go on as C(not judged)."
  - "The operator is in charge. Before every write the engine checks that the mirror and the IngressRoute are as
    it left them (the step's percentage, the attach, its launch record). If someone disabled, ramped or took
    over the launch, it stops at that check with RV(outcome=taken_over), never undoing the change. A launch
    paused with C(playbooks/shadow_pause.yml) (M(darklaunch.traefik.launch_control)) holds its step, still
    renewing its record, judging and rolling back on a failure, until resumed; an aborted one rolls back at its
    next check."
  - On a failure the IngressRoute is restored exactly and the mirror deleted (RV(outcome=rolled_back)). The
    result carries what the report needs (steps, checks, changes) and the outcome as data.
  - Shadow traffic really reaches the shadow service, side effects included.
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
      - In check mode only the preflight runs (nothing is written) and RV(outcome) is V(planned).
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - A launch bakes and judges every time it runs; a rerun on a mirror already at a later step resumes there.
options:
  route_name:
    description: Name of the IngressRoute (or Gateway API HTTPRoute, see O(route_kind)) to shadow.
    type: str
    required: true
  namespace:
    description: Namespace of the route, the Services and the mirror.
    type: str
    default: default
  route_kind:
    description:
      - As O(darklaunch.traefik.traefik_mirror#module:route_kind). Unset, V(HTTPRoute) when only an HTTPRoute of
        that name exists, else V(IngressRoute).
      - On an V(HTTPRoute) the whole launch (record, resume, gate, watchdog, rollback, teardown) runs on one rule,
        whose backendRefs (a weighted split included) keep answering users behind the mirror, so
        O(confirm_end_weighted_split) is not needed. O(main_port), O(main_kind=TraefikService),
        O(mirror_methods), O(mirror_match), O(mirror_name) and O(wrr_name) apply to IngressRoutes only and are
        refused, naming the option, before anything is written.
    type: str
    choices: [IngressRoute, HTTPRoute]
  rule_index:
    description:
      - On an HTTPRoute, as O(darklaunch.traefik.traefik_mirror#module:rule_index) (the rule to mirror, from 0).
    type: int
  main_service:
    description: As O(darklaunch.traefik.traefik_mirror#module:main_service).
    type: str
  main_kind:
    description: As O(darklaunch.traefik.traefik_mirror#module:main_kind).
    type: str
    choices: [Service, TraefikService]
    default: Service
  main_port:
    description: As O(darklaunch.traefik.traefik_mirror#module:main_port).
    type: raw
  mirror_service:
    description: As O(darklaunch.traefik.traefik_mirror#module:mirror_service).
    type: str
  mirror_port:
    description: As O(darklaunch.traefik.traefik_mirror#module:mirror_port).
    type: raw
  mirror_name:
    description: As O(darklaunch.traefik.traefik_mirror#module:mirror_name).
    type: str
  wrr_name:
    description: As O(darklaunch.traefik.traefik_mirror#module:wrr_name).
    type: str
  mirror_body:
    description: As O(darklaunch.traefik.traefik_mirror#module:mirror_body), for every write of the mirror.
    type: bool
  max_body_size:
    description: As O(darklaunch.traefik.traefik_mirror#module:max_body_size), for every write of the mirror.
    type: int
  propagation_seconds:
    description:
      - As O(darklaunch.traefik.traefik_mirror#module:propagation_seconds); unset means that module's default.
    type: float
  steps:
    description: The mirror percentages, in order, each from 1 to 100.
    type: list
    elements: int
    required: true
  bake_seconds:
    description: How long each step bakes.
    type: int
    default: 300
  attach_to_ingress:
    description: Route the IngressRoute through the mirror (needed for the gate to judge anything).
    type: bool
    default: false
  mirror_methods:
    description:
      - Copy only requests with these HTTP methods, as O(darklaunch.traefik.traefik_mirror#module:mirror_methods).
        A comma-separated text (V(GET,HEAD,OPTIONS)) is taken as the list. Empty or unset copies every request.
      - V([GET, HEAD, OPTIONS]) is the recommended setting for a service with side effects, so that the shadow
        never repeats a write.
      - Needs O(attach_to_ingress=true). Passed to traefik_mirror on the check-mode plan and on every write that
        attaches (not on the first write, which creates the mirror unattached); checked before any change.
    type: list
    elements: str
  mirror_match:
    description:
      - An extra Traefik rule expression ANDed with the route's rule, as
        O(darklaunch.traefik.traefik_mirror#module:mirror_match). Empty or unset adds nothing.
      - Needs O(attach_to_ingress=true); passed like O(mirror_methods).
    type: str
  confirm_end_weighted_split:
    description: As O(darklaunch.traefik.traefik_mirror#module:confirm_end_weighted_split).
    type: bool
    default: false
  restore_ingress_to_wrr:
    description:
      - As O(darklaunch.traefik.traefik_mirror#module:restore_ingress_to_wrr), for the teardown and the rollback.
    type: bool
    default: true
  teardown:
    description: After the last step passed, restore the IngressRoute and delete the mirror.
    type: bool
    default: false
  gate:
    description: Judge every step with the anomaly gate. V(false) only bakes (the checks still renew the record).
    type: bool
    default: true
  interval:
    description: Seconds between two checks; V(0) means the window's length and at least 10 seconds.
    type: int
    default: 60
  failure_limit:
    description: How many anomalous checks fail a step.
    type: int
    default: 1
  inconclusive_limit:
    description: How many inconclusive checks fail a step; V(0) sets no count limit.
    type: int
    default: 3
  error_limit:
    description: How many consecutive checks that could not ask Prometheus fail a step.
    type: int
    default: 3
  fail_on_insufficient_data:
    description: V(false) lets a step whose last check was not a conclusive C(ok) go on as C(not judged).
    type: bool
    default: true
  lease_seconds:
    description: How long the launch record stays valid unrenewed; V(0) means twice O(interval) plus 60 seconds.
    type: int
    default: 0
  watchdog:
    description: Arm the controller watchdog while the launch runs (M(darklaunch.traefik.launch_watchdog)).
    type: bool
    default: true
  takeover:
    description:
      - Adopt a route whose launch record belongs to another launch that is still renewing it. Without it such
        a launch is refused before any change, naming the owner, the start and the deadline.
    type: bool
    default: false
  launch_id:
    description:
      - The id of this run, written in the launch record (see O(darklaunch.traefik.traefik_mirror#module:launch.id)).
    type: str
    required: true
  owner:
    description: Who runs the launch, written in the launch record.
    type: str
  comparator:
    description:
      - The comparator the role deployed for this launch (C({route}-compare)), written in the launch record so that
        the launch watchdog removes it when it rolls the launch back
        (see O(darklaunch.traefik.traefik_mirror#module:launch.comparator)). Empty when there is none or it is the
        user's own.
    type: str
  anomaly:
    description:
      - The options of the gate's P(darklaunch.traefik.traffic#lookup) lookup (C(sigma), C(window),
        C(history_windows), C(min_requests), C(metrics), C(prometheus_url), C(prometheus_selector) and the
        Prometheus connection options). Options not given come from the lookup's variables and environment, as in
        a task (for example C(PROMETHEUS_URL)).
    type: dict
    default: {}
notes:
  - Runs on the controller, like the lookup and the watchdog, whatever host the task targets.
seealso:
  - module: darklaunch.traefik.traefik_mirror
  - module: darklaunch.traefik.launch_control
"""

EXAMPLES = r"""
- name: Mirror 20% then 50% of the route's requests to the canary, judging every minute
  darklaunch.traefik.shadow_launch:
    route_name: api-service-route
    namespace: production
    main_service: api-service-stable
    mirror_service: api-service-canary
    steps: [20, 50]
    attach_to_ingress: true
    confirm_end_weighted_split: true
    launch_id: "{{ lookup('ansible.builtin.password', '/dev/null', chars=['hexdigits'], length=12) }}"
    anomaly:
      prometheus_url: http://prometheus:9090
      window: 1m
  register: launch
  failed_when: launch.outcome not in ['passed', 'planned']

- name: The same on the second rule of a Gateway API HTTPRoute, turning mirroring off at the end
  darklaunch.traefik.shadow_launch:
    route_name: api-httproute
    namespace: production
    route_kind: HTTPRoute
    rule_index: 1
    mirror_service: api-service-shadow
    steps: [20, 50]
    attach_to_ingress: true
    teardown: true
    launch_id: "{{ lookup('ansible.builtin.password', '/dev/null', chars=['hexdigits'], length=12) }}"
    anomaly:
      prometheus_url: http://prometheus:9090
  register: launch
  failed_when: launch.outcome not in ['passed', 'planned']
"""

RETURN = r"""
outcome:
  description:
    - V(passed), V(planned) (check mode), V(refused) (stopped before any change), V(rolled_back),
      V(rollback_failed), or V(taken_over) (an operator changed the route or the mirror; nothing was undone).
  returned: always
  type: str
  sample: rolled_back
msg:
  description: What happened, in words.
  returned: always
  type: str
cause:
  description: Why the launch did not pass (null when it did).
  returned: always
  type: str
cause_kind:
  description:
    - The kind of stop; V(anomalous), V(not_judged), V(inconclusive_limit), V(error_limit), V(broken_check),
      V(aborted), V(taken_over), V(watchdog), V(refused) or V(error); null when it passed.
  returned: always
  type: str
failed_check:
  description: The check that stopped the launch (as an element of RV(checks)), when a check did.
  returned: always
  type: dict
passed_steps:
  description: The percentages of the steps that passed.
  returned: always
  type: list
  elements: int
steps:
  description: Each step that ran, with C(percent), C(result), C(tally), C(start) and C(end) (epoch seconds).
  returned: always
  type: list
  elements: dict
checks:
  description:
    - Every check, as the lookup's C(anomalies) answer plus C(percent), C(check), C(of), C(elapsed), C(at),
      C(outcome) (V(ok), V(anomalous), V(inconclusive), V(error), V(broken)), C(started), C(ended) and C(paused).
  returned: always
  type: list
  elements: dict
changes:
  description: The writes that changed routing, each with C(at) and C(summaries).
  returned: always
  type: list
  elements: dict
resolved:
  description: What M(darklaunch.traefik.traefik_mirror) resolved the names and ports to.
  returned: always
  type: dict
before:
  description: The route's distribution before the first change.
  returned: always
  type: dict
"""
