"""Call-frame information of one ELF file as rows to bisect.

pyelftools parses the CIE/FDE records; the row table of an FDE is built here, once, the
first time a pc inside it is asked for (pyelftools' own table decoder stops at
DW_CFA_GNU_args_size, which libc uses). `.eh_frame_hdr`'s sorted table finds the FDE for a
pc without parsing the others: python3.11 has ~10,000 FDEs and parsing all of them takes
about a second. A file without the header (or with `.debug_frame` only) is parsed whole.
"""

from __future__ import annotations

import bisect
import io
import struct
from dataclasses import dataclass
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.dwarf.callframe import CIE, FDE, CallFrameInfo
from elftools.dwarf.structs import DWARFStructs
from elftools.elf.elffile import ELFFile

# DWARF register numbers (x86-64 psABI): rax rdx rcx rbx rsi rdi rbp rsp r8..r15, RA = 16.
RBP, RSP, RA = 6, 7, 16

# Register rule kinds.
UNDEFINED, SAME, OFFSET, VAL_OFFSET, REGISTER, EXPRESSION, VAL_EXPRESSION = range(7)


@dataclass(frozen=True, slots=True)
class Row:
    """How to find the caller's registers at link-time pcs from `start` on: the CFA is
    `cfa_reg + cfa_offset` (or the value of `cfa_expr`), each rule is (regno, kind, arg)."""

    start: int
    cfa_reg: int
    cfa_offset: int
    cfa_expr: bytes | None
    rules: tuple[tuple[int, int, Any], ...]
    signal: bool = False


@dataclass(frozen=True, slots=True)
class FdeRows:
    """The rows of one FDE, sorted by start; `end` is the first pc past it."""

    starts: tuple[int, ...]
    rows: tuple[Row, ...]
    end: int

    def row(self, pc: int) -> Row | None:
        if pc >= self.end:
            return None
        i = bisect.bisect_right(self.starts, pc) - 1
        return self.rows[i] if i >= 0 else None


class _Section:
    """One CFI section: the FDE index (start -> FDE offset) and the rows built so far."""

    def __init__(self, data: bytes, address: int, eh: bool,
                 index: list[tuple[int, int]] | None) -> None:
        structs = DWARFStructs(little_endian=True, dwarf_format=32, address_size=8)
        self.cfi = CallFrameInfo(io.BytesIO(data), len(data), address, structs, for_eh_frame=eh)
        self.built: dict[int, FdeRows | None] = {}
        if index is None:
            # No search table: parse every record once and index the FDEs.
            self.fdes = {}
            for entry in self.cfi.get_entries():
                if isinstance(entry, FDE):
                    self.fdes[entry.offset] = entry
            index = sorted((e.header["initial_location"], off) for off, e in self.fdes.items())
        else:
            self.fdes = {}
        self.starts = [start for start, _ in index]
        self.offsets = [off for _, off in index]

    def rows_for(self, pc: int) -> FdeRows | None:
        i = bisect.bisect_right(self.starts, pc) - 1
        # Zero-length or overlapping FDEs exist: look back a little.
        for j in range(i, max(-1, i - 4), -1):
            rows = self._build(self.offsets[j])
            if rows is not None and rows.starts and rows.starts[0] <= pc < rows.end:
                return rows
        return None

    def _build(self, offset: int) -> FdeRows | None:
        if offset in self.built:
            return self.built[offset]
        rows: FdeRows | None = None
        try:
            entry = self.fdes.get(offset) or self.cfi._parse_entry_at(offset)
            if isinstance(entry, FDE):
                rows = build_rows(entry)
        except (ELFError, ValueError, KeyError, AssertionError, IndexError, struct.error):
            rows = None
        self.built[offset] = rows
        return rows


