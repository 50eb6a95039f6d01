# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: traffic
short_description: Traffic distribution, mirrors, IngressRoute targets and anomalies of Traefik routes
version_added: 0.1.0
description:
  - Answers "what does the cluster think" and "does the shadow look healthy" from inside a template or
    a C(when:) condition.
  - V(distribution) resolves O(route_name) to its traffic split (direct, weighted or mirror), main sink,
    user shares, shadow copies and a one-sentence explanation.
  - V(routes) lists every mirroring TraefikService (main service, ports, percent copied, active or not,
    and the launch recorded on it by M(darklaunch.traefik.traefik_mirror)), and the launches whose process
    stopped renewing their deadline (C(abandoned_launches)), each with the command that rolls it back.
  - V(ingressroutes) lists every IngressRoute with the live targets of each route.
  - V(anomalies) judges Traefik's Prometheus metrics. Per route (O(route_name) and O(namespace)) it
    compares each shadow backend with the main backend over the same window (5xx share with a
    two-proportion z-test; mean and p95 latency) and each backend with its own recent history (request
    rate, error rate, latency). Only the route(s) of the IngressRoute that carry the mirror are judged;
    the backends of its other routes (a C(/health) route, a second host) are checked against their own
    history for information (role C(other_route), listed under C(informational)) and never change the
    verdict. Without O(route_name) it checks every service Traefik reports, with a
    constant number of PromQL queries. Too little data is V(insufficient_data), never V(ok).
  - Returns one dict per term. O(query) applies a JMESPath expression to each result.
author:
  - darklaunch.traefik contributors (@darklaunch)
options:
  _terms:
    description: What to return.
    required: true
    type: list
    elements: str
    choices: [distribution, routes, ingressroutes, anomalies]
  route_name:
    description:
      - IngressRoute name. Required for V(distribution); optional for V(anomalies) (omit for cluster-wide).
    type: str
  namespace:
    description:
      - Namespace. Omit to read all namespaces for V(routes), V(ingressroutes) and V(anomalies).
    type: str
  api_group:
    description: API group of the Traefik CRDs. Default detect.
    type: str
    choices: [traefik.io, traefik.containo.us]
  query:
    description:
      - A JMESPath expression applied to each result, for example C(mirrors[?percent > `10`].name).
    type: str
  sigma:
    description:
      - Anomaly threshold in standard deviations (z-score). A comparison is an anomaly (V(warning)) from
        this z-score and V(critical) from twice it.
      - Cluster-wide (no O(route_name)) every service is compared three times, so the threshold each
        comparison must reach is raised (Bonferroni) until the chance of a false alarm anywhere in the
        answer equals that of one O(sigma) comparison; for example sigma 2 over 1,000 services (3,000
        comparisons) becomes z 4.3. The answer reports it as C(sigma_applied).
    type: float
    default: 2.0
    env:
      - name: DARKLAUNCH_SIGMA
  window:
    description: The window judged, as a Prometheus duration (C(30s), C(5m), C(1h)).
    type: str
    default: 5m
  history_windows:
    description: How many earlier windows of the same length form each service's baseline.
    type: int
    default: 6
  min_requests:
    description: Fewer requests than this for a service in the window gives V(insufficient_data) for it.
    type: int
    default: 100
extends_documentation_fragment:
  - darklaunch.traefik.k8s_auth.plugins
  - darklaunch.traefik.k8s_auth.prometheus
notes:
  - The Prometheus metrics must come from Traefik with C(--metrics.prometheus=true) and service labels on
    (the default).
seealso:
  - module: darklaunch.traefik.traefik_traffic_info
  - module: darklaunch.traefik.traefik_mirror
"""

EXAMPLES = r"""
- name: Plain-language view of one route
  ansible.builtin.debug:
    msg: >-
      {{ lookup('darklaunch.traefik.traffic', 'distribution',
                route_name='api-service-route', namespace='production').explanation }}

- name: Names of mirrors copying more than 10%
  ansible.builtin.debug:
    msg: >-
      {{ lookup('darklaunch.traefik.traffic', 'routes', namespace='production',
                query='mirrors[?percent > `10`].name') }}

- name: Stop when a launch on this cluster was abandoned (its process was interrupted or killed)
  ansible.builtin.assert:
    that: abandoned | length == 0
    fail_msg: "{{ abandoned | map(attribute='message') | list }}"
  vars:
    abandoned: "{{ lookup('darklaunch.traefik.traffic', 'routes', namespace='production').abandoned_launches }}"

