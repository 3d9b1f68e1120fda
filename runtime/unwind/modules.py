"""One process's file mappings at one moment, for unwinding and late symbolisation.

A stack is captured as runtime addresses plus, for each, the file it lay in and its
link-time address. The ElfFile objects keep the symbol tables they parsed, so a stack
taken from a process that has since exited, exec'd or unmapped the library still
symbolises at the end from what was mapped when it was taken.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable
from typing import Any

from runtime.elfsyms import ElfFile
from runtime.errors import UprobeError
from runtime.procmaps import Mapping


class MapSnapshot:
    """Address -> (ElfFile, link-time vaddr), by bisect over the mappings; each file is
    parsed the first time an address in it is asked for."""

    def __init__(self, maps: list[Mapping], load: Callable[[str], ElfFile],
                 vdso: Callable[[Mapping], ElfFile | None] | None = None) -> None:
        self.maps = sorted(maps, key=lambda m: m.start)
        self._starts = [m.start for m in self.maps]
        self._load = load
        self._vdso = vdso
        self._elves: dict[int, ElfFile | None] = {}
        # The unwinder's per-pc findings while these mappings hold (runtime/unwind/unwinder.py).
        self.steps: dict[tuple[int, bool], Any] = {}

    def mapping(self, addr: int) -> Mapping | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self.maps[i].end:
            return self.maps[i]
        return None

    def covers(self, addr: int) -> bool:
        return self.mapping(addr) is not None

    def locate(self, addr: int) -> tuple[ElfFile, int] | None:
        """The file mapped at runtime `addr` and the link-time address there (the [vdso]
        image counts as a file), or None for anonymous memory (JIT code), [stack], a
        deleted or replaced file."""
        i = bisect.bisect_right(self._starts, addr) - 1
        if i < 0:
            return None
        m = self.maps[i]
        if addr >= m.end:
            return None
        if i in self._elves:
            elf = self._elves[i]
        else:
            elf = self._elves[i] = self._open(m)
        if elf is None:
            return None
        vaddr = elf.offset_to_vaddr(m.file_offset_of(addr))
        return None if vaddr is None else (elf, vaddr)

    def _open(self, m: Mapping) -> ElfFile | None:
        if m.path == "[vdso]" and self._vdso is not None:
            return self._vdso(m)
        if not m.path.startswith("/") or m.deleted or not m.inode:
            return None
        try:
            elf = self._load(m.path)
        except (UprobeError, OSError):
            return None
        # The path may name another file by now (replaced on disk): only the same inode
        # describes what is mapped.
        if elf.identity.ino != m.inode:
            return None
        return elf


def loader_for(cache_get: Callable[[str], ElfFile]) -> Callable[[str], ElfFile]:
    """A loader that resolves symlinks the way /proc/PID/maps paths need."""
    def load(path: str) -> ElfFile:
        return cache_get(os.path.realpath(path))
    return load
