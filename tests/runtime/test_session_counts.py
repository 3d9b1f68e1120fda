"""Exact hit counts through the Session API: one thread, and eight threads by tid."""

from __future__ import annotations

import collections

import pytest
from programs.rt_support import Spawned, placement, uninstrumented

pytestmark = pytest.mark.timeout(120)


def test_100k_calls_in_one_thread(builder, reaper, tmp_path):
    prog = builder.build("rt_count.c", "-O1")
    run = Spawned([str(prog), "100000"], tmp_path, reaper)
    hits = collections.Counter()
    run.session.add_probe(placement(prog, "work"), lambda ctx: hits.update((ctx.arg(0) & 1,)))
    status = run.run()
    assert status.code == 0 and status.reason == "target exited with status 0"
    assert hits[0] + hits[1] == 100_000
    assert hits[0] == hits[1] == 50_000
    assert run.output() == uninstrumented([str(prog), "100000"]).stdout


def test_eight_threads_exact_per_thread_counts(builder, reaper, tmp_path):
    prog = builder.build("rt_threads.c", "-O1", "-pthread")
    run = Spawned([str(prog), "20000"], tmp_path, reaper)
    by_tid: collections.Counter[int] = collections.Counter()
    pids = set()

    def count(ctx):
        by_tid[ctx.tid] += 1
        pids.add(ctx.pid)

    run.session.add_probe(placement(prog, "work"), count)
    status = run.run()
    assert status.code == 0
    lines = [line.split() for line in run.output().splitlines()]
    assert len(lines) == 8
    expected = {int(tid): int(n) for tid, n, _sum in lines}
    assert dict(by_tid) == expected
    assert sum(by_tid.values()) == 160_000
    assert all(s == "200010000" for _t, _n, s in lines)
    assert pids == {run.session.pid}
