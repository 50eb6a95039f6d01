#!/usr/bin/python
# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

# Documentation only: the action plugin plugins/action/launch_report.py does the work, on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: launch_report
short_description: Write the HTML report of a shadow launch
version_added: 0.1.0
description:
  - Writes one self-contained HTML page about a shadow launch to O(dest_dir) on the controller, named
    C(shadow-launch-<cluster>-<namespace>-<route>-<UTC time>.html); when that file exists (two clusters of a
    fleet in the same second, say) C(-2), C(-3), ... is added before C(.html), so a report never overwrites another.
  - The page states the cluster (its name, API server and kubeconfig context), the namespace, the route, the
    owner, the launch id, the start and end, and the gate's settings (O(gate)).
  - "The page shows: the outcome; per step, the shadow's and the main's request rate, 5xx share and p95
    latency over time (charts drawn as inline SVG from Prometheus range queries, O(series)), with step
    boundaries and every gate check marked; with the difference check (C(shadow_launch_compare)), its share
    of differing answers at every check and the JSON paths that differed; a table of every check with the
    numbers the gate judged; what
    was changed in the cluster and when; and who serves users at the end."
  - The page needs no network, no CDN and no JavaScript; it is readable in any browser and prints.
  - The P(darklaunch.traefik.shadow_launch#role) role calls it at the end of every launch, passed or rolled back,
    with the records it kept. Use it directly only to render a report from such records.
author:
  - darklaunch.traefik contributors (@darklaunch)
extends_documentation_fragment:
  - darklaunch.traefik.attributes
  - darklaunch.traefik.attributes.report_file
options:
  route_name:
    description: Name of the IngressRoute of the launch.
    type: str
    required: true
  namespace:
    description: Namespace of the IngressRoute.
    type: str
    default: default
  dest_dir:
    description: Directory on the controller the report is written to; created if missing.
    type: path
    default: .
  outcome:
    description: How the launch ended, in a few words (V(passed), V(rolled back), ...).
    type: str
    required: true
  summary:
    description: One or two sentences shown under the outcome.
    type: str
    default: ""
  steps:
    description:
      - Each step, as the role records it; C(percent), C(result) (V(ok), V(not judged), V(gate off),
        V(anomalous), ...), C(tally) (C(ok), C(anomalous), C(inconclusive) counts), C(start) and C(end)
        (seconds since the epoch, or ISO 8601 times).
    type: list
    elements: dict
    default: []
  checks:
    description:
      - Every gate check as the P(darklaunch.traefik.traffic#lookup) lookup's C(anomalies) term answered it,
        plus C(percent) and C(at) (the time of the check). The shadow's and the main's numbers are taken from
        its C(services) rows.
    type: list
    elements: dict
    default: []
  changes:
    description: What was changed in the cluster, each with C(at) and C(summary).
    type: list
    elements: dict
    default: []
  final_state:
    description: The route's distribution at the end, as M(darklaunch.traefik.traefik_traffic_info) returns it.
    type: dict
    default: {}
  series:
    description:
      - The charts' data, as the lookup's C(series) term returns it. C(request_rate), C(error_rate) and
        C(latency_p95), each with C(shadow) and C(main) lists of C([time, value]) points.
    type: dict
    default: {}
  compare_samples:
    description:
      - The comparator's redacted samples, as M(darklaunch.traefik.comparator_samples) returns them (C(available),
        C(message), C(by_path)). The table of differing paths shows the sample of each path; samples that could
        not be read are one line saying why. Empty means none were read.
    type: dict
    default: {}
  cluster:
    description:
      - The cluster the launch ran on, C(name) (in the file name; a fleet's host name, say), C(server) and
        C(context). Those not given are resolved from O(k8s_auth) as the modules resolve them; the name then
        defaults to the context, else the API server's host.
    type: dict
    default: {}
  k8s_auth:
    description: The connection options of the launch (as the modules take them), to name the cluster. Nothing is sent.
    type: dict
    default: {}
  owner:
    description: Who ran the launch.
    type: str
  launch_id:
    description: The launch's id.
    type: str
  gate:
    description:
      - The gate's settings the page states, by the role's variable names without C(shadow_launch_)
        (C(gate), C(steps), C(bake_seconds), C(interval), C(window), C(sigma), C(min_requests), C(failure_limit),
        C(inconclusive_limit), C(error_limit), C(fail_on_insufficient_data), C(lease_seconds)).
    type: dict
    default: {}
notes:
  - Runs on the controller (an action plugin); nothing is sent to a managed host.
"""

EXAMPLES = r"""
- name: Write the report of a launch from the role's records
  darklaunch.traefik.launch_report:
    route_name: api-service-route
    namespace: production
    dest_dir: /var/tmp/launch-reports
    outcome: passed
    steps: "{{ my_steps }}"
    checks: "{{ my_checks }}"
  register: report

- name: Say where it is
  ansible.builtin.debug:
    msg: "Report: {{ report.path }}"
"""

RETURN = r"""
path:
  description: Absolute path of the report on the controller.
  returned: always
  type: str
  sample: /var/tmp/launch-reports/shadow-launch-prod-eu-production-api-service-route-20261127T151200Z.html
size_bytes:
  description: Size of the page.
  returned: always
  type: int
  sample: 48213
summary:
  description: The launch in a few fields, what the role hands to C(set_stats) for AWX workflows.
  returned: always
  type: dict
  contains:
    route:
      description: IngressRoute name.
      type: str
    namespace:
      description: Its namespace.
      type: str
    outcome:
      description: How the launch ended.
      type: str
    steps:
      description: Each step's C(percent) and C(result).
      type: list
      elements: dict
    checks:
      description: How many gate checks ran.
      type: int
    anomalous_checks:
      description: How many of them were anomalous.
      type: int
    inconclusive_checks:
      description: How many of them were inconclusive.
      type: int
    cluster:
      description: The cluster's name (see O(cluster)).
      type: str
    launch_id:
      description: The launch's id.
      type: str
    owner:
      description: Who ran the launch.
      type: str
    started:
      description: When the first step started (RFC 3339 UTC), null when no step ran.
      type: str
    ended:
      description: When the last step ended, else when the report was written (RFC 3339 UTC).
      type: str
cluster:
  description: The cluster the report names, C(name), C(server) and C(context).
  returned: always
  type: dict
"""
