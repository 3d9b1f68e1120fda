"""Source lines to addresses, from the DWARF line table: `uprobe:prog:"file.c:42"`.

The address of a line is the lowest is_stmt address the line table gives for it, which is
what gdb's `info line file.c:42` reports as where the line starts. The compilation units
named after the file are searched first, then every unit (a header's inline functions).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from elftools.dwarf.compileunit import CompileUnit

from runtime.dwarf.dies import name_of
from runtime.dwarf.info import DebugInfo
from runtime.dwarf.linespec import LINE_SPEC, parse_line_spec

__all__ = ["LINE_SPEC", "LineHit", "find_line", "parse_line_spec"]



@dataclass(frozen=True)
class LineHit:
    """Where a source line starts: link-time `vaddr`, and the lines that do have code
    nearest to it (for the message when the line has none)."""

    vaddr: int | None
    nearest: tuple[int, ...] = ()


def find_line(info: DebugInfo, file: str, line: int) -> LineHit:
    wanted = file.lstrip("./")
    cus = list(info.dwarf.iter_CUs())
    named = [cu for cu in cus if _same_file(name_of(cu.get_top_DIE()), wanted)]
    lines_seen: set[int] = set()
    for group in (named, [cu for cu in cus if cu not in named]):
        best: int | None = None
        for cu in group:
            for addr, ln in _rows(info, cu, wanted):
                lines_seen.add(ln)
                if ln == line and (best is None or addr < best):
                    best = addr
        if best is not None:
            return LineHit(best)
        if lines_seen:
            break  # the file's own units decide; a header search would only be slower
    nearest = tuple(sorted(sorted(lines_seen, key=lambda n: (abs(n - line), n))[:3]))
    return LineHit(None, nearest)


def _rows(info: DebugInfo, cu: CompileUnit, wanted: str) -> list[tuple[int, int]]:
    program = info.dwarf.line_program_for_CU(cu)
    if program is None:
        return []
    header = program.header
    dirs = [_text(d) for d in header.include_directory]
    files: list[str] = []
    for entry in header.file_entry:
        name = _text(entry.name)
        d = entry.dir_index
        if header.version < 5:
            base = dirs[d - 1] if 0 < d <= len(dirs) else ""
        else:
            base = dirs[d] if d < len(dirs) else ""
        files.append(os.path.join(base, name))
    matching = {i for i, f in enumerate(files) if _same_file(f, wanted)}
    if not matching:
        return []
    shift = 1 if header.version < 5 else 0  # DWARF 4 numbers files from 1
    rows: list[tuple[int, int]] = []
    pending: tuple[int, int] | None = None  # a row counts once the next one is past it
    for entry in program.get_entries():
        st = entry.state
        if st is None:
            continue
        # A statement row followed by another statement row at the same address covers no
        # instruction: gdb's `info line` says such a line "contains no code", so do we.
        if pending is not None and st.address > pending[0]:
            rows.append(pending)
            pending = None
        elif pending is not None and (st.is_stmt or st.end_sequence):
            pending = None
        if st.end_sequence or not st.is_stmt or st.file - shift not in matching:
            continue
        pending = (st.address, st.line)
    return rows


def _same_file(path: str, wanted: str) -> bool:
    if not path:
        return False
    return path == wanted or path.endswith("/" + wanted) or os.path.basename(path) == wanted


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
