"""exec chains through the command line: probes on a program that a shell (or another
program) execs. late_exec.c prints its pid and how often it called late_step()."""

from __future__ import annotations

import collections
import shutil

import pytest

pytestmark = pytest.mark.timeout(120)


def steps_by_pid(stdout: str) -> dict[int, int]:
    counts: collections.Counter[int] = collections.Counter()
    for line in stdout.splitlines():
        _, pid, _, n = line.split()
        counts[int(pid)] += int(n)
    return dict(counts)


def pid_counts(out: str) -> dict[int, int]:
    found = {}
    for line in out.splitlines():
        if line.startswith("@["):
            key, _, n = line.rpartition(": ")
            found[int(key[2:-1])] = int(n)
    return found


def test_sh_c_hits_probes_in_the_program_by_path(uprobe, builder, tmp_path):
    shutil.copy(builder.build("late_exec.c", "-O1"), tmp_path / "prog")
    r = uprobe.run("-e", "uprobe:./prog:late_step { @[pid] = count(); }",
                   "-c", 'sh -c "./prog 3; ./prog 4"')
    assert r.returncode == 0, r.stderr
    expected = steps_by_pid(r.stdout)
    assert sorted(expected.values()) == [3, 4]
    assert pid_counts(r.out) == expected


def test_empty_target_is_resolved_again_after_exec(uprobe, builder):
    """`uprobe::late_step` names the main executable: first A, then B that A execs (another
    file with its own late_step): B's calls count too."""
    a = builder.build("late_exec.c", "-O1")
    b = builder.build("late_exec.c", "-O2")
    r = uprobe.run("-e", "uprobe::late_step { @[arg0] = count(); }", "-c", f"{a} 2 {b} 3")
    assert r.returncode == 0, r.stderr
    assert len(steps_by_pid(r.stdout)) == 1
    assert r.out == "\n\n@[3]: 1\n@[1]: 2\n@[2]: 2\n"


def test_empty_target_function_missing_from_the_first_program_is_an_error(uprobe, builder):
    """Resolved against the -c program at start, as bpftrace does: `sh` has no late_step."""
    prog = builder.build("late_exec.c", "-O1")
    r = uprobe.run("-e", "uprobe::late_step { @ = count(); }", "-c", f"sh -c '{prog} 1'")
    assert r.returncode != 0
    assert "late_step" in r.stderr and "Traceback" not in r.stderr
    # The reason, then bpftrace's advice about missing_probes: nothing else.
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("uprobe: Unable to attach probe: "), lines
