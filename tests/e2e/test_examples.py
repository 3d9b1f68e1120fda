"""Every script in examples/ run against a real program, checked against ground truth.

Most examples trace libc functions; they run against tests/programs/e2e_target.c (whose
mallocs, opens and sleeps are known exactly: see groundtruth.py) or e2e_usdt.c, the
readline example against an interactive bash on a pty. Each case names its example; a
test fails when an example has no case, so new examples get run too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from e2e.conftest import ROOT, UPROBE, uprobe_env
from e2e.groundtruth import checksum, done_line

pytestmark = pytest.mark.timeout(120)

EXAMPLES = ROOT / "examples"
# e2e_target N: malloc(16 << (i % 4)) per round, plus stdio's 4096-byte buffer for a pipe.
MALLOCS_8 = [16, 32, 64, 128] * 2 + [4096]


def ex(name: str) -> str:
    return str(EXAMPLES / name)


def comm_of(path: Path) -> str:
    return path.name[:15]


def test_every_example_has_a_case() -> None:
    covered = {n[len("test_example_"):] for n in globals() if n.startswith("test_example_")}
    have = {p.stem for p in EXAMPLES.glob("*.up")}
    assert have - covered == set(), "examples without an end-to-end test"
    assert len(have) >= 12


def test_example_malloc_sizes(uprobe, target) -> None:
    r = uprobe.run("run", ex("malloc_sizes.up"), "-c", f"{target} 8")
    assert r.returncode == 0, r.stderr
    c = comm_of(target)
    assert done_line(r.stdout)[0] == checksum(8)
    assert r.out == (
        f"malloc calls per command:\n@calls[{c}]: 9\n\n\n@bytes: \n"
        "[16, 32)               2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "[32, 64)               2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "[64, 128)              2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "[128, 256)             2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "[256, 512)             0 |                                                    |\n"
        "[512, 1K)              0 |                                                    |\n"
        "[1K, 2K)               0 |                                                    |\n"
        "[2K, 4K)               0 |                                                    |\n"
        "[4K, 8K)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
        f"\n@calls[{c}]: 9\n"
    )


def test_example_malloc_sizes_as_json(uprobe, target) -> None:
    r = uprobe.run("run", "-f", "json", ex("malloc_sizes.up"), "-c", f"{target} 8")
    assert r.returncode == 0, r.stderr
    events = [json.loads(x) for x in r.out.splitlines() if x.startswith("{")]
    assert events[0] == {"type": "attached_probes", "data": {"probes": 2}}
    hist = next(e for e in events if e["type"] == "hist")["data"]["@bytes"]
    assert [(b["min"], b["count"]) for b in hist if b["count"]] == [
        (16, 2), (32, 2), (64, 2), (128, 2), (4096, 1)]
    assert {"type": "map", "data": {"@calls": {comm_of(target): 9}}} in events


def test_example_dtrace_pid(uprobe, target) -> None:
    r = uprobe.run("run", ex("dtrace_pid.up"), "-c", f"{target} 8")
    assert r.returncode == 0, r.stderr
    assert r.out.endswith(f"\n\n@[{comm_of(target)}]: 9\n@bytes_returned[1]: "
                             f"{sum(MALLOCS_8)}\n")


def test_example_malloc_buckets(uprobe, target) -> None:
    r = uprobe.run("run", ex("malloc_buckets.up"), "-c", f"{target} 8")
    assert r.returncode == 0, r.stderr
    assert r.out == ("bucket 0: 6 calls\nbucket 1: 2 calls\nbucket 2: 1 calls\nbucket 3: 0 calls\n"
                   "2^4: 2\n2^5: 2\n2^6: 2\n2^7: 2\n2^12: 1\n"
                   "\n\n@by_bucket[2]: 1\n@by_bucket[1]: 2\n@by_bucket[0]: 6\n")


def test_example_nanosleep_latency(uprobe, target) -> None:
    r = uprobe.run("run", ex("nanosleep_latency.up"), "-c", f"{target} 6 2000")
    assert r.returncode == 0, r.stderr
    hist = r.out.split("@sleep_us: \n", 1)[1].split("\n\n", 1)[0]
    total = sum(int(n) for n in re.findall(r"^[\[(].*?\s(\d+) \|", hist, re.M))
    # usleep -> nanosleep -> clock_nanosleep: the inner return resets self->start, so the
    # outer one is filtered out: one sample per round.
    assert total == 6
    slowest = int(r.out.rsplit("@slowest: ", 1)[1])
    assert slowest >= 2000


def test_example_timespec(uprobe, target) -> None:
    r = uprobe.run("run", ex("timespec.up"), "-c", f"{target} 4 1500")
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.out.splitlines() if "asks for" in x]
    assert lines == [f"{comm_of(target)} asks for 0.001500000 s"] * 4
    assert r.out.endswith(
        "@requested_ms: \n"
        "[0, 100)               4 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n\n")


def test_example_opens(uprobe, target) -> None:
    r = uprobe.run("run", ex("opens.up"), "-c", f"{target} 3")
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.out.splitlines() if " open " in x]
    assert lines == [f"{comm_of(target):<16s} open   /dev/null"] * 3
    assert done_line(r.stdout)[0] == checksum(3)


def test_example_usdt_ticks(uprobe, builder) -> None:
    prog = builder.build("e2e_usdt.c", "-O1")
    r = uprobe.run("run", ex("usdt_ticks.up"), "-c", f"{prog} 5")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "sum 150\n"
    assert r.out == "done after 5 ticks, last value 50\n\n\n@last: 50\n@ticks: 5\n"


def test_example_write_top(uprobe) -> None:
    cmd = "sh -c 'for i in 1 2 3; do echo hi; sleep 0.6; done'"
    r = uprobe.run("run", ex("write_top.up"), "-c", cmd)
    assert r.returncode == 0, r.stderr
    written = [int(v) for v in re.findall(r"^@bytes\[sh, 1\]: (\d+)$", r.out, re.M)]
    assert sum(written) == 9
    assert re.search(r"^\d\d:\d\d:\d\d$", r.out, re.M)


def test_example_abort_core(uprobe, builder, tmp_path) -> None:
    # The handler's system() runs while the aborting thread is held stopped: /proc shows
    # it in a tracing stop at that moment; then the program aborts as it would.
    prog = builder.build("e2e_abort.c")
    r = uprobe.run("run", "--unsafe", ex("abort_core.up"), "-c", str(prog))
    assert r.returncode == 0, r.stderr
    assert re.match(rf"{comm_of(prog)} \(pid (\d+), tid \1\) is aborting at abort; "
                    r"held stopped:\nState:\tt \(tracing stop\)\n", r.out), r.out


def test_example_readline(tmp_path) -> None:
    import io

    pexpect = pytest.importorskip("pexpect")
    env = dict(uprobe_env(), PS1="$ ", TERM="dumb")
    seen = io.StringIO()
    # The tool's output goes to a file: on the terminal it would mix with bash's own.
    out = tmp_path / "out.txt"
    child = pexpect.spawn(UPROBE[0], [*UPROBE[1:], "run", "-o", str(out), ex("readline.up"),
                                      "-c", "/bin/bash --norc --noprofile -i"],
                          env=env, encoding="utf-8", timeout=60, cwd=str(tmp_path))
    child.logfile_read = seen
    try:
        child.expect("Attached 2 probes")
        child.expect(r"\$ ")
        child.sendline("echo $$")
        child.expect(r"\$ ")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    text = seen.getvalue()
    bash_pid = re.search(r"^(\d+)\r$", text, re.M).group(1)  # what `echo $$` printed
    lines = re.findall(r"^\d\d:\d\d:\d\d (\d+) +(.*)$", out.read_text(), re.M)
    assert lines == [(bash_pid, "echo $$"), (bash_pid, "exit")]


def test_example_alloc_calls(uprobe, target) -> None:
    r = uprobe.run("run", ex("alloc_calls.up"), "-c", f"{target} 8")
    assert r.returncode == 0, r.stderr
    # glibc names its malloc __GI___libc_malloc, an alias of malloc: either spelling.
    assert re.search(r"^@calls\[\w*malloc\]: 9$", r.out, re.M)


def test_example_malloc_stacks(uprobe, target) -> None:
    r = uprobe.run("run", ex("malloc_stacks.up"), "-c", f"{target} 8")
    assert r.returncode == 0, r.stderr
    top = r.out.rsplit("@stacks[\n", 1)[1]
    assert re.match(r"        malloc\+0\n        main\+\d+\n        __libc_start_call_main\+\d+\n"
                    r"(        .*\n)*\]: 8\n", top)


def test_example_slow_handler(uprobe, target) -> None:
    r = uprobe.run("run", "--unsafe", ex("slow_handler.up"), "-c", f"{target} 5 1000")
    assert r.returncode == 0, r.stderr
    assert r.out.count("sleeps; the handler sleeps too\n") == 5
    assert r.out.endswith("@calls: 5\n")
    # Five handlers of 200 ms each ran; the target's five 1 ms sleeps were not stretched.
    assert done_line(r.stdout)[1] < 500


def test_example_first_mallocs(uprobe, target) -> None:
    r = uprobe.run("run", ex("first_mallocs.up"), "-c", f"{target} 8")
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.out.splitlines() if x.startswith("malloc #")]
    assert lines == [f"malloc #{i + 1}: {n} bytes" for i, n in enumerate(MALLOCS_8[:5])]
    assert r.out.endswith("\n\n@n: 5\n")
    assert done_line(r.stdout)[0] == checksum(8)
