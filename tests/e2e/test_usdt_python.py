"""The real-world USDT check: Debian's /usr/bin/python3.11 ships python:function__entry
behind a semaphore. Counting calls by function name must match what the script itself
counted.

Python 3.11 fires function__entry only on its tracing path (CPython gh-98894: the probe
is reached when a profile or trace function is set, or on generator.throw()), so the
script installs a profile function, which is also its own ground truth: it counts the
"call" events of its functions and prints them with their first line numbers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

pytestmark = pytest.mark.timeout(120)

PYTHON = "/usr/bin/python3.11"

SCRIPT = '''\
import sys

calls = {}


def profiler(frame, event, arg):
    if event == "call":
        code = frame.f_code
        key = (code.co_name, code.co_firstlineno)
        calls[key] = calls.get(key, 0) + 1


sys.setprofile(profiler)


def alpha_probe_fn(n):
    return n + 1


def beta_probe_fn(n):
    return alpha_probe_fn(n) * 2


def main_probe_fn(rounds):
    total = 0
    for i in range(rounds):
        total += alpha_probe_fn(i)
    for i in range(rounds * 2 - 1):
        total += beta_probe_fn(i)
    return total


main_probe_fn(7)
main_probe_fn(3)
sys.setprofile(None)
for (name, line), n in sorted(calls.items()):
    if name.endswith("_probe_fn"):
        print(name, line, n)
'''

PROGRAM = (
    "usdt:/usr/bin/python3.11:python:function__entry "
    "{ @[str(arg0), str(arg1), arg2] = count(); @names[str(arg1)] = count(); }"
)


def has_function_entry() -> bool:
    if not os.path.exists(PYTHON) or shutil.which("readelf") is None:
        return False
    out = subprocess.run(["readelf", "-n", PYTHON], capture_output=True, text=True).stdout
    return "function__entry" in out


needs_python = pytest.mark.skipif(not has_function_entry(),
                                  reason=f"{PYTHON} with USDT probes is not installed")


def expected_from(stdout: str) -> dict[tuple[str, int], int]:
    rows = [line.split() for line in stdout.splitlines()]
    found = {(name, int(line)): int(n) for name, line, n in rows}
    assert {name for name, _ in found} == {"alpha_probe_fn", "beta_probe_fn", "main_probe_fn"}
    return found


def counted(out: str, script: str) -> tuple[dict[tuple[str, int], int], dict[str, int]]:
    by_site: dict[tuple[str, int], int] = {}
    by_name: dict[str, int] = {}
    for line in out.splitlines():
        if line.startswith(f"@[{script}, "):
            key, _, n = line.rpartition(": ")
            _, name, lineno = key[2:-1].split(", ")
            by_site[(name, int(lineno))] = int(n)
        elif line.startswith("@names[") and "_probe_fn" in line:
            key, _, n = line.rpartition(": ")
            by_name[key[len("@names["):-1]] = int(n)
    return by_site, by_name


@needs_python
@pytest.mark.parametrize("via_shell", [False, True])
def test_python_function_entry_counts_match_the_script(uprobe, via_shell):
    # A short absolute path: Python reports the script's absolute name, and str() keeps
    # its first 64 bytes only.
    with tempfile.TemporaryDirectory(prefix="up", dir="/tmp") as where:
        script = os.path.join(where, "calls.py")
        with open(script, "w") as f:
            f.write(SCRIPT)
        check_counts(uprobe, script, via_shell)


def check_counts(uprobe, script: str, via_shell: bool) -> None:
    command = f"{PYTHON} {script}"
    if via_shell:
        # The interpreter is exec'd by sh: its semaphore is raised in the new image.
        command = f"sh -c '{command}'"
    r = uprobe.run("-e", PROGRAM, "-c", command)
    assert r.returncode == 0, r.stderr
    expected = expected_from(r.stdout)
    assert expected[("alpha_probe_fn", 16)] == 7 + 13 + 3 + 5
    by_site, by_name = counted(r.out, script)
    assert by_site == expected
    assert by_name == {"alpha_probe_fn": 28, "beta_probe_fn": 18, "main_probe_fn": 2}
