"""One file's DWARF, read lazily: a compilation unit is parsed only when a probed
function's address or a looked-up type name leads to it.

Functions are found by address through `.debug_aranges` (one CU parsed per function);
type names through an index built CU by CU, starting with the CUs already parsed for the
probed functions, so that a script touching one module of a large program parses one CU.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from elftools.common.exceptions import DWARFError, ELFError
from elftools.dwarf.compileunit import CompileUnit
from elftools.dwarf.die import DIE
from elftools.dwarf.dwarfinfo import DWARFInfo
from elftools.elf.elffile import ELFFile

from runtime.dwarf.ctypes import TypeBuilder
from runtime.dwarf.dies import SCOPE_TAGS, name_of, type_of
from runtime.errors import TargetError

_AGGREGATE_TAGS = {
    "DW_TAG_structure_type": "struct",
    "DW_TAG_class_type": "struct",
    "DW_TAG_union_type": "union",
    "DW_TAG_enumeration_type": "enum",
}


@dataclass(frozen=True)
class FunctionDie:
    """A function's defining DIE and the DIE that carries its name and parameters (the
    same one, or its abstract origin / specification for inlined, LTO and C++ code)."""

    die: DIE
    origin: DIE
    low_pc: int


@dataclass(eq=False)
class DebugInfo:
    """The DWARF in `path` (the binary itself or its separate debug file)."""

    path: str
    dwarf: DWARFInfo
    _file: object = field(repr=False)
    types: TypeBuilder = field(init=False)
    _names: dict[str, int] = field(default_factory=dict)  # 'struct Foo' -> DIE offset
    _indexed: set[int] = field(default_factory=set)  # CU offsets already indexed
    _touched: list[int] = field(default_factory=list)  # CUs parsed for functions
    _aranges: Any = None
    cus_parsed: int = 0

    def __post_init__(self) -> None:
        self.types = TypeBuilder(self)

    @classmethod
    def open(cls, path: str) -> DebugInfo:
        try:
            f = open(path, "rb")  # noqa: SIM115 - pyelftools reads the sections lazily
        except OSError as e:
            raise TargetError(f"cannot read {path}: {e.strerror or e}") from None
        try:
            dwarf = ELFFile(f).get_dwarf_info(relocate_dwarf_sections=False)
        except (ELFError, DWARFError, ValueError) as e:
            f.close()
            raise TargetError(f"cannot read the DWARF of {path}: {e}") from None
        return cls(path, dwarf, f)

    # -- functions --------------------------------------------------------------------

    def function_at(self, vaddr: int) -> FunctionDie | None:
        """The function whose entry is link-time `vaddr`."""
        for cu in self._cus_for(vaddr):
            for die in cu.iter_DIEs():
                if die.tag != "DW_TAG_subprogram":
                    continue
                low = die.attributes.get("DW_AT_low_pc")
                if low is not None and low.value == vaddr:
                    return FunctionDie(die, self.origin(die), vaddr)
                # Optimised code split into hot and cold parts has ranges, not low_pc.
                if "DW_AT_ranges" in die.attributes and vaddr in self._range_starts(cu, die):
                    return FunctionDie(die, self.origin(die), vaddr)
        return None

    def _range_starts(self, cu: CompileUnit, die: DIE) -> set[int]:
        entry = die.attributes.get("DW_AT_entry_pc")
        if entry is not None and entry.form == "DW_FORM_addr":
            return {entry.value}
        return {lo for lo, _hi in self._ranges(cu, die)}

    def _ranges(self, cu: CompileUnit, die: DIE) -> list[tuple[int, int]]:
        """The [low, high) address ranges of a DIE's DW_AT_ranges."""
        lists = self.dwarf.range_lists()
        if lists is None:
            return []
        top = cu.get_top_DIE()
        base_attr = top.attributes.get("DW_AT_low_pc")
        base = base_attr.value if base_attr is not None else 0
        try:
            entries = lists.get_range_list_at_offset(die.attributes["DW_AT_ranges"].value,
                                                     cu=cu)
        except (DWARFError, ValueError, KeyError):
            return []
        out = []
        for r in entries:
            start = getattr(r, "begin_offset", None)
            end = getattr(r, "end_offset", None)
            if start is None or end is None:
                base = getattr(r, "base_address", base)  # a base address selection entry
                continue
            absolute = getattr(r, "is_absolute", False)
            out.append((start, end) if absolute else (base + start, base + end))
        return out

    def _cus_for(self, vaddr: int) -> Iterator[CompileUnit]:
        if self._aranges is None:
            self._aranges = self.dwarf.get_aranges() or False
        if self._aranges:
            off = self._aranges.cu_offset_at_addr(vaddr)
            if off is not None:
                yield self._cu(off)
                return
        # No aranges (or the address is missing there): test each CU's own ranges.
        for cu in self.dwarf.iter_CUs():
            if self._cu_covers(cu, vaddr):
                self._note(cu)
                yield cu

    def _cu(self, offset: int) -> CompileUnit:
        cu = self.dwarf.get_CU_at(offset)
        self._note(cu)
        return cu

    def _note(self, cu: CompileUnit) -> None:
        if cu.cu_offset not in self._touched:
            self._touched.append(cu.cu_offset)
            self.cus_parsed += 1

    def _cu_covers(self, cu: CompileUnit, vaddr: int) -> bool:
        top = cu.get_top_DIE()
        low = top.attributes.get("DW_AT_low_pc")
        high = top.attributes.get("DW_AT_high_pc")
        if low is not None and high is not None:
            end = high.value if high.form == "DW_FORM_addr" else low.value + high.value
            if low.value <= vaddr < end:
                return True
        if "DW_AT_ranges" in top.attributes:
            if self.dwarf.range_lists() is None:
                return True  # cannot tell: look inside
            return any(lo <= vaddr < hi for lo, hi in self._ranges(cu, top))
        return False

    def origin(self, die: DIE) -> DIE:
        """Follow DW_AT_abstract_origin / DW_AT_specification to the declaring DIE."""
        seen = 0
        while seen < 8:
            for attr in ("DW_AT_abstract_origin", "DW_AT_specification"):
                if attr in die.attributes:
                    die = die.get_DIE_from_attribute(attr)
                    break
            else:
                return die
            seen += 1
        return die

    def params(self, fn: FunctionDie) -> list[DIE]:
        """Formal parameters in order (from the concrete DIE, else from its origin)."""
        found = [c for c in fn.die.iter_children() if c.tag == "DW_TAG_formal_parameter"]
        if not found and fn.origin is not fn.die:
            found = [c for c in fn.origin.iter_children() if c.tag == "DW_TAG_formal_parameter"]
        return found

    def param_name(self, die: DIE) -> str:
        return name_of(self.origin(die))

    def param_type(self, die: DIE) -> DIE | None:
        return type_of(self.origin(die))

    def return_type(self, fn: FunctionDie) -> DIE | None:
        return type_of(fn.die) or type_of(fn.origin)

    # -- types by name ----------------------------------------------------------------

    def type_die(self, name: str) -> DIE | None:
        """The defining DIE of 'struct Foo' / 'union U' / 'enum E', indexing CUs until it
        turns up: first the CUs already parsed, then the rest in file order."""
        off = self._names.get(name)
        if off is not None:
            return self.dwarf.get_DIE_from_refaddr(off)
        for cu_off in list(self._touched):
            if self._index_cu(self.dwarf.get_CU_at(cu_off), name):
                return self.dwarf.get_DIE_from_refaddr(self._names[name])
        for cu in self.dwarf.iter_CUs():
            if self._index_cu(cu, name):
                return self.dwarf.get_DIE_from_refaddr(self._names[name])
        return None

    def _index_cu(self, cu: CompileUnit, want: str) -> bool:
        if cu.cu_offset not in self._indexed:
            self._indexed.add(cu.cu_offset)
            self._index_scope(cu, cu.get_top_DIE(), "")
        return want in self._names

    def _index_scope(self, cu: CompileUnit, scope: DIE, prefix: str) -> None:
        for die in cu.iter_DIE_children(scope):
            kind = _AGGREGATE_TAGS.get(str(die.tag))
            name = name_of(die)
            if kind and name and "DW_AT_declaration" not in die.attributes:
                self._names.setdefault(f"{kind} {prefix}{name}", die.offset)
            if die.tag in SCOPE_TAGS and name and die.has_children:
                self._index_scope(cu, die, f"{prefix}{name}::")

    def register_name(self, name: str, die: DIE) -> None:
        self._names.setdefault(name, die.offset)

    def close(self) -> None:
        close = getattr(self._file, "close", None)
        if close is not None:
            close()
