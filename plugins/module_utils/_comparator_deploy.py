# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write and remove a route's comparator (``_comparator_manifests``) through the collection's API client.

Only objects labelled as this route's comparator are ever replaced or deleted; an object of the same name
that is not is refused on deploy (naming it) and left alone on removal (a warning).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ansible_collections.darklaunch.traefik.plugins.module_utils._comparator_manifests import (
    HASH_ANNOTATION,
    KINDS,
    is_ours,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError


class Client(Protocol):
    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None: ...

    def create(self, kind: str, namespace: str | None, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def delete(self, kind: str, namespace: str | None, name: str, resource_version: str | None = None) -> None: ...


def service_port(client: Client, namespace: str, name: str, port: int | None, option: str) -> int:
    """The port given, or the Service's only port (read by name); refuse a missing Service or an ambiguous one."""
    found = client.get("Service", namespace, name)
    if found is None:
        raise DarklaunchError(f"{option}: Service {namespace}/{name} does not exist.", field=option)
    if port:
        return int(port)
    ports = [p.get("port") for p in (found.get("spec") or {}).get("ports") or [] if p.get("port")]
    if len(ports) != 1:
        raise DarklaunchError(
            f"{option}: Service {namespace}/{name} has {len(ports)} ports ({', '.join(map(str, ports)) or 'none'}); "
            "give the port.",
            field=option,
        )
    return int(ports[0])


def deploy(client: Client, objects: Sequence[Mapping[str, Any]], route: str, check_mode: bool) -> list[dict[str, str]]:
    """Create each object, replace the ones of ours that changed, keep the rest; one action per object.

    Every object is read first: one of the name that is not ours refuses the whole deploy before any write."""
    found = []
    for obj in objects:
        kind, meta = str(obj["kind"]), obj["metadata"]
        current = client.get(kind, str(meta["namespace"]), str(meta["name"]))
        if current is not None and not is_ours(current, route):
            raise DarklaunchError(
                f"{kind} {meta['namespace']}/{meta['name']} exists and is not the comparator this collection deploys "
                f"for route {route}, so it is left as it is and nothing was deployed: run your own comparator there "
                "and set shadow_launch_compare_service to its Service, or free the name.",
                field="name",
            )
        found.append(current)
    actions = []
    for obj, current in zip(objects, found, strict=True):
        kind, meta = str(obj["kind"]), obj["metadata"]
        namespace, name = str(meta["namespace"]), str(meta["name"])
        wanted = meta["annotations"][HASH_ANNOTATION]
        had = ((current or {}).get("metadata") or {}).get("annotations", {}).get(HASH_ANNOTATION)
        if current is not None and had == wanted:
            actions.append({"kind": kind, "name": name, "action": "unchanged"})
            continue
        if not check_mode:
            if current is not None:
                # Replaced whole: a Service's clusterIP and a Deployment's selector cannot be patched freely.
                client.delete(kind, namespace, name, (current.get("metadata") or {}).get("resourceVersion"))
            client.create(kind, namespace, obj)
        actions.append({"kind": kind, "name": name, "action": "created" if current is None else "replaced"})
    return actions


def wait_ready(
    client: Client,
    namespace: str,
    name: str,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> float:
    """Wait until the Deployment has an available pod; the seconds it took. A mirror whose Service has no ready
    endpoint is refused by Traefik, and the route with it (users get 404), so nothing may point at the
    comparator before then: past ``timeout`` this raises, naming what to check."""
    started = clock()
    while True:
        found = client.get("Deployment", namespace, name) or {}
        status = found.get("status") or {}
        if int(status.get("availableReplicas") or 0) >= 1:
            return clock() - started
        if clock() - started >= timeout:
            conditions = "; ".join(
                f"{c.get('type')}={c.get('status')} ({c.get('reason') or ''}: {c.get('message') or ''})"
                for c in status.get("conditions") or []
                if isinstance(c, Mapping)
            )
            raise DarklaunchError(
                f"the comparator Deployment {namespace}/{name} has no available pod after {timeout:g} s "
                f"({conditions or 'no status: is a kubelet running the pods, can they pull the image?'}); a mirror "
                "pointing at it would take the route down in Traefik, so nothing points at it. Check its pods "
                "(image, resources, scheduling) or raise wait_seconds.",
                field="wait_seconds",
            )
        sleep(2.0)


def remove(
    client: Client, namespace: str, name: str, route: str, check_mode: bool
) -> tuple[list[dict[str, str]], list[str]]:
    """Delete this route's comparator objects named ``name`` (Service first); leave anything else, saying so.

    The rollback entry point and the reaper call this for every route, also with only the least-privilege Role,
    which may read Services but not Deployments: a kind the account may not read is skipped, and said only when
    a comparator of the route was found (the role always deploys all three objects)."""
    actions: list[dict[str, str]] = []
    warnings: list[str] = []
    forbidden: list[str] = []
    for kind in reversed(KINDS):
        try:
            current = client.get(kind, namespace, name)
        except DarklaunchError as error:
            if error.details.get("api_status") != 403:
                raise
            forbidden.append(kind)
            continue
        if current is None:
            continue
        if not is_ours(current, route):
            warnings.append(
                f"{kind} {namespace}/{name} is not a comparator this collection deployed for route {route}: left as "
                "it is."
            )
            continue
        if not check_mode:
            client.delete(kind, namespace, name, (current.get("metadata") or {}).get("resourceVersion"))
        actions.append({"kind": kind, "name": name, "action": "deleted"})
    if actions:
        warnings += [
            f"{kind} {namespace}/{name} could not be read (forbidden), so it may be left: remove it with an account "
            "that may read and delete it."
            for kind in forbidden
        ]
    return actions, warnings
