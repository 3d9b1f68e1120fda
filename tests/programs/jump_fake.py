"""The stand-in in-target program (jump_fake_program.S) as the jump path's sites take it."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from programs.build import PROGRAMS

SHM_SIZE = 0x8000
ENTRY_HITS = 0x1000
ENTRY_ARG_SUM = 0x2000
RET_HITS = 0x3000
RET_SUM = 0x3008
LAST_FLAGS = 0x3010
PER_THREAD = 0x5000


@dataclass(frozen=True)
class FakeProgram:
    code: bytes
    entries: dict[str, int] = field(default_factory=dict)
    shm_size: int = SHM_SIZE


def fake_program(out_dir: Path) -> FakeProgram:
    """Assemble the stand-in and cut its .text out (it has no relocations)."""
    obj = out_dir / "jump_fake_program.o"
    raw = out_dir / "jump_fake_program.bin"
    subprocess.run(["gcc", "-c", "-o", str(obj), str(PROGRAMS / "jump_fake_program.S")],
                   check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(obj), str(raw)], check=True)
    nm = subprocess.run(["nm", str(obj)], check=True, capture_output=True, text=True).stdout
    offsets = {}
    for line in nm.splitlines():
        value, _kind, name = line.split()
        offsets[name] = int(value, 16)
    return FakeProgram(raw.read_bytes(), offsets)


def word(view, offset: int) -> int:  # noqa: ANN001 - an mmap
    return int.from_bytes(view[offset : offset + 8], "little")
