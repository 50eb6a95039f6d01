# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Launch reports kept in the cluster: one ConfigMap per launch in the route's namespace, the newest few per
route, so a report outlives the machine (or AWX execution environment) that wrote it.

The ConfigMap holds the HTML page (``report.html``, or gzip-compressed as ``report.html.gz`` in ``binaryData``
when it is large) and ``summary.json``. The naming, the encoding, the size bound and which ConfigMaps pruning
deletes are pure; ``store_report``, ``list_reports`` and ``read_report`` talk to the API through a client.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "darklaunch.traefik"
ROUTE_LABEL: Final = "darklaunch.traefik/route"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
COMPONENT: Final = "launch-report"
PREFIX: Final = "darklaunch.traefik/report-"
ANNOTATIONS: Final = ("launch-id", "outcome", "started", "ended", "owner", "cluster")
HTML_KEY: Final = "report.html"
GZIP_KEY: Final = "report.html.gz"
SUMMARY_KEY: Final = "summary.json"
# A ConfigMap holds at most 1 MiB. Pages up to PLAIN_LIMIT are kept as they are (readable with kubectl);
# larger ones are gzip-compressed; a compressed page above STORED_LIMIT is not kept (the summary is).
PLAIN_LIMIT: Final = 256 * 1024
STORED_LIMIT: Final = 512 * 1024
DEFAULT_KEEP: Final = 5
_NAME_MAX: Final = 253
_LABEL_MAX: Final = 63


class KubeApi(Protocol):
    def list(
        self, kind: str, namespace: str | None, page_size: int = 500, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]: ...

    def create(self, kind: str, namespace: str | None, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def delete(self, kind: str, namespace: str | None, name: str, resource_version: str | None = None) -> None: ...


# --- pure parts -------------------------------------------------------------------------------------------


def _dns_part(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def report_name(route: str, launch_id: str) -> str:
    """The ConfigMap's name: ``shadow-report-<route>-<launch id>``, a valid DNS subdomain; too long, it is cut
    and ends with a hash of the whole, so two launches never share a name."""
    whole = f"shadow-report-{_dns_part(route)}-{_dns_part(launch_id)}".strip("-")
    if len(whole) <= _NAME_MAX:
        return whole
    digest = _short_hash(f"{route}\n{launch_id}")
    return f"{whole[: _NAME_MAX - len(digest) - 1].rstrip('-')}-{digest}"


def route_label(route: str) -> str:
    """The route as a label value (at most 63 characters: a longer name is cut and ends with its hash)."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", route).strip("-._")
    if len(value) <= _LABEL_MAX:
        return value
    digest = _short_hash(route)
    return f"{value[: _LABEL_MAX - len(digest) - 1].rstrip('-._')}-{digest}"


def selector(route: str | None = None) -> str:
    """The label selector of the collection's reports, of one route or of every route."""
    base = f"{MANAGED_BY_LABEL}={MANAGED_BY},{COMPONENT_LABEL}={COMPONENT}"
    return f"{base},{ROUTE_LABEL}={route_label(route)}" if route else base


def encode_page(page: str) -> tuple[dict[str, str], dict[str, str], str]:
    """``(data, binaryData, encoding)`` holding ``page``: plain up to PLAIN_LIMIT bytes, else gzip; a page whose
    compressed form is still above STORED_LIMIT is not kept (encoding ``omitted``)."""
    raw = page.encode("utf-8")
    if len(raw) <= PLAIN_LIMIT:
        return {HTML_KEY: page}, {}, "plain"
    packed = gzip.compress(raw, compresslevel=9, mtime=0)
    if len(packed) > STORED_LIMIT:
        return {}, {}, "omitted"
    return {}, {GZIP_KEY: base64.b64encode(packed).decode("ascii")}, "gzip"


def decode_page(config_map: Mapping[str, Any]) -> str | None:
    """The HTML page a report ConfigMap holds, or None when it holds none."""
    data = config_map.get("data") or {}
    if HTML_KEY in data:
        return str(data[HTML_KEY])
    packed = (config_map.get("binaryData") or {}).get(GZIP_KEY)
    if packed:
        return gzip.decompress(base64.b64decode(packed)).decode("utf-8")
    return None


def report_body(
    *,
    name: str,
    route: str,
    page: str,
    summary: Mapping[str, Any],
    annotations: Mapping[str, Any],
) -> dict[str, Any]:
    """The ConfigMap of one launch's report."""
    data, binary, encoding = encode_page(page)
    data[SUMMARY_KEY] = json.dumps(dict(summary), sort_keys=True, default=str)
    notes = {PREFIX + key: str(value) for key, value in annotations.items() if value not in (None, "")}
    notes[PREFIX + "encoding"] = encoding
    notes[PREFIX + "html-bytes"] = str(len(page.encode("utf-8")))
    notes[ROUTE_LABEL] = route  # the whole name, when the label had to be cut
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, COMPONENT_LABEL: COMPONENT, ROUTE_LABEL: route_label(route)},
            "annotations": notes,
        },
        "data": data,
    }
    if binary:
        body["binaryData"] = binary
    return body


