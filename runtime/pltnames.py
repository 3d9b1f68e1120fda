"""Names for PLT stubs (`clock_gettime@plt`), which no symbol table covers: each stub of
.plt, .plt.sec and .plt.got jumps through a GOT slot (`jmp *disp(%rip)`), and the dynamic
relocation of that slot (JUMP_SLOT, or GLOB_DAT for .plt.got) names the function, as
objdump and gdb name them."""

from __future__ import annotations

import bisect
import functools
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.elfsyms import FileIdentity

if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile

PLT_SECTIONS = (".plt", ".plt.sec", ".plt.got")
_R_X86_64_GLOB_DAT = 6
_R_X86_64_JUMP_SLOT = 7


@dataclass(frozen=True)
class PltNames:
    """Stub start addresses (link-time, sorted), their ends and names."""

    starts: tuple[int, ...] = ()
    ends: tuple[int, ...] = ()
    names: tuple[str, ...] = ()

    def name_at(self, vaddr: int) -> tuple[str, int] | None:
        i = bisect.bisect_right(self.starts, vaddr) - 1
        if i >= 0 and vaddr < self.ends[i]:
            return self.names[i], vaddr - self.starts[i]
        return None


@functools.lru_cache(maxsize=64)
def plt_names(path: str, identity: FileIdentity) -> PltNames:
    # pyelftools is imported here, by the first stack that needs a PLT name, not at start-up.
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            return _read(ELFFile(f))
    except (OSError, ELFError, ValueError, struct.error):
        return PltNames()


def _read(elf: ELFFile) -> PltNames:
    from elftools.elf.relocation import RelocationSection
    from elftools.elf.sections import SymbolTableSection

    slots: dict[int, str] = {}
    for rels in elf.iter_sections():
        if not isinstance(rels, RelocationSection) or not rels.is_RELA():
            continue
        symtab = elf.get_section(rels["sh_link"])
        if not isinstance(symtab, SymbolTableSection):
            continue
        for rel in rels.iter_relocations():
            if rel["r_info_type"] in (_R_X86_64_JUMP_SLOT, _R_X86_64_GLOB_DAT) \
                    and rel["r_info_sym"]:
                name = symtab.get_symbol(rel["r_info_sym"]).name
                if name:
                    slots[rel["r_offset"]] = name
    stubs: list[tuple[int, int, str]] = []
    for secname in PLT_SECTIONS:
        plt = elf.get_section_by_name(secname)
        if plt is None or not plt["sh_size"]:
            continue
        data, base = plt.data(), plt["sh_addr"]
        # .plt.got stubs are 8 bytes without IBT (jmp + nop), 16 with it: sh_entsize says.
        size = plt["sh_entsize"] if secname == ".plt.got" and plt["sh_entsize"] in (8, 16) else 16
        for at in range(0, len(data) - size + 1, size):
            entry = data[at:at + size]
            jmp = entry.find(b"\xff\x25")  # jmp *disp32(%rip), after endbr64/bnd if any
            if jmp < 0 or jmp + 6 > len(entry):
                continue
            (disp,) = struct.unpack_from("<i", entry, jmp + 2)
            slot = base + at + jmp + 6 + disp
            target = slots.get(slot)
            if target is not None:
                stubs.append((base + at, base + at + size, f"{target}@plt"))
    stubs.sort()
    return PltNames(tuple(s for s, _, _ in stubs), tuple(e for _, e, _ in stubs),
                    tuple(n for _, _, n in stubs))
