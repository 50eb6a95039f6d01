# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of ``darklaunch.traefik.playbook_inputs`` (documented in plugins/modules/playbook_inputs.py).

The first task of every playbook of the collection: refuses the extra vars the playbook does not take (the
rules are in ``plugin_utils/_playbook_inputs``), gathers the connection options given as extra vars, and says
which cluster (API server, context) and namespace the run acts on. Runs on the controller; it reads the
kubeconfig but sends no request.
"""

from __future__ import annotations

import json
from typing import Any

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.parsing.dataloader import DataLoader
from ansible.utils.display import Display
from ansible.utils.vars import load_extra_vars

from ansible_collections.darklaunch.traefik.plugins.module_utils._argspec import auth_argument_spec
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s_auth import (
    HAS_KUBERNETES,
    build_configuration,
    kubernetes_missing_error,
    resolve_auth_options,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._kubeconfig_context import (
    default_kubeconfig,
    kubeconfig_context,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._redact import auth_secrets, prometheus_secrets, scrub
from ansible_collections.darklaunch.traefik.plugins.plugin_utils import _playbook_inputs as inputs
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._controller_action import ControllerAction

display = Display()


def argument_spec() -> dict[str, Any]:
    return {
        "playbook": {"type": "str", "required": True, "choices": sorted(inputs.PLAYBOOKS)},
        "k8s_auth": {"type": "dict", "default": {}},
        "cluster_wide": {"type": "bool", "default": False},
        "say": {"type": "bool", "default": True},
    }


class ActionModule(ControllerAction):
    spec = staticmethod(argument_spec)

    def run(self, tmp: str | None = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result, params = self.start(tmp, task_vars)
        task_vars = task_vars or {}
        # Only what was given with -e (ansible-playbook's or ansible-runner's): inventory and play variables
        # of the same names (a group's "proxy", say) are not this collection's to read.
        extra_names = sorted(str(name) for name in load_extra_vars(DataLoader()))
        secrets: set[str] = set()
        try:
            inputs.judge_extra_vars(params["playbook"], extra_names)
            given = {name: self._templar.template(task_vars[name]) for name in extra_names if name in task_vars}
            auth = {**dict(params["k8s_auth"] or {}), **_typed(inputs.connection_extra_vars(given))}
            auth = json.loads(json.dumps(auth))  # plain Python values, as a module would receive them
            # A fleet's clusters may each set launch variables as host vars; any other playbook reads only -e.
            launch_source = given
            if params["playbook"] in inputs.HOST_VARS_PLAYBOOKS:
                launch_source = self._host_launch_vars(task_vars, params["playbook"])
            # Survey text (metrics, ...) parsed once: the role gets it parsed, and so does the playbook (answers).
            known = inputs.known_names(params["playbook"])
            answers = inputs.text_answers({name: value for name, value in launch_source.items() if name in known})
            launch_source = {**launch_source, **answers}
            prometheus_auth = json.loads(json.dumps(inputs.prometheus_extra_vars(launch_source)))
            secrets = auth_secrets(auth) | prometheus_secrets(prometheus_auth)
            target = self._target(auth, task_vars.get(inputs.NAMESPACE_VAR))
            cluster_wide = params["cluster_wide"] and target.namespace_source != inputs.NAMESPACE_VAR
            if cluster_wide and not self._templar.template(task_vars.get("route_name")):
                target = inputs.Target(target.server, target.context, "", inputs.EVERY_NAMESPACE)
            role_vars = (
                inputs.launch_role_vars(launch_source, target.namespace, auth, prometheus_auth)
                if params["playbook"] in inputs.LAUNCH_PLAYBOOKS
                else {}
            )
        except DarklaunchError as error:
            result.update(failed=True, changed=False, msg=scrub(error.msg, secrets))
            if error.field is not None:
                result["field"] = error.field
            return result
        message = f"playbooks/{params['playbook']}.yml acts on {target.describe()}."
        if params["say"]:
            display.display(message)
        result.update(
            changed=False,
            msg=message,
            k8s_auth=auth,
            prometheus_auth=prometheus_auth,
            role_vars=role_vars,
            answers=answers,
            namespace=target.namespace,
            namespace_source=target.namespace_source,
            namespace_given=target.namespace_source == inputs.NAMESPACE_VAR,
            server=target.server,
            context=target.context,
        )
        secret = bool(secrets) or any(isinstance(value, dict) for value in [*auth.values(), *prometheus_auth.values()])
        result["k8s_auth_secret"] = secret
        if secret:
            # The connection options are for the modules and the gate, not for the screen or AWX's job events.
            result["_ansible_no_log"] = True
        return result

    def _host_launch_vars(self, task_vars: dict[str, Any], playbook: str) -> dict[str, Any]:
        """The playbook's variables this host has, from -e or its host and group vars, templated."""
        names = inputs.known_names(playbook) - inputs.CONNECTION
        return {name: self._templar.template(task_vars[name]) for name in sorted(names) if name in task_vars}

    def _target(self, auth: dict[str, Any], given_namespace: Any) -> inputs.Target:
        if not HAS_KUBERNETES:
            raise kubernetes_missing_error()
        resolved = resolve_auth_options(auth)
        context, context_namespace = kubeconfig_context(resolved, default_kubeconfig())
        server = str(build_configuration(resolved).host)
        in_cluster = inputs.in_cluster_namespace() if context is None else None
        namespace, source = inputs.choose_namespace(
            self._templar.template(given_namespace), context, context_namespace, in_cluster
        )
        return inputs.Target(server, context, namespace, source)


def _typed(options: dict[str, Any]) -> dict[str, Any]:
    """Extra vars arrive as text (``-e validate_certs=false``): the modules' own types, refused by name."""
    spec = auth_argument_spec()
    checked = ArgumentSpecValidator(spec).validate(options)
    if checked.error_messages:
        raise DarklaunchError(
            "connection extra vars: " + "; ".join(checked.error_messages), field=next(iter(options), None)
        )
    return {
        name: value for name, value in checked.validated_parameters.items() if name in options and value is not None
    }
