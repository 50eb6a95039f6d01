#!/usr/bin/python
# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: traefik_mirror
short_description: Manage a Traefik mirroring TraefikService for a shadow (dark) launch
version_added: 0.1.0
description:
  - Creates, updates and removes the C({route_name}-mirror) TraefikService that copies a percentage of
    the requests of an IngressRoute to a shadow service while every user response still comes from the
    main (stable) service.
  - Optionally repoints the IngressRoute at the mirror (O(attach_to_ingress)) and, when the mirror is
    removed, restores the IngressRoute exactly as it was before it was attached.
  - Idempotent without O(launch). A second identical run reports C(changed=false) and sends no write request.
    With O(launch) (O(launch.state=running)) every call renews the launch's deadline, so it writes and reports
    C(changed=true) each time.
  - Every write carries the resourceVersion that was read, so a concurrent change by someone else is
    detected (the module re-reads and re-plans up to three times) and never silently overwritten.
  - Shadow traffic really reaches the shadow service. If the new version writes to a database, sends
    e-mails or triggers other side effects, they happen for real. O(mirror_methods) (for example
    V([GET, HEAD, OPTIONS])) and O(mirror_match) copy only the requests that are safe to repeat.
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
  diff_mode:
    support: full
  idempotent:
    support: partial
    details:
      - Without O(launch), or with O(launch.state=finished), a second identical run changes nothing and sends no
        write request.
      - With O(launch.state=running) every call renews the launch record's deadline, a write by design.
