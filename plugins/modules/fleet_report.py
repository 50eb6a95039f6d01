#!/usr/bin/python
# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

# Documentation only: the action plugin plugins/action/fleet_report.py does the work, on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet_report
short_description: Write the HTML report of a shadow launch across a fleet of clusters
version_added: 0.1.0
description:
  - Writes one self-contained HTML page about a fleet launch to O(dest_dir) on the controller, named
    C(shadow-launch-fleet-<namespace>-<route>-<UTC time>.html).
  - "The page shows: the fleet's outcome (failed when any cluster failed) and, per cluster in wave order,
    how its launch ended and why, where its users go now, and a link to that cluster's own launch report
    (see M(darklaunch.traefik.launch_report))."
  - The page needs no network and no JavaScript.
  - The fleet playbook C(darklaunch.traefik.shadow_launch_fleet) calls it once at the end, whatever the
    outcome. Use it directly only to render a report from such records.
author:
  - darklaunch.traefik contributors (@darklaunch)
extends_documentation_fragment:
  - darklaunch.traefik.attributes
  - darklaunch.traefik.attributes.report_file
options:
  route_name:
    description: Name of the IngressRoute launched on every cluster.
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
  clusters:
    description:
      - One entry per cluster, in wave order, as the fleet playbook records it.
      - C(cluster) (its name), C(result) (V(launched), V(passed and torn down), V(rolled back),
        V(not started), ...), C(failed) (boolean), C(cause) (why it failed or did not start),
        C(now) (where its users go now, in words) and C(report_path) (its launch report, if one was written).
    type: list
    elements: dict
    required: true
notes:
  - Runs on the controller (an action plugin); nothing is sent to a managed host.
"""

EXAMPLES = r"""
- name: Write the fleet report
  darklaunch.traefik.fleet_report:
    route_name: api-service-route
    namespace: production
    dest_dir: /var/tmp/launch-reports
    clusters:
      - cluster: eu-canary
        result: rolled back
        failed: true
        cause: "Anomaly gate at 20%: anomalous."
        now: All requests go to api-service-stable.
        report_path: /var/tmp/launch-reports/shadow-launch-production-api-service-route-20261127T151200Z.html
      - cluster: eu-main
        result: not started
        failed: false
        cause: eu-canary failed in an earlier wave
  register: fleet_page
"""

RETURN = r"""
path:
  description: Absolute path of the report on the controller.
  returned: always
  type: str
  sample: /var/tmp/launch-reports/shadow-launch-fleet-production-api-service-route-20261127T151300Z.html
size_bytes:
  description: Size of the page.
  returned: always
  type: int
  sample: 2841
summary:
  description: The fleet in a few fields.
  returned: always
  type: dict
  contains:
    clusters:
      description: How many clusters the fleet has.
      type: int
    failed:
      description: The clusters whose launch failed.
      type: list
      elements: str
    not_started:
      description: The clusters that did not start, an earlier wave having failed.
      type: list
      elements: str
    outcome:
      description: V(failed) when any cluster failed, else V(passed).
      type: str
"""
