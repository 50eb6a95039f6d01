"""Bring a whole instance up (idempotently) or down, and describe it as shell exports."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import shutil
import sys
import time
from collections.abc import Iterator

from . import backends, controlplane, gateway, prometheus, traefik
from .config import CLUSTER_DIR, InstanceConfig
from .crds import instance_crd_documents
from .pki import ensure_pki, ensure_tokens, write_kubeconfigs
from .procs import ProcessTable, port_is_free, require_alive, wait_until
from .rbac import bind_operator, install_cluster_rbac

BACKENDS = "backends"
# Start order; `down` stops in reverse.
COMPONENTS = ("controlplane", BACKENDS, "traefik", "prometheus")


def log(msg: str) -> None:
    print(f"[cluster] {msg}", file=sys.stderr, flush=True)


def process_table(cfg: InstanceConfig) -> ProcessTable:
    return ProcessTable(cfg.pid_dir, cfg.log_dir)


@contextlib.contextmanager
def instance_lock(cfg: InstanceConfig) -> Iterator[None]:
    # Beside the state dir, not in it: `down` deletes the state dir while holding the lock.
    cfg.state_dir.parent.mkdir(parents=True, exist_ok=True)
    with (cfg.state_dir.parent / f".{cfg.state_dir.name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def enabled(cfg: InstanceConfig) -> list[str]:
    wanted = {"controlplane": True, BACKENDS: cfg.backends, "traefik": cfg.traefik, "prometheus": cfg.prometheus}
    return [name for name in COMPONENTS if wanted[name]]


def component_ports(cfg: InstanceConfig, name: str) -> list[int]:
    keys = {
        "controlplane": ["apiserver", "etcd_client", "etcd_peer"],
        BACKENDS: ["backends"],
        "traefik": ["traefik_web", "traefik_api"],
        "prometheus": ["prometheus"],
    }[name]
    return [cfg.ports[key] for key in keys]


def healthy(cfg: InstanceConfig, name: str) -> bool:
    if name == "controlplane":
        return controlplane.is_ready(cfg)
    if name == BACKENDS:
        return backends.BackendsClient(cfg.backends_url).healthy()
    if name == "traefik":
        return traefik.is_ready(cfg)
    return prometheus.is_ready(cfg)


def exports(cfg: InstanceConfig) -> list[str]:
    values = {
        "K8S_AUTH_KUBECONFIG": str(cfg.kubeconfig("admin")),
        "DARKLAUNCH_OPERATOR_KUBECONFIG": str(cfg.kubeconfig("shadow-operator")),
        "DARKLAUNCH_VIEWER_KUBECONFIG": str(cfg.kubeconfig("viewer")),
        "DARKLAUNCH_OPERATOR_NAMESPACE": cfg.operator_namespace,
        "DARKLAUNCH_STATE_DIR": str(cfg.state_dir),
        "DARKLAUNCH_CRDS": cfg.crds,
    }
    if cfg.traefik:
        values["DARKLAUNCH_TRAEFIK_VERSION"] = cfg.traefik_version
        values["TRAEFIK_URL"] = cfg.traefik_url
        values["TRAEFIK_API_URL"] = cfg.traefik_api_url
    if gateway.enabled(cfg):
        values["DARKLAUNCH_GATEWAY_NAME"] = gateway.GATEWAY_NAME
        values["DARKLAUNCH_GATEWAY_NAMESPACE"] = gateway.GATEWAY_NAMESPACE
    if cfg.prometheus:
        values["PROMETHEUS_URL"] = cfg.prometheus_url
    if cfg.backends:
        values["DARKLAUNCH_BACKENDS_URL"] = cfg.backends_url
    return [f"export {key}={shlex.quote(value)}" for key, value in values.items()]


def _settings_conflict(cfg: InstanceConfig) -> bool:
    previous = InstanceConfig.load(cfg.state_dir)
    return previous is not None and previous.settings() != cfg.settings()


def _start(cfg: InstanceConfig, procs: ProcessTable, name: str) -> None:
    busy = [port for port in component_ports(cfg, name) if not port_is_free(port)]
    if busy:
        raise RuntimeError(
            f"{name}: port(s) {busy} already in use by something this instance did not start; "
            f"stop it or use --port-offset"
        )
    log(f"starting {name}")
    if name == "controlplane":
        controlplane.start(cfg, procs)
    elif name == BACKENDS:
        procs.start(
            BACKENDS,
            [
                sys.executable,
                "-m",
                "dlcluster.backends",
                f"--control-port={cfg.ports['backends']}",
                f"--registry={cfg.state_dir / 'backends.json'}",
            ],
            env=_python_env(),
        )
    elif name == "traefik":
        traefik.start(cfg, procs)
    else:
        prometheus.start(cfg, procs)


def _python_env() -> dict[str, str]:
    """The environment for `python -m dlcluster.backends`: this package importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CLUSTER_DIR), env.get("PYTHONPATH")]))
    return env


