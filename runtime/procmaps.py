"""/proc/PID/maps parsing: which file is mapped where, with which file identity."""

from __future__ import annotations

import os
from dataclasses import dataclass

from runtime import procfs


@dataclass(frozen=True)
class Mapping:
    """One line of /proc/PID/maps; `dev` is os.makedev(major, minor) so it compares with
    os.stat().st_dev and probes can be keyed by (dev, inode, file offset)."""

    start: int
    end: int
    perms: str
    offset: int
    dev: int
    inode: int
    path: str

    @property
    def executable(self) -> bool:
        return "x" in self.perms

    @property
    def deleted(self) -> bool:
        return self.path.endswith(" (deleted)")

    def contains(self, address: int) -> bool:
        return self.start <= address < self.end

    def file_offset_of(self, address: int) -> int:
        """The file offset backing runtime `address` (which must lie in this mapping)."""
        return address - self.start + self.offset

    def address_of(self, file_offset: int) -> int | None:
        """The runtime address of `file_offset` if this mapping covers it, else None."""
        if self.offset <= file_offset < self.offset + (self.end - self.start):
            return self.start + file_offset - self.offset
        return None


def parse_maps_line(line: str) -> Mapping:
    """One maps line; the path may contain spaces, so split at most five times."""
    fields = line.rstrip("\n").split(maxsplit=5)
    span, perms, offset, dev, inode = fields[:5]
    path = fields[5] if len(fields) > 5 else ""
    start, end = span.split("-")
    major, minor = dev.split(":")
    return Mapping(
        start=int(start, 16),
        end=int(end, 16),
        perms=perms,
        offset=int(offset, 16),
        dev=os.makedev(int(major, 16), int(minor, 16)),
        inode=int(inode),
        path=path,
    )


def read_maps(pid: int) -> list[Mapping]:
    """The mappings of `pid` in address order."""
    text = procfs.maps_text(pid)
    return [parse_maps_line(line) for line in text.splitlines() if line.strip()]


def executable_mappings(maps: list[Mapping], dev: int, inode: int) -> list[Mapping]:
    """The executable mappings of one file identity (a file can be mapped several times,
    e.g. after dlopen of a copy, and each mapping needs its own int3)."""
    return [m for m in maps if m.executable and m.dev == dev and m.inode == inode and m.inode]


def file_mappings(maps: list[Mapping], dev: int, inode: int) -> list[Mapping]:
    """Every mapping (any permission) of one file identity."""
    return [m for m in maps if m.dev == dev and m.inode == inode and m.inode]


def mapped_files(maps: list[Mapping], executable_only: bool = True) -> list[str]:
    """Distinct paths of files mapped in the process (executable ones by default), in
    address order; pseudo mappings ([vdso], [heap], anonymous) are left out."""
    seen: dict[str, None] = {}
    for m in maps:
        if not m.path.startswith("/") or not m.inode:
            continue
        if executable_only and not m.executable:
            continue
        seen.setdefault(m.path, None)
    return list(seen)


def find_mapping(maps: list[Mapping], address: int) -> Mapping | None:
    """The mapping that contains runtime `address`, if any."""
    for m in maps:
        if m.contains(address):
            return m
    return None