- name: Anomaly check for one route with a 2 sigma threshold
  ansible.builtin.set_fact:
    check: >-
      {{ lookup('darklaunch.traefik.traffic', 'anomalies', route_name='api-service-route',
                namespace='production', sigma=2, prometheus_url='http://prometheus.monitoring:9090') }}

- name: Stop when the shadow misbehaves
  ansible.builtin.assert:
    that: check.verdict != 'anomalous'
    fail_msg: "{{ check.summary }}"

- name: Anything flagged cluster-wide right now?
  ansible.builtin.debug:
    msg: "{{ lookup('darklaunch.traefik.traffic', 'anomalies').summary }}"
"""

RETURN = r"""
_raw:
  description:
    - One dict per term. V(distribution) is the same dict as the C(distribution) return of
      M(darklaunch.traefik.traefik_traffic_info); V(routes) is C({mirrors, weighted, abandoned_launches}),
      the same lists as that module returns; V(ingressroutes) is
      C({ingress_routes}); V(anomalies) is C({verdict, summary, anomalies, informational, insufficient_data,
      services, window, sigma, sigma_applied, comparisons, queries}). Each C(services) row has C(service),
      C(name), C(role) (V(main), V(shadow), V(service) or V(other_route)), C(compared_to), C(requests),
      C(request_rate), C(error_rate), C(latency_mean), C(latency_p95) and C(checks).
    - With O(query), whatever the JMESPath expression selects.
  type: list
  elements: raw
"""

import traceback
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.darklaunch.traefik.plugins.module_utils._anomaly_check import check_anomalies
from ansible_collections.darklaunch.traefik.plugins.module_utils._argspec import auth_argument_spec
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s import HAS_KUBERNETES, KubeClient
from ansible_collections.darklaunch.traefik.plugins.module_utils._prometheus import PrometheusClient
from ansible_collections.darklaunch.traefik.plugins.module_utils._redact import (
    auth_secrets,
    prometheus_secrets,
    scrub,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._traffic_view import (
    anomaly_targets,
    read_distribution,
    read_traffic,
    validate_scope,
)

try:
    import jmespath

    HAS_JMESPATH = True
except ImportError:  # pragma: no cover - exercised only where jmespath is missing
    HAS_JMESPATH = False

TERMS = ("distribution", "routes", "ingressroutes", "anomalies")
_PROMETHEUS_OPTION_NAMES = ("prometheus_url", "prometheus_token", "prometheus_password", "prometheus_headers")


def _full_text(error: BaseException) -> str:
    """The error's message and those of every exception chained to it, as a traceback would show them."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


