"""`-f folded`: a profile of a CPU-bound program with known shares (tests/programs/
prof_shares.c: hot() runs the same loop three times as long as cold()) written as
flame-graph folded lines. Shares are asserted with generous sampling-error bounds, never
wall-clock figures."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.timeout(240)

# flamegraph.pl's own parse of a line: everything up to the last run of spaces, a count.
FOLDED_LINE = re.compile(r"^(\S.*?)\s+?(\d+(?:\.\d*)?)$")


def test_folded_profile_gives_the_hot_function_its_share(uprobe, builder) -> None:
    prog = builder.build("prof_shares.c", "-O2")
    r = uprobe.run("-f", "folded", "-e",
                   'profile:hz:199 { @[ustack] = count(); } END { printf("done\\n"); }',
                   "-c", f"{prog} 250")
    assert r.returncode == 0, r.stderr
    # Only folded lines in the output; the rest went to stderr as text.
    assert "done\n" in r.stderr and "Attached 2 probes" in r.stderr
    shares = {"hot": 0, "cold": 0}
    total = 0
    for line in r.out.splitlines():
        m = FOLDED_LINE.match(line)
        assert m, line
        frames, count = m.group(1).split(";"), int(m.group(2))
        # A sample may come before main, in the dynamic linker's start-up (its entry
        # label is no function symbol); every stack through main is whole.
        assert "main" not in frames or frames[0] == "_start", frames
        total += count
        for name in shares:
            if name in frames:
                shares[name] += count
    assert total >= 40, r.out
    # hot: 3/4 of the CPU time; cold: 1/4 (binomial sd ~0.07 at 40 samples).
    assert 0.55 <= shares["hot"] / total <= 0.92, (shares, total)
    assert 0.08 <= shares["cold"] / total <= 0.45, (shares, total)
    # Each distinct stack is one line: the samples of a function merged across offsets.
    lines = [line.rsplit(" ", 1)[0] for line in r.out.splitlines()]
    assert len(lines) == len(set(lines))


def test_folded_prefixes_other_key_parts_and_leaves_other_maps_as_text(uprobe, builder) -> None:
    prog = builder.build("prof_shares.c", "-O2")
    script = (f"uprobe:{prog}:spin {{ @s[comm, ustack(3)] = count(); @n = count(); }}")
    r = uprobe.run("-f", "folded", "-e", script, "-c", f"{prog} 2")
    assert r.returncode == 0, r.stderr
    comm = prog.name[:15]
    assert sorted(r.out.splitlines()) == [f"{comm};main;cold;spin 2", f"{comm};main;hot;spin 2"]
    assert "@n: 4" in r.stderr


def test_samples_in_the_vdso_are_named_and_unwound_through_it(uprobe, builder) -> None:
    prog = builder.build("stack_vdso.c", "-O2")
    r = uprobe.run("-f", "folded", "-e", "profile:hz:199 { @[ustack(perf)] = count(); }",
                   "-c", f"{prog} 2000000")
    assert r.returncode == 0, r.stderr
    in_vdso = [line for line in r.out.splitlines() if "clock_gettime;__vdso_" in line]
    # Nearly all of the program's time is inside the vDSO's clock_gettime.
    assert in_vdso, r.out
    for line in in_vdso:
        frames = line.rsplit(" ", 1)[0].split(";")
        assert frames[:5] == ["_start", "__libc_start_main", "__libc_start_call_main", "main",
                              "stack_vdso_tick"], frames
        assert "[unknown]" not in frames


def test_samples_caught_in_an_out_of_line_copy_read_as_the_probed_site(uprobe, builder) -> None:
    # A trap-path probe on stack_vdso_tick: a sample often lands right after a hit let the
    # thread go, with rip at the start of the XOL copy; the stack reads from the site.
    prog = builder.build("stack_vdso.c", "-O2")
    script = (f"profile:hz:199 {{ @[ustack] = count(); }}\n"
              f"uprobe:{prog}:stack_vdso_tick {{ @hits = count(); }}\n")
    # --trap: the case is the trap path's out-of-line copy (a sample inside a jump-path
    # trampoline does not read as the site yet: see docs/jump-path.md).
    r = uprobe.run("--trap", "-f", "folded", "-e", script, "-c", f"{prog} 20000")
    assert r.returncode == 0, r.stderr
    lines = r.out.splitlines()
    assert lines, r.stderr
    assert not [line for line in lines if line.startswith("[unknown] ")], lines
    assert any(line.startswith("_start;") and ";main;stack_vdso_tick " in line
               for line in lines), lines
