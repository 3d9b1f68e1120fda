"""Errors that stop a run before it starts: one line on stderr, no traceback, and a
spawned command that could not be probed never runs."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(120)


def test_unknown_function_kills_the_spawned_command(uprobe, target) -> None:
    r = uprobe.run("-e", f"uprobe:{target}:no_such_function {{ @c = count(); }}",
                   "-c", f"{target} 3")
    assert r.returncode == 2
    assert r.stdout == ""  # the target never got to print its "done" line
    # The reason, then bpftrace's words for what to do about it.
    assert r.stderr == (
        f"uprobe: no function 'no_such_function' in {target}\n"
        f"uprobe: Unable to attach probe: uprobe:{target}:no_such_function. If this is "
        "expected, set the 'missing_probes' config variable to 'warn'.\n")


def test_profile_probes_need_a_process(uprobe) -> None:
    r = uprobe.run("-e", "profile:hz:99 { @c = count(); }")
    assert r.returncode in (1, 2)
    assert "profile probes sample a process" in r.stderr
    assert "Traceback" not in r.stderr


def test_probes_without_a_target_file_need_a_process(uprobe) -> None:
    # With a file named, no -c/-p means system-wide (tests/e2e/test_systemwide.py).
    r = uprobe.run("-e", "uprobe::work { @c = count(); }")
    assert r.returncode in (1, 2)
    assert "a probe without a target needs a process" in r.stderr
    assert "Traceback" not in r.stderr


def test_comm_filter_is_for_system_wide_probes(uprobe, target) -> None:
    r = uprobe.run("-e", f"uprobe:{target}:work {{ @c = count(); }}", "--comm", "x",
                   "-c", f"{target} 1")
    assert r.returncode == 2
    assert r.stderr == ("uprobe: --comm selects processes for system-wide probes: "
                        "it does not go with -c or -p\n")
