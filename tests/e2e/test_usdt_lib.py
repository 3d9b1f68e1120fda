"""USDT through the command line: probes from <sys/sdt.h> in the executable and in a
linked shared library, behind semaphores or not; the program reports the semaphores it
sees, and what it did."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(120)


def build(builder, *defines: str):
    lib = builder.build("usdt_lib.c", "-O1", *defines, shared=True)
    main = builder.build("usdt_lib_main.c", "-O1", *defines, "-Wl,--no-as-needed", str(lib),
                         f"-Wl,-rpath,{lib.parent}")
    return main, lib


@pytest.mark.parametrize("semaphores", [True, False])
def test_usdt_in_executable_and_library(uprobe, builder, semaphores):
    main, lib = build(builder, *(() if semaphores else ("-DUSDT_NO_SEMAPHORES",)))
    program = (
        f"usdt:{lib}:usdtlib:tick {{ @ticks[arg0] = count(); @tens = sum(arg1); }} "
        f"usdt:{main}:loop {{ @loops = count(); }}"
    )
    r = uprobe.run("-e", program, "-c", f"{main} 't 3' 't 2'")
    assert r.returncode == 0, r.stderr
    sem = 1 if semaphores else -1
    assert r.stdout == (f"ticks 3 lib-sem {sem} main-sem {sem}\n"
                        f"ticks 2 lib-sem {sem} main-sem {sem}\n")
    assert r.out == ("\n\n@loops: 5\n"
                     "@tens: 90\n"
                     "@ticks[3]: 1\n@ticks[1]: 2\n@ticks[2]: 2\n")


def test_usdt_library_by_short_name_and_wildcard(uprobe, builder):
    """`usdt_lib` names the library mapped in the process (usdt_lib-HASH.so), and a
    probe-name wildcard matches too."""
    main, _ = build(builder)
    r = uprobe.run("-e", "usdt:usdt_lib:usdtlib:t* { @ = count(); }", "-c", f"{main} 't 4'")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ticks 4 lib-sem 1 main-sem 0\n"  # only the library is probed
    assert r.out == "\n\n@: 4\n"
