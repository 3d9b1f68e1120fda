"""CFI rows against binutils: every row `readelf --debug-dump=frames-interp` prints for
libc and for an -O2 -fomit-frame-pointer test program must be the row our table gives at
that pc (CFA rule and every register column). Also the DWARF expressions of PLT entries."""

from __future__ import annotations

import re
import subprocess

import pytest

from runtime.unwind import cfi
from runtime.unwind.cfi import CfiTable
from runtime.unwind.dwexpr import evaluate

LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
NAMES = {0: "rax", 1: "rdx", 2: "rcx", 3: "rbx", 4: "rsi", 5: "rdi", 6: "rbp", 7: "rsp",
         8: "r8", 9: "r9", 10: "r10", 11: "r11", 12: "r12", 13: "r13", 14: "r14", 15: "r15",
         16: "ra"}
_FDE = re.compile(r"FDE cie=\w+ pc=([0-9a-f]+)\.\.([0-9a-f]+)")


def readelf_rows(path: str) -> list[tuple[int, dict[str, str]]]:
    """(pc, {column: text}) for every row readelf prints in .eh_frame FDEs."""
    # readelf exits 1 over a missing separate debug file; the frames are printed anyway.
    text = subprocess.run(["readelf", "-wF", path], capture_output=True, text=True,
                          check=False).stdout
    rows: list[tuple[int, dict[str, str]]] = []
    in_fde = False
    columns: list[str] = []
    for line in text.splitlines():
        if line.startswith("Contents of the .debug_frame"):
            break  # .eh_frame only: the test program has both
        if _FDE.search(line):
            in_fde, columns = True, []
        elif "CIE" in line.split()[3:4]:
            in_fde = False
        elif in_fde and line.strip().startswith("LOC"):
            columns = line.split()[1:]
        elif in_fde and columns and re.match(r"^[0-9a-f]{16} ", line):
            # A register rule prints as "r9 (r9)" / "r1 (rdx)": keep the name.
            fields = re.sub(r"r\d+ \((\w+)\)", r"\1", line).split()
            rows.append((int(fields[0], 16), dict(zip(columns, fields[1:], strict=True))))
    return rows


def our_text(row: cfi.Row) -> dict[str, str]:
    out = {"CFA": "exp" if row.cfa_expr is not None else f"{NAMES[row.cfa_reg]}{row.cfa_offset:+d}"}
    for reg, kind, arg in row.rules:
        name = NAMES.get(reg)
        if name is None:
            continue
        if kind == cfi.OFFSET:
            out[name] = f"c{arg:+d}"
        elif kind == cfi.VAL_OFFSET:
            out[name] = f"v{arg:+d}"
        elif kind in (cfi.EXPRESSION,):
            out[name] = "exp"
        elif kind == cfi.VAL_EXPRESSION:
            out[name] = "vexp"
        elif kind == cfi.REGISTER:
            out[name] = NAMES.get(arg, str(arg))
        elif kind == cfi.SAME:
            out[name] = "s"
        elif kind == cfi.UNDEFINED:
            out[name] = "u"
    return out


def check_against_readelf(path: str) -> int:
    table = CfiTable.load(path)
    rows = readelf_rows(path)
    assert rows
    for pc, want in rows:
        row = table.row(pc)
        assert row is not None, f"{path}: no row at {pc:#x}"
        got = our_text(row)
        for column, text in want.items():
            text = text.replace("+-", "-")
            expect_unset = text == "u"
            if expect_unset:
                assert got.get(column, "u") == "u", (hex(pc), column, got)
            else:
                assert got.get(column) == text, (hex(pc), column, text, got)
    return len(rows)


@pytest.mark.timeout(300)
def test_libc_rows_equal_readelf() -> None:
    assert check_against_readelf(LIBC) > 10000


@pytest.mark.timeout(120)
def test_program_rows_equal_readelf(builder) -> None:
    prog = builder.build("stack_deep.c", "-O2", "-fomit-frame-pointer")
    assert check_against_readelf(str(prog)) > 10


def test_no_row_outside_any_fde(builder) -> None:
    prog = builder.build("stack_deep.c", "-O2", "-fomit-frame-pointer")
    assert CfiTable.load(str(prog)).row(0x10) is None


def test_plt_cfa_expression() -> None:
    # The CFA of a lazy-binding PLT entry: rsp+8, plus 8 once past the entry's push
    # (pc & 15 >= 11): DW_OP_breg7 8; DW_OP_breg16 0; lit15; and; lit11; ge; lit3; shl; plus.
    code = bytes([0x77, 8, 0x80, 0, 0x3F, 0x1A, 0x3B, 0x2A, 0x33, 0x24, 0x22])
    assert evaluate(code, {7: 1000, 16: 0x1010}, lambda a: 0) == 1008
    assert evaluate(code, {7: 1000, 16: 0x100C}, lambda a: 0) == 1016


def test_expression_with_deref_and_pushed_cfa() -> None:
    memory = {0x2000: 0x1234}
    # DW_CFA_expression style: CFA pushed first, then plus_uconst 16, deref.
    assert evaluate(bytes([0x23, 16]), {}, memory.__getitem__, push=0x1FF0) == 0x2000
    assert evaluate(bytes([0x77, 16, 0x06]), {7: 0x1FF0}, memory.__getitem__) == 0x1234
