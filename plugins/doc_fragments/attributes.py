# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attribute documentation for the collection's modules.

Modules extend ``darklaunch.traefik.attributes`` (the descriptions) plus the variants that state their
support: ``.info_module`` for read-only modules, ``.report_file`` for the report writers, ``.converges`` for
modules that converge Kubernetes objects without a diff, and ``.actiongroup_traefik`` for ``module_defaults``.
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying target.
  diff_mode:
    description:
      - Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode with the same arguments, the second run reports no change.
      - This assumes nothing else changed the objects concerned in between.
"""

    # For modules that only read; use together with DOCUMENTATION.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
  idempotent:
    support: full
    details:
      - This action does not modify state.
"""

    # For the report writers (launch_report, fleet_report); use together with DOCUMENTATION.
    REPORT_FILE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - Says where the report would be written, and writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - Every run writes a new file, named after the time.
"""

    # For modules that converge Kubernetes objects to their options and report no diff (comparator,
    # launch_report_store); use together with DOCUMENTATION.
    CONVERGES = r"""
options: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
"""

    ACTIONGROUP_TRAEFIK = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/darklaunch.traefik.traefik) in C(module_defaults) to set defaults, such as the
      Kubernetes connection options, for this module and the collection's other modules.
    support: full
    membership:
      - darklaunch.traefik.traefik
"""
