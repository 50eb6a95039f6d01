#!/usr/bin/python
# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: launch_control
short_description: Pause, resume or abort a running shadow launch
version_added: 0.1.0
description:
  - Gives an operator's command to the shadow launch running on a route, without stopping the process that
    runs it. The command is stored as annotations on the mirror TraefikService, beside the launch record
    that O(darklaunch.traefik.traefik_mirror#module:launch) keeps there; the launch reads it at every check.
  - V(pause) holds the current step. The paused launch keeps renewing its record and keeps judging the
    shadow (an anomaly still rolls it back), but does not pass to the next step until resumed.
  - V(resume) lets a paused launch carry on from the step it holds.
  - V(abort) makes the launch roll the route back (the IngressRoute restored exactly, the mirror deleted)
    and end.
  - The launch acts at its next check, so within one check interval of the command.
  - Refused, with nothing written, when no launch is recorded on the route's mirror (or there is no
    mirror), when the launch is abandoned (its deadline has passed, so nothing runs it any more; the message
    gives the command that rolls it back), and when V(pause) or V(resume) meets a launch that is already
    being aborted.
  - The command is stored as C(darklaunch.traefik/control) (V(paused) or V(aborted); absent while the launch
    runs), C(darklaunch.traefik/control-by) and C(darklaunch.traefik/control-at) (RFC 3339 UTC). Other
    annotations and labels of the mirror are kept. The write carries the resourceVersion that was read, so a
    concurrent change (such as the launch renewing its record) is never overwritten; the module reads the
    mirror again and retries, up to three times.
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
    details:
      - The diff shows the mirror's annotations before and after.
  idempotent:
    support: full
    details:
      - Pausing a paused launch, resuming a running one or aborting one that is being aborted writes nothing.
options:
  route_name:
    description:
      - Name of the IngressRoute the launch runs on, and the stem of the default O(mirror_name).
    type: str
    required: true
  namespace:
    description:
      - Namespace of the IngressRoute and its mirror.
    type: str
    default: default
  mirror_name:
    description:
      - Name of the mirroring TraefikService that holds the launch record. Default C({route_name}-mirror).
    type: str
  command:
    description:
      - V(pause) holds the launch at its current step; it keeps renewing its record and judging the shadow.
      - V(resume) lets a paused launch carry on.
      - V(abort) makes the launch roll the route back and end. A paused launch can be aborted.
    type: str
    choices: [pause, resume, abort]
    required: true
  by:
    description:
      - Who gives the command, for example C(alice@laptop via ansible-playbook) or C(AWX job 42); one line
        of at most 256 characters. Stored with the command and shown by the launch.
      - The playbooks C(shadow_pause.yml), C(shadow_resume.yml) and C(shadow_abort.yml) pass the AWX job or
        C(USER@hostname), as the launch records its own owner.
    type: str
requirements:
  - kubernetes >= 24.2.0
notes:
  - Only a launch that records itself on its mirror (the C(darklaunch.traefik.shadow_launch) role and
    C(playbooks/shadow_launch.yml)) reads these commands.
seealso:
  - module: darklaunch.traefik.traefik_mirror
  - module: darklaunch.traefik.traefik_traffic_info
"""

EXAMPLES = r"""
- name: Hold the launch on api-service-route at its current step
  darklaunch.traefik.launch_control:
    route_name: api-service-route
    namespace: production
    command: pause
    by: "alice@laptop via ansible-playbook"
  register: paused

- name: Say what the launch will do
  ansible.builtin.debug:
    msg: "{{ paused.msg }}"

- name: Let it carry on
  darklaunch.traefik.launch_control:
    route_name: api-service-route
    namespace: production
    command: resume
    by: "alice@laptop via ansible-playbook"

- name: Stop the launch; it rolls the route back at its next check
  darklaunch.traefik.launch_control:
    route_name: api-service-route
    namespace: production
    command: abort
    by: "AWX job {{ awx_job_id | default('manual') }}"

