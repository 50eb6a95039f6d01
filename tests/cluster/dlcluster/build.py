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


# --- Traefik v2 from its Go module (it has no PyPI wheel) -------------------------------------------

TRAEFIK_V2_MODULE = "github.com/traefik/traefik/v2"


def _module_directives(go_mod: str) -> list[str]:
    """The ``replace`` and ``exclude`` directives of a go.mod, single lines and blocks, verbatim."""
    kept: list[str] = []
    in_block = False
    for line in go_mod.splitlines():
        word = line.split("//", 1)[0].strip()
        if in_block:
            kept.append(line)
            in_block = word != ")"
        elif word.startswith(("replace", "exclude")):
            kept.append(line)
            in_block = word.endswith("(")
    return kept


def traefik_v2_build_command(version: str, output: Path) -> list[str]:
    # Stamped like the release build, so `traefik version` names the release.
    ldflags = f"-s -w -X {TRAEFIK_V2_MODULE}/pkg/version.Version={version}"
    return ["go", "build", f"-ldflags={ldflags}", "-o", str(output), f"{TRAEFIK_V2_MODULE}/cmd/traefik"]


def build_traefik_v2(version: str, output: Path) -> Path:
    """Build ``cmd/traefik`` of Traefik ``version`` (2.x) into ``output`` from a throwaway main module.

    Go ignores the replace/exclude directives of a dependency's go.mod, and Traefik's go.mod requires
    github.com/abbot/go-http-auth at a version that only exists through its replace (the proxy
    answers 403 for v0.0.0-00010101000000-000000000000), so the throwaway module repeats them.
    """
    from .crds import module_dir  # crds imports this module

    output = output.resolve()  # go runs in the throwaway module's directory
    if output.is_file():
        return output
    source = module_dir(TRAEFIK_V2_MODULE, version)
    output.parent.mkdir(parents=True, exist_ok=True)
    with (output.parent / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if output.is_file():
            return output
        print(f"traefik {version}: building from the Go module (about 10 minutes on 2 cores)...", file=sys.stderr)
        started = time.monotonic()
        work = output.parent.parent / "build-module"
        work.mkdir(exist_ok=True)
        directives = "\n".join(_module_directives((source / "go.mod").read_text()))
        (work / "go.mod").write_text(
            f"module darklaunch.invalid/traefik-build\n\ngo 1.22\n\nrequire {TRAEFIK_V2_MODULE} v{version}\n\n"
            f"{directives}\n"
        )
        (work / "tools.go").write_text(
            f'//go:build tools\n\npackage tools\n\nimport _ "{TRAEFIK_V2_MODULE}/cmd/traefik"\n'
        )
        env = go_env()
        env["GOFLAGS"] = "-mod=mod"  # let go fill go.sum from the proxy
        tmp = output.with_name(output.name + ".tmp")
        result = subprocess.run(
            traefik_v2_build_command(version, tmp), cwd=work, env=env, stdout=sys.stderr, stderr=sys.stderr, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"building Traefik {version} failed (exit {result.returncode}); see the output above")
        tmp.replace(output)
        print(f"traefik {version}: built in {time.monotonic() - started:.0f}s", file=sys.stderr)
        return output
