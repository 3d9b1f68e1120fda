"""Finding the other tracers to compare with: bpftrace is installed on demand (apt, for
the benchmark only, never a project dependency), and used only if it actually runs here
(a VM kernel may lack BPF or uprobe events)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Availability:
    """`path` of a usable tool, or None with `note` saying why it is skipped."""

    path: str | None
    note: str


def _apt_install(package: str) -> str | None:
    """Install with apt-get; returns the problem, or None when it worked."""
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return "apt-get is not usable here (missing or not root)"
    cmd = ["apt-get", "install", "-y", "-q", package]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        # The package lists may never have been fetched on this machine.
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["unknown error"]
        return f"apt-get install {package} failed: {lines[-1]}"
    return None


def bpftrace(install: bool) -> Availability:
    path = shutil.which("bpftrace")
    if path is None and install:
        problem = _apt_install("bpftrace")
        if problem:
            return Availability(None, problem)
        path = shutil.which("bpftrace")
    if path is None:
        return Availability(None, "bpftrace is not installed (run without --no-install)")
    try:
        done = subprocess.run([path, "-e", 'BEGIN { printf("ok\\n"); exit(); }'],
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return Availability(None, "bpftrace installed but a trivial script hung for 60 s")
    if done.returncode != 0 or "ok" not in done.stdout:
        lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
        return Availability(None, f"bpftrace installed but cannot run here: {lines[0][:160]}")
    version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.strip()
    return Availability(path, version)


def version_of(argv: list[str]) -> str:
    """First line of a tool's version output ("" when it has none)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = done.stdout.strip() or done.stderr.strip()
    return text.splitlines()[0] if text else ""
