"""The variables visible at one address, and where each lives there: for `args` at a
source-line probe.

A variable's DWARF location is an expression (or a list of them, one per address range).
The ones a probe can read with the registers it captures are kept, turned into a
(kind, DWARF register, offset) triple that the handler evaluates at the hit:

- ("reg", r, 0): the value is register r (DW_OP_reg*);
- ("breg", r, k): the value is in memory at register r + k (DW_OP_breg*, DW_OP_fbreg with a
  frame base of a register, or of DW_OP_call_frame_cfa, whose rule at the probe's address
  the call-frame information gives as register + offset).

Anything else (a value computed from other values, split into pieces, only known on entry,
or absent at this address: optimised out) is reported with why it cannot be read.
"""

from __future__ import annotations

from dataclasses import dataclass

from elftools.dwarf.compileunit import CompileUnit
from elftools.dwarf.die import DIE, AttributeValue
from elftools.dwarf.dwarf_expr import DWARFExprParser
from elftools.dwarf.locationlists import LocationParser

from runtime.dwarf.dies import name_of
from runtime.dwarf.info import DebugInfo
from runtime.unwind.cfi import CfiTable

_VAR_TAGS = ("DW_TAG_variable", "DW_TAG_formal_parameter")
_SCOPE_TAGS = ("DW_TAG_lexical_block", "DW_TAG_inlined_subroutine")


@dataclass(frozen=True)
class Local:
    """One visible variable: `location` is (kind, dwarf register, offset), or None with
    `why` saying what keeps it from being read."""

    name: str
    die: DIE
    location: tuple[str, int, int] | None
    why: str = ""


def locals_at(info: DebugInfo, vaddr: int, elf_path: str) -> list[Local] | None:
    """The variables visible at link-time `vaddr` (inner scopes hide outer ones), or None
    when no function's DWARF covers the address."""
    for cu in info._cus_for(vaddr):
        for die in cu.iter_DIEs():
            if die.tag == "DW_TAG_subprogram" and _covers(info, cu, die, vaddr):
                return _collect(info, cu, die, vaddr, elf_path)
    return None


def _covers(info: DebugInfo, cu: CompileUnit, die: DIE, vaddr: int) -> bool:
    low = die.attributes.get("DW_AT_low_pc")
    high = die.attributes.get("DW_AT_high_pc")
    if low is not None and high is not None:
        end = high.value if high.form == "DW_FORM_addr" else low.value + high.value
        return bool(low.value <= vaddr < end)
    if "DW_AT_ranges" in die.attributes:
        return any(lo <= vaddr < hi for lo, hi in info._ranges(cu, die))
    return False


def _collect(info: DebugInfo, cu: CompileUnit, fn: DIE, vaddr: int,
             elf_path: str) -> list[Local]:
    frame = _frame_base(info, cu, fn, vaddr, elf_path)
    found: dict[str, Local] = {}
    scopes = [fn]
    while scopes:
        scope = scopes.pop()
        inner = []
        for child in scope.iter_children():
            if child.tag in _VAR_TAGS:
                name = name_of(info.origin(child))
                if name:
                    found[name] = _local(info, cu, child, name, vaddr, frame)
            elif child.tag in _SCOPE_TAGS and _covers(info, cu, child, vaddr):
                inner.append(child)
        scopes.extend(inner)  # visited after this scope: inner names win
    return list(found.values())


def _frame_base(info: DebugInfo, cu: CompileUnit, fn: DIE, vaddr: int,
                elf_path: str) -> tuple[int, int] | str:
    """The frame base at `vaddr` as (dwarf register, offset), or why it is unknown."""
    attr = fn.attributes.get("DW_AT_frame_base")
    if attr is None:
        return "the function has no frame base"
    ops = _ops(info, cu, attr, vaddr, fn)
    if isinstance(ops, str):
        return ops
    if len(ops) == 1 and ops[0].op_name == "DW_OP_call_frame_cfa":
        row = CfiTable.load(elf_path, info.path).row(vaddr)
        if row is None or row.cfa_expr is not None:
            return "no call-frame information gives the frame address here"
        return row.cfa_reg, row.cfa_offset
    if len(ops) == 1 and ops[0].op_name.startswith("DW_OP_breg"):
        return _regno(ops[0].op_name, ops[0].args), ops[0].args[-1]
    if len(ops) == 1 and ops[0].op_name.startswith("DW_OP_reg"):
        return _regno(ops[0].op_name, ops[0].args), 0
    return "the frame base is a computed expression"


def _local(info: DebugInfo, cu: CompileUnit, die: DIE, name: str, vaddr: int,
           frame: tuple[int, int] | str) -> Local:
    attr = die.attributes.get("DW_AT_location")
    if attr is None:
        return Local(name, die, None, "optimised out (no location)")
    ops = _ops(info, cu, attr, vaddr, die)
    if isinstance(ops, str):
        return Local(name, die, None, ops)
    if len(ops) == 1:
        op = ops[0]
        if op.op_name.startswith("DW_OP_reg"):
            return Local(name, die, ("reg", _regno(op.op_name, op.args), 0))
        if op.op_name.startswith("DW_OP_breg"):
            return Local(name, die, ("breg", _regno(op.op_name, op.args), op.args[-1]))
        if op.op_name == "DW_OP_fbreg":
            if isinstance(frame, str):
                return Local(name, die, None, frame)
            return Local(name, die, ("breg", frame[0], frame[1] + op.args[0]))
    kinds = " ".join(op.op_name for op in ops)
    return Local(name, die, None, f"its location is computed ({kinds})")


def _ops(info: DebugInfo, cu: CompileUnit, attr: AttributeValue, vaddr: int,
         die: DIE) -> list | str:
    """The location expression in force at `vaddr`, parsed, or why there is none."""
    parser = LocationParser(info.dwarf.location_lists())
    try:
        loc = parser.parse_from_attribute(attr, cu.header.version, die)
    except Exception:  # noqa: BLE001 - pyelftools raises several kinds on odd DWARF
        return "its location cannot be decoded"
    if hasattr(loc, "loc_expr"):
        expr = loc.loc_expr
    else:
        base_attr = cu.get_top_DIE().attributes.get("DW_AT_low_pc")
        base = base_attr.value if base_attr is not None else 0
        expr = None
        for entry in loc:
            begin = getattr(entry, "begin_offset", None)
            end = getattr(entry, "end_offset", None)
            if begin is None or end is None:
                base = getattr(entry, "base_address", base)
                continue
            lo, hi = (begin, end) if getattr(entry, "is_absolute", False) else (
                base + begin, base + end)
            if lo <= vaddr < hi:
                expr = getattr(entry, "loc_expr", None)
                break
        if expr is None:
            return "optimised out at this address"
    if not expr:
        return "optimised out at this address"
    return list(DWARFExprParser(cu.structs).parse_expr(expr))


def _regno(op_name: str, args: list) -> int:
    if op_name in ("DW_OP_regx", "DW_OP_bregx"):
        return int(args[0])
    digits = op_name.removeprefix("DW_OP_breg").removeprefix("DW_OP_reg")
    return int(digits)
