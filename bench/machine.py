"""What the numbers were measured on: CPU model, CPU count, kernel, Python, load."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Machine:
    model: str
    cpus: int
    kernel: str
    python: str
    hypervisor: str
    date: str


def _lscpu() -> dict[str, str]:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return {}
    fields = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def describe() -> Machine:
    cpu = _lscpu()
    return Machine(
        model=cpu.get("Model name", platform.processor() or "unknown"),
        cpus=os.cpu_count() or 0,
        kernel=platform.release(),
        python=sys.version.split()[0],
        hypervisor=cpu.get("Hypervisor vendor", "none"),
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def load() -> str:
    """The 1-minute load average: other work on a shared machine skews every number."""
    return f"{os.getloadavg()[0]:.2f}"