class LookupModule(LookupBase):  # type: ignore[misc]  # ansible-core ships no type information
    def run(self, terms: list[Any], variables: Mapping[str, Any] | None = None, **kwargs: Any) -> list[Any]:
        try:
            return self._run(terms, variables, kwargs)
        except Exception as error:
            # Lookups have no no_log_values: an error that quotes a credential (a kubeconfig loader or
            # server message) is masked here, and raised without its cause so the traceback shown at -vvv
            # cannot quote it either.
            secrets = self._secrets(kwargs)
            if not any(secret in _full_text(error) for secret in secrets):
                raise
            raise AnsibleLookupError(scrub(str(error), secrets)) from None

    def _secrets(self, direct: Mapping[str, Any]) -> set[str]:
        """The secret option values, as given directly and as resolved (variables, environment)."""
        options: dict[str, Any] = {}
        for name in (*auth_argument_spec(), *_PROMETHEUS_OPTION_NAMES):
            try:
                options[name] = self.get_option(name)
            except Exception:  # set_options failed or the option is not defined: only direct values are known
                options[name] = None
        secrets = set()
        for source in (direct, options):
            secrets |= auth_secrets(source) | prometheus_secrets(source)
        return secrets

    def _run(self, terms: list[Any], variables: Mapping[str, Any] | None, kwargs: dict[str, Any]) -> list[Any]:
        self._refuse_unknown_options(kwargs)
        self.set_options(var_options=variables, direct=kwargs)
        self._validate(terms)
        try:
            results = [self._answer(str(term)) for term in terms]
        except DarklaunchError as error:
            # Not chained: Ansible appends a cause's text, here the API's raw HTTP response.
            raise AnsibleLookupError(str(error)) from None
        query = self.get_option("query")
        if query:
            results = [self._apply_query(query, result) for result in results]
        return results

    def _refuse_unknown_options(self, options: Mapping[str, Any]) -> None:
        # Ansible's config system ignores unknown direct options, so a typo (namspace=...) would silently
        # widen the answer to every namespace.
        known: set[str] = set()
        for name, definition in self.option_definitions.items():
            known.add(name)
            known.update(definition.get("aliases") or ())
        unknown = sorted(set(options) - known)
        if unknown:
            raise AnsibleLookupError(
                f"unknown option {', '.join(unknown)}: see ansible-doc -t lookup darklaunch.traefik.traffic "
                "for the options (route_name, namespace, query, ...)."
            )

    def _validate(self, terms: list[Any]) -> None:
        if not terms:
            raise AnsibleLookupError(f"darklaunch.traefik.traffic needs a term: one of {', '.join(TERMS)}.")
        unknown = [str(term) for term in terms if term not in TERMS]
        if unknown:
            raise AnsibleLookupError(
                f"unknown term {', '.join(unknown)}: darklaunch.traefik.traffic answers {', '.join(TERMS)}."
            )
        if "distribution" in terms and not self.get_option("route_name"):
            raise AnsibleLookupError("the distribution term needs route_name (and namespace).")
        if self.get_option("query") and not HAS_JMESPATH:
            raise AnsibleLookupError("the query option needs the jmespath Python library: pip install jmespath")
        if not HAS_KUBERNETES:
            raise AnsibleLookupError("the kubernetes Python library is required: pip install kubernetes")
        try:
            validate_scope(self.get_option("namespace"), self.get_option("route_name"))
        except DarklaunchError as error:
            raise AnsibleLookupError(str(error)) from error

    def _kube(self) -> KubeClient:
        if not hasattr(self, "_client"):
            auth = {name: self.get_option(name) for name in auth_argument_spec()}
            self._client = KubeClient.from_params(auth)
        return self._client

    def _answer(self, term: str) -> Any:
        namespace = self.get_option("namespace")
        route_name = self.get_option("route_name")
        api_group = self.get_option("api_group")
        if term == "distribution":
            return read_distribution(
                self._kube(), namespace=namespace, route_name=route_name, api_group=api_group
            ).to_dict()
        if term == "anomalies":
            return self._anomalies(namespace, route_name, api_group)
        view = read_traffic(self._kube(), namespace=namespace, api_group=api_group)
        if term == "routes":
            return {
                "api_group": view["api_group"],
                "mirrors": view["mirrors"],
                "weighted": view["weighted"],
                "abandoned_launches": view["abandoned_launches"],
            }
        return {"api_group": view["api_group"], "ingress_routes": view["ingress_routes"]}

    def _anomalies(self, namespace: str | None, route_name: str | None, api_group: str | None) -> dict[str, Any]:
        targets = None
        route = None
        if route_name:
            distribution = read_distribution(
                self._kube(), namespace=namespace or "", route_name=route_name, api_group=api_group
            )
            targets = anomaly_targets(distribution)
            route = {"route": route_name, "namespace": namespace, "explanation": distribution.explanation}
        report = check_anomalies(
            self._prometheus(),
            targets,
            sigma=self.get_option("sigma"),
            window=self.get_option("window"),
            history_windows=self.get_option("history_windows"),
            min_requests=self.get_option("min_requests"),
        )
        if route is not None:
            report["route"] = route
        return report

    def _prometheus(self) -> PrometheusClient:
        url = self.get_option("prometheus_url")
        if not url:
            raise DarklaunchError(
                "the anomalies term needs Prometheus: set prometheus_url or the PROMETHEUS_URL environment variable.",
                field="prometheus_url",
            )
        return PrometheusClient(
            url,
            token=self.get_option("prometheus_token"),
            username=self.get_option("prometheus_username"),
            password=self.get_option("prometheus_password"),
            validate_certs=self.get_option("prometheus_validate_certs"),
            ca_cert=self.get_option("prometheus_ca_cert"),
        )

    @staticmethod
    def _apply_query(query: str, result: Any) -> Any:
        try:
            return jmespath.search(query, result)
        except jmespath.exceptions.JMESPathError as error:
            raise AnsibleLookupError(f"query {query!r} is not a valid JMESPath expression: {error}") from error
