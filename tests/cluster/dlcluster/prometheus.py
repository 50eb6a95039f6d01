"""Prometheus (Debian's package) as a plain loopback process scraping Traefik every second."""

from __future__ import annotations

import shutil
import urllib.request

import yaml

from .config import InstanceConfig
from .procs import ProcessTable, require_alive, wait_until

NAME = "prometheus"


# Loopback ports of exporters that tests run only while they need them (nothing listens otherwise, so
# those jobs just have up == 0): the prometheus port plus these offsets, whose last digits no base
# port uses, so instances with other port offsets never collide.
REMOTE_CLUSTER_EXPORTER_OFFSET = 5
APP_EXPORTER_OFFSET = 6
COMPARATOR_OFFSET = 7


def remote_cluster_exporter_port(cfg: InstanceConfig) -> int:
    return cfg.ports["prometheus"] + REMOTE_CLUSTER_EXPORTER_OFFSET


def app_exporter_port(cfg: InstanceConfig) -> int:
    return cfg.ports["prometheus"] + APP_EXPORTER_OFFSET


def comparator_port(cfg: InstanceConfig) -> int:
    """Where a test runs the response comparator (docs/comparator.md) as a loopback process."""
    return cfg.ports["prometheus"] + COMPARATOR_OFFSET


def config(cfg: InstanceConfig) -> dict[str, object]:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "traefik", "static_configs": [{"targets": [f"127.0.0.1:{cfg.ports['traefik_api']}"]}]},
            # A shared Prometheus: Traefik-like series of "another cluster", told apart by their label
            # (tests/integration/test_prometheus_options.py, prometheus_selector).
            {
                "job_name": "remote-cluster-traefik",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{remote_cluster_exporter_port(cfg)}"], "labels": {"cluster": "remote"}}
                ],
            },
            # An application's own counters (a business metric for custom checks).
            {"job_name": "app", "static_configs": [{"targets": [f"127.0.0.1:{app_exporter_port(cfg)}"]}]},
            # The response comparator a test runs on loopback behind a {route}-compare Service.
            {
                "job_name": "darklaunch-compare",
                "metrics_path": "/__darklaunch/metrics",
                "static_configs": [{"targets": [f"127.0.0.1:{comparator_port(cfg)}"]}],
            },
        ],
    }


def start(cfg: InstanceConfig, procs: ProcessTable) -> None:
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not shutil.which(binary):
        raise RuntimeError("prometheus not found: run scripts/bootstrap (apt-get install prometheus)")
    conf = cfg.state_dir / "prometheus.yml"
    conf.write_text(yaml.safe_dump(config(cfg), sort_keys=False))
    data = cfg.state_dir / "prometheus-data"
    data.mkdir(parents=True, exist_ok=True)
    procs.start(
        NAME,
        [
            binary,
            f"--config.file={conf}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=1d",
            f"--web.listen-address=127.0.0.1:{cfg.ports['prometheus']}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ],
    )


def is_ready(cfg: InstanceConfig) -> bool:
    try:
        with urllib.request.urlopen(cfg.prometheus_url + "/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def wait_ready(cfg: InstanceConfig, procs: ProcessTable, timeout: float = 60.0) -> None:
    def ready() -> bool:
        require_alive(procs, NAME)
        return is_ready(cfg)

    wait_until("Prometheus /-/ready", ready, timeout, on_timeout=lambda: procs.log_tail(NAME))
