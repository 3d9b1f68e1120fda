"""Where the symbols and DWARF of a stripped binary are: its separate debug file (found by
runtime.dwarf.debugfile as gdb finds it: build-id, then `.gnu_debuglink`; a file found by
the link's name must also have the link's CRC32), or its MiniDebugInfo: `.gnu_debugdata`,
an xz-compressed ELF holding the function symbols that .dynsym lacks (Fedora, RHEL and
others ship binaries so)."""

from __future__ import annotations

import functools
import lzma
import os
import struct
import zlib

from runtime.elfread import ElfImage, NotElf

ROOTS_ENV = "UPROBE_DEBUG_DIRS"  # as runtime.dwarf.debugfile reads it

MAX_MINIDEBUGINFO = 64 << 20  # decompressed bytes we accept from .gnu_debugdata


def debug_file(path: str, build_id: str | None) -> str | None:
    """The separate debug file of `path` (a real path), or None; looked up once per
    version of the file (a rebuilt file may link another) and of the debug roots."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _debug_file(path, build_id, st.st_ino, st.st_mtime_ns,
                       os.environ.get(ROOTS_ENV, ""))


@functools.lru_cache(maxsize=256)
def _debug_file(path: str, build_id: str | None, ino: int, mtime_ns: int,
                roots_env: str) -> str | None:
    # Imported here: runtime.dwarf reads symbols through runtime.elfsyms, which reads us.
    from runtime.dwarf.debugfile import locate

    found = locate(path).path
    if found is None or found == path:
        return None
    link = debuglink(path)
    if link is not None and os.path.basename(found) == link[0] and _crc32(found) != link[1]:
        # Found by the link's name but not the file the link describes (gdb's check).
        return None
    return found


def debuglink(path: str) -> tuple[str, int] | None:
    """(file name, CRC32) from `.gnu_debuglink`: the name, NUL, padding to 4, the CRC."""
    data = _section(path, ".gnu_debuglink")
    if not data or b"\0" not in data:
        return None
    end = data.index(b"\0")
    at = (end + 4) & ~3
    if at + 4 > len(data) or not end:
        return None
    return data[:end].decode("utf-8", "replace"), struct.unpack_from("<I", data, at)[0]


def minidebuginfo_bytes(path: str) -> bytes | None:
    """The decompressed ELF bytes of `.gnu_debugdata`, or None."""
    data = _section(path, ".gnu_debugdata")
    if not data:
        return None
    try:
        return lzma.LZMADecompressor().decompress(data, MAX_MINIDEBUGINFO)
    except (lzma.LZMAError, ValueError):
        return None


def _section(path: str, name: str) -> bytes | None:
    try:
        return ElfImage.open(path).section_data(name)
    except (OSError, NotElf):
        return None


def _crc32(path: str) -> int:
    crc = 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                crc = zlib.crc32(chunk, crc)
    except OSError:
        return -1
    return crc