def _wait(cfg: InstanceConfig, procs: ProcessTable, name: str) -> None:
    if name == "controlplane":
        controlplane.wait_ready(cfg, procs)
    elif name == BACKENDS:

        def ready() -> bool:
            require_alive(procs, BACKENDS)
            return healthy(cfg, BACKENDS)

        wait_until("backends manager", ready, 20, on_timeout=lambda: procs.log_tail(BACKENDS))
    elif name == "traefik":
        traefik.wait_ready(cfg, procs)
        if gateway.enabled(cfg):
            gateway.wait_ready(controlplane.admin_client(cfg))
    else:
        prometheus.wait_ready(cfg, procs)


def _configure_api(cfg: InstanceConfig) -> None:
    kube = controlplane.admin_client(cfg)
    crds = instance_crd_documents(cfg)
    kube.apply_all(crds)
    kube.wait_crds_established([doc["metadata"]["name"] for doc in crds])
    install_cluster_rbac(
        kube, with_traefik=cfg.traefik, traefik_major=cfg.traefik_major, traefik_version=cfg.crd_version
    )
    kube.ensure_namespace(cfg.operator_namespace)
    bind_operator(kube, cfg.operator_namespace)
    if cfg.traefik:
        traefik.install_sentinel(kube)
    if gateway.enabled(cfg):
        gateway.install(cfg, kube)


def up(cfg: InstanceConfig) -> list[str]:
    started = time.monotonic()
    with instance_lock(cfg):
        procs = process_table(cfg)
        wanted = enabled(cfg)
        if all(procs.pid(name) is not None and healthy(cfg, name) for name in wanted) and not _settings_conflict(cfg):
            log(f"already running ({cfg.state_dir})")
            return exports(cfg)
        if _settings_conflict(cfg):
            if any(procs.pid(name) is not None for name in procs.names()):
                raise RuntimeError(
                    f"{cfg.state_dir} runs an instance with other settings; "
                    f"run tests/cluster/down --state-dir {cfg.state_dir} first"
                )
            log("state dir holds a stopped instance with other settings: wiping it")
            shutil.rmtree(cfg.state_dir)
        cfg.save()
        ensure_pki(cfg)
        write_kubeconfigs(cfg, ensure_tokens(cfg))

        for name in wanted:
            if procs.pid(name) is not None and not healthy(cfg, name) and name != "controlplane":
                # Alive but not answering: restart it rather than wait on a wedged process.
                procs.stop(name)
            if procs.pid(name) is None:
                _start(cfg, procs, name)
            _wait(cfg, procs, name)
            if name == "controlplane":
                _configure_api(cfg)
        log(f"ready in {time.monotonic() - started:.1f}s ({cfg.state_dir})")
        return exports(cfg)


def down(cfg: InstanceConfig) -> None:
    with instance_lock(cfg):
        procs = process_table(cfg)
        names = [name for name in reversed(COMPONENTS) if name in procs.names()]
        names += [name for name in procs.names() if name not in names]
        log(f"stopping {', '.join(names) or 'nothing'}")
        for name in names:
            procs.terminate(name)
        for name in names:
            procs.stop(name)
        ports = [port for name in COMPONENTS for port in component_ports(cfg, name)]
        try:
            wait_until("ports to be released", lambda: all(port_is_free(port) for port in ports), 10)
        except TimeoutError:
            busy = [port for port in ports if not port_is_free(port)]
            log(f"warning: ports still in use after down: {busy}")
        if cfg.state_dir.exists():
            shutil.rmtree(cfg.state_dir)
        log(f"down; wiped {cfg.state_dir}")


def status(cfg: InstanceConfig) -> dict[str, str]:
    procs = process_table(cfg)
    result = {}
    for name in enabled(cfg):
        pid = procs.pid(name)
        if pid is None:
            result[name] = "stopped"
        else:
            result[name] = f"running pid={pid} " + ("healthy" if healthy(cfg, name) else "NOT ready")
    return result