- name: Set the connection once for every module of the collection
  module_defaults:
    group/darklaunch.traefik.traefik:
      kubeconfig: /etc/kube/shadow-operator.yaml
      context: production
  block:
    - name: Pause with the shared connection settings
      darklaunch.traefik.launch_control:
        route_name: api-service-route
        namespace: production
        command: pause
"""

RETURN = r"""
msg:
  description: One sentence saying what the launch does now (or would do, in check mode).
  returned: always
  type: str
  sample: >-
    Launch 20251127T140211Z-3f9c2a (owner alice@laptop via ansible-playbook) on production/api-service-route is
    paused: from its next check it holds step 20% and keeps judging until resumed.
api_group:
  description: The Traefik API group of the mirror read and written (detected, or O(api_group)).
  returned: success
  type: str
  sample: traefik.io
mirror_name:
  description:
    - The mirroring TraefikService that holds the launch record (O(mirror_name), default C({route_name}-mirror)).
  returned: success
  type: str
  sample: api-service-route-mirror
launch:
  description:
    - The launch record on the mirror, as read. Timestamps are RFC 3339 UTC with milliseconds.
  returned: success
  type: dict
  contains:
    id:
      description: The launch id.
      type: str
    owner:
      description: Who or what runs the launch (null when not recorded).
      type: str
    route:
      description: The IngressRoute the launch runs on.
      type: str
    started:
      description: When the launch started.
      type: str
    step:
      description: The current step's percent (null when not recorded).
      type: int
    deadline:
      description: When the launch is reported as abandoned unless it renews its record.
      type: str
    renewed:
      description: When the launch last renewed its record.
      type: str
    progress:
      description: The launch's checks so far, in words (null when not recorded).
      type: str
  sample:
    id: 20251127T140211Z-3f9c2a
    owner: alice@laptop via ansible-playbook
    route: api-service-route
    started: "2025-11-27T14:02:11.318Z"
    step: 20
    deadline: "2025-11-27T14:12:40.007Z"
    renewed: "2025-11-27T14:02:40.007Z"
control:
  description:
    - The command in force after the run (planned, in check mode); null when the launch runs on (resumed).
  returned: success
  type: dict
  contains:
    state:
      description: V(paused) or V(aborted).
      type: str
    by:
      description: Who gave it (O(by)); null when not given.
      type: str
    at:
      description: When it was given, RFC 3339 UTC.
      type: str
  sample:
    state: paused
    by: alice@laptop via ansible-playbook
    at: "2025-11-27T14:05:02.114Z"
previous_control:
  description: The command in force before the run, same shape as RV(control); null when the launch was running.
  returned: success
  type: dict
diff:
  description: The mirror's annotations before and after, in diff mode.
  returned: when diff mode is on
  type: dict
"""

from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._argspec import route_spec, with_auth
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s import KubeClient
from ansible_collections.darklaunch.traefik.plugins.module_utils._kube_module import kube_module
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_control_runner import run_control
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import TRAEFIK_GROUPS


def argument_spec() -> dict[str, Any]:
    return with_auth(
        {
            **route_spec(),
            "mirror_name": {"type": "str"},
            "command": {"type": "str", "choices": ["pause", "resume", "abort"], "required": True},
            "by": {"type": "str"},
            "api_group": {"type": "str", "choices": list(TRAEFIK_GROUPS)},
        }
    )


def main() -> None:
    module = kube_module(argument_spec())
    try:
        client = KubeClient.from_params(module.params)
        run = run_control(client, module.params, check_mode=module.check_mode)
    except DarklaunchError as error:
        module.fail_json(**error.fail_kwargs())
    plan = run.plan
    result: dict[str, Any] = {
        "changed": plan.changed,
        "msg": plan.msg,
        "api_group": run.api_group,
        "mirror_name": run.target.mirror_name,
        "launch": plan.record.to_dict(),
        "control": plan.control.to_dict() if plan.control else None,
        "previous_control": plan.previous.to_dict() if plan.previous else None,
    }
    if module._diff:
        result["diff"] = {
            "before": {"annotations": plan.annotations_before},
            "after": {"annotations": plan.annotations_after},
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
