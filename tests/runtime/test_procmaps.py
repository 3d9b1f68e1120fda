"""procmaps against live processes: the program prints where its code is, the maps must agree."""

from __future__ import annotations

import os
import subprocess

import pytest
from programs.sym_process import running

from runtime import procfs
from runtime.errors import TargetError
from runtime.procmaps import (
    executable_mappings,
    file_mappings,
    find_mapping,
    mapped_files,
    parse_maps_line,
    read_maps,
)

pytestmark = pytest.mark.timeout(60)


def test_parse_line_with_spaces_and_device() -> None:
    m = parse_maps_line(
        "7f0000001000-7f0000003000 r-xp 00002000 fe:01 12345    /tmp/a dir/lib x.so\n"
    )
    assert (m.start, m.end, m.perms, m.offset) == (0x7F0000001000, 0x7F0000003000, "r-xp", 0x2000)
    assert m.dev == os.makedev(0xFE, 0x01) and m.inode == 12345
    assert m.path == "/tmp/a dir/lib x.so"
    assert m.executable and m.contains(0x7F0000002FFF) and not m.contains(0x7F0000003000)
    assert m.file_offset_of(0x7F0000001010) == 0x2010
    assert m.address_of(0x2010) == 0x7F0000001010 and m.address_of(0x1000) is None


def test_parse_line_anonymous() -> None:
    m = parse_maps_line("00400000-00401000 rw-p 00000000 00:00 0 ")
    assert m.path == "" and m.inode == 0 and not m.executable


@pytest.mark.parametrize("pie", ["-pie", "-no-pie"])
def test_live_process_maps(builder, reaper, pie: str) -> None:
    exe = builder.build("sym_funcs.c", "-O1", "-fPIE" if pie == "-pie" else "-fno-pie", pie,
                        "-ldl")
    lib = builder.build("sym_lib.c", "-O1", shared=True)
    with running([str(exe), str(lib)], reaper) as p:
        add_addr, square_addr = (int(v.split("=")[1], 16) for v in p.lines[0].split())
        maps = read_maps(p.pid)
        assert procfs.exe(p.pid) == os.path.realpath(exe)

        st = os.stat(exe)
        m = find_mapping(maps, add_addr)
        assert m is not None and m.executable
        assert m.path == os.path.realpath(exe)
        assert (m.dev, m.inode) == (st.st_dev, st.st_ino)
        exec_maps = executable_mappings(maps, st.st_dev, st.st_ino)
        assert m in exec_maps and all(x.executable for x in exec_maps)
        assert set(exec_maps) <= set(file_mappings(maps, st.st_dev, st.st_ino))

        lm = find_mapping(maps, square_addr)
        assert lm is not None and lm.path == os.path.realpath(lib) and lm.executable
        files = mapped_files(maps)
        assert os.path.realpath(lib) in files and os.path.realpath(exe) in files
        assert not any(f.startswith("[") for f in files)
        # Maps come in address order, without overlaps.
        assert all(a.end <= b.start for a, b in zip(maps, maps[1:], strict=False))


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_gone_process_is_a_target_error() -> None:
    pid = _dead_pid()
    with pytest.raises(TargetError, match=f"no process with pid {pid}"):
        read_maps(pid)
    with pytest.raises(TargetError, match=f"no process with pid {pid}"):
        procfs.exe(pid)
