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
  - V(httproutes) lists every Gateway API HTTPRoute (or the one O(route_name) names) rule by rule, each rule with
    its live targets and one plain sentence - who answers users, what is copied and at what percent - in the words
    of V(distribution), so a split over backendRefs and a mirror put in front of a rule by
    M(darklaunch.traefik.traefik_mirror) read as they do on an IngressRoute.
  - V(anomalies) judges Traefik's Prometheus metrics. Per route (O(route_name) and O(namespace)), while the
    route mirrors to a shadow, what decides the verdict is the shadow against its main backend over the same
    window, so the same users' traffic - 6 comparisons - (1) the copies it completed against what the mirror's
    percentage predicts, once that percentage has held a whole window (fewer than a quarter of them is a shadow
    that hangs or refuses connections), (2) the
    5xx share and (3) the 4xx share (O(client_error_codes)), two-proportion z-tests, (4) the mean latency and
    the (5) p95 and (6) p99 tails; and the 5xx share of the shadow and of the main against their own recent
    history. A main backend's request rate and the latency histories move with the users' traffic (peaks,
    batch jobs, failovers), not with the launch; they are listed under C(informational) and never change the
    verdict. Without a shadow on the route, and cluster-wide, each backend is judged against its own
    history (request rate, where a drop is an anomaly, error rate, latency).
  - Only the route(s) of the IngressRoute that carry the mirror are judged; the backends of its other
    routes (a C(/health) route, a second host) are checked against their own history for information (role
    C(other_route), listed under C(informational)) and never change the verdict.
  - All deciding comparisons share one false-alarm budget (O(sigma), O(checks_per_step)). Without
    O(route_name) it checks every service Traefik reports, with a constant number of PromQL queries (4). Too
    little data is V(insufficient_data), never V(ok).
  - With O(metrics), custom checks written in PromQL (p99 latency, a business metric, any exporter's
    series) are judged in the same answer; each costs its own queries only (1, or 2 for a comparison).
  - O(prometheus_selector) narrows every query, built-in and custom, to one set of series of a shared
    Prometheus. Each query the lookup sends is shown at C(-vvv) (never a credential or header).
  - V(series) returns the shadow's and the main's request rate, 5xx share and p95 latency of O(route_name)
    over time, from O(start) to O(end) (Prometheus range queries over O(window), at most 240 points each),
    for charts such as the M(darklaunch.traefik.launch_report) page.
  - Returns one dict per term. O(query) applies a JMESPath expression to each result.
author:
  - darklaunch.traefik contributors (@darklaunch)
