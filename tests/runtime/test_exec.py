"""exec: the address space is new; probes on the exec'd program (and its libraries, and
their USDT semaphores) go in again. Ground truth: each program prints its pid and how many
times it called the probed function."""

from __future__ import annotations

import collections

import pytest
from programs.rt_support import Spawned, placement

from runtime.resolve import resolve_usdt

pytestmark = pytest.mark.timeout(120)


def steps_by_pid(output: str) -> collections.Counter[int]:
    counts: collections.Counter[int] = collections.Counter()
    for line in output.splitlines():
        _, pid, _, n = line.split()
        counts[int(pid)] += int(n)
    return counts


@pytest.fixture(scope="module")
def late_exec(builder):
    return builder.build("late_exec.c", "-O1")


def test_shell_runs_the_program_and_its_probes_fire(late_exec, reaper, tmp_path):
    """`sh -c "prog 3; prog 4"`: fork + exec, then exec; counts per pid are exact."""
    run = Spawned(["sh", "-c", f"{late_exec} 3; {late_exec} 4"], tmp_path, reaper)
    hits: collections.Counter[int] = collections.Counter()
    probe = run.session.add_probe(placement(late_exec, "late_step"),
                                  lambda ctx: hits.update((ctx.pid,)))
    assert run.session.sites(probe) == 0  # sh does not map the program yet
    assert run.run().code == 0
    expected = steps_by_pid(run.output())
    assert sorted(expected.values()) == [3, 4]
    assert hits == expected


def test_program_that_execs_itself(late_exec, reaper, tmp_path):
    """The same file again in the same pid: each new image gets its int3 again (at a new
    address: ASLR), the old bookkeeping is dropped."""
    run = Spawned([str(late_exec), "2", str(late_exec), "3", str(late_exec), "1"], tmp_path,
                  reaper)
    args: list[int] = []
    run.session.add_probe(placement(late_exec, "late_step"), lambda ctx: args.append(ctx.arg(0)))
    assert run.run().code == 0
    pid = run.session.pid
    assert run.output() == f"pid {pid} steps 2\npid {pid} steps 3\npid {pid} steps 1\n"
    assert args == [1, 2, 1, 2, 3, 1]


def test_usdt_semaphores_after_exec(builder, reaper, tmp_path):
    """sh execs a program whose USDT probes (executable and library) sit behind
    semaphores: raised in the new image, as the program itself reports."""
    lib = builder.build("usdt_lib.c", "-O1", shared=True)
    main = builder.build("usdt_lib_main.c", "-O1", "-Wl,--no-as-needed", str(lib),
                         f"-Wl,-rpath,{lib.parent}")
    run = Spawned(["sh", "-c", f"{main} 't 3'"], tmp_path, reaper)
    hits: collections.Counter[str] = collections.Counter()
    for path, provider, name in ((lib, "usdtlib", "tick"), (main, "usdtmain", "loop")):
        for up in resolve_usdt(str(path), provider, name):
            run.session.add_probe(up.placement, lambda ctx, n=name: hits.update((n,)),
                                  semaphore=up.semaphore_offset)
    assert run.run().code == 0
    assert run.output() == "ticks 3 lib-sem 1 main-sem 1\n"
    assert hits == {"tick": 3, "loop": 3}
