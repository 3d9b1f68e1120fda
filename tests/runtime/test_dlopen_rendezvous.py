"""The rendezvous as read from a live process, and which sites a mapping change drops."""

from __future__ import annotations

import os

import pytest
from programs.rt_support import Spawned

from runtime import procfs
from runtime.elfsyms import ElfFile
from runtime.procmaps import Mapping, read_maps
from runtime.rendezvous import (
    RT_CONSISTENT,
    dt_debug,
    gone_addresses,
    interpreter,
    link_maps,
    locate_r_brk,
    read_r_debug,
)

pytestmark = pytest.mark.timeout(60)


def test_r_debug_r_brk_and_link_maps_of_a_live_process(builder, reaper, tmp_path):
    prog = builder.build("late_exec.c", "-O1")
    run = Spawned([str(prog), "1"], tmp_path, reaper)
    pid = run.session.pid
    mem = run.session.engine.procs[pid].mem
    maps = read_maps(pid)
    auxv = procfs.auxv(pid)
    ld = interpreter(maps, auxv)
    assert ld is not None and "ld-linux" in ld.path
    ld_elf = ElfFile.open(ld.path)
    bias = ld_elf.load_bias(pid, maps)
    # At the entry point ld.so has filled DT_DEBUG in: it points at its _r_debug.
    r_debug = dt_debug(mem, auxv)
    assert r_debug == ld_elf.symbol_vaddr("_r_debug") + bias
    state = read_r_debug(mem, r_debug)
    assert state.version >= 1 and state.state == RT_CONSISTENT
    assert state.brk == ld_elf.symbol_vaddr("_dl_debug_state") + bias
    assert locate_r_brk(pid, mem, maps, 0) == state.brk  # by symbol, as at exec time
    objects = link_maps(mem, r_debug)
    assert objects[0].name == ""  # the program itself
    names = {os.path.realpath(o.name): o for o in objects[1:]}
    libc = next(p for p in names if os.path.basename(p).startswith("libc.so"))
    assert names[libc].l_addr == ElfFile.open(libc).load_bias(pid, maps)
    assert os.path.realpath(ld.path) in names
    assert run.run().code == 0


def m(start: int, ino: int, offset: int = 0) -> Mapping:
    return Mapping(start, start + 0x1000, "r-xp", offset, 8, ino, f"/lib/{ino}.so")


def test_gone_addresses():
    old = [m(0x1000, 10), m(0x5000, 11)]
    assert gone_addresses([0x1010, 0x5010], old, old) == []
    # Library 11 unmapped; then something else mapped where library 10 was.
    assert gone_addresses([0x1010, 0x5010], old, [m(0x1000, 10)]) == [0x5010]
    assert gone_addresses([0x1010], old, [m(0x1000, 12)]) == [0x1010]
    assert gone_addresses([0x1010], old, [m(0x1000, 10, 0x1000)]) == [0x1010]
    # A site the snapshot never saw stays while its memory is mapped.
    assert gone_addresses([0x9010], old, [m(0x9000, 13)]) == []
