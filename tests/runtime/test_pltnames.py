"""PLT stubs named `func@plt`, against objdump's own labels for the same sections (it
names them the same way: the GOT slot each stub jumps through, and that slot's dynamic
relocation)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from runtime.elfsyms import ElfFile
from runtime.pltnames import plt_names

LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
pytestmark = pytest.mark.skipif(not shutil.which("objdump"), reason="needs binutils")


def objdump_stubs(path: str) -> dict[int, str]:
    text = subprocess.run(["objdump", "-d", "-j", ".plt", "-j", ".plt.sec", "-j", ".plt.got",
                           path], capture_output=True, text=True, check=False).stdout
    return {int(a, 16): n for a, n in re.findall(r"^([0-9a-f]+) <([^>*+]+@plt)>:$", text, re.M)}


@pytest.mark.parametrize("cet", [False, True])
def test_program_stubs_match_objdump(builder, cet: bool) -> None:
    flags = ("-O2", "-fcf-protection=full" if cet else "-fcf-protection=none")
    prog = str(builder.build("stack_vdso.c", *flags))
    want = objdump_stubs(prog)
    assert any(n.startswith("clock_gettime@") for n in want.values()), want
    elf = ElfFile.open(prog)
    names = plt_names(elf.path, elf.identity)
    for addr, name in want.items():
        assert names.name_at(addr + 4) == (name, 4), (hex(addr), name)


def test_libc_stubs_match_objdump() -> None:
    want = objdump_stubs(LIBC)
    assert want
    elf = ElfFile.open(LIBC)
    names = plt_names(elf.path, elf.identity)
    assert {a: names.name_at(a)[0] for a in want if names.name_at(a)} == want
