"""What tests/programs/insn_matrix.S declares about itself: each probe site's expected
instruction class and hit count (its .insn_matrix section), and why refused sites are refused."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

REFUSED_REASONS = {
    "site_rej_syscall": "system call instructions cannot run out of line",
    "site_rej_int3": "already holds an int3",
    "site_rej_ud2": "#UD on purpose",
    "site_rej_hlt": "privileged",
    "site_rej_int80": "software interrupts",
    "site_rej_in": "port I/O",
    "site_rej_lcall": "far transfers",
    "site_rej_xbegin": "transactional memory",
}


@dataclass(frozen=True)
class Site:
    name: str
    cls: str
    hits: int
    vaddr: int
    aliases: frozenset[str]  # every symbol at vaddr (a site may start its function)


def read_sites(path: Path) -> list[Site]:
    """The sites with their expected class and hit count, from the program's .insn_matrix."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        symbols = {
            s.name: s["st_value"]
            for s in elf.get_section_by_name(".symtab").iter_symbols()
            if s.name
        }
        lines = elf.get_section_by_name(".insn_matrix").data().decode().split("\n")
    sites = []
    for line in filter(None, lines):
        name, cls, hits = line.split()
        at = symbols[name]
        aliases = frozenset(n for n, v in symbols.items() if v == at)
        sites.append(Site(name, cls, int(hits), at, aliases))
    return sites


def function_extent(path: Path, vaddr: int) -> tuple[str, int, int]:
    """(name, start, end) of the matrix function (m_*, r_*, h_*, main) holding `vaddr`:
    its assembly has no .size, so each function runs up to the next one."""
    with open(path, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        found = sorted({(s["st_value"], s.name) for s in symtab.iter_symbols()
                        if s.name.startswith(("m_", "r_", "h_", "main")) and s["st_value"]})
    for (start, name), (end, _n) in zip(found, found[1:], strict=False):
        if start <= vaddr < end:
            return name, start, end
    raise LookupError(f"no matrix function holds {vaddr:#x}")
