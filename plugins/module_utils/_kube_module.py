# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The start every module that talks to Kubernetes shares: its options checked, its credentials masked."""

from __future__ import annotations

from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s import HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR
from ansible_collections.darklaunch.traefik.plugins.module_utils._redact import auth_secrets


def kube_module(argument_spec: dict[str, Any], **options: Any) -> AnsibleModule:
    """An AnsibleModule (check mode supported) whose connection secrets (kubeconfig dict credentials, passwords in
    URLs) are masked in every output; it fails, naming the library, when the kubernetes client is missing."""
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, **options)
    module.no_log_values.update(auth_secrets(module.params))
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)
    return module