options:
  _terms:
    description: What to return.
    required: true
    type: list
    elements: str
    choices: [distribution, routes, ingressroutes, httproutes, anomalies, series]
  route_name:
    description:
      - IngressRoute (or HTTPRoute, see O(route_kind)) name. Required for V(distribution); optional for
        V(anomalies) (omit for cluster-wide).
      - With V(routes) or V(ingressroutes), narrows the answer to that route (the TraefikServices it reaches
        and its default mirror C(<route_name>-mirror)), read by name instead of listing the namespace.
        C(referenced_by) and C(active) then count that route only.
      - With V(httproutes), the HTTPRoute of that name, read by name with the TraefikServices it reaches.
    type: str
  namespace:
    description:
      - Namespace. Omit to read all namespaces for V(routes), V(ingressroutes), V(httproutes) and V(anomalies).
    type: str
  route_kind:
    description:
      - What O(route_name) names. Unset, the IngressRoute of that name, else the HTTPRoute when only an HTTPRoute
        has that name.
      - An HTTPRoute is described rule by rule in the same sentences as an IngressRoute (V(distribution),
        V(routes)). With V(anomalies), the targets are the backends of the rule(s) on its mirror, reached through
        TraefikServices, so their series carry the CRD provider's C(<ns>-<svc>-<port>@kubernetescrd) label; the
        answer's C(route.label_form) says so. A rule's own backendRefs are named by Traefik's Gateway provider in
        a form that changed across releases and are not judged; the main services' history from before the attach
        is read under those labels, whichever release's form matches (C(history_from)).
    type: str
    choices: [IngressRoute, HTTPRoute]
  query:
    description:
      - A JMESPath expression applied to each result, for example C(mirrors[?percent > `10`].name).
    type: str
  sigma:
    description:
      - The false-alarm budget, as a z-score. The chance that a healthy route (or, with O(checks_per_step), a
        healthy step of a launch) gets an V(anomalous) answer is at most the one-sided normal tail of
        O(sigma). At the default 2 that is 2.3%; 2.33 is 1%; 3 is 0.13%. The answer reports it as
        C(false_alarm_budget).
      - Every comparison that can decide the verdict, times O(checks_per_step), shares that budget
        (Bonferroni), so each is tested at a higher z, reported as C(sigma_applied) with C(comparisons).
        For example one shadow and its main (8 deciding comparisons) over 5 checks per step is z 3.3 each;
        cluster-wide, 1,000 services (3,000 comparisons) is z 4.3. A comparison is an anomaly (V(warning))
        from that z and V(critical) from twice it.
      - Which comparisons decide is in the V(anomalies) term's description.
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
  checks_per_step:
    description:
      - How many answers share the O(sigma) false-alarm budget. The launch's gate passes its checks per step
        (bake / interval), so that a healthy step, not each check, is rolled back with a chance of at most
        the budget.
    type: int
    default: 1
  client_error_codes:
    description:
      - The answers that count as client errors in the V(anomalies) term's shadow-vs-main comparison, as classes
        (C(4xx)) or codes (C(404), C(429)). An empty list turns that comparison off.
    type: list
    elements: str
    default: [4xx]
  mirror_since:
    description:
      - For the V(anomalies) term, the Unix time (seconds) at which the route's mirror got its current
        percentage (the launch's gate passes its step's start). The copies a shadow completed are judged
        against its percentage only once that percentage has held a whole O(window). Omit when it has.
    type: float
  metrics:
    description:
      - Custom checks for the V(anomalies) term, judged in the same answer as the built-in ones; needs
        O(route_name) (they judge the route's shadow).
      - Each item has a O(metrics[].name), a PromQL O(metrics[].query) and exactly one rule,
        O(metrics[].max) or O(metrics[].min) (a threshold on the query's value), or O(metrics[].max_ratio) or
        O(metrics[].max_increase) (the same query run for the shadow and for the main service, compared).
      - "Placeholders in O(metrics[].query): C($shadow) and C($main) (Traefik C(service) label values, as a
        regex alternation: use them with C(=~)), C($namespace), C($route) and C($window) (O(window)).
        C(${shadow}) works too. Jinja braces would be templated by Ansible first, hence the dollar signs."
      - For O(metrics[].max_ratio) and O(metrics[].max_increase) the query is written for the shadow; the
        main service's run puts the main's label where C($shadow) is.
      - The query must return one series. An error from Prometheus (a typo in the PromQL) makes the check
        V(error); no data, NaN or several series make it V(inconclusive). Neither ever passes, so the
        whole verdict is not V(ok) then.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the check, shown in the report and in messages. Unique.
        type: str
        required: true
      query:
        description: PromQL giving one value (an instant vector of one series, or a scalar).
        type: str
        required: true
      description:
        description: Free text shown with the check.
        type: str
      max:
        description: Anomalous when the value is above this.
        type: float
      min:
        description: Anomalous when the value is below this.
        type: float
      max_ratio:
        description:
          - Anomalous when shadow value / main value is above this (and a shadow value above 0 against 0).
        type: float
      max_increase:
        description: Anomalous when shadow value - main value is above this.
        type: float
  compare_max_diff_rate:
    description:
      - For the V(anomalies) term of a route, the difference check on the route's comparator (docs/comparator.md),
        judged beside the built-in checks, as a share (C(0.01) is 1%). Omit to leave it off.
      - It reads C(darklaunch_compare_requests_total) with C(darklaunch_route="NAMESPACE/ROUTE") (the comparator's
        C(--route)) over O(window); the share of compared answers (C(same), C(different), C(noise)) that are
        C(different) above this is V(anomalous). Fewer compared answers than O(min_requests), or no series
        at all, is V(inconclusive) and the answer is not V(ok).
    type: float
  start:
    description:
      - For V(series), the start of the time range, in seconds since the epoch (UTC). Default 15 minutes
        before O(end).
    type: float
  end:
    description: For V(series), the end of the time range, in seconds since the epoch. Default now.
    type: float
  service_labels:
    description:
      - For V(series), the Traefik C(service) label values of each side, a dict with keys C(shadow) and C(main)
        each holding a list, for example those of the C(services) rows of an earlier V(anomalies) answer. Needed
        once the launch is over (the route no longer carries the mirror). Default the route's current shadow and
        main.
    type: dict
extends_documentation_fragment:
  - darklaunch.traefik.k8s_auth.plugins
  - darklaunch.traefik.k8s_auth.api_group
  - darklaunch.traefik.prometheus
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

- name: Each HTTPRoute rule of the namespace in one sentence
  ansible.builtin.debug:
    msg: >-
      {{ lookup('darklaunch.traefik.traffic', 'httproutes', namespace='production',
                query='http_routes[].rules[].explanation') }}

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

- name: Custom checks beside the built-in ones, on a Prometheus shared by several clusters
  ansible.builtin.set_fact:
    check: >-
      {{ lookup('darklaunch.traefik.traffic', 'anomalies', route_name='shop-route', namespace='shop',
                prometheus_url='https://mimir.example.com/prometheus',
                prometheus_headers={'X-Scope-OrgID': 'platform'},
                prometheus_selector='cluster="prod-eu"',
                metrics=shop_checks) }}
  vars:
    shop_checks:
      - name: p99 latency
        query: >-
          histogram_quantile(0.99, sum by (le)
          (rate(traefik_service_request_duration_seconds_bucket{service=~"$shadow"}[$window])))
        max: 0.5
      - name: orders per second
        query: sum(rate(shop_orders_created_total{namespace="$namespace", version="canary"}[$window]))
        min: 1
      - name: retries
        query: sum(increase(traefik_service_retries_total{service=~"$shadow"}[$window]))
        max_increase: 5
      - name: open connections
        query: sum(traefik_open_connections{entrypoint="websecure"})
        max: 1000

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
      C({ingress_routes}) (C({ingress_routes, http_routes}) when HTTPRoutes were found); V(httproutes) is
      C({api_group, http_routes}), each HTTPRoute C({name, namespace, gateways, hostnames, attached_by_darklaunch,
      explanation, rules}) and each rule C({index, match, filters, targets, explanation, traffic_split}); V(anomalies)
      is C({verdict, summary, anomalies, informational, insufficient_data,
      services, window, sigma, sigma_applied, comparisons, checks_per_step, false_alarm_budget,
      client_error_codes, queries, builtin_queries}), plus C(metrics) with O(metrics), C(compare) with
      O(compare_max_diff_rate) (C({name, verdict, value, rule, compared, min_requests, results, top_paths, route,
      window, message, query, queries}), C(reason) when V(inconclusive)), C(selector) with
      O(prometheus_selector), and C(methods) when the route's mirror copies only some HTTP methods
      (traefik_mirror's mirror_methods), in which case the built-in checks count the requests of those methods
      only, the main's as the shadow's (Traefik's C(method) label; custom checks are left as written).
      Each C(services) row has C(service), C(name), C(role) (V(main), V(shadow),
      V(service) or V(other_route)), C(compared_to), C(requests), C(request_rate), C(error_rate),
      C(client_error_rate), C(latency_mean), C(latency_p95), C(latency_p99) and C(checks). Each anomaly has a
      C(metric) (V(delivery), V(error_rate), V(client_error_rate), V(latency_mean), V(latency_p95),
      V(latency_p99) or V(request_rate)).
    - With O(route_name), V(anomalies) also has C(route) (C({route, namespace, explanation, route_kind}), plus
      C(label_form) for an HTTPRoute - which metric label form its targets carry, in words).
    - On an HTTPRoute whose rule is on the mirror, V(anomalies) also has C(history_from) when the main services'
      history before the attach was found under Traefik's Gateway provider labels - one row per main with
      C(service), C(history_labels) (the labels found), C(label_forms) (which release's form, in words) and
      C(windows) (how many history windows they filled).
    - C(queries) counts every Prometheus query of the answer, C(builtin_queries) those of the built-in
      checks (4, whatever the number of services).
    - Each C(metrics) row has C(name), C(rule) (a dict of the rule and its number), C(value) (for comparisons
      the ratio or increase, with C(shadow_value) and C(main_value)), C(verdict) (V(ok), V(anomalous),
      V(inconclusive) or V(error)), C(message), C(query) (as sent; C(main_query) for comparisons),
      C(queries), and for V(inconclusive) or V(error) a C(reason) (V(query_error), V(no_data), V(nan),
      V(several_series), V(no_shadow)).
    - V(series) is C({request_rate, error_rate, latency_p95, start, end, step, labels}); each metric has
      C(shadow) and C(main) lists of C([time, value]) points (value null where Prometheus has none, for example
      no traffic), and C(labels) the Traefik C(service) labels of each side.
    - With O(query), whatever the JMESPath expression selects.
  type: list
  elements: raw
"""

import json
import os
import time
import traceback
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

from ansible_collections.darklaunch.traefik.plugins.module_utils._argspec import auth_argument_spec
from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution_records import RouteDistribution
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s import HAS_KUBERNETES, KubeClient
from ansible_collections.darklaunch.traefik.plugins.module_utils._redact import (
    auth_secrets,
    prometheus_secrets,
    scrub,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._traffic_view import (
    anomaly_targets,
    read_distribution,
    read_http_routes,
    read_route_listing,
    read_traffic,
    validate_scope,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_check import check_anomalies
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._prometheus import PrometheusClient
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._promql import parse_selector
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._report_series import (
    fetch_chart_series,
    labels_by_role,
)

try:
    import jmespath

    HAS_JMESPATH = True
except ImportError:  # pragma: no cover - exercised only where jmespath is missing
    HAS_JMESPATH = False

TERMS = ("distribution", "routes", "ingressroutes", "httproutes", "anomalies", "series")
DEFAULT_SERIES_SECONDS = 15 * 60.0
_PROMETHEUS_OPTION_NAMES = (
    "prometheus_url",
    "prometheus_token",
    "prometheus_password",
    "prometheus_headers",
    "prometheus_proxy",
)
display = Display()


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
        headers = options.get("prometheus_headers")
        if isinstance(headers, str):
            try:
                options["prometheus_headers"] = json.loads(headers)
            except ValueError:
                options["prometheus_headers"] = None
        secrets = set()
        for source in (direct, options):
            secrets |= auth_secrets(source) | prometheus_secrets(source)
        return secrets

    def _run(self, terms: list[Any], variables: Mapping[str, Any] | None, kwargs: dict[str, Any]) -> list[Any]:
        self._refuse_unknown_options(kwargs)
        self.set_options(var_options=variables, direct=kwargs)
        # Given in the call (a kubeconfig from the environment is not named in printed commands; ansible-core
        # before 2.18 reports an environment origin for a direct option that overrides one).
        self._given_kubeconfig = kwargs.get("kubeconfig")
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
            # A command printed for later names the kubeconfig given here, not one from the environment (see
            # _kubeconfig_context), as the modules do.
            self._client = KubeClient.from_params(auth, given_kubeconfig=getattr(self, "_given_kubeconfig", None))
        return self._client

    def _distribution(self, namespace: str | None, route_name: str, api_group: str | None) -> RouteDistribution:
        """The named route's traffic split (the anomalies and series terms judge its backends)."""
        return read_distribution(
            self._kube(),
            namespace=namespace or "",
            route_name=route_name,
            api_group=api_group,
            route_kind=self.get_option("route_kind"),
        )

    def _answer(self, term: str) -> Any:
        namespace = self.get_option("namespace")
        route_name = self.get_option("route_name")
        api_group = self.get_option("api_group")
        if term == "distribution":
            return read_distribution(
                self._kube(),
                namespace=namespace,
                route_name=route_name,
                api_group=api_group,
                route_kind=self.get_option("route_kind"),
            ).to_dict()
        if term == "anomalies":
            return self._anomalies(namespace, route_name, api_group)
        if term == "series":
            return self._series(namespace, route_name, api_group)
        if term == "httproutes":
            return read_http_routes(self._kube(), namespace=namespace, route_name=route_name, api_group=api_group)
        if route_name and namespace:
            # One route: read by name, at a cost that does not grow with the namespace.
            view = read_route_listing(
                self._kube(),
                namespace=namespace,
                route_name=route_name,
                api_group=api_group,
                route_kind=self.get_option("route_kind"),
            )
        else:
            view = read_traffic(self._kube(), namespace=namespace, api_group=api_group)
        if term == "routes":
            return {
                "api_group": view["api_group"],
                "mirrors": view["mirrors"],
                "weighted": view["weighted"],
                "abandoned_launches": view["abandoned_launches"],
            }
        answer = {"api_group": view["api_group"], "ingress_routes": view["ingress_routes"]}
        if view.get("http_routes"):
            answer["http_routes"] = view["http_routes"]
        return answer

    def _anomalies(self, namespace: str | None, route_name: str | None, api_group: str | None) -> dict[str, Any]:
        targets = None
        route = None
        methods: tuple[str, ...] = ()
        if route_name:
            distribution = self._distribution(namespace, route_name, api_group)
            targets = anomaly_targets(distribution)
            # A mirror that copies only some methods: the main's requests of the same methods are compared.
            methods = distribution.mirrored_methods
            route = {
                "route": route_name,
                "namespace": namespace,
                "explanation": distribution.explanation,
                "route_kind": distribution.route_kind,
            }
            if distribution.label_form:
                # An HTTPRoute's backends: which metric label form the targets carry (see _httproute_view).
                route["label_form"] = distribution.label_form
        client = self._prometheus("anomalies")
        report = check_anomalies(
            client,
            targets,
            sigma=self.get_option("sigma"),
            window=self.get_option("window"),
            history_windows=self.get_option("history_windows"),
            min_requests=self.get_option("min_requests"),
            selector=self.get_option("prometheus_selector"),
            metrics=self.get_option("metrics"),
            route={"route": route_name, "namespace": namespace} if route_name else None,
            checks_per_step=self.get_option("checks_per_step"),
            client_error_codes=self.get_option("client_error_codes"),
            mirror_since=self.get_option("mirror_since"),
            methods=methods,
            compare_max_diff_rate=self.get_option("compare_max_diff_rate"),
        )
        display.vvv(
            f"darklaunch.traefik.traffic: anomalies answered with {client.query_count} Prometheus queries "
            f"({report.get('builtin_queries', 0)} built-in): {report['verdict']}"
        )
        if route is not None:
            report["route"] = route
        return report

    def _series(self, namespace: str | None, route_name: str | None, api_group: str | None) -> dict[str, Any]:
        if not route_name:
            raise DarklaunchError("the series term needs route_name (and namespace).", field="route_name")
        labels = self.get_option("service_labels")
        if labels:
            if not isinstance(labels, Mapping) or not all(isinstance(v, list) for v in labels.values()):
                raise DarklaunchError(
                    "service_labels must map shadow and main to lists of Traefik service labels.",
                    field="service_labels",
                )
            labels = {role: [str(label) for label in labels.get(role) or []] for role in ("shadow", "main")}
        else:
            distribution = self._distribution(namespace, route_name, api_group)
            labels = labels_by_role(anomaly_targets(distribution))
        end = self.get_option("end") or time.time()
        start = self.get_option("start") or end - DEFAULT_SERIES_SECONDS
        if start >= end:
            raise DarklaunchError(f"start ({start}) must be before end ({end}).", field="start")
        client = self._prometheus("series")
        series = fetch_chart_series(
            client.query_range,
            labels,
            start=float(start),
            end=float(end),
            window=str(self.get_option("window")),
            selector=parse_selector(self.get_option("prometheus_selector")),
        )
        display.vvv(f"darklaunch.traefik.traffic: series answered with {client.query_count} Prometheus queries")
        return series

    def _prometheus(self, term: str) -> PrometheusClient:
        url = self.get_option("prometheus_url")
        if not url:
            raise DarklaunchError(
                f"the {term} term needs Prometheus: set prometheus_url or the PROMETHEUS_URL environment variable.",
                field="prometheus_url",
            )
        return PrometheusClient(
            url,
            token=self.get_option("prometheus_token"),
            username=self.get_option("prometheus_username"),
            password=self.get_option("prometheus_password"),
            validate_certs=self.get_option("prometheus_validate_certs"),
            ca_cert=_path_option(self.get_option("prometheus_ca_cert")),
            timeout=self.get_option("prometheus_timeout"),
            headers=_headers_option(self.get_option("prometheus_headers")),
            client_cert=_path_option(self.get_option("prometheus_client_cert")),
            client_key=_path_option(self.get_option("prometheus_client_key")),
            proxy=self.get_option("prometheus_proxy"),
            log=lambda line: display.vvv(f"darklaunch.traefik.traffic: {line}"),
        )

    @staticmethod
    def _apply_query(query: str, result: Any) -> Any:
        try:
            return jmespath.search(query, result)
        except jmespath.exceptions.JMESPathError as error:
            raise AnsibleLookupError(f"query {query!r} is not a valid JMESPath expression: {error}") from error


def _headers_option(value: Any) -> Mapping[str, Any] | None:
    """``prometheus_headers`` as a dict; the environment variable (and AWX) give it as a JSON object."""
    if value in (None, "", {}):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise DarklaunchError(
                "prometheus_headers must be a dict, or in PROMETHEUS_HEADERS a JSON object such as "
                '{"X-Scope-OrgID": "tenant-a"}.',
                field="prometheus_headers",
            ) from None
    if not isinstance(value, Mapping):
        raise DarklaunchError(
            "prometheus_headers must be a dict of header names to values.", field="prometheus_headers"
        )
    return value


def _path_option(value: Any) -> str | None:
    """A file option: ``~`` and variables expanded; empty (as AWX injects a file it was not given) is unset."""
    if value is None or not str(value).strip():
        return None
    return os.path.expanduser(os.path.expandvars(str(value).strip()))
