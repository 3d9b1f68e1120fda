"""The injected XOL area: where it lands, its permissions, and the gap search."""

from __future__ import annotations

import pytest
from programs.rt_support import Spawned, placement

from runtime.procmaps import Mapping, read_maps
from runtime.xol import AREA_SIZE, candidate_addresses

pytestmark = pytest.mark.timeout(60)


def _anon_exec(maps):
    return [m for m in maps if m.executable and not m.path]


def test_area_is_read_exec_and_within_reach_of_the_module(builder, reaper, tmp_path):
    prog = builder.build("rt_count.c", "-O1")
    run = Spawned([str(prog), "100"], tmp_path, reaper)
    before = _anon_exec(read_maps(run.session.pid))
    run.session.add_probe(placement(prog, "work"), lambda c: None)
    maps = read_maps(run.session.pid)
    [area] = [m for m in _anon_exec(maps) if m not in before]
    assert area.perms == "r-xp" and area.end - area.start == AREA_SIZE
    exe = [m for m in maps if m.path == str(prog) and m.executable]
    assert exe and all(abs(area.start - m.start) < 2**31 and abs(area.end - m.end) < 2**31 for m in exe)
    # The trampoline (an int3) opens the first area.
    proc = run.session.engine.procs[run.session.pid]
    assert proc.xol.trampoline == area.start
    assert proc.mem.read(area.start, 1) == b"\xcc"
    assert run.run().code == 0


def _m(start: int, end: int) -> Mapping:
    return Mapping(start, end, "r-xp", 0, 0, 0, "")


def test_gap_search_keeps_guard_pages_and_the_window():
    maps = [_m(0x400000, 0x500000), _m(0x520000, 0x600000), _m(0x7F0000000000, 0x7F0000100000)]
    got = candidate_addresses(maps, 0x400000 - 2**31, 0x600000 + 2**31, AREA_SIZE)
    assert got
    for a in got:
        assert a % 0x1000 == 0
        for m in maps:
            # Never overlapping, and a free page on either side.
            assert a + AREA_SIZE + 0x1000 <= m.start or a >= m.end + 0x1000
        assert 0x400000 - 2**31 <= a and a + AREA_SIZE <= 0x600000 + 2**31
    # The hole between the first two mappings, when the window allows nothing else;
    # an area must leave a guard page on both sides.
    assert candidate_addresses(maps, 0x500000, 0x520000, AREA_SIZE) == [0x50F000]
    assert candidate_addresses(maps, 0x500000, 0x511000, AREA_SIZE) == [0x501000]
    assert candidate_addresses(maps, 0x500000, 0x510800, AREA_SIZE) == []
