"""Where a file's DWARF lives: in the file itself, or in a separate debug file found the
way gdb finds it (by build-id under a debug root's `.build-id/`, or by `.gnu_debuglink`).

Debug roots: the directories given with `--debug-dir` (RunOptions), then the colon-separated
`UPROBE_DEBUG_DIRS` environment variable, then /usr/lib/debug.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from runtime.elfread import SHT_NOBITS, ElfImage, NotElf

DEFAULT_ROOT = "/usr/lib/debug"
ROOTS_ENV = "UPROBE_DEBUG_DIRS"


@dataclass(frozen=True)
class DebugLocation:
    """`path` holds the DWARF of `binary` (None: not found); `searched` lists every
    place looked at, for the error message that says how to get debug info."""

    binary: str
    path: str | None
    searched: tuple[str, ...]
    build_id: str | None


def debug_roots(extra: Sequence[str] = ()) -> tuple[str, ...]:
    env = [d for d in os.environ.get(ROOTS_ENV, "").split(":") if d]
    roots: list[str] = []
    for d in (*extra, *env, DEFAULT_ROOT):
        if d not in roots:
            roots.append(d)
    return tuple(roots)


def has_dwarf(elf: ElfImage) -> bool:
    sec = elf.section(".debug_info")
    return sec is not None and sec.type != SHT_NOBITS and sec.size > 0


def locate(binary: str, roots: Sequence[str] = ()) -> DebugLocation:
    """Find the DWARF of `binary` (a real path). Headers are read with runtime.elfread:
    symbol loading asks this for every stripped library, at start-up."""
    searched = [binary]
    try:
        elf = ElfImage.open(binary)
    except (OSError, NotElf):
        return DebugLocation(binary, None, tuple(searched), None)
    build_id = elf.build_id()
    if has_dwarf(elf):
        return DebugLocation(binary, binary, tuple(searched), build_id)
    link = _debuglink(elf)
    candidates: list[str] = []
    all_roots = debug_roots(roots)
    if build_id:
        for root in all_roots:
            candidates.append(os.path.join(root, ".build-id", build_id[:2], build_id[2:] + ".debug"))
    if link:
        here = os.path.dirname(binary)
        candidates += [os.path.join(here, link), os.path.join(here, ".debug", link)]
        candidates += [os.path.join(root, here.lstrip("/"), link) for root in all_roots]
    for cand in candidates:
        searched.append(cand)
        if _usable(cand, build_id):
            return DebugLocation(binary, cand, tuple(searched), build_id)
    return DebugLocation(binary, None, tuple(searched), build_id)


def _usable(path: str, build_id: str | None) -> bool:
    """A debug file counts when it has DWARF and (if both know one) the same build-id."""
    try:
        elf = ElfImage.open(path)
    except (OSError, NotElf):
        return False
    if not has_dwarf(elf):
        return False
    theirs = elf.build_id()
    return build_id is None or theirs is None or theirs == build_id


def _debuglink(elf: ElfImage) -> str | None:
    data = elf.section_data(".gnu_debuglink")
    if data is None:
        return None
    name = data[: data.find(b"\0")].decode("utf-8", "replace")
    return name or None


def how_to_get(loc: DebugLocation) -> str:
    """The advice in a 'no debug info' error."""
    where = ", ".join(loc.searched)
    if loc.build_id:
        return (f"no DWARF debug info for {loc.binary} (searched {where}); install its debug "
                f"package (e.g. the -dbg or -dbgsym package), rebuild it with -g, or place a "
                f"debug file at .build-id/{loc.build_id[:2]}/{loc.build_id[2:]}.debug under a "
                f"directory given with --debug-dir or {ROOTS_ENV}")
    return (f"no DWARF debug info for {loc.binary} (searched {where}); rebuild it with -g "
            f"or install its debug package")
