"""traefik_traffic_info and the ``darklaunch.traefik.traffic`` lookup against the real apiserver.

Two namespaces hold small, known worlds (an active mirror over a Service, a weighted split, an inactive
mirror, a route to a missing TraefikService); a third holds 1,200 TraefikServices to prove that lists
are read in pages. The module runs as a separate process (``modrun``), the lookup through Ansible's
``lookup_loader`` in a separate process and inside ``ansible-playbook``; access is checked with the
namespaced operator and the cluster-wide viewer; the traefik.containo.us group on its own apiserver.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from dlcluster.kube import Kube
from dlcluster.world import manifests
from modrun import COLLECTIONS, REPO_ROOT, run_module

from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s import KubeClient
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    index_by_key,
    parse_ingress_route,
    parse_kube_service,
    parse_traefik_service,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._route_walker import resolve_route

pytestmark = pytest.mark.integration

MODULE = "traefik_traffic_info"
PORTS = {"stable": 8080, "canary": 8081, "staging": 8082}
MANY = 1200  # TraefikServices in the pagination namespace: three pages of 500
PAGE = 500  # KubeClient.list's default page size

# --- the worlds --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """Namespace ``a``: api-service-route -> 20% mirror of api-service-stable to api-service-staging
    (active), its 50/50 WRR now unused, and broken-route -> a TraefikService that does not exist.
    Namespace ``b``: shop-route -> 80/20 WRR of shop-stable/shop-canary, and an unused 10% mirror."""

    a: str
    b: str

    route_a = "api-service-route"
    route_b = "shop-route"
    broken = "broken-route"
    gone = "gone-wrr"


def world(
    namespace: str,
    app: str,
    weights: dict[str, int],
    mirror_percent: int,
    *,
    attach: bool,
    api_group: str = "traefik.io",
) -> list[dict[str, Any]]:
    """The seed world (Services, WRR, IngressRoute) plus ``<route>-mirror``; ``attach`` points the route at it."""
    route = f"{app}-route"
    docs = manifests(namespace, app, route, f"{route}.{namespace}.test", PORTS, weights, api_group)
    mirror = {
        "apiVersion": f"{api_group}/v1alpha1",
        "kind": "TraefikService",
        "metadata": {"name": f"{route}-mirror", "namespace": namespace},
        "spec": {
            "mirroring": {
                "name": f"{app}-stable",
                "port": PORTS["stable"],
                "mirrors": [{"name": f"{app}-staging", "port": PORTS["staging"], "percent": mirror_percent}],
            }
        },
    }
    ingress_route = docs[-1]
    if attach:
        ingress_route["spec"]["routes"][0]["services"] = [{"name": f"{route}-mirror", "kind": "TraefikService"}]
    return [*docs[:-1], mirror, ingress_route]


def broken_route(namespace: str, api_group: str = "traefik.io") -> dict[str, Any]:
    return {
        "apiVersion": f"{api_group}/v1alpha1",
        "kind": "IngressRoute",
        "metadata": {"name": Scene.broken, "namespace": namespace},
        "spec": {
            "entryPoints": ["web"],
            "routes": [
                {
                    "match": f"Host(`broken.{namespace}.test`)",
                    "kind": "Rule",
                    "services": [{"name": Scene.gone, "kind": "TraefikService"}],
                }
            ],
        },
    }


def apply_all(kube: Kube, docs: Iterable[dict[str, Any]]) -> None:
    for doc in docs:
        kube.apply(doc)


@pytest.fixture(scope="module")
def scene(kube: Kube, make_namespace: Callable[[str], str]) -> Scene:
    a, b = make_namespace("info-a"), make_namespace("info-b")
    apply_all(kube, world(a, "api-service", {"stable": 50, "canary": 50}, 20, attach=True))
    apply_all(kube, [broken_route(a)])
    apply_all(kube, world(b, "shop", {"stable": 80, "canary": 20}, 10, attach=False))
    return Scene(a, b)


@pytest.fixture(scope="module")
def many(kube: Kube, make_namespace: Callable[[str], str]) -> Iterator[tuple[str, set[str]]]:
    """A namespace with MANY weighted TraefikServices, created in parallel and removed afterwards in one
    deletecollection (namespaces stay, see ``make_namespace``; other tests need not wade through these)."""
    namespace = make_namespace("info-pages")
    names = {f"wrr-{index:04d}" for index in range(MANY)}

    def create(name: str) -> None:
        kube.create(
            {
                "apiVersion": "traefik.io/v1alpha1",
                "kind": "TraefikService",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"weighted": {"services": [{"name": "app", "port": 80, "weight": 1}]}},
            },
            namespace,
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(create, sorted(names)))
    yield namespace, names
    kube.request("DELETE", f"/apis/traefik.io/v1alpha1/namespaces/{namespace}/traefikservices")


def info(kubeconfig: Path | None = None, **args: Any) -> dict[str, Any]:
    env = {"K8S_AUTH_KUBECONFIG": str(kubeconfig)} if kubeconfig else None
    return run_module(MODULE, args, env=env)


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert not result.get("failed"), result
    return result


def in_namespace(items: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    return [item for item in items if item["namespace"] == namespace]


def names(items: Iterable[dict[str, Any]]) -> set[str]:
    return {item["name"] for item in items}


# --- the lookup, as Ansible loads it ----------------------------------------------------------------

_LOOKUP_RUNNER = r"""
import json, sys
from ansible.errors import AnsibleError
from ansible.plugins.loader import init_plugin_loader, lookup_loader