options:
  route_name:
    description:
      - Name of the IngressRoute, and the stem of the default service names.
    type: str
    required: true
  namespace:
    description:
      - Namespace of the IngressRoute, the services and the mirror.
    type: str
    default: default
  state:
    description:
      - V(present) creates the mirror or updates it to match (playbooks mirror_enable.yml and mirror_ramp.yml).
      - V(absent) removes it (playbook mirror_disable.yml); see O(restore_ingress_to_wrr).
    type: str
    choices: [present, absent]
    default: present
  mirror_percent:
    description:
      - Percentage of requests copied to O(mirror_service), an integer from 1 to 100.
      - Required when O(state=present).
      - Traefik picks requests with a deterministic counter, not at random; 20 copies requests 1, 6, 11, ...
    type: int
  main_service:
    description:
      - The service whose responses users receive. Default C({route_name}-stable).
    type: str
  main_kind:
    description:
      - Kind of O(main_service). Use V(TraefikService) to mirror on top of a weighted TraefikService such
        as C({route_name}-wrr) while it keeps splitting real users.
    type: str
    choices: [Service, TraefikService]
    default: Service
  main_port:
    description:
      - Port of O(main_service), a number or a port name. Default the Service's only port.
      - Required when the Service has several ports. Ignored for O(main_kind=TraefikService).
    type: raw
  mirror_service:
    description:
      - The shadow Service that receives copies. Its responses are discarded. Default C({route_name}-staging).
    type: str
  mirror_port:
    description:
      - Port of O(mirror_service), a number or a port name. Default the Service's only port.
    type: raw
  mirror_name:
    description:
      - Name of the mirroring TraefikService. Default C({route_name}-mirror).
    type: str
  wrr_name:
    description:
      - Name of the weighted TraefikService the IngressRoute targets before attach. Default C({route_name}-wrr).
    type: str
  mirror_body:
    description:
      - Whether request bodies are mirrored too (Traefik C(mirrorBody)). Bodies are buffered in memory.
      - Traefik's default is V(true). Omit to keep Traefik's default.
    type: bool
  max_body_size:
    description:
      - Largest request body, in bytes, that is mirrored (Traefik C(maxBodySize)); larger requests are
        served but not copied. V(-1) (Traefik's default) buffers whole bodies, which costs memory.
    type: int
  attach_to_ingress:
    description:
      - Repoint the IngressRoute's routes that target O(wrr_name) (or O(main_service)) at the mirror, so the
        mirror becomes active. Other routes, services, middlewares, labels and annotations are kept.
      - The original targets are saved in the annotation C(darklaunch.traefik/pre-mirror-services) of the
        IngressRoute so that O(state=absent) can restore them exactly.
      - When V(false) the mirror is created but inactive until the IngressRoute is changed (for example by GitOps).
    type: bool
    default: false
  mirror_methods:
    description:
      - Copy only requests with these HTTP methods (V(GET), V(HEAD), V(OPTIONS), V(TRACE), V(POST), V(PUT),
        V(PATCH), V(DELETE), V(CONNECT); any case). Default every request, as without this option.
      - V([GET, HEAD, OPTIONS]) keeps writes (and their side effects) out of the shadow while it still sees the
        read traffic.
      - Requires O(attach_to_ingress=true). Attach then leaves the IngressRoute's routes as they are and adds, to
        the same IngressRoute, one route per route it would have repointed. The added route matches that route's
        rule AND the methods (C(Method(`GET`\) || Method(`HEAD`\)), valid in Traefik v2 and v3 syntax) AND
        O(mirror_match); it carries the route's middlewares and other fields and targets the mirror. The
        original route keeps serving every other request from its own services. Every user response still
        comes from the main service.
      - The added route wins over its original by priority and over nothing that does not beat the original
        today. Traefik tries the routes of all IngressRoutes on an entry point together, highest priority first
        (a route's own priority, else its rule's length), so the other routes of the IngressRoute and the routes
        of every other IngressRoute that can take the original's requests count. Those are the ones on an entry
        point in common (no C(entryPoints) counts as every one), both with TLS or both without, and with a host
        in common (rules whose C(Host) matchers name different hosts never compete). IngressRoutes are listed in all
        namespaces, or only in O(namespace) when the credentials may not list more (a warning says so).
      - The added route gets the original's priority + 1 (the original's own priority, else its rule's length),
        always set explicitly, so a route written later that beats the original still beats the added route.
        When a route that beats the original has exactly that priority (no whole number fits between them),
        attaching is refused and nothing is changed. Routes with the original's own priority are tried in no
        defined order against it already and do not count.
      - The original route keeps serving the requests that are not copied from its own services, so a route on
        a live weighted split (O(wrr_name) with real users on more than one backend) is refused, whatever
        O(confirm_end_weighted_split) says, since those backends would keep answering real users' writes. Send every
        user to O(main_service) in the split first, or mirror on top of it (O(main_kind=TraefikService),
        O(main_service) set to O(wrr_name)).
      - The added routes are listed in the annotation C(darklaunch.traefik/mirror-request-routes);
        O(state=absent) removes exactly them. Changing the methods updates the added route in place.
      - Switching between copying every request and copying only some is refused on an attached route; run
        O(state=absent) first. Ignored with O(state=absent).
    type: list
    elements: str
  mirror_match:
    description:
      - An extra Traefik rule expression ANDed with the route's own rule (and with O(mirror_methods)), for
        example C(PathPrefix(`/api`\)) or C(Header(`X-Shadow`, `yes`\)). Only matching requests are copied.
      - Checked before any change. It must parse in the route's rule syntax (the route's C(syntax) field,
        else v2 on the traefik.containo.us API group, else v3 or v2, whichever the route's rule is written in)
        with Traefik's matcher names and value counts.
      - Requires O(attach_to_ingress=true); see O(mirror_methods) for how the requests are chosen.
    type: str
  confirm_end_weighted_split:
    description:
      - Attaching over a weighted TraefikService that still sends real users to more than one backend ends
        that split (all user responses then come from the main service). This is refused unless V(true).
    type: bool
    default: false
  route_kind:
    description:
      - The kind of route O(route_name) names. Unset, it is V(HTTPRoute) when only a Gateway API HTTPRoute of that
        name exists, else V(IngressRoute).
      - On an V(HTTPRoute), a rule can only be pointed at a TraefikService that Traefik resolves. O(state=present)
        is refused, with nothing written, where the API server does not serve the TraefikService CRD
        (C(traefikservices.traefik.io)) or O(api_group) is C(traefik.containo.us). After attach, where Traefik
        reports the route's status (3.1 and later), the module waits up to 20 seconds for Traefik's
        C(ResolvedRefs) condition of the new generation; if Traefik says the TraefikService is unresolved (its CRD
        provider is off, or does not watch the namespace), the rule is put back on its backendRefs, the
        TraefikServices this run created are deleted and the module fails. A warning says when Traefik reported
        nothing to check (Traefik 3.0 writes no route status).
      - On an V(HTTPRoute) (served by Traefik's Gateway provider, with its CRD provider on too), O(state=present)
        creates the C({route_name}-mirror) TraefikService and, with O(attach_to_ingress=true), points one rule's
        backendRefs at it. Its main is what the rule
        served (one Service, or a weighted C({route_name}-split) TraefikService with the backendRefs' weights, so
        users keep the same backends); the original backendRefs are saved in the
        C(darklaunch.traefik/pre-mirror-backendrefs) annotation. O(state=absent) puts them back exactly and
        deletes both TraefikServices (with O(restore_ingress_to_wrr=false), a rule still on the mirror is
        refused). A route whose Gateway's class is not Traefik's is refused. O(mirror_percent), O(mirror_service),
        O(mirror_port), O(main_service) (which rule), O(rule_index), O(attach_to_ingress),
        O(restore_ingress_to_wrr), O(mirror_body), O(max_body_size) and O(launch) (the same launch record on
        the mirror, so the M(darklaunch.traefik.shadow_launch) launch, resume and its watchdog run on HTTPRoutes
        too) apply; O(mirror_methods), O(mirror_match), O(main_kind), O(main_port), O(mirror_name) and
        O(wrr_name) are refused, naming the option, with nothing changed (not supported on HTTPRoutes yet).
      - The weighted split of a rule stays behind the mirror, so an attach never ends it and
        O(confirm_end_weighted_split) is not needed.
    type: str
    choices: [IngressRoute, HTTPRoute]
  rule_index:
    description:
      - On an HTTPRoute, the index (from 0) of the rule to mirror. Default the rule already on the mirror, else the
        one rule whose backendRefs hold O(main_service).
    type: int
  restore_ingress_to_wrr:
    description:
      - With O(state=absent), first repoint the IngressRoute back to exactly what it targeted before attach
        (or to O(wrr_name) if that record is missing), then delete the mirror.
      - With V(false), deleting a mirror that an IngressRoute still routes through is refused, because
        Traefik would then answer 404 on that route.
    type: bool
    default: true
  propagation_seconds:
    description:
      - Seconds to wait, within one run, between a write and the write that depends on Traefik having seen it.
        That is after creating the mirror and before pointing an IngressRoute at it, and after repointing an
        IngressRoute and before deleting the mirror it used (also when undoing a failed run).
      - Traefik watches IngressRoutes and TraefikServices separately. If it sees the second write before the
        first, the route names a TraefikService it does not have, and Traefik drops the route, which answers
        404 until its next change. Measured on the local cluster, the two writes land about 4 ms apart without
        this wait.
      - V(0) turns the wait off. Raise it when Traefik runs far from the API server or the API server is slow.
    type: float
    default: 1
  launch:
    description:
      - Record a launch in progress on the mirror, so that a launch whose process was interrupted or killed
        is visible to everyone as abandoned (M(darklaunch.traefik.traefik_traffic_info), the
        P(darklaunch.traefik.traffic#lookup) lookup and C(playbooks/shadow_status.yml)), with the command
        that rolls it back.
      - Stored as annotations C(darklaunch.traefik/launch-*) on the mirror TraefikService (C(id), C(owner),
        C(route), C(started), C(step), C(deadline), C(renewed), C(progress), C(comparator); timestamps RFC 3339
        UTC), written in the same request as the mirror itself. Other annotations and labels of the mirror are kept.
      - Every call renews the deadline, so every call with O(launch) writes (C(changed=true)).
      - Only with O(state=present). Deleting the mirror (O(state=absent)) deletes the record with it.
    type: dict
    suboptions:
      id:
        description:
          - Identifies one launch run (for example a random hex string per C(ansible-playbook) run), 1 to
            128 letters, digits, C(.), C(_), C(:) or C(-).
          - C(started) is kept while the id stays the same; a new id starts a new record (and warns when
            the record it replaces was still being renewed).
        type: str
        required: true
      owner:
        description:
          - Who or what runs the launch, for example C(alice@host pid 1234 via ansible-playbook) or
            C(AWX job 42). Shown in the abandoned-launch message. Kept from the previous call of the same
            launch when omitted.
        type: str
      step:
        description:
          - The percent of the current step, 1 to 100. Kept from the previous call of the same launch when omitted.
        type: int
      lease_seconds:
        description:
          - The record's deadline is now plus this many seconds. A launch that does not renew it in time is
            reported as abandoned; choose more than the longest gap between two calls (for example twice the
            check interval).
        type: int
        required: true
      state:
        description:
          - V(running) writes or renews the record.
          - V(finished) removes it (the launch ended normally and the mirror is left in place on purpose).
            Without a record, or when the record belongs to another launch id, nothing is changed.
        type: str
        choices: [running, finished]
        default: running
      progress:
        description:
          - The launch's checks so far in one line, for example V(check 3 of the 20% step, 2 ok, 1 inconclusive),
            shown by C(playbooks/shadow_status.yml) while the launch runs. Kept from the previous call of the same
            launch when omitted. At most 512 characters.
        type: str
      comparator:
        description:
          - The name of the comparator (ConfigMap, Deployment and Service) the C(shadow_launch) role deployed for
            the launch, so that the launch watchdog removes it with the mirror when it rolls the launch back (only
            objects labelled as this route's comparator, see M(darklaunch.traefik.comparator)). Kept from the
            previous call of the same launch when omitted.
        type: str
requirements:
  - kubernetes >= 24.2.0
notes:
  - Traefik keeps its mirroring counters per process and resets them on every configuration reload; each
    replica counts on its own.
  - Websocket upgrades and request bodies larger than O(max_body_size) are not mirrored.
  - Writes are ordered so that every prefix of them leaves users served (the mirror is created before an
    IngressRoute points at it, and deleted after the IngressRoute is restored). If the Kubernetes API refuses a
    write with an error, the writes this run already made are undone. If the API stops answering (refused
    connection, reset, or no answer within O(request_timeout)), nothing is undone, because the unanswered
    write may have been applied; the failure message and the result's C(done), C(unanswered) and C(not_done)
    say what was written and what state the route is in, and rerunning the task finishes the change.
seealso:
  - module: darklaunch.traefik.traefik_traffic_info
  - plugin: darklaunch.traefik.traffic
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Create the mirror (20% shadow) but keep users on the weighted route for now
  darklaunch.traefik.traefik_mirror:
    route_name: api-service-route
    namespace: production
    main_service: api-service-stable
    mirror_service: api-service-canary
    mirror_percent: 20
  register: shadow

- name: Report whether the mirror is live
  ansible.builtin.debug:
    msg: "Mirror is {{ shadow.status }}; warnings: {{ shadow.warnings }}"

- name: Route the IngressRoute through the mirror, ending the 50/50 weighted canary
  darklaunch.traefik.traefik_mirror:
    route_name: api-service-route
    namespace: production
    main_service: api-service-stable
    mirror_service: api-service-canary
    mirror_percent: 20
    attach_to_ingress: true
    confirm_end_weighted_split: true

- name: Ramp the shadow copy to 50%
  darklaunch.traefik.traefik_mirror:
    route_name: api-service-route
    namespace: production
    main_service: api-service-stable
    mirror_service: api-service-canary
    mirror_percent: 50
    attach_to_ingress: true
    confirm_end_weighted_split: true

- name: Copy only reads (GET, HEAD, OPTIONS) so that the shadow never repeats a write
  darklaunch.traefik.traefik_mirror:
    route_name: api-service-route
    namespace: production
    main_service: api-service-stable
    mirror_service: api-service-canary
    mirror_percent: 20
    attach_to_ingress: true
    confirm_end_weighted_split: true
    mirror_methods: [GET, HEAD, OPTIONS]

- name: Copy only GETs under /api
  darklaunch.traefik.traefik_mirror:
    route_name: api-service-route
    namespace: production
    mirror_percent: 20
    attach_to_ingress: true
    confirm_end_weighted_split: true
    mirror_methods: [GET]
    mirror_match: PathPrefix(`/api`)

- name: Turn mirroring off, put the IngressRoute back on the weighted service, remove the mirror
  darklaunch.traefik.traefik_mirror:
    route_name: api-service-route
    namespace: production
    state: absent
    restore_ingress_to_wrr: true

- name: Mirror on top of the weighted split (users keep the canary split, canary gets extra copies)
  darklaunch.traefik.traefik_mirror:
    route_name: api-service-route
    namespace: production
    main_service: api-service-route-wrr
    main_kind: TraefikService
    mirror_service: api-service-staging
    mirror_percent: 10

- name: Step to 20% as part of a launch that renews its record (reported abandoned after 10 minutes of silence)
  darklaunch.traefik.traefik_mirror:
    route_name: api-service-route
    namespace: production
    mirror_percent: 20
    attach_to_ingress: true
    confirm_end_weighted_split: true
    launch:
      id: "{{ launch_id }}"
      owner: "AWX job {{ awx_job_id | default('manual') }}"
      step: 20
      lease_seconds: 600

- name: The launch ended and the mirror stays on purpose; clear the record
  darklaunch.traefik.traefik_mirror:
    route_name: api-service-route
    namespace: production
    mirror_percent: 20
    launch:
      id: "{{ launch_id }}"
      lease_seconds: 600
      state: finished

- name: Mirror 20% of the second rule of a Gateway API HTTPRoute (its 50/50 backendRefs split keeps serving users)
  darklaunch.traefik.traefik_mirror:
    route_name: api-httproute
    namespace: production
    route_kind: HTTPRoute
    rule_index: 1
    mirror_service: api-service-shadow
    mirror_percent: 20
    attach_to_ingress: true
    launch:
      id: "{{ launch_id }}"
      step: 20
      lease_seconds: 600

- name: Set the connection once for every module of the collection
  module_defaults:
    group/darklaunch.traefik.traefik:
      kubeconfig: /etc/kube/shadow-operator.yaml
      context: production
  block:
    - name: Enable the mirror with the shared connection settings
      darklaunch.traefik.traefik_mirror:
        route_name: api-service-route
        namespace: production
        mirror_percent: 20
"""

RETURN = r"""
api_group:
  description: The Traefik API group of the objects read and written (detected, or O(api_group)).
  returned: always
  type: str
  sample: traefik.io
status:
  description:
    - V(active) when an IngressRoute routes through the mirror, V(inactive) when the mirror exists but
      nothing routes through it (waiting on an IngressRoute change), V(absent) when there is no mirror.
  returned: always
  type: str
  sample: inactive
actions:
  description: What was done, or in check mode what would be done, in order.
  returned: always
  type: list
  elements: dict
  contains:
    verb:
      description: V(create), V(patch) or V(delete).
      type: str
    kind:
      description: V(TraefikService), V(IngressRoute) or V(HTTPRoute).
      type: str
    name:
      description: Object name.
      type: str
    namespace:
      description: Object namespace.
      type: str
    summary:
      description: One sentence saying what the action changes.
      type: str
    record_only:
      description:
        - V(true) when the write only starts, renews or closes the launch record (O(launch)) on the mirror, so
          routing and percentages are unchanged.
      type: bool
  sample:
    - verb: create
      kind: TraefikService
      name: api-service-route-mirror
      namespace: production
      summary: create TraefikService api-service-route-mirror copying 20% of requests to api-service-canary:80
mirror:
  description: The mirroring TraefikService after the run (null when absent).
  returned: always
  type: dict
route_kind:
  description: The kind of route the run acted on, V(IngressRoute) or V(HTTPRoute) (O(route_kind), or found).
  returned: always
  type: str
  sample: IngressRoute
httproute:
  description: On an HTTPRoute, the backendRefs of the chosen rule (of every rule on teardown) before and after.
  returned: on an HTTPRoute
  type: dict
  contains:
    name:
      description: HTTPRoute name (O(route_name)).
      type: str
    namespace:
      description: HTTPRoute namespace.
      type: str
    rule_index:
      description: The rule mirrored (null on teardown).
      type: int
    before:
      description: C(rule) index and C(backendRefs) before.
      type: list
      elements: dict
    after:
      description: C(rule) index and C(backendRefs) after.
      type: list
      elements: dict
ingress_route:
  description: Targets of each route of the IngressRoute before and after the run.
  returned: on an IngressRoute
  type: dict
  contains:
    name:
      description: IngressRoute name (O(route_name)).
      type: str
    namespace:
      description: IngressRoute namespace.
      type: str
    before:
      description: Route targets before.
      type: list
      elements: dict
    after:
      description: Route targets after.
      type: list
      elements: dict
distribution:
  description:
    - The resolved traffic split of the route after the run, same shape as
      M(darklaunch.traefik.traefik_traffic_info)'s RV(darklaunch.traefik.traefik_traffic_info#module:distribution).
    - On an HTTPRoute, from the route, the mirror and the split as planned and the Services read; null when they
      may not be read.
  returned: when the route exists
  type: dict
launch:
  description:
    - The launch record on the mirror after the run (planned, in check mode), or null when there is none.
    - Timestamps are RFC 3339 UTC with milliseconds.
  returned: always
  type: dict
  contains:
    id:
      description: The launch id.
      type: str
    owner:
      description: Who or what runs the launch (null when not given).
      type: str
    route:
      description: The IngressRoute the launch runs on.
      type: str
    started:
      description: When this launch id first wrote the record.
      type: str
    step:
      description: The current step's percent (null when not given).
      type: int
    deadline:
      description: After this time, the launch is reported as abandoned unless renewed.
      type: str
    renewed:
      description: When the record was last written.
      type: str
    progress:
      description: The launch's checks so far in words (null when not given).
      type: str
    comparator:
      description: The comparator the C(shadow_launch) role deployed for the launch (null when none).
      type: str
  sample:
    id: 3f9c2a71
    owner: alice@laptop pid 4242 via ansible-playbook
    route: api-service-route
    started: "2025-11-27T14:02:11.318Z"
    step: 20
    deadline: "2025-11-27T14:12:40.007Z"
    renewed: "2025-11-27T14:02:40.007Z"
resolved:
  description:
    - What the options resolved to, so callers (the shadow_launch role, the playbooks) use the module's
      defaults and findings instead of deriving them again. In check mode it answers "may I proceed?" without
      writing; a refusal fails the task instead, and the failed result's C(field) names the option to change.
    - On an HTTPRoute, RV(resolved.wrr_name) is the C({route_name}-split) TraefikService, RV(resolved.main_service)
      the mirror's main (that split, or the rule's one Service) and RV(resolved.weighted_split) the rule's
      backendRefs; RV(resolved.route_kind) and RV(resolved.rule_index) are set.
  returned: always
  type: dict
  contains:
    route_kind:
      description: V(HTTPRoute) on an HTTPRoute (not returned on an IngressRoute).
      type: str
    rule_index:
      description: On an HTTPRoute, the rule mirrored (null on a teardown of several rules).
      type: int
    route_name:
      description: O(route_name).
      type: str
    namespace:
      description: O(namespace).
      type: str
    mirror_name:
      description: The mirroring TraefikService's name (O(mirror_name), default C({route_name}-mirror)).
      type: str
    wrr_name:
      description: The weighted TraefikService's name (O(wrr_name), default C({route_name}-wrr)).
      type: str
    main_service:
      description: O(main_service), default C({route_name}-stable).
      type: str
    main_kind:
      description: O(main_kind).
      type: str
    main_port:
      description:
        - The main Service's port the mirror references (O(main_port), else the one it already uses, else the
          Service's only port); null for a TraefikService main and with O(state=absent).
      type: raw
    mirror_service:
      description: O(mirror_service), default C({route_name}-staging).
      type: str
    mirror_port:
      description: The shadow Service's port the mirror references; null with O(state=absent).
      type: raw
    mirror_percent:
      description: The percentage copied after the run; null with O(state=absent).
      type: int
    previous_percent:
      description:
        - The percentage the mirror copied to RV(resolved.mirror_service) before the run; null when there was no
          mirror or it copied elsewhere.
      type: int
    weighted_split:
      description: The weighted TraefikService RV(resolved.wrr_name) as found before the run.
      type: dict
      contains:
        live:
          description: V(true) when it sends real users to more than one backend.
          type: bool
        split:
          description:
            - Its split in words (V(50% api-service-stable, 50% api-service-canary)), null when it does not exist.
          type: str
        ended:
          description:
            - V(true) when this run's attach ends that live split (only with O(confirm_end_weighted_split=true)).
          type: bool
  sample:
    route_name: api-service-route
    namespace: production
    mirror_name: api-service-route-mirror
    wrr_name: api-service-route-wrr
    main_service: api-service-stable
    main_kind: Service
    main_port: 80
    mirror_service: api-service-canary
    mirror_port: 80
    mirror_percent: 50
    previous_percent: 20
    weighted_split: {live: true, split: "50% api-service-stable, 50% api-service-canary", ended: false}
warnings:
  description: Things the operator should know (inactive mirror, ended weighted split, side effects, body buffering).
  returned: when there is something to warn about
  type: list
  elements: str
diff:
  description: The objects before and after, in diff mode.
  returned: when diff mode is on
  type: dict
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.darklaunch.traefik.plugins.module_utils._argspec import (
    mirror_match_spec,
    mirror_target_spec,
    route_spec,
    with_auth,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_runner import (
    route_kind,
    run_httproute_mirror,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s import KubeClient
from ansible_collections.darklaunch.traefik.plugins.module_utils._kube_module import kube_module
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_params import DEFAULT_PROPAGATION_SECONDS
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_runner import run_mirror
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import TRAEFIK_GROUPS


def argument_spec() -> dict[str, Any]:
    return with_auth(
        {
            **route_spec(),
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "mirror_percent": {"type": "int"},
            **mirror_target_spec(),
            "mirror_body": {"type": "bool"},
            "max_body_size": {"type": "int"},
            "attach_to_ingress": {"type": "bool", "default": False},
            **mirror_match_spec(),
            "confirm_end_weighted_split": {"type": "bool", "default": False},
            "restore_ingress_to_wrr": {"type": "bool", "default": True},
            "route_kind": {"type": "str", "choices": ["IngressRoute", "HTTPRoute"]},
            "rule_index": {"type": "int"},
            "propagation_seconds": {"type": "float", "default": DEFAULT_PROPAGATION_SECONDS},
            "api_group": {"type": "str", "choices": list(TRAEFIK_GROUPS)},
            "launch": {
                "type": "dict",
                "options": {
                    "id": {"type": "str", "required": True},
                    "owner": {"type": "str"},
                    "step": {"type": "int"},
                    "lease_seconds": {"type": "int", "required": True},
                    "state": {"type": "str", "choices": ["running", "finished"], "default": "running"},
                    "progress": {"type": "str"},
                    "comparator": {"type": "str"},
                },
            },
        }
    )


def exit_httproute(module: AnsibleModule, result: dict[str, Any]) -> None:
    diff = result.pop("diff")
    for warning in result.pop("warnings"):
        module.warn(warning)
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


def main() -> None:
    module = kube_module(argument_spec(), required_if=[("state", "present", ("mirror_percent",))])
    try:
        # The argument spec above checked types, choices and required options; run_mirror checks the rest
        # (names, ranges) once, before its first request.
        client = KubeClient.from_params(module.params)
        if route_kind(client, module.params) == "HTTPRoute":
            exit_httproute(module, run_httproute_mirror(client, module.params, check_mode=module.check_mode))
            return
        run = run_mirror(client, module.params, check_mode=module.check_mode)
    except DarklaunchError as error:
        module.fail_json(**error.fail_kwargs())
    result = run.plan.to_dict()
    diff = result.pop("diff")
    for action in result["actions"]:
        # The JSON Patch bodies are an implementation detail; the summary says what changes.
        action.pop("body", None)
        action.pop("resource_version", None)
    result["api_group"] = run.api_group
    result["route_kind"] = "IngressRoute"
    # Ansible collects warnings itself: module.warn() shows them and puts them in the registered
    # result's ``warnings`` (passing ``warnings`` to exit_json is deprecated).
    for warning in result.pop("warnings"):
        module.warn(warning)
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
