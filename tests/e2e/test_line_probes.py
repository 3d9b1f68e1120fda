"""Source-line probes, `uprobe:prog:"file.c:LINE"`: the address is where gdb's `info line`
says the line starts, hits are the line's executions, and `args` holds the variables
visible there with their values at that point (checked against the C semantics).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from runtime.errors import ResolveError
from runtime.resolve import resolve_uprobe

pytestmark = pytest.mark.timeout(180)

SOURCE = Path(__file__).resolve().parents[1] / "programs" / "dwarf_lines.c"


def line_of(marker: str) -> int:
    for number, text in enumerate(SOURCE.read_text().splitlines(), 1):
        if f"LINE:{marker} " in text:
            return number
    raise AssertionError(marker)


@pytest.fixture(scope="module", params=["-O0", "-O1"])
def prog(builder, request):
    return builder.build("dwarf_lines.c", request.param, "-fno-omit-frame-pointer")


def gdb_line_start(prog: Path, line: int) -> int | None:
    """Where gdb's `info line` says the line starts; None for "contains no code"."""
    out = subprocess.run(["gdb", "-batch", "-nx", "-ex", f"info line dwarf_lines.c:{line}",
                          str(prog)], capture_output=True, text=True, check=True).stdout
    if "contains no code" in out:
        return None
    m = re.search(r"starts at address (0x[0-9a-f]+)", out)
    assert m, out
    return int(m.group(1), 16)


@pytest.mark.parametrize("marker", ["loop", "after", "nocode"])
def test_address_is_where_gdb_says_the_line_starts(prog, marker):
    line = line_of(marker)
    expected = gdb_line_start(prog, line)
    if expected is None:
        with pytest.raises(ResolveError, match=f"line {line} of dwarf_lines.c has no code"):
            resolve_uprobe(str(prog), f"dwarf_lines.c:{line}")
        return
    (placement,) = resolve_uprobe(str(prog), f"dwarf_lines.c:{line}")
    assert placement.vaddr == expected
    assert placement.symbol in ("work", "main")


def test_optimised_code_reads_registers_and_says_what_it_cannot(uprobe, builder):
    prog = builder.build("dwarf_lines.c", "-O1", "-fno-omit-frame-pointer")
    loop = line_of("loop")
    r = uprobe.run("-e", f'uprobe:{prog}:"dwarf_lines.c:{loop}" '
                   "{ @[args.n, args.i, args.total] = count(); }", "-c", f"{prog} 3")
    assert r.returncode == 0, r.stderr
    assert r.out == ("\n\n@[1, 0, 0]: 1\n@[2, 0, 0]: 1\n@[2, 1, 0]: 1\n@[3, 0, 0]: 1\n"
                     "@[3, 1, 0]: 1\n@[3, 2, 3]: 1\n")
    # At -O1 gcc keeps `local` in two registers (DW_OP_piece) and `p` only as its entry
    # value: both are refused with the reason, before anything runs.
    r = uprobe.run("-e", f'uprobe:{prog}:"dwarf_lines.c:{loop}" {{ @ = args.local.y; }}',
                   "-c", f"{prog} 3")
    assert r.returncode == 1
    assert "'local' cannot be read here: its location is computed (DW_OP_reg" in r.stderr
    assert "DW_OP_piece" in r.stderr and r.stdout == ""


def test_hits_and_variables(uprobe, builder):
    prog = builder.build("dwarf_lines.c", "-O0", "-fno-omit-frame-pointer")
    loop, after = line_of("loop"), line_of("after")
    script = (f'uprobe:{prog}:"dwarf_lines.c:{loop}" {{ @loop = count(); '
              "@seen[args.n, args.i, args.total, args.local.y, args.p->x] = count(); } "
              f'uprobe:{prog}:"dwarf_lines.c:{after}" {{ print(args.local); }}')
    r = uprobe.run("-e", script, "-c", f"{prog} 3")
    assert r.returncode == 0, r.stderr
    expected_loop = []
    total_after = []
    for n in range(1, 4):
        total, y = 0, 2 * n
        for i in range(n):
            expected_loop.append(f"@seen[{n}, {i}, {total}, {y}, 3]: 1")
            total += i * 3
            y += i
        total_after.append(f"{{ .x = {n}, .y = {y} }}")
    assert r.out.splitlines()[:3] == total_after
    assert "@loop: 6" in r.out
    assert sorted(x for x in r.out.splitlines() if x.startswith("@seen")) == sorted(expected_loop)


def test_line_without_code_and_unknown_variable(uprobe, builder):
    prog = builder.build("dwarf_lines.c", "-O0", "-fno-omit-frame-pointer")
    line = line_of("nocode")
    r = uprobe.run("-e", f'uprobe:{prog}:"dwarf_lines.c:{line}" {{ @ = count(); }}',
                   "-c", str(prog))
    assert r.returncode != 0
    assert f"line {line} of dwarf_lines.c has no code" in r.stderr
    assert "lines with code nearby" in r.stderr
    loop = line_of("loop")
    r = uprobe.run("-e", f'uprobe:{prog}:"dwarf_lines.c:{loop}" {{ @ = args.totl; }}',
                   "-c", str(prog))
    assert r.returncode == 1 and "did you mean 'total'?" in r.stderr