def _order_key(config_map: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = config_map.get("metadata") or {}
    notes = meta.get("annotations") or {}
    started = str(notes.get(PREFIX + "started") or notes.get(PREFIX + "ended") or "")
    return started, str(meta.get("creationTimestamp") or ""), str(meta.get("name") or "")


def newest_first(config_maps: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Reports ordered newest first: by the launch's start (RFC 3339 UTC sorts as text), then creation."""
    return sorted(config_maps, key=_order_key, reverse=True)


def to_prune(config_maps: Sequence[Mapping[str, Any]], keep: int, protect: str | None = None) -> list[str]:
    """The names of the reports pruning deletes: all but the ``keep`` newest (``protect``, the report just
    written, is always kept)."""
    if keep < 1:
        raise DarklaunchError(f"keep must be at least 1, not {keep}", field="keep")
    ordered = [str((c.get("metadata") or {}).get("name")) for c in newest_first(config_maps)]
    kept = ordered[:keep]
    if protect is not None and protect in ordered and protect not in kept:
        kept = [*ordered[: keep - 1], protect]
    return [name for name in ordered if name not in kept]


def describe(config_map: Mapping[str, Any]) -> dict[str, Any]:
    """One kept report for listings: its name, the launch it tells and its summary."""
    meta = config_map.get("metadata") or {}
    notes = meta.get("annotations") or {}
    try:
        summary = json.loads((config_map.get("data") or {}).get(SUMMARY_KEY) or "{}")
    except ValueError:
        summary = {}
    info: dict[str, Any] = {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "route": notes.get(ROUTE_LABEL) or (meta.get("labels") or {}).get(ROUTE_LABEL),
        "created": meta.get("creationTimestamp"),
        "summary": summary,
    }
    for key in (*ANNOTATIONS, "encoding", "html-bytes"):
        value = notes.get(PREFIX + key)
        info[key.replace("-", "_")] = int(value) if key == "html-bytes" and value else value
    return info


# --- against the API ------------------------------------------------------------------------------------


def list_reports(client: KubeApi, namespace: str | None, route: str | None = None) -> list[dict[str, Any]]:
    """The kept reports of ``route`` (or every route) in ``namespace`` (None: every namespace), newest first."""
    found = client.list("ConfigMap", namespace, label_selector=selector(route))
    return [describe(c) for c in newest_first(_of_route(found, route) if route else found)]


def read_report(client: KubeApi, namespace: str, route: str, name: str | None = None) -> tuple[dict[str, Any], str]:
    """One kept report (by name, else the newest of the route) and its page."""
    listed = client.list("ConfigMap", namespace, label_selector=selector(route or None))
    candidates = newest_first(_of_route(listed, route) if route else listed)
    if name:
        candidates = [c for c in candidates if (c.get("metadata") or {}).get("name") == name]
    if not candidates:
        what = f"launch report {name}" if name else f"launch report of route {route}"
        raise DarklaunchError(f"no {what} is kept in namespace {namespace}", field="name" if name else "route_name")
    found = candidates[0]
    page = decode_page(found)
    if page is None:
        raise DarklaunchError(
            f"launch report {(found.get('metadata') or {}).get('name')} keeps only its summary: the page was too "
            f"large to keep in the cluster (over {STORED_LIMIT // 1024} KiB compressed)",
            field="name",
        )
    return describe(found), page


def store_report(
    client: KubeApi,
    namespace: str,
    body: Mapping[str, Any],
    keep: int,
    *,
    check_mode: bool = False,
) -> dict[str, Any]:
    """Create the report's ConfigMap (replace it when the same launch is stored again with other content), then
    delete the route's reports beyond the ``keep`` newest. Needs only list, create and delete on configmaps.
    Returns ``changed``, ``action`` (created, replaced or unchanged) and ``pruned`` (the names deleted)."""
    name = str(body["metadata"]["name"])
    route = str(body["metadata"]["annotations"][ROUTE_LABEL])
    existing = _of_route(client.list("ConfigMap", namespace, label_selector=selector(route)), route)
    current = next((c for c in existing if (c.get("metadata") or {}).get("name") == name), None)
    action = "unchanged"
    if current is None or _content(current) != _content(body):
        action = "created" if current is None else "replaced"
        if not check_mode:
            if current is not None:
                client.delete("ConfigMap", namespace, name, current["metadata"].get("resourceVersion"))
            client.create("ConfigMap", namespace, body)
        existing = [c for c in existing if c is not current] + [dict(body)]
    pruned = to_prune(existing, keep, protect=name)
    if not check_mode:
        for old in pruned:
            client.delete("ConfigMap", namespace, old)
    return {"changed": action != "unchanged" or bool(pruned), "action": action, "pruned": pruned}


def _of_route(config_maps: Sequence[Mapping[str, Any]], route: str) -> list[Mapping[str, Any]]:
    # A cut label could select another long route name's reports: the annotation holds the whole name.
    return [c for c in config_maps if ((c.get("metadata") or {}).get("annotations") or {}).get(ROUTE_LABEL) == route]


def _content(config_map: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    meta = config_map.get("metadata") or {}
    return config_map.get("data") or {}, config_map.get("binaryData") or {}, meta.get("annotations") or {}