init_plugin_loader([sys.argv[1]])
request = json.loads(sys.argv[2])
lookup = lookup_loader.get("darklaunch.traefik.traffic")
try:
    result = lookup.run(request["terms"], variables={}, **request["options"])
except AnsibleError as error:
    print(json.dumps({"failed": True, "msg": str(error)}))
else:
    print(json.dumps({"result": result}))
"""


def lookup(*terms: str, kubeconfig: Path | None = None, **options: Any) -> dict[str, Any]:
    """Run ``lookup('darklaunch.traefik.traffic', *terms, **options)`` through ``lookup_loader`` in a
    fresh Python (Ansible's collection loader is process-wide); ``{"result": [...]}`` or ``{"failed", "msg"}``."""
    env = dict(os.environ)
    if kubeconfig:
        env["K8S_AUTH_KUBECONFIG"] = str(kubeconfig)
    completed = subprocess.run(
        [sys.executable, "-c", _LOOKUP_RUNNER, str(COLLECTIONS), json.dumps({"terms": terms, "options": options})],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    answer: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return answer


def playbook(
    path: Path, *extra: str, kubeconfig: Path | None = None, collections_path: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": collections_path or str(COLLECTIONS),
            # The modules need the kubernetes library: run them with this Python, not a discovered one.
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        }
    )
    if kubeconfig:
        env["K8S_AUTH_KUBECONFIG"] = str(kubeconfig)
    return subprocess.run(
        ["ansible-playbook", str(path), *extra],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=300,
        check=False,
    )


# --- one namespace, all namespaces -------------------------------------------------------------------


def test_one_namespace_lists_only_that_namespace(scene: Scene) -> None:
    result = ok(info(namespace=scene.a))
    assert result["changed"] is False
    assert result["api_group"] == "traefik.io" and result["namespace"] == scene.a
    for key in ("mirrors", "weighted", "ingress_routes"):
        assert {item["namespace"] for item in result[key]} == {scene.a}, key
    (mirror,) = result["mirrors"]
    assert mirror["name"] == f"{Scene.route_a}-mirror"
    assert mirror["main"]["name"] == "api-service-stable" and mirror["main"]["port"] == PORTS["stable"]
    assert [(m["name"], m["port"], m["percent"]) for m in mirror["mirrors"]] == [
        ("api-service-staging", PORTS["staging"], 20)
    ]
    assert mirror["percent"] == 20 and mirror["active"] is True
    assert [(r["ingress_route"], r["route_index"]) for r in mirror["referenced_by"]] == [(Scene.route_a, 0)]
    (wrr,) = result["weighted"]
    assert wrr["name"] == f"{Scene.route_a}-wrr" and wrr["active"] is False
    assert {s["name"]: s["user_share_percent"] for s in wrr["services"]} == {
        "api-service-stable": 50,
        "api-service-canary": 50,
    }
    routes = {ir["name"]: ir for ir in result["ingress_routes"]}
    assert set(routes) == {Scene.route_a, Scene.broken}
    assert [(t["name"], t["target_type"]) for t in routes[Scene.route_a]["routes"][0]["targets"]] == [
        (f"{Scene.route_a}-mirror", "mirror")
    ]
    assert "distribution" not in result


def test_all_namespaces_holds_each_namespace_unchanged(scene: Scene) -> None:
    everything = ok(info())
    assert everything["namespace"] is None
    for namespace in (scene.a, scene.b):
        alone = ok(info(namespace=namespace))
        for key in ("mirrors", "weighted", "ingress_routes"):
            assert in_namespace(everything[key], namespace) == alone[key], (namespace, key)
    (shop_mirror,) = in_namespace(everything["mirrors"], scene.b)
    assert shop_mirror["active"] is False and shop_mirror["percent"] == 10 and shop_mirror["referenced_by"] == []
    (shop_wrr,) = in_namespace(everything["weighted"], scene.b)
    assert shop_wrr["active"] is True
    assert {s["name"]: s["user_share_percent"] for s in shop_wrr["services"]} == {"shop-stable": 80, "shop-canary": 20}


def test_route_distribution_mirror_and_weighted(scene: Scene) -> None:
    mirror = ok(info(namespace=scene.a, route_name=Scene.route_a))["distribution"]
    assert mirror["traffic_split"]["type"] == "mirror" and mirror["traffic_split"]["wraps_weighted"] is False
    assert (mirror["target"]["name"], mirror["target"]["target_type"]) == (f"{Scene.route_a}-mirror", "mirror")
    assert [(s["name"], s["port"], s["user_share_percent"]) for s in mirror["main_sink"]] == [
        ("api-service-stable", PORTS["stable"], 100)
    ]
    assert [(s["name"], s["percent"]) for s in mirror["shadow"]] == [("api-service-staging", 20)]
    assert mirror["broken"] == []
    assert "api-service-stable" in mirror["explanation"] and "20%" in mirror["explanation"]

    weighted = ok(info(namespace=scene.b, route_name=Scene.route_b))["distribution"]
    assert weighted["traffic_split"]["type"] == "weighted"
    assert {s["name"]: s["user_share_percent"] for s in weighted["main_sink"]} == {"shop-stable": 80, "shop-canary": 20}
    assert weighted["shadow"] == []


def test_broken_reference_is_reported_with_its_reason(scene: Scene) -> None:
    result = ok(info(namespace=scene.a, route_name=Scene.broken))
    dist = result["distribution"]
    assert dist["broken"], dist
    (broken,) = dist["broken"]
    assert Scene.gone in broken["reference"] and broken["route_index"] == 0
    assert "404" in broken["reason"], broken
    assert dist["explanation"].startswith("This route does not work"), dist["explanation"]
    assert dist["backends"] == [], "nothing real answers a broken route"
    (listed,) = [ir for ir in result["ingress_routes"] if ir["name"] == Scene.broken]
    assert [(t["name"], t["target_type"]) for t in listed["routes"][0]["targets"]] == [(Scene.gone, "missing")]


def test_unknown_route_and_route_without_namespace_fail_clearly(scene: Scene) -> None:
    missing = info(namespace=scene.a, route_name="no-such-route")
    assert missing.get("failed") and missing["field"] == "route_name", missing
    assert "no-such-route" in missing["msg"] and scene.a in missing["msg"]
    unscoped = info(route_name=Scene.route_a)
    assert unscoped.get("failed") and unscoped["field"] == "namespace", unscoped


# --- who may read what ------------------------------------------------------------------------------


def test_operator_bound_to_one_namespace(
    scene: Scene, bind_operator: Callable[[str], None], operator_kubeconfig: Path
) -> None:
    bind_operator(scene.a)
    admin_view = ok(info(namespace=scene.a, route_name=Scene.route_a))
    own = ok(info(operator_kubeconfig, namespace=scene.a, route_name=Scene.route_a))
    for key in ("api_group", "mirrors", "weighted", "ingress_routes", "distribution"):
        assert own[key] == admin_view[key], key

    cluster_wide = info(operator_kubeconfig)
    assert cluster_wide.get("failed"), cluster_wide
    assert cluster_wide["field"] == "namespace"
    assert "set namespace" in cluster_wide["msg"] and "shadow-operator" in cluster_wide["msg"], cluster_wide["msg"]
    assert cluster_wide["api_status"] == 403

    other = info(operator_kubeconfig, namespace=scene.b)
    assert other.get("failed") and other["api_status"] == 403, other
    assert scene.b in other["msg"]

    refused = lookup("routes", kubeconfig=operator_kubeconfig)
    assert refused.get("failed") and "set namespace" in refused["msg"], refused
    allowed = lookup("routes", kubeconfig=operator_kubeconfig, namespace=scene.a, query="mirrors[].name")
    assert allowed == {"result": [[f"{Scene.route_a}-mirror"]]}, allowed


def test_viewer_reads_every_namespace(scene: Scene, viewer_kubeconfig: Path) -> None:
    everything = ok(info(viewer_kubeconfig))
    assert {scene.a, scene.b} <= {m["namespace"] for m in everything["mirrors"]}
    dist = ok(info(viewer_kubeconfig, namespace=scene.a, route_name=Scene.route_a))["distribution"]
    assert [(s["name"], s["percent"]) for s in dist["shadow"]] == [("api-service-staging", 20)]


# --- pagination --------------------------------------------------------------------------------------


def _list_requests(events: list[dict[str, Any]]) -> list[dict[str, list[str]]]:
    return [parse_qs(urlsplit(event["requestURI"]).query) for event in events]


def test_lists_are_read_in_pages(many: tuple[str, set[str]], audit: Any) -> None:
    namespace, created = many
    mark = audit.mark()
    result = ok(info(namespace=namespace))
    assert len(result["weighted"]) == MANY and names(result["weighted"]) == created

    events = audit.events_since(mark, verbs={"list"}, resource="traefikservices", namespace=namespace)
    queries = _list_requests(events)
    assert len(queries) == -(-MANY // PAGE), [event["requestURI"] for event in events]
    assert all(query["limit"] == [str(PAGE)] for query in queries)
    assert "continue" not in queries[0] and all(query.get("continue") for query in queries[1:])
    assert all(event["responseStatus"]["code"] == 200 for event in events)

    # All namespaces: the cluster-scope list is paged the same way and still returns every item.
    mark = audit.mark()
    everything = ok(info())
    assert names(in_namespace(everything["weighted"], namespace)) == created
    events = audit.events_since(mark, verbs={"list"}, resource="traefikservices")
    cluster_lists = [
        query
        for query, event in zip(_list_requests(events), events, strict=True)
        if "namespace" not in event["objectRef"] and query.get("limit") == [str(PAGE)]
    ]
    assert len(cluster_lists) >= -(-MANY // PAGE) and all(query.get("continue") for query in cluster_lists[1:])


def test_page_size_is_honoured(many: tuple[str, set[str]], admin_kubeconfig: Path) -> None:
    """A counting wrapper around the client's HTTP call: 1,200 items in pages of 100 are 12 requests."""
    namespace, created = many
    client = KubeClient.from_params({"kubeconfig": str(admin_kubeconfig)})
    sent: list[dict[str, str]] = []
    send = client._transport.send

    def counting(method: str, path: str, **kwargs: Any) -> tuple[int, bytes]:
        sent.append(dict(kwargs.get("query") or {}))
        return send(method, path, **kwargs)

    client._transport.send = counting  # type: ignore[method-assign]
    client.traefik_group()
    sent.clear()
    items = client.list("TraefikService", namespace, page_size=100)
    assert {item["metadata"]["name"] for item in items} == created and len(items) == MANY
    assert len(sent) == MANY // 100
    assert all(query["limit"] == "100" for query in sent)
    assert len({query.get("continue") for query in sent}) == len(sent), "each page must continue the previous one"


# --- one route, read by name ------------------------------------------------------------------------


def _answer_from_listing(kube: Kube, namespace: str, route: str, reached: set[str]) -> dict[str, Any]:
    """What the module answered for a route when it listed the namespace: the listing's entries for the
    TraefikServices ``reached`` (those the route reaches, and its mirror), and the distribution resolved from
    every TraefikService and every Service of the namespace."""
    listing = ok(info(namespace=namespace))
    traefik_services = index_by_key(
        parse_traefik_service(raw) for raw in kube.list("traefik.io/v1alpha1", "TraefikService", namespace)
    )
    services = index_by_key(parse_kube_service(raw) for raw in kube.list("v1", "Service", namespace))
    (ingress_route,) = [
        raw for raw in kube.list("traefik.io/v1alpha1", "IngressRoute", namespace) if raw["metadata"]["name"] == route
    ]
    return {
        "changed": False,
        "api_group": listing["api_group"],
        "namespace": namespace,
        "mirrors": [m for m in listing["mirrors"] if m["name"] in reached],
        "abandoned_launches": [a for a in listing["abandoned_launches"] if a["mirror"] in reached],
        "weighted": [w for w in listing["weighted"] if w["name"] in reached],
        "ingress_routes": [ir for ir in listing["ingress_routes"] if ir["name"] == route],
        "distribution": resolve_route(parse_ingress_route(ingress_route), traefik_services, services).to_dict(),
    }


def _route_answer(namespace: str, route: str) -> dict[str, Any]:
    answer = ok(info(namespace=namespace, route_name=route))
    return {key: value for key, value in answer.items() if key not in ("invocation", "warnings")}


def test_a_named_route_is_read_by_name_with_the_same_answer(
    scene: Scene, many: tuple[str, set[str]], kube: Kube, audit: Any
) -> None:
    crowded, _created = many
    docs = world(crowded, "api-service", {"stable": 50, "canary": 50}, 20, attach=True)
    apply_all(kube, docs)
    try:
        requests = {}
        for namespace in (scene.a, crowded):
            mark = audit.mark()
            answer = _route_answer(namespace, Scene.route_a)
            events = audit.events_since(mark, namespace=namespace, verbs={"get", "list"})
            requests[namespace] = sorted(f"{e['verb']} {e['objectRef']['resource']}" for e in events)
            # The route is on its mirror, which mirrors a Service: the unused WRR is not the route's.
            assert answer == _answer_from_listing(kube, namespace, Scene.route_a, {f"{Scene.route_a}-mirror"})
            (mirror,) = answer["mirrors"]
            assert mirror["active"] is True and mirror["percent"] == 20
            assert answer["distribution"]["shadow"][0]["name"] == "api-service-staging"
        # The IngressRoute, the mirror and the two Services it mirrors between (the WRR is not reached: the route
        # is on the mirror, which mirrors a Service), the same in a namespace of 1,200 more TraefikServices.
        assert requests[scene.a] == requests[crowded], requests
        assert requests[crowded] == ["get ingressroutes", "get services", "get services", "get traefikservices"], (
            requests
        )
    finally:
        for doc in docs:
            kube.delete(doc["apiVersion"], doc["kind"], doc["metadata"]["name"], crowded)


def test_a_named_route_reports_its_inactive_mirror(scene: Scene, kube: Kube) -> None:
    # shop-route is on its WRR; its mirror exists but nothing routes through it (enable without attach).
    answer = _route_answer(scene.b, Scene.route_b)
    assert answer == _answer_from_listing(
        kube, scene.b, Scene.route_b, {f"{Scene.route_b}-mirror", f"{Scene.route_b}-wrr"}
    )
    (mirror,) = answer["mirrors"]
    assert (mirror["name"], mirror["active"], mirror["referenced_by"]) == (f"{Scene.route_b}-mirror", False, [])
    (wrr,) = answer["weighted"]
    assert wrr["active"] is True


# --- the lookup ---------------------------------------------------------------------------------------


def test_lookup_terms_through_lookup_loader(scene: Scene) -> None:
    module = ok(info(namespace=scene.a, route_name=Scene.route_a))
    answer = lookup("distribution", "routes", "ingressroutes", namespace=scene.a, route_name=Scene.route_a)
    distribution, routes, ingress_routes = answer["result"]
    assert distribution == module["distribution"], "the lookup and the module must answer the same"
    assert routes == {
        "api_group": "traefik.io",
        "mirrors": module["mirrors"],
        "weighted": module["weighted"],
        "abandoned_launches": module["abandoned_launches"],
    }
    assert ingress_routes == {"api_group": "traefik.io", "ingress_routes": module["ingress_routes"]}

    # query= (JMESPath) over the whole cluster: only the 20% mirror copies more than 10%.
    busy = lookup("routes", query="mirrors[?percent > `10`].[namespace, name]")["result"][0]
    assert [scene.a, f"{Scene.route_a}-mirror"] in busy and not [m for m in busy if m[0] == scene.b], busy
    split = lookup("distribution", namespace=scene.b, route_name=Scene.route_b, query="main_sink[].user_share_percent")
    assert split == {"result": [[80, 20]]}
    targets = lookup("ingressroutes", namespace=scene.a, query="ingress_routes[].routes[].targets[].target_type")
    assert sorted(targets["result"][0]) == ["mirror", "missing"]

    bad = lookup("routes", namespace=scene.a, query="mirrors[?")
    assert bad.get("failed") and "JMESPath" in bad["msg"], bad
    without_route = lookup("distribution", namespace=scene.a)
    assert without_route.get("failed") and "route_name" in without_route["msg"]


def _json_query_collections_path() -> str | None:
    """Our collection first (a stale copy elsewhere must not win), then the default places, when one of
    them holds community.general (which provides the json_query filter)."""
    defaults = [
        REPO_ROOT / ".state" / "test-collections",  # scripts/bootstrap puts community.general here
        Path.home() / ".ansible" / "collections",
        Path("/usr/share/ansible/collections"),
    ]
    defaults += [Path(entry) for entry in sys.path if entry.endswith("site-packages")]
    if not any((root / "ansible_collections" / "community" / "general").is_dir() for root in defaults):
        return None
    return os.pathsep.join([str(COLLECTIONS), *(str(root) for root in defaults[:3])])


def _lookup_playbook(tmp_path: Path, namespace: str, filtered: str) -> Path:
    path = tmp_path / "lookup.yml"
    path.write_text(
        f"""
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Mirrors copying more than 10%, filtered
      ansible.builtin.set_fact:
        busy: "{filtered}"
        explanation: "{{{{ lookup('darklaunch.traefik.traffic', 'distribution', namespace='{namespace}',
                             route_name='{Scene.route_a}').explanation }}}}"
    - name: Print them
      ansible.builtin.debug:
        msg: "BUSY={{{{ busy | to_json }}}} EXPLANATION={{{{ explanation }}}}"
"""
    )
    return path


def test_lookup_in_a_playbook_with_the_query_option(scene: Scene, tmp_path: Path, admin_kubeconfig: Path) -> None:
    """The kubeconfig comes from K8S_AUTH_KUBECONFIG through the lookup's config system."""
    filtered = (
        f"{{{{ lookup('darklaunch.traefik.traffic', 'routes', namespace='{scene.a}', "
        f"query='mirrors[?percent > `10`].name') }}}}"
    )
    run = playbook(_lookup_playbook(tmp_path, scene.a, filtered), kubeconfig=admin_kubeconfig)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f'BUSY=[\\"{Scene.route_a}-mirror\\"]' in run.stdout or f'BUSY=["{Scene.route_a}-mirror"]' in run.stdout, (
        run.stdout
    )
    assert "api-service-stable" in run.stdout and "20%" in run.stdout


def test_lookup_result_filters_with_json_query(scene: Scene, tmp_path: Path, admin_kubeconfig: Path) -> None:
    collections_path = _json_query_collections_path()
    assert collections_path is not None, "community.general (json_query) is missing: run scripts/bootstrap"
    filtered = (
        f"{{{{ lookup('darklaunch.traefik.traffic', 'routes', namespace='{scene.a}') "
        "| community.general.json_query('mirrors[?percent > `10`].name') }}"
    )
    run = playbook(
        _lookup_playbook(tmp_path, scene.a, filtered), kubeconfig=admin_kubeconfig, collections_path=collections_path
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{Scene.route_a}-mirror" in run.stdout.split("BUSY=", 1)[1].split("EXPLANATION=", 1)[0]


# --- the operator's question, in plain words ----------------------------------------------------------


SHADOW_STATUS = REPO_ROOT / "playbooks" / "shadow_status.yml"


def shadow_status(route: str, namespace: str, kubeconfig: Path) -> str:
    """What playbooks/shadow_status.yml says of a route, as an operator runs it."""
    status = playbook(
        SHADOW_STATUS, "-e", f"route_name={route}", "-e", f"route_namespace={namespace}", kubeconfig=kubeconfig
    )
    assert status.returncode == 0, status.stdout + status.stderr
    return status.stdout


def test_shadow_status_playbook_answers_in_plain_words(scene: Scene, admin_kubeconfig: Path) -> None:
    text = shadow_status(Scene.route_a, scene.a, admin_kubeconfig)
    assert "api-service-stable" in text and "api-service-staging" in text
    assert "20%" in text and "mirror" in text.lower()

    text = shadow_status(Scene.route_b, scene.b, admin_kubeconfig)
    assert "shop-stable" in text and "80%" in text and "20%" in text
    assert "weighted" in text.lower()


# --- both API groups ---------------------------------------------------------------------------------


def test_traefik_containo_us_group(containo_cluster: Any) -> None:
    group = "traefik.containo.us"
    kube = containo_cluster.kube("admin")
    namespace = "info-containo"
    kube.ensure_namespace(namespace)
    apply_all(kube, world(namespace, "legacy", {"stable": 70, "canary": 30}, 25, attach=True, api_group=group))
    kubeconfig = containo_cluster.kubeconfigs["admin"]

    detected = ok(info(kubeconfig, namespace=namespace, route_name="legacy-route"))
    assert detected["api_group"] == group
    assert [(m["name"], m["percent"], m["active"]) for m in detected["mirrors"]] == [("legacy-route-mirror", 25, True)]
    dist = detected["distribution"]
    assert dist["traffic_split"]["type"] == "mirror"
    assert [(s["name"], s["percent"]) for s in dist["shadow"]] == [("legacy-staging", 25)]

    everything = ok(info(kubeconfig, api_group=group))
    # The whole-cluster listing has the namespace's old weighted split; the route's own answer holds only what
    # the route reaches (the mirror copies from stable directly), and the same mirror entry as the listing.
    assert [w["name"] for w in in_namespace(everything["weighted"], namespace)] == ["legacy-route-wrr"]
    assert detected["weighted"] == []
    assert in_namespace(everything["mirrors"], namespace) == detected["mirrors"]

    wrong = info(kubeconfig, namespace=namespace, api_group="traefik.io")
    assert wrong.get("failed") and wrong["field"] == "api_group", wrong

    answer = lookup("routes", kubeconfig=kubeconfig, namespace=namespace, query="[api_group, mirrors[].name]")
    assert answer == {"result": [[group, ["legacy-route-mirror"]]]}, answer


def test_traefik_io_cluster_refuses_the_old_group(scene: Scene, cluster: Any) -> None:
    if cluster.crds != "v3":
        pytest.skip("this cluster also serves traefik.containo.us")
    refused = info(namespace=scene.a, api_group="traefik.containo.us")
    assert refused.get("failed") and refused["field"] == "api_group", refused
    assert "traefik.containo.us" in refused["msg"]
