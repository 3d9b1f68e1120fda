"""Building the benchmark's C programs and locating the probed instruction.

The target is built without CET so that `bench_fn` starts with a plain instruction
(`lea rax,[rdi+1]`): uprobe and the raw tracer then take the same path (copy to an
out-of-line slot + jmp back), and the comparison measures the trap path, not two
different instruction classes.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from elftools.elf.elffile import ELFFile

BENCH_DIR = Path(__file__).resolve().parent
CFLAGS = ("-O2", "-fcf-protection=none", "-fno-omit-frame-pointer")
PROBED = "bench_fn"


class BuildError(Exception):
    """A benchmark program did not compile; the message is gcc's first lines."""


@dataclass(frozen=True)
class Programs:
    """The built binaries and the probed instruction (link-time vaddr and length)."""

    target: Path
    raw_tracer: Path
    ptrace_cost: Path
    site_vaddr: int
    site_len: int
    site_text: str


def _gcc(source: Path, out: Path) -> None:
    cmd = ["gcc", *CFLAGS, "-o", str(out), str(source)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        first = "\n".join(done.stderr.splitlines()[:5])
        raise BuildError(f"gcc failed for {source.name}: {first}")


def _first_instruction(binary: Path, name: str) -> tuple[int, int, str]:
    """(vaddr, length, text) of the first instruction of function `name`."""
    with binary.open("rb") as f:
        elf = ELFFile(f)
        symtab = elf.get_section_by_name(".symtab")
        syms = symtab.get_symbol_by_name(name) if symtab else None
        if not syms:
            raise BuildError(f"{binary.name}: no symbol {name}")
        vaddr = syms[0]["st_value"]
        text = elf.get_section_by_name(".text")
        start = text["sh_addr"]
        code = text.data()[vaddr - start : vaddr - start + 16]
    insn = next(Cs(CS_ARCH_X86, CS_MODE_64).disasm(code, vaddr), None)
    if insn is None:
        raise BuildError(f"{binary.name}: cannot decode {name}")
    return vaddr, insn.size, f"{insn.mnemonic} {insn.op_str}"


def build(out_dir: Path) -> Programs:
    """Compile target.c, raw_tracer.c and ptrace_cost.c into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    built = {}
    for name in ("target", "raw_tracer", "ptrace_cost"):
        built[name] = out_dir / name
        _gcc(BENCH_DIR / f"{name}.c", built[name])
    vaddr, length, text = _first_instruction(built["target"], PROBED)
    return Programs(built["target"], built["raw_tracer"], built["ptrace_cost"], vaddr, length,
                    text)