def build_rows(fde: FDE) -> FdeRows:
    """Run the CIE's initial instructions, then the FDE's, recording a row at each
    location change (DWARF 5, section 6.4.2)."""
    cie = fde.cie
    assert isinstance(cie, CIE)
    caf = cie.header["code_alignment_factor"]
    daf = cie.header["data_alignment_factor"]
    aug = cie.header.get("augmentation", b"") or b""
    signal = b"S" in (aug if isinstance(aug, bytes) else str(aug).encode())
    start = fde.header["initial_location"]
    end = start + fde.header["address_range"]

    cfa: list[Any] = [RSP, 8, None]
    regs: dict[int, tuple[int, Any]] = {}
    rows: list[Row] = []
    pc = start

    def snapshot() -> Row:
        return Row(pc, cfa[0], cfa[1], cfa[2], tuple((r, k, a) for r, (k, a) in regs.items()),
                   signal)

    def run(instructions: list[Any], initial: dict[int, tuple[int, Any]] | None) -> None:
        nonlocal pc, cfa, regs
        saved: list[tuple[list[Any], dict[int, tuple[int, Any]]]] = []
        for ins in instructions:
            op = int(ins.opcode)
            args = ins.args
            if op in (0x40, 0x02, 0x03, 0x04):  # advance_loc*
                new_pc = pc + args[0] * caf
                if initial is not None and new_pc != pc:
                    rows.append(snapshot())
                pc = new_pc
            elif op == 0x01:  # set_loc
                if initial is not None:
                    rows.append(snapshot())
                pc = args[0]
            elif op == 0x0C:  # def_cfa
                cfa = [args[0], args[1], None]
            elif op == 0x12:  # def_cfa_sf
                cfa = [args[0], args[1] * daf, None]
            elif op == 0x0D:  # def_cfa_register
                cfa = [args[0], cfa[1], None]
            elif op == 0x0E:  # def_cfa_offset
                cfa = [cfa[0], args[0], None]
            elif op == 0x13:  # def_cfa_offset_sf
                cfa = [cfa[0], args[0] * daf, None]
            elif op == 0x0F:  # def_cfa_expression
                cfa = [-1, 0, bytes(args[0])]
            elif op in (0x80, 0x05, 0x11):  # offset, offset_extended(_sf)
                regs[args[0]] = (OFFSET, args[1] * daf)
            elif op == 0x2F:  # GNU_negative_offset_extended
                regs[args[0]] = (OFFSET, -args[1] * daf)
            elif op in (0x14, 0x15):  # val_offset(_sf)
                regs[args[0]] = (VAL_OFFSET, args[1] * daf)
            elif op == 0x07:
                regs[args[0]] = (UNDEFINED, None)
            elif op == 0x08:
                regs[args[0]] = (SAME, None)
            elif op == 0x09:
                regs[args[0]] = (REGISTER, args[1])
            elif op == 0x10:
                regs[args[0]] = (EXPRESSION, bytes(args[1]))
            elif op == 0x16:
                regs[args[0]] = (VAL_EXPRESSION, bytes(args[1]))
            elif op in (0xC0, 0x06):  # restore(_extended)
                if initial is not None and args[0] in initial:
                    regs[args[0]] = initial[args[0]]
                else:
                    regs.pop(args[0], None)
            elif op == 0x0A:  # remember_state
                saved.append((list(cfa), dict(regs)))
            elif op == 0x0B:  # restore_state
                if saved:
                    cfa, regs = saved.pop()
            # nop, GNU_args_size, GNU_window_save...: no effect on the rows we need

    run(cie.instructions, None)
    initial = dict(regs)
    run(fde.instructions, initial)
    if pc < end:
        rows.append(snapshot())
    rows = [r for r in rows if r.start < end]
    return FdeRows(tuple(r.start for r in rows), tuple(rows), end)


class CfiTable:
    """The CFI of one file: .eh_frame (through .eh_frame_hdr when present), then
    .debug_frame (from the file itself or its separate debug file)."""

    def __init__(self, sections: list[_Section]) -> None:
        self._sections = sections

    def __bool__(self) -> bool:
        return bool(self._sections)

    def row(self, vaddr: int) -> Row | None:
        """The row in force at link-time `vaddr`, None where no CFI covers it."""
        for sec in self._sections:
            rows = sec.rows_for(vaddr)
            if rows is not None:
                row = rows.row(vaddr)
                if row is not None:
                    return row
        return None

    @classmethod
    def load(cls, path: str, debug_path: str | None = None) -> CfiTable:
        sections: list[_Section] = []
        with open(path, "rb") as f:
            try:
                elf = ELFFile(f)
                eh = elf.get_section_by_name(".eh_frame")
                if eh is not None and eh["sh_type"] != "SHT_NOBITS" and eh["sh_size"]:
                    hdr = elf.get_section_by_name(".eh_frame_hdr")
                    index = None
                    if hdr is not None and hdr["sh_type"] != "SHT_NOBITS":
                        index = hdr_index(hdr.data(), hdr["sh_addr"], eh["sh_addr"])
                    sections.append(_Section(eh.data(), eh["sh_addr"], True, index))
                sections += _debug_frame(elf)
            except (ELFError, ValueError, struct.error):
                pass
        if debug_path and not any(not s.cfi.for_eh_frame for s in sections):
            try:
                with open(debug_path, "rb") as f:
                    sections += _debug_frame(ELFFile(f))
            except (OSError, ELFError, ValueError, struct.error):
                pass
        return cls(sections)


def _debug_frame(elf: ELFFile) -> list[_Section]:
    sec = elf.get_section_by_name(".debug_frame")
    if sec is None or sec["sh_type"] == "SHT_NOBITS" or not sec["sh_size"]:
        return []
    # data() undoes SHF_COMPRESSED itself.
    return [_Section(sec.data(), 0, False, None)]


def hdr_index(data: bytes, hdr_addr: int, eh_addr: int) -> list[tuple[int, int]] | None:
    """The binary search table of .eh_frame_hdr as (initial location, FDE offset in
    .eh_frame), or None for encodings other than the usual datarel sdata4."""
    if len(data) < 12 or data[0] != 1:
        return None
    ptr_enc, count_enc, table_enc = data[1], data[2], data[3]
    if ptr_enc != 0x1B or count_enc != 0x03 or table_enc != 0x3B:
        return None
    (count,) = struct.unpack_from("<I", data, 8)
    if 12 + count * 8 > len(data):
        return None
    pairs = struct.unpack_from(f"<{2 * count}i", data, 12)
    return [(hdr_addr + pairs[k], hdr_addr + pairs[k + 1] - eh_addr)
            for k in range(0, 2 * count, 2)]
