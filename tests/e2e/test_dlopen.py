"""Libraries loaded late, through the command line: late_host.c loads a library in periods
1..3 (dlopen, p+1 calls with argument p, dlclose); probes on the library hit in each
loaded period, by path and by short name, and USDT probes in it get their semaphore."""

from __future__ import annotations

import shutil

import pytest

pytestmark = pytest.mark.timeout(120)

PERIODS_OUT = "period 1 calls 2 ret {r1}\nperiod 2 calls 3 ret {r2}\nperiod 3 calls 4 ret {r3}\ndone\n"


@pytest.fixture(scope="module")
def host(builder):
    return builder.build("late_host.c", "-O1")


def test_uprobe_on_a_library_by_path_each_loaded_period(uprobe, builder, host, tmp_path):
    lib = tmp_path / "liblate.so"
    shutil.copy(builder.build("late_lib.c", "-O1", shared=True), lib)
    program = ("uprobe:./liblate.so:late_work { @calls[arg0] = count(); } "
               f"uprobe:{host}:late_gap {{ @gaps = count(); }}")
    r = uprobe.run("-e", program, "-c", f"{host} ./liblate.so late_work 3")
    assert r.returncode == 0, r.stderr
    assert r.stdout == PERIODS_OUT.format(r1=3, r2=6, r3=9)
    assert r.out == "\n\n@calls[1]: 2\n@calls[2]: 3\n@calls[3]: 4\n@gaps: 4\n"


def test_uprobe_on_a_library_by_short_name(uprobe, host):
    """`libz` is found in the linker cache before the program loads it."""
    r = uprobe.run("-e", "uprobe:libz:crc32 { @[arg0] = count(); }", "-c",
                   f"{host} libz.so.1 crc32 3")
    assert r.returncode == 0, r.stderr
    assert r.stdout == PERIODS_OUT.format(r1=0, r2=0, r3=0)
    assert r.out == "\n\n@[1]: 2\n@[2]: 3\n@[3]: 4\n"


def test_usdt_with_semaphore_in_a_library_loaded_late(uprobe, builder, host):
    lib = builder.build("usdt_lib.c", "-O1", shared=True)
    r = uprobe.run("-e", f"usdt:{lib}:usdtlib:tick {{ @[arg0, arg1] = count(); }}", "-c",
                   f"{host} {lib} usdt_lib_tick 3")
    assert r.returncode == 0, r.stderr
    # ret: the semaphore as the library saw it, raised again in each new mapping.
    assert r.stdout == PERIODS_OUT.format(r1=1, r2=1, r3=1)
    assert r.out == "\n\n@[1, 10]: 2\n@[2, 20]: 3\n@[3, 30]: 4\n"
