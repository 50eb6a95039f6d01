"""Build the controlplane binary, only when its Go sources change."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from .config import BIN_DIR, CONTROLPLANE_SRC

SOURCES = ("go.mod", "go.sum", "main.go")
BINARY = BIN_DIR / "controlplane"
STAMP = BIN_DIR / "controlplane.sha256"


def _kubernetes_version() -> str:
    match = re.search(r"^\s*k8s\.io/kubernetes\s+(v\S+)", (CONTROLPLANE_SRC / "go.mod").read_text(), re.M)
    if not match:
        raise RuntimeError("k8s.io/kubernetes is not required in controlplane/go.mod")
    return match.group(1)


def _ldflags() -> str:
    version = _kubernetes_version()
    major, minor = version.lstrip("v").split(".")[:2]
    # Without these the apiserver reports v0.0.0-master and clients warn about version skew.
    stamp = " ".join(
        f"-X k8s.io/component-base/version.{key}={value}"
        for key, value in (("gitVersion", version), ("gitMajor", major), ("gitMinor", minor), ("gitTreeState", "clean"))
    )
    return f"-s -w {stamp}"


def source_digest() -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (CONTROLPLANE_SRC / name).read_bytes() + b"\0")
    digest.update(_ldflags().encode())
    return digest.hexdigest()


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    # go.mod names the Go it needs; never let `go` fetch a toolchain (no network but the proxy).
    env["GOTOOLCHAIN"] = "local"
    env.setdefault("CGO_ENABLED", "0")
    path = env.get("PATH", "")
    if "/usr/local/go/bin" not in path.split(":"):
        env["PATH"] = f"{path}:/usr/local/go/bin" if path else "/usr/local/go/bin"
    return env


def ensure_binary() -> Path:
    """Return the binary, building it first if go.mod/go.sum/main.go changed since the last build."""
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    with (BIN_DIR / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two `up`s at once build once
        want = source_digest()
        if BINARY.is_file() and STAMP.is_file() and STAMP.read_text().strip() == want:
            return BINARY
        print("controlplane: building (a cold build takes about 5 minutes on 2 cores)...", file=sys.stderr)
        started = time.monotonic()
        tmp = BINARY.with_name("controlplane.tmp")
        cmd = ["go", "build", "-trimpath", "-buildvcs=false", f"-ldflags={_ldflags()}", "-o", str(tmp), "."]
        # Compiler output goes to stderr: `up` keeps stdout for the exports.
        result = subprocess.run(
            cmd, cwd=CONTROLPLANE_SRC, env=go_env(), stdout=sys.stderr, stderr=sys.stderr, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"controlplane build failed (exit {result.returncode}); see the output above")
        tmp.replace(BINARY)
        STAMP.write_text(want + "\n")
        print(f"controlplane: built in {time.monotonic() - started:.0f}s", file=sys.stderr)
        return BINARY
