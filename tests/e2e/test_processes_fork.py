"""fork, vfork and exec chains through the CLI: `@[pid] = count()` per process matches
what each process says it did, with and without following children."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def prog(builder):
    return builder.build("proc_fork.c", "-O1")


def per_pid(out: str) -> dict[int, int]:
    return {int(k): int(v) for k, v in re.findall(r"^@\[(\d+)\]: (\d+)$", out, re.M)}


def said(stdout: str) -> dict[str, tuple[int, int]]:
    """What each process printed: role -> (pid, sum)."""
    return {role: (int(pid), int(s))
            for role, pid, s in re.findall(r"^(\w+) (\d+) sum=(\d+)", stdout, re.M)}


@pytest.mark.parametrize("follow", [True, False], ids=["follow", "no-follow"])
def test_fork_counts_per_pid(uprobe, prog, follow):
    flags = [] if follow else ["--no-follow-forks"]
    r = uprobe.run(*flags, "-e", f"uprobe:{prog}:work {{ @[pid] = count(); }}",
                   "-c", f"{prog} plain 120")
    assert r.returncode == 0, r.stderr
    procs = said(r.stdout)
    assert procs["parent"][1] == 2 * sum(range(1, 121))
    assert procs["child"][1] == sum(range(1, 121)) + sum(range(1, 241))
    parent, child = procs["parent"][0], procs["child"][0]
    assert "child=0" in r.stdout
    assert per_pid(r.out) == ({parent: 240, child: 240} if follow else {parent: 240})


@pytest.mark.parametrize("follow", [True, False], ids=["follow", "no-follow"])
def test_fork_inside_a_function_with_a_pending_return_probe(uprobe, prog, follow):
    flags = [] if follow else ["--no-follow-forks"]
    r = uprobe.run(*flags, "-e", f"uretprobe:{prog}:forker {{ @ret[pid] = retval; }} "
                   f"uprobe:{prog}:work {{ @[pid] = count(); }}", "-c", f"{prog} ret 30")
    assert r.returncode == 0, r.stderr
    procs = said(r.stdout)
    parent, child = procs["parent"][0], procs["child"][0]
    assert procs["child"][1] == procs["parent"][1] == sum(range(1, 31))
    assert "child=0" in r.stdout
    rets = {int(k): int(v) for k, v in re.findall(r"^@ret\[(\d+)\]: (-?\d+)$", r.out, re.M)}
    if follow:
        assert rets == {parent: child, child: 0}
        assert per_pid(r.out) == {parent: 30, child: 30}
    else:
        assert rets == {parent: child}
        assert per_pid(r.out) == {parent: 30}


def test_vfork_and_exec(uprobe, prog):
    r = uprobe.run("-e", f"uprobe:{prog}:work {{ @[pid] = count(); }}",
                   "-c", f"{prog} vfork 50")
    assert r.returncode == 0, r.stderr
    procs = said(r.stdout)
    assert procs["leaf"][1] == 28 and procs["parent"][1] == 2 * sum(range(1, 51))
    assert per_pid(r.out) == {procs["parent"][0]: 100, procs["leaf"][0]: 1 + 7}


def test_sh_c_runs_two_programs(uprobe, prog):
    r = uprobe.run("-e", f"uprobe:{prog}:work {{ @[pid] = count(); }}",
                   "-c", f'sh -c "{prog} leaf 17; {prog} leaf 19"')
    assert r.returncode == 0, r.stderr
    leaves = [(int(p), int(s)) for p, s in re.findall(r"^leaf (\d+) sum=(\d+)$", r.stdout,
                                                      re.M)]
    assert [s for _, s in leaves] == [153, 190]
    assert per_pid(r.out) == {leaves[0][0]: 17, leaves[1][0]: 19}
