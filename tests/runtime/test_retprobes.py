"""Return probes: recursion, longjmp, tail calls and C++ exceptions through probed frames."""

from __future__ import annotations

import subprocess

import pytest
from programs.rt_support import Spawned, placement, signed, uninstrumented

pytestmark = pytest.mark.timeout(120)


def _entry_and_return(run, prog, func, bits=64):
    counts = {"entry": 0, "return": 0}
    vals: list[int] = []

    def on_entry(c):
        counts["entry"] += 1

    def on_return(c):
        counts["return"] += 1
        vals.append(signed(c.retval, bits))

    run.session.add_probe(placement(prog, func), on_entry)
    run.session.add_probe(placement(prog, func), on_return, kind="return")
    return counts, vals


def test_fib20_exact_entry_and_return_counts(builder, reaper, tmp_path):
    prog = builder.build("rt_fib.c", "-O1")
    run = Spawned([str(prog), "20"], tmp_path, reaper)
    counts, vals = _entry_and_return(run, prog, "fib")
    assert run.run().code == 0
    assert counts == {"entry": 21891, "return": 21891}
    assert vals[-1] == 6765
    assert run.output() == "fib=6765\n"


def test_function_left_by_longjmp(builder, reaper, tmp_path):
    prog = builder.build("rt_longjmp.c", "-O1")
    run = Spawned([str(prog)], tmp_path, reaper)
    counts, vals = _entry_and_return(run, prog, "leave")
    assert run.run().code == 0
    assert counts == {"entry": 100, "return": 50}
    assert vals == [i * 10 for i in range(0, 100, 2)]
    assert run.output() == uninstrumented([str(prog)]).stdout


def test_tail_call_returns_once_for_both(builder, reaper, tmp_path):
    prog = builder.build("rt_tailcall.c", "-O1")
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(prog)],
                         capture_output=True, text=True, check=True).stdout
    outer = dis[dis.index("<outer>:"):].split("\n\n")[0]
    assert "jmp" in outer and "<inner>" in outer
    run = Spawned([str(prog)], tmp_path, reaper)
    outer_counts, outer_vals = _entry_and_return(run, prog, "outer")
    inner_counts, inner_vals = _entry_and_return(run, prog, "inner")
    assert run.run().code == 0
    assert outer_counts == inner_counts == {"entry": 50, "return": 50}
    assert outer_vals == inner_vals == [(i + 1) * 2 for i in range(50)]
    assert run.output() == uninstrumented([str(prog)]).stdout


def test_cxx_exception_through_probed_function(builder, reaper, tmp_path):
    prog = builder.build("rt_throw.cc", "-O1")
    run = Spawned([str(prog)], tmp_path, reaper)
    probed = {name: _entry_and_return(run, prog, sym, 32) for name, sym in (
        ("thrower", "_Z7throweri"), ("middle", "_Z6middlei"),
        ("rethrower", "_Z9rethroweri"), ("outer", "_Z5outeri"))}
    status = run.run()
    assert status.code == 0, status.reason
    expected = "sum=400 caught=7 swallowed=13 guards=40\n"
    assert run.output() == uninstrumented([str(prog)]).stdout == expected
    even = range(0, 40, 2)
    assert probed["thrower"] == ({"entry": 40, "return": 20}, list(even))
    assert probed["middle"] == ({"entry": 40, "return": 20}, [i + 1 for i in even])

    def rethrower(i):
        return i + 1 if i % 2 == 0 else (None if i % 3 == 0 else -2)

    assert probed["rethrower"] == (
        {"entry": 40, "return": 33},
        [rethrower(i) for i in range(40) if rethrower(i) is not None],
    )
    assert probed["outer"] == (
        {"entry": 40, "return": 40},
        [rethrower(i) if rethrower(i) is not None else -1 for i in range(40)],
    )


def test_return_probes_in_eight_threads(builder, reaper, tmp_path):
    prog = builder.build("rt_threads.c", "-O1", "-pthread")
    run = Spawned([str(prog), "3000"], tmp_path, reaper)
    entries: dict[int, list[int]] = {}
    returns: dict[int, list[int]] = {}
    run.session.add_probe(placement(prog, "work"),
                          lambda c: entries.setdefault(c.tid, []).append(c.arg(0)))
    run.session.add_probe(placement(prog, "work"),
                          lambda c: returns.setdefault(c.tid, []).append(c.retval), kind="return")
    assert run.run().code == 0
    tids = {int(line.split()[0]) for line in run.output().splitlines()}
    assert set(entries) == set(returns) == tids and len(tids) == 8
    for tid in tids:
        assert entries[tid] == list(range(3000))
        assert returns[tid] == [i + 1 for i in range(3000)]


def test_return_probe_on_ret_imm16(builder, reaper, tmp_path):
    # `ret $16` pops 24 bytes: the trampoline is reached 16 bytes above the usual rsp.
    prog = builder.build("ret_imm.S", "-no-pie")
    run = Spawned([str(prog)], tmp_path, reaper)
    returns = []
    run.session.add_probe(placement(prog, "callee"), lambda ctx: returns.append(ctx.retval),
                          kind="return")
    status = run.run()
    assert (status.code, len(returns), set(returns)) == (0, 1000, {5})
