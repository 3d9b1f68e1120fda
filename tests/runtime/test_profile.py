"""profile:hz:N (threads on a CPU) and wallclock:hz:N (every thread): timed samples of the
target, through Session.add_sampler and through the executor. Ground truth: tests/programs/more_spin.c keeps one thread spinning
in more_spin_here() and another blocked in nanosleep() for a known time."""

from __future__ import annotations

import io
import threading
from collections import Counter
from pathlib import Path

import pytest

from runtime.errors import UprobeError
from runtime.executor import ExecutorError, PlanRun, RunOptions
from runtime.handlers.emit import Emitter
from runtime.session import Session
from uplang.checks import CheckOptions
from uplang.planner import compile_script

FLAGS = ("-O1", "-fno-omit-frame-pointer")
RUN_MS = 800
HZ = 99


@pytest.fixture(scope="module")
def prog(builder) -> Path:
    return builder.build("more_spin.c", *FLAGS)


def expected_samples(ms: int = RUN_MS, hz: int = HZ) -> float:
    return hz * ms / 1000


@pytest.mark.timeout(60)
def test_sampler_stops_each_thread_and_sees_where_it_is(prog, reaper) -> None:
    s = Session.spawn([str(prog), str(RUN_MS)])
    reaper.add(s.pid)
    where: Counter[tuple[int, str]] = Counter()
    stacks: list[list[str]] = []
    me = threading.get_ident()
    idents: set[int] = set()

    def sample(ctx) -> None:
        idents.add(threading.get_ident())
        # The thread is stopped: /proc says so while the handler runs.
        with open(f"/proc/{ctx.pid}/task/{ctx.tid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        assert state == "t"
        name = ctx.symbolize(ctx.regs.rip).partition("+")[0]
        where[(ctx.tid, name)] += 1
        if name == "more_spin_here" and len(stacks) < 3:
            stacks.append([ctx.symbolize(a).partition("+")[0] for a in ctx.ustack(8)])

    sampler = s.add_sampler(HZ, sample, on_cpu=False)
    assert s.run().code == 0
    assert idents == {me}
    main = Counter({name: n for (tid, name), n in where.items() if tid == s.pid})
    others = Counter({name: n for (tid, name), n in where.items() if tid != s.pid})
    # The spinning main thread: nearly every sample inside more_spin_here.
    assert main["more_spin_here"] >= 0.8 * sum(main.values())
    # The thread blocked in nanosleep is sampled too (a wall-clock sampler).
    assert sum(others.values()) >= 5
    assert max(others, key=others.__getitem__) in ("clock_nanosleep", "__clock_nanosleep",
                                                   "nanosleep", "__nanosleep")
    total = sum(where.values())
    assert sampler.samples == total
    # Two threads sampled at HZ for RUN_MS: no more samples than ticks for two threads; a busy machine drops late ticks (never
    # made up in a burst), so the lower bound only asks for a run's worth of samples.
    assert 10 <= total <= 1.3 * 2 * expected_samples()
    assert stacks and all(st[:2] == ["more_spin_here", "main"] for st in stacks)


@pytest.mark.timeout(60)
def test_on_cpu_sampler_skips_the_thread_blocked_in_a_system_call(prog, reaper) -> None:
    s = Session.spawn([str(prog), str(RUN_MS)])
    reaper.add(s.pid)
    where: Counter[tuple[bool, str]] = Counter()

    def sample(ctx) -> None:
        where[(ctx.tid == ctx.pid, ctx.symbolize(ctx.regs.rip).partition("+")[0])] += 1

    sampler = s.add_sampler(HZ, sample)
    assert s.run().code == 0
    main = sum(n for (is_main, _), n in where.items() if is_main)
    asleep = sum(n for (is_main, name), n in where.items() if not is_main and "sleep" in name)
    assert where[(True, "more_spin_here")] >= 0.8 * main > 0
    # bpftrace's profile: a thread blocked in nanosleep is not on a CPU, not a sample; only
    # its way in and out of the call may be (a wall-clock sampler gets ~HZ * RUN_MS here).
    assert asleep <= 3
    assert sampler.skipped > 0
    assert sampler.samples == sum(where.values())


def test_sampler_rate_must_be_positive(prog, reaper) -> None:
    s = Session.spawn([str(prog), "0"])
    reaper.add(s.pid)
    try:
        with pytest.raises(UprobeError, match="sampling rate must be positive"):
            s.add_sampler(0, lambda ctx: None)
    finally:
        s.detach()


def run_script(text: str, command: str) -> str:
    plan = compile_script(text, "t.up", CheckOptions(has_process=True, has_command=True))
    stream = io.StringIO()
    run = PlanRun(plan, RunOptions(command=command, pid=None, quiet=True),
                  Emitter("text", stream, io.StringIO()))
    assert run.execute() == 0
    return stream.getvalue()


def map_lines(text: str, name: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        if line.startswith(f"@{name}[") and "]: " in line:
            key, _, value = line[len(name) + 2:].rpartition("]: ")
            out[key] = int(value)
        elif line.startswith(f"@{name}: "):
            out[""] = int(line.split(": ", 1)[1])
    return out


@pytest.mark.timeout(60)
def test_wallclock_clause_counts_by_func(prog) -> None:
    text = run_script(f'wallclock:hz:{HZ} {{ @f[tid == pid ? "main" : "other", func] = count(); '
                      "@t[tid] = count(); @n = count(); }", f"{prog} {RUN_MS}")
    funcs = map_lines(text, "f")
    threads = map_lines(text, "t")
    total = map_lines(text, "n")[""]
    assert len(threads) == 2
    assert sum(funcs.values()) == total == sum(threads.values())
    main = {k.split(", ")[1]: n for k, n in funcs.items() if k.startswith("main, ")}
    other = {k.split(", ")[1]: n for k, n in funcs.items() if k.startswith("other, ")}
    assert main["more_spin_here"] >= 0.8 * sum(main.values())
    assert "more_spin_here" not in other
    # No more samples than ticks for two threads; a busy machine drops late ticks (never
    # made up in a burst), so the lower bound only asks for a run's worth of samples.
    assert 10 <= total <= 1.3 * 2 * expected_samples()


@pytest.mark.timeout(60)
def test_profile_clause_samples_threads_on_a_cpu(prog) -> None:
    text = run_script(f'profile:hz:{HZ} {{ @f[tid == pid ? "main" : "other", func] = count(); }}',
                      f"{prog} {RUN_MS}")
    funcs = map_lines(text, "f")
    assert funcs.get("main, more_spin_here", 0) > 0
    assert sum(n for k, n in funcs.items() if k.startswith("other, ") and "sleep" in k) <= 3


@pytest.mark.timeout(60)
def test_profile_clause_ustack_and_predicate(prog) -> None:
    text = run_script(f'profile:hz:{HZ} /func == "more_spin_here"/ {{ @s[ustack(2)] = count(); }}',
                      f"{prog} {RUN_MS}")
    stacks = [line for line in text.splitlines() if line.startswith("@s[")]
    frames = [line.strip() for line in text.splitlines() if line.startswith("    ")]
    assert stacks
    assert frames and {f.split("+")[0] for f in frames} == {"more_spin_here", "main"}


def test_profile_needs_a_process() -> None:
    plan = compile_script("profile:hz:99 { @ = count(); }", "t.up", CheckOptions())
    run = PlanRun(plan, RunOptions(command=None, pid=None, quiet=True),
                  Emitter("text", io.StringIO(), io.StringIO()))
    with pytest.raises(ExecutorError, match="profile probes sample a process"):
        run.execute()
