"""Nothing missed before main: with -c, every probe on the executable and on the libraries
it links is in place before any of their code runs (IFUNC resolvers during relocation,
library constructors, .preinit_array, the executable's constructors, main), and a library
loaded by dlopen has its probes in place before its constructor runs. The programs keep
their own tallies (tests/programs/ctor_main.c, ctor_lib.c): the ground truth."""

from __future__ import annotations

import re
import shutil

import pytest

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def programs(builder, tmp_path_factory):
    """The executable linked against libctor.so, and a second copy for dlopen."""
    where = tmp_path_factory.mktemp("ctor")
    lib = where / "libctor.so"
    shutil.copy(builder.build("ctor_lib.c", "-O1", shared=True), lib)
    shutil.copy(lib, where / "libctor2.so")
    # The library comes before the source on gcc's command line: --no-as-needed keeps it.
    exe = builder.build("ctor_main.c", "-O1", "-Wl,--no-as-needed", f"-L{where}", "-lctor",
                        f"-Wl,-rpath,{where}", "-ldl")
    return exe, where


def tallies(line: str) -> dict[str, int]:
    """`exe 4 lib work 5 resolver 2 ...` -> {'exe': 4, 'lib work': 5, 'resolver': 2, ...}."""
    return {name.strip(): int(value) for name, value in re.findall(r"([a-z_ ]+?) (\d+)", line)}


def counts(out: str) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(r"^(@\S*): (\d+)$", out, re.M)}


def test_library_constructor_resolver_and_executable_init_code(uprobe, programs):
    exe, where = programs
    lib = where / "libctor.so"
    script = (f"uprobe:{lib}:ctor_work {{ @work = count(); }} "
              f"uprobe:{lib}:resolver_step {{ @resolver = count(); }} "
              f"uprobe:{exe}:exe_work {{ @exe[arg0] = count(); }} "
              "uprobe:libc:rand_r { @rand_r = count(); }")
    r = uprobe.run("-e", script, "-c", str(exe))
    assert r.returncode == 0, r.stderr
    truth = tallies(r.stdout.splitlines()[0])
    got = counts(r.out)
    assert truth["exe"] == 4 and truth["lib work"] == 5 and truth["resolver"] == 2
    # .preinit_array (100), the constructor (200, 201), main (1).
    assert {k: v for k, v in got.items() if k.startswith("@exe")} == {
        "@exe[1]": 1, "@exe[100]": 1, "@exe[200]": 1, "@exe[201]": 1}
    assert got["@work"] == truth["lib work"]
    assert got["@resolver"] == truth["resolver"]
    # libc calls made by the library's constructor count as well as main's.
    assert got["@rand_r"] == truth["rand_r"] + truth["main rand_r"]


def test_dlopened_library_constructor(uprobe, programs):
    exe, where = programs
    late = where / "libctor2.so"
    script = (f"uprobe:{late}:ctor_work {{ @work = count(); }} "
              "uprobe:libc:rand_r { @rand_r = count(); }")
    r = uprobe.run("-e", script, "-c", f"{exe} {late}")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2, r.stdout
    late_work, late_rand = (int(x) for x in re.findall(r"work (\d+) resolver \d+ rand_r (\d+)",
                                                        lines[1])[0])
    main_rand = int(re.search(r"main rand_r (\d+)", lines[0])[1])
    lib_rand = int(re.search(r"lib work \d+ resolver \d+ rand_r (\d+)", lines[0])[1])
    got = counts(r.out)
    assert late_work == 5
    assert got["@work"] == late_work
    assert got["@rand_r"] == lib_rand + main_rand + late_rand
