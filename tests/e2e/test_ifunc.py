"""IFUNC symbols are probed where the process's relocations point: the implementation the
program really calls, counted against the program's own call counts.

bpftrace 0.17 (and the kernel uprobe it places) probes the resolver at the symbol's address
instead: `uprobe:libc:strlen { @ = count(); }` counts 1 there (the one lazy binding), not the
calls. uprobe's count is the program's; `strlen@resolver` gives bpftrace's behaviour.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def prog(builder):
    return builder.build("ifunc_calls.c", "-O1", "-fno-builtin")


def test_string_functions_counted_through_their_ifuncs(uprobe, prog):
    script = ('uprobe:libc:strlen /str(arg0) == "ifunc-marker"/ { @strlen = count(); } '
              'uprobe:libc:strchr /str(arg0) == "ifunc-marker"/ { @strchr = count(); } '
              'uprobe:libc:memcpy /str(arg1) == "ifunc-marker"/ { @memcpy = count(); } '
              "uprobe:libc:strlen { @func[func] = count(); }")
    r = uprobe.run("-e", script, "-c", f"{prog} 17")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("calls 17 ")
    assert "@strlen: 17\n" in r.out and "@strchr: 17\n" in r.out and "@memcpy: 17\n" in r.out
    # func names the probe as written, not the implementation (__strlen_avx2, ...).
    assert "@func[strlen]: " in r.out


def test_resolver_stays_probeable(uprobe, prog):
    r = uprobe.run("-e", "uprobe:libc:strlen@resolver { @ = count(); }", "-c", f"{prog} 17")
    assert r.returncode == 0, r.stderr
    # The program's PLT slot for strlen is bound lazily: the resolver runs once, at the
    # first call.
    assert r.out == "\n\n@: 1\n"


def test_listing_marks_ifuncs(uprobe):
    r = uprobe.run("-lv", "uprobe:libc:strlen")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.endswith("strlen@resolver]"))
    assert " ifunc -> __strlen_" in line
