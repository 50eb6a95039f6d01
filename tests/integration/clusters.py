"""A second instance of the harness for one test module (its own apiserver, Traefik and backends), in a state
directory and at a port offset that environment variables can move, so parallel sessions each run their own."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from dlcluster.testing import DOWN, Cluster, cluster_from_env, run_up
from shadow import REPO_ROOT


@contextmanager
def second_cluster(name: str, state_var: str, offset_var: str, default_offset: int, *up_args: str) -> Iterator[Cluster]:
    """``tests/cluster/up`` in ``$state_var`` (default ``.state/cluster-<name>``) at port offset ``$offset_var``
    (default ``default_offset``), with ``up_args``; stopped when the block ends."""
    state = os.environ.get(state_var) or str(REPO_ROOT / ".state" / f"cluster-{name}")
    offset = os.environ.get(offset_var) or str(default_offset)
    env = run_up("--state-dir", state, "--port-offset", offset, *up_args)
    try:
        yield cluster_from_env(env)
    finally:
        subprocess.run([str(DOWN), "--state-dir", state], capture_output=True, check=False)
