"""What ustack frames are named, end to end. Late symbolisation: stacks taken in a
library that is later dlclose'd and deleted from disk, in a process that has exited (or
exec'd) by the time the maps print, still print with their symbols (from the mappings
recorded at the hit). A frame in generated code prints as its address."""

from __future__ import annotations

import re
import shutil

import pytest

pytestmark = pytest.mark.timeout(180)


def test_stacks_of_an_exited_process_and_a_deleted_library_are_named(uprobe, builder,
                                                                     tmp_path) -> None:
    host = builder.build("late_host.c", "-O2", "-fomit-frame-pointer")
    lib = tmp_path / "liblate.so"
    shutil.copy(builder.build("late_lib.c", "-O2", shared=True), lib)
    script = (f"uprobe:{lib}:late_work {{ @[ustack(perf)] = count(); }}\n"
              # After the last dlclose: the library leaves the disk before the end.
              f'uprobe:{host}:late_gap /arg0 == 2/ {{ system("rm -f {lib}"); }}\n')
    r = uprobe.run("--unsafe", "-e", script, "-c", f"{host} {lib} late_work 2")
    assert r.returncode == 0, r.stderr
    assert not lib.exists()
    entries = re.findall(r"@\[\n(.*?)\]: (\d+)", r.out, re.S)
    assert entries, r.out
    total = 0
    for frames, count in entries:
        lines = [line.split(None, 1)[1] for line in frames.strip("\n").splitlines()]
        assert lines[0] == f"late_work+0 ({lib})"
        assert re.fullmatch(rf"main\+\d+ \({re.escape(str(host))}\)", lines[1]), lines
        assert lines[-1].startswith("_start+"), lines
        assert not any("[unknown]" in line for line in lines), lines
        total += int(count)
    # Periods 1 and 2 call late_work 2 and 3 times.
    assert total == 5


def test_stacks_taken_before_an_exec_keep_the_old_image_names(uprobe, builder) -> None:
    first = builder.build("late_exec.c", "-O2")
    second = builder.build("stack_deep.c", "-O2", "-fomit-frame-pointer")
    script = (f"uprobe:{first}:late_step {{ @a[ustack(perf)] = count(); }}\n"
              f"uprobe:{second}:leaf {{ @b[ustack(perf, 3)] = count(); }}\n")
    # late_exec calls late_step twice, then becomes stack_deep in the same process.
    r = uprobe.run("-e", script, "-c", f"{first} 2 {second} 1")
    assert r.returncode == 0, r.stderr
    a = re.findall(r"@a\[\n(.*?)\]: (\d+)", r.out, re.S)
    b = re.findall(r"@b\[\n(.*?)\]: (\d+)", r.out, re.S)
    assert sum(int(n) for _, n in a) == 2 and sum(int(n) for _, n in b) == 2, r.out
    for frames, _ in a:
        lines = [line.split(None, 1)[1] for line in frames.strip("\n").splitlines()]
        assert lines[0] == f"late_step+0 ({first})"
        assert re.fullmatch(rf"main\+\d+ \({re.escape(str(first))}\)", lines[1]), lines
        assert not any("[unknown]" in line for line in lines), lines
    for frames, _ in b:
        lines = [line.split(None, 1)[1] for line in frames.strip("\n").splitlines()]
        assert lines[0] == f"leaf+0 ({second})"
        assert not any("[unknown]" in line for line in lines), lines


def test_a_frame_in_generated_code_prints_as_its_address(uprobe, builder) -> None:
    # jit_target is called from a stub in an anonymous page (no file, no CFI): that frame
    # prints as bpftrace prints an unresolved address, and the frame-pointer chain the
    # stub keeps leads on to main.
    prog = builder.build("stack_jit.c", "-O2")
    r = uprobe.run("-e", f"uprobe:{prog}:jit_target {{ printf(\"%s|%s\", ustack(3), "
                         f"ustack(perf, 3)); }}", "-c", str(prog))
    assert r.returncode == 0, r.stderr
    page = int(r.stdout.split()[1], 16)
    plain, perf = r.out.split("|")
    lines = [line.strip() for line in plain.strip("\n").splitlines()]
    assert lines[0] == "jit_target+0"
    stub_ret = page + 16  # the stub's call is 2 bytes at offset 14
    assert lines[1] == f"{stub_ret:#x}"
    assert lines[2].startswith("main+")
    perf_lines = [line.strip() for line in perf.strip("\n").splitlines()]
    assert perf_lines[1] == f"{stub_ret:x} {stub_ret:#x} ([unknown])"
