"""Probes follow mappings: a library loaded, unloaded and loaded again with dlopen/dlclose.

late_host.c loads the library in periods 1..N and calls the probed function p+1 times with
argument p in period p, and calls its own late_gap(p) after each dlclose. The ground truth
is the host's output ("period p calls c") and /proc/PID/maps at each late_gap.
"""

from __future__ import annotations

import collections
import os
import subprocess

import pytest
from programs.rt_support import Spawned, placement

from runtime.procmaps import read_maps
from runtime.rendezvous import RT_CONSISTENT, link_maps, locate_r_debug, read_r_debug
from runtime.resolve import resolve_uprobe
from runtime.session import Session

pytestmark = pytest.mark.timeout(120)

PERIODS = 3


def period_calls(output: str) -> dict[int, int]:
    rows = [line.split() for line in output.splitlines() if line.startswith("period ")]
    return {int(r[1]): int(r[3]) for r in rows}


def lib_mapped(pid: int, path: str) -> bool:
    st = os.stat(path)
    return any(m.dev == st.st_dev and m.inode == st.st_ino for m in read_maps(pid))


@pytest.fixture(scope="module")
def late(builder):
    host = builder.build("late_host.c", "-O1")
    lib = builder.build("late_lib.c", "-O1", shared=True)
    return host, lib


def test_probe_on_a_library_follows_dlopen_dlclose_dlopen(late, reaper, tmp_path):
    host, lib = late
    run = Spawned([str(host), str(lib), "late_work", str(PERIODS)], tmp_path, reaper)
    session = run.session
    by_period: collections.Counter[int] = collections.Counter()
    probe = session.add_probe(placement(lib, "late_work"),
                              lambda ctx: by_period.update((ctx.arg(0),)))
    assert session.sites(probe) == 0  # pending: the library is not mapped yet
    gaps: list[tuple[int, int, bool]] = []

    def at_gap(ctx):
        # Between periods: no site left in the bookkeeping, the library really unmapped.
        gaps.append((ctx.arg(0), session.sites(probe), lib_mapped(ctx.pid, str(lib))))

    session.add_probe(placement(host, "late_gap"), at_gap)
    status = run.run()
    assert status.code == 0
    expected = period_calls(run.output())
    assert expected == {p: p + 1 for p in range(1, PERIODS + 1)}
    assert dict(by_period) == expected
    assert gaps == [(p, 0, False) for p in range(PERIODS + 1)]


def test_probe_by_library_short_name_follows_dlopen(late, reaper, tmp_path):
    """`libz` resolves through the linker cache before the library is loaded."""
    host, _ = late
    found = resolve_uprobe("libz", "crc32", 0, None, None)
    assert len(found) == 1
    run = Spawned([str(host), "libz.so.1", "crc32", str(PERIODS)], tmp_path, reaper)
    by_period: collections.Counter[int] = collections.Counter()
    run.session.add_probe(found[0], lambda ctx: by_period.update((ctx.arg(0),)))
    assert run.run().code == 0
    assert dict(by_period) == period_calls(run.output())
    assert sum(by_period.values()) == sum(p + 1 for p in range(1, PERIODS + 1))


def test_library_loaded_after_attach(late, reaper):
    """An attached process: the rendezvous hook goes in at attach; r_debug and the
    link_map list read from memory name the library while it is loaded."""
    host, lib = late
    proc = subprocess.Popen([str(host), str(lib), "late_work", str(PERIODS), "wait"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    reaper.add(proc.pid)
    assert proc.stdout.readline() == "ready\n"
    session = Session.attach(proc.pid)
    by_period: collections.Counter[int] = collections.Counter()
    seen: list[tuple[int, bool, int]] = []

    def at_work(ctx):
        by_period[ctx.arg(0)] += 1
        if ctx.arg(0) == 2 and not seen:
            mem = ctx.thread.proc.mem
            r_debug = locate_r_debug(ctx.pid, mem, read_maps(ctx.pid))
            names = [os.path.realpath(m.name) for m in link_maps(mem, r_debug) if m.name]
            seen.append((read_r_debug(mem, r_debug).state, str(lib) in names,
                         session.sites(probe)))

    probe = session.add_probe(placement(lib, "late_work"), at_work)
    assert session.sites(probe) == 0
    proc.stdin.write("go\n")
    proc.stdin.close()
    try:
        session.run()
    finally:
        session.detach()
    out = proc.stdout.read()
    assert proc.wait(timeout=30) == 0
    assert dict(by_period) == period_calls(out) == {p: p + 1 for p in range(1, PERIODS + 1)}
    assert seen == [(RT_CONSISTENT, True, 1)]
