"""Inlined calls at an address, from DWARF (DW_TAG_inlined_subroutine), so that a stack
shows them as separate frames the way gdb does.

The DWARF is the file's own or that of its separate debug file. Only the compilation unit
that covers an address is read (found through .debug_aranges, else the units' ranges),
once; each unit becomes a list of (low, high, depth, name) ranges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, BinaryIO

from elftools.common.exceptions import DWARFError, ELFError
from elftools.elf.elffile import ELFFile

from runtime import debugsyms
from runtime.elfsyms import ElfFile

# A compilation unit larger than this (bytes of DIEs) is not read for inlined calls:
# pyelftools needs tens of seconds for python's ceval.c unit. Its frames still print, by
# symbol, without their inlined callees.
MAX_UNIT = 4 << 20

_ERRORS = (ELFError, DWARFError, KeyError, ValueError, AttributeError, IndexError, TypeError,
           AssertionError)


@dataclass
class InlineIndex:
    """The inlined-call ranges of one file, filled per compilation unit on demand."""

    dwarf: Any = None
    handle: BinaryIO | None = None
    units: dict[int, list[tuple[int, int, int, str]]] = field(default_factory=dict)
    unit_ranges: list[tuple[int, int, int]] | None = None
    aranges: Any = None

    @classmethod
    def load(cls, elf: ElfFile) -> InlineIndex:
        path = dwarf_file(elf)
        if path is None:
            return cls()
        try:
            handle = open(path, "rb")  # noqa: SIM115 - kept open: pyelftools reads lazily
            info = ELFFile(handle)
            if not info.has_dwarf_info():
                handle.close()
                return cls()
            dwarf = info.get_dwarf_info()
            aranges = dwarf.get_aranges() if dwarf.debug_aranges_sec is not None else None
            return cls(dwarf=dwarf, handle=handle, aranges=aranges)
        except (OSError, *_ERRORS):
            return cls()

    def chain(self, vaddr: int) -> list[tuple[str, int]]:
        """(name, low address of its range) of every inlined call covering `vaddr`,
        innermost first."""
        if self.dwarf is None:
            return []
        try:
            offset = self._unit_at(vaddr)
            if offset is None:
                return []
            entries = self.units.get(offset)
            if entries is None:
                entries = self.units[offset] = self._read_unit(offset)
        except _ERRORS:
            return []
        hits = [(depth, low, name) for low, high, depth, name in entries if low <= vaddr < high]
        hits.sort(reverse=True)
        return [(name, low) for _depth, low, name in hits]

    def _unit_at(self, vaddr: int) -> int | None:
        if self.aranges is not None:
            off = self.aranges.cu_offset_at_addr(vaddr)
            if off is not None:
                return off
        if self.unit_ranges is None:
            self.unit_ranges = []
            for cu in self.dwarf.iter_CUs():
                top = cu.get_top_DIE()
                for low, high in _die_ranges(self.dwarf, cu, top):
                    self.unit_ranges.append((low, high, cu.cu_offset))
        for low, high, off in self.unit_ranges:
            if low <= vaddr < high:
                return off
        return None

    def _read_unit(self, offset: int) -> list[tuple[int, int, int, str]]:
        cu = self.dwarf.get_CU_at(offset)
        if cu["unit_length"] > MAX_UNIT:
            return []
        out: list[tuple[int, int, int, str]] = []
        todo = [(cu.get_top_DIE(), 0)]
        while todo:
            die, depth = todo.pop()
            if die.tag == "DW_TAG_inlined_subroutine":
                name = _origin_name(die)
                if name:
                    for low, high in _die_ranges(self.dwarf, cu, die):
                        out.append((low, high, depth, name))
            for child in die.iter_children():
                todo.append((child, depth + 1))
        return out


def _origin_name(die: Any) -> str | None:
    seen = 0
    while die is not None and seen < 8:
        seen += 1
        for attr in ("DW_AT_linkage_name", "DW_AT_MIPS_linkage_name", "DW_AT_name"):
            if attr in die.attributes:
                value = die.attributes[attr].value
                return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        for ref in ("DW_AT_abstract_origin", "DW_AT_specification"):
            if ref in die.attributes:
                die = die.get_DIE_from_attribute(ref)
                break
        else:
            return None
    return None


def _die_ranges(dwarf: Any, cu: Any, die: Any) -> list[tuple[int, int]]:
    attrs = die.attributes
    if "DW_AT_low_pc" in attrs and "DW_AT_high_pc" in attrs:
        low = attrs["DW_AT_low_pc"].value
        high = attrs["DW_AT_high_pc"]
        end = high.value if high.form == "DW_FORM_addr" else low + high.value
        return [(low, end)]
    if "DW_AT_ranges" not in attrs:
        return []
    rl = dwarf.range_lists()
    if rl is None:
        return []
    attr = attrs["DW_AT_ranges"]
    if attr.form == "DW_FORM_rnglistx":
        return []
    entries = rl.get_range_list_at_offset(attr.value, cu=cu)
    top = cu.get_top_DIE()
    base = top.attributes["DW_AT_low_pc"].value if "DW_AT_low_pc" in top.attributes else 0
    out = []
    for e in entries:
        if hasattr(e, "base_address"):
            base = e.base_address
            continue
        if getattr(e, "is_absolute", False):
            out.append((e.begin_offset, e.end_offset))
        else:
            out.append((base + e.begin_offset, base + e.end_offset))
    return out


def dwarf_file(elf: ElfFile) -> str | None:
    """The file holding `elf`'s DWARF: itself, else its separate debug file."""
    if ".debug_info" in elf.sections and elf.sections[".debug_info"].type != "SHT_NOBITS":
        return elf.path
    return debugsyms.debug_file(elf.path, elf.build_id)
