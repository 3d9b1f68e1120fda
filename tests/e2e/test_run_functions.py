"""The `uprobe` command end to end on functions and values: sleep(), exit(code), func under
wildcards, pointer values, profile:hz, hist() bits. Targets: tests/programs/more_*.c, whose
own output is the ground truth (addresses, times)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runtime.elfsyms import ElfFile
from runtime.resolve import find_targets, resolve_uprobe
from tests.e2e.conftest import TARGET_FLAGS

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def marks(builder) -> Path:
    return builder.build("more_marks.c", *TARGET_FLAGS)


def program_lines(stdout: str, tag: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in stdout.splitlines() if line.startswith(tag + " ")]


def test_sleep_delays_later_effects_never_the_target(uprobe, marks) -> None:
    script = (f'uprobe:{marks}:more_mark {{ printf("hit %d\\n", arg0); sleep(400); '
              'system("date +%%s%%N"); }')
    r = uprobe.run("--unsafe", "-e", script, "-c", f"{marks} 3")
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.out.splitlines() if line]  # the empty map dump adds blanks
    assert lines[0::2] == ["hit 0", "hit 1", "hit 2"]
    dates = [int(x) for x in lines[1::2]]
    target_marks = [int(x) for x in program_lines(r.stdout, "mark")]
    target_exit = int(program_lines(r.stdout, "exit")[0])
    # Effects run in hit order, each date after its hit's sleep...
    assert all(b - a >= 390_000_000 for a, b in zip(dates, dates[1:], strict=False))
    assert dates[0] - target_marks[0] >= 300_000_000
    # ...while the program went through its three calls without waiting for them.
    assert target_exit - target_marks[0] < 390_000_000
    assert target_exit < dates[-1]


def test_exit_code_is_the_tool_exit_status(uprobe, marks) -> None:
    r = uprobe.run("-e", f"uprobe:{marks}:more_mark /arg0 == 1/ {{ exit(3); }} "
                         'END { printf("end\\n"); }', "-c", f"{marks} 3 5")
    assert r.returncode == 3, r.stderr
    assert r.out.strip() == "end"


def test_exit_code_without_a_target(uprobe) -> None:
    r = uprobe.run("-e", "BEGIN { exit(7); }")
    assert r.returncode == 7, r.stderr
    r = uprobe.run("-e", "BEGIN { exit(); }")
    assert r.returncode == 0, r.stderr


def test_exit_code_out_of_range_is_a_script_error(uprobe) -> None:
    r = uprobe.run("-e", "BEGIN { exit(300); }")
    assert r.returncode == 1
    assert "exit code 300 is out of range (0-255)" in r.stderr
    assert "Traceback" not in r.stderr


def test_func_under_a_wildcard_is_the_matched_name(uprobe, marks) -> None:
    r = uprobe.run("-e", "uprobe:libc:*malloc { @[func] = count(); }", "-c", f"{marks} 1")
    assert r.returncode == 0, r.stderr
    names = re.findall(r"^@\[(.*)\]: \d+$", r.out, re.M)
    assert "malloc" in names
    # Ground truth: the names the pattern matched in libc, and only those.
    libc = ElfFile.open(find_targets("libc")[0])
    matched = {s.name for s in libc.match("*malloc")}
    assert set(names) <= matched
    assert not any(n.startswith("__") for n in names)


def test_resolve_keeps_the_public_alias() -> None:
    path = find_targets("libc")[0]
    exact = ElfFile.open(path).functions_named("malloc")[0]
    by_glob = {p.file_offset: p.symbol for p in resolve_uprobe("libc", "*malloc")}
    assert by_glob[exact.offset] == "malloc"
    # An exact name is shown as written, even an internal alias.
    assert [p.symbol for p in resolve_uprobe("libc", "__libc_malloc")] == ["__libc_malloc"]


def test_pointers_print_as_hex(uprobe, marks) -> None:
    script = (f'uprobe:{marks}:more_mark /arg0 == 0/ {{ print(uaddr("more_mark")); '
              '@p = uaddr("more_mark"); @q = (int8 *)0; @n = uaddr("more_mark") - 1; '
              'printf("%p\\n", uaddr("more_mark")); }')
    r = uprobe.run("-e", script, "-c", f"{marks} 2")
    assert r.returncode == 0, r.stderr
    addr = program_lines(r.stdout, "addr")[0]  # what the program printed with %p
    lines = r.out.splitlines()
    assert lines[:2] == [addr, addr]
    assert f"@p: {addr}" in lines
    assert "@q: 0x0" in lines
    # Arithmetic on a pointer yields a plain number.
    assert f"@n: {int(addr, 16) - 1}" in lines


def test_pointers_in_json_stay_numbers(uprobe, marks) -> None:
    import json

    r = uprobe.run("-f", "json", "-e", f'uprobe:{marks}:more_mark {{ print(uaddr("more_mark")); '
                   "exit(); }", "-c", f"{marks} 1")
    assert r.returncode == 0, r.stderr
    addr = int(program_lines(r.stdout, "addr")[0], 16)
    events = [json.loads(line) for line in r.out.splitlines()]
    assert {"type": "value", "data": addr} in events


def test_profile_from_the_command_line(uprobe, builder) -> None:
    spin = builder.build("more_spin.c", *TARGET_FLAGS)
    r = uprobe.run("-e", 'profile:hz:99 /tid == pid/ { @[func] = count(); }',
                   "-c", f"{spin} 600")
    assert r.returncode == 0, r.stderr
    assert "Attached 1 probe" in r.stderr
    counts = {k: int(v) for k, v in re.findall(r"^@\[(.*)\]: (\d+)$", r.out, re.M)}
    assert counts["more_spin_here"] >= 0.8 * sum(counts.values())
    # Late ticks are dropped on a busy machine: generous bounds around 99 Hz * 0.6 s.
    assert 0.2 * 99 * 0.6 <= sum(counts.values()) <= 1.3 * 99 * 0.6


def _expected_hist(values: list[int], bounds: list[tuple[str, int, int]]) -> dict[str, int]:
    """Counts per label, from the bucket bounds alone (a second, independent reckoning)."""
    return {label: sum(lo <= v < hi for v in values) for label, lo, hi in bounds}


def test_hist_with_bits_buckets_and_labels(uprobe) -> None:
    # Every value 0..299 once, and 1500 and 5000, as hist(x, 2): the labels of bpftrace's
    # own example (hist: log2 histograms with finer granularity, bpftrace commit 6d193bb).
    r = uprobe.run("-e", "BEGIN { $i = 0; while ($i < 300) { @h = hist($i, 2); $i++; } "
                   "@h = hist(1500, 2); @h = hist(5000, 2); @h = hist(-3, 2); exit(); }")
    assert r.returncode == 0, r.stderr
    rows = re.findall(r"^(\S+(?:, \S+)?)\s+(\d+) \|(@*) *\|$", r.out, re.M)
    got = {label: int(n) for label, n, _ in rows}
    singles = [(f"[{v}]", v, v + 1) for v in range(8)]
    ranges = []
    for p in range(1, 9):  # [8, 10) ... [448, 512)
        for j in range(4):
            lo, hi = (1 << p) * (4 + j), (1 << p) * (5 + j)
            ranges.append((f"[{lo}, {hi})", lo, hi))
    values = [*range(300), 1500, 5000]
    want = {"(..., 0)": 1, **_expected_hist(values, singles + ranges)}
    assert {k: v for k, v in got.items() if k in want} == want
    # 1500 and 5000 (= 4.88K: bpftrace writes 4096 as 4K from 2^10 on, 3584 in full).
    assert (got["[1280, 1536)"], got["[3584, 4K)"], got["[4K, 5K)"]) == (1, 0, 1)
    assert sum(got.values()) == len(values) + 1
    labels = [label for label, _, _ in rows]
    assert labels[:10] == ["(..., 0)", "[0]", "[1]", "[2]", "[3]", "[4]", "[5]", "[6]",
                           "[7]", "[8, 10)"]
    assert labels[-1] == "[4K, 5K)"


def test_hist_bits_must_agree_on_one_map(uprobe) -> None:
    r = uprobe.run("-e", "BEGIN { @h = hist(1, 2); @h = hist(1, 3); exit(); }")
    # Caught by the checks, before anything runs.
    assert r.returncode == 1
    assert "map @h uses hist() with 3 bits here but 2 at line 1" in r.stderr
    assert "Traceback" not in r.stderr
