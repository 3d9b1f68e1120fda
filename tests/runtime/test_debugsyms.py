"""Symbols of stripped binaries: a separate debug file found through .gnu_debuglink (CRC
checked, as gdb does), and MiniDebugInfo (.gnu_debugdata, built here the way Fedora's
find-debuginfo builds it). Ground truth: the unstripped binary's own symbol table."""

from __future__ import annotations

import lzma
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from runtime import debugsyms
from runtime.elfsyms import ElfFile

pytestmark = pytest.mark.skipif(not shutil.which("objcopy"), reason="needs binutils")


def local_functions(exe: Path) -> set[tuple[str, int]]:
    """(name, vaddr) of the static functions (nm type t), which .dynsym never has."""
    out = subprocess.run(["nm", "--defined-only", str(exe)], capture_output=True, text=True,
                         check=True).stdout
    return {(f[2], int(f[0], 16)) for f in (line.split() for line in out.splitlines())
            if len(f) == 3 and f[1] == "t" and not f[2].startswith(("_", "."))
            and "." not in f[2]}


def test_debuglink_in_a_dot_debug_directory(builder, tmp_path: Path) -> None:
    exe = builder.build("sym_funcs.c", "-O1", "-Wl,--build-id=none")
    want = local_functions(exe)
    assert want
    (tmp_path / ".debug").mkdir()
    debug = tmp_path / ".debug" / "prog.debug"
    subprocess.run(["objcopy", "--only-keep-debug", str(exe), str(debug)], check=True)
    stripped = tmp_path / "prog"
    subprocess.run(["strip", "-o", str(stripped), str(exe)], check=True)
    subprocess.run(["objcopy", f"--add-gnu-debuglink={debug}", str(stripped)], check=True)
    assert ElfFile.open(str(stripped)).build_id is None
    assert debugsyms.debuglink(str(stripped))[0] == "prog.debug"
    elf = ElfFile.open(str(stripped))
    got = {(s.name, s.vaddr) for s in elf.functions}
    assert want <= got
    name, vaddr = next(iter(want))
    assert elf.symbolize(vaddr + 1) == (name, 1)

    # A debug file whose CRC does not match the link is not that binary's: ignored.
    with debug.open("ab") as f:
        f.write(b"\0")
    os.utime(stripped, ns=(2, 2))  # a new identity: nothing cached is reused
    assert not want & {(s.name, s.vaddr) for s in ElfFile.open(str(stripped)).functions}


def add_minidebuginfo(exe: Path, out: Path, tmp: Path) -> None:
    """Strip `exe` to `out` and add .gnu_debugdata: an xz-compressed ELF with the function
    symbols that are not in .dynsym (find-debuginfo's recipe)."""
    def names(*args: str) -> set[str]:
        text = subprocess.run(["nm", *args, "--format=posix", "--defined-only", str(exe)],
                              capture_output=True, text=True, check=True).stdout
        return {line.split()[0] for line in text.splitlines()
                if len(line.split()) > 1 and line.split()[1] in "Tt"}

    keep = tmp / "keep"
    keep.write_text("\n".join(sorted(names() - names("-D"))) + "\n")
    debug = tmp / "full.debug"
    mini = tmp / "mini.debug"
    subprocess.run(["objcopy", "--only-keep-debug", str(exe), str(debug)], check=True)
    subprocess.run(["objcopy", "-S", "--remove-section", ".gdb_index", "--remove-section",
                    ".comment", f"--keep-symbols={keep}", str(debug), str(mini)], check=True)
    xz = tmp / "mini.xz"
    xz.write_bytes(lzma.compress(mini.read_bytes(), format=lzma.FORMAT_XZ))
    subprocess.run(["strip", "--strip-all", "-o", str(out), str(exe)], check=True)
    subprocess.run(["objcopy", "--add-section", f".gnu_debugdata={xz}", str(out)], check=True)


def test_minidebuginfo_gives_the_static_functions(builder, tmp_path: Path) -> None:
    exe = builder.build("sym_funcs.c", "-O1", "-Wl,--build-id=none")
    want = local_functions(exe)
    out = tmp_path / "mini-prog"
    add_minidebuginfo(exe, out, tmp_path)
    assert debugsyms.debug_file(str(out), None) is None
    assert debugsyms.minidebuginfo_bytes(str(out)) is not None
    got = {(s.name, s.vaddr) for s in ElfFile.open(str(out)).functions}
    assert want <= got
    # Without the section the same functions are unknown.
    plain = tmp_path / "plain-prog"
    subprocess.run(["strip", "--strip-all", "-o", str(plain), str(exe)], check=True)
    assert not want & {(s.name, s.vaddr) for s in ElfFile.open(str(plain)).functions}
