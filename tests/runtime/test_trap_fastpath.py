"""The trap fast path: rip alone is written back at a copy-and-jump site unless a handler
changed a register, and the reused per-thread HitContext is re-pointed at every hit."""

from __future__ import annotations

import os

import pytest
from programs.rt_support import Spawned, placement

pytestmark = pytest.mark.timeout(60)


def _site(session, probe):
    proc = session.engine.procs[session.pid]
    (bp,) = [bp for bp in proc.sites.values() if probe in bp.consumers]
    return bp


def test_a_copy_and_jump_site_writes_rip_alone_and_the_program_is_right(builder, reaper,
                                                                         tmp_path):
    prog = builder.build("rt_count.c", "-O1", "-fcf-protection=none")
    run = Spawned([str(prog), "3000"], tmp_path, reaper)
    seen: list[int] = []
    probe = run.session.add_probe(placement(prog, "work"), lambda c: seen.append(c.arg(0)))
    bp = _site(run.session, probe)
    assert bp.rip_only and bp.slot and bp.slot_word.value == bp.slot
    assert run.run().code == 0
    assert seen == list(range(3000))
    assert run.output() == f"sum={sum(i * 3 + 1 for i in range(3000))}\n"


def test_set_reg_from_an_async_probe_is_written_back(builder, reaper, tmp_path):
    prog = builder.build("rt_count.c", "-O1", "-fcf-protection=none")
    run = Spawned([str(prog), "10"], tmp_path, reaper)

    def zero_every_other(ctx):
        if ctx.arg(0) % 2:
            ctx.set_reg("rdi", 0)

    probe = run.session.add_probe(placement(prog, "work"), zero_every_other)
    assert _site(run.session, probe).rip_only
    assert run.run().code == 0
    # work(i) = 3i + 1; odd i become work(0) = 1; the even ones (and hits after a
    # changed one) keep their own rdi: a stale dirty flag would not change that.
    assert run.output() == f"sum={sum(3 * i + 1 if i % 2 == 0 else 1 for i in range(10))}\n"


def test_each_probe_at_a_site_sees_itself_and_a_fresh_timestamp(builder, reaper, tmp_path):
    prog = builder.build("rt_count.c", "-O1", "-fcf-protection=none")
    run = Spawned([str(prog), "50"], tmp_path, reaper)
    seen: list[tuple[str, int, int]] = []
    first = run.session.add_probe(placement(prog, "work"), lambda c: seen.append(
        ("a", c.probe.id, c.nsecs)))
    second = run.session.add_probe(placement(prog, "work"), lambda c: seen.append(
        ("b", c.probe.id, c.nsecs)), sync=True)
    assert run.run().code == 0
    assert [(name, pid) for name, pid, _ in seen] == [("a", first.id), ("b", second.id)] * 50
    stamps = [ns for _, _, ns in seen]
    assert stamps == sorted(stamps) and len(set(stamps[::2])) == 50


def test_an_emulated_site_keeps_the_full_write_back(builder, reaper, tmp_path):
    prog = builder.build("rt_count.c", "-O1", "-fcf-protection=full")
    run = Spawned([str(prog), "20"], tmp_path, reaper)
    hits = [0]
    probe = run.session.add_probe(placement(prog, "work"),
                                  lambda c: hits.__setitem__(0, hits[0] + 1))
    assert not _site(run.session, probe).rip_only  # endbr64 is skipped, not copied
    assert run.run().code == 0
    assert hits == [20]
    assert run.output() == f"sum={sum(3 * i + 1 for i in range(20))}\n"


def test_probes_that_read_no_registers_make_hits_read_rip_alone(builder, reaper, tmp_path):
    prog = builder.build("rt_count.c", "-O1", "-fcf-protection=none")
    run = Spawned([str(prog), "2000"], tmp_path, reaper)
    hits = [0]

    def count(ctx):
        hits[0] += 1

    probe = run.session.add_probe(placement(prog, "work"), count, reads_regs=False)
    registry = run.session.engine.registry
    assert registry.lean and _site(run.session, probe).lean
    assert run.run().code == 0
    assert hits == [2000]
    assert run.output() == f"sum={sum(3 * i + 1 for i in range(2000))}\n"


def test_one_probe_reading_registers_turns_the_lean_path_off(builder, reaper, tmp_path):
    prog = builder.build("rt_count.c", "-O1", "-fcf-protection=none")
    run = Spawned([str(prog), "30"], tmp_path, reaper)
    args: list[int] = []
    lean = run.session.add_probe(placement(prog, "work"), lambda c: None, reads_regs=False)
    assert run.session.engine.registry.lean
    reader = run.session.add_probe(placement(prog, "work"), lambda c: args.append(c.arg(0)))
    assert not run.session.engine.registry.lean and not _site(run.session, lean).lean
    run.session.remove_probe(reader)
    assert run.session.engine.registry.lean
    run.session.add_probe(placement(prog, "work"), lambda c: args.append(c.arg(0)))
    assert run.run().code == 0
    assert args == list(range(30))


def test_a_broken_reads_regs_promise_is_an_error_not_a_corruption(builder, reaper, tmp_path):
    from runtime.errors import UprobeError

    prog = builder.build("rt_count.c", "-O1", "-fcf-protection=none")
    run = Spawned([str(prog), "5"], tmp_path, reaper)
    run.session.add_probe(placement(prog, "work"), lambda c: c.set_reg("rdi", 0),
                          reads_regs=False)
    with pytest.raises(UprobeError, match="reads_regs=False"):
        run.run()
    # Detached at the first hit with no register written: the program ends unharmed.
    _, status = os.waitpid(run.session.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert run.output() == f"sum={sum(3 * i + 1 for i in range(5))}\n"
