"""bpftrace's spellings where users meet them first: `probe` and `-l` show the file as the
user wrote it, quoted function names take offsets, and the comm family, cgroup and ntop()
answer as bpftrace's do."""

from __future__ import annotations

import os
import shutil

import pytest

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def named(builder):
    return builder.build("named_threads.c", "-O1", "-pthread")


@pytest.fixture
def local_copy(named, uprobe):
    """The program copied into the run's cwd, plus a symlink to it."""
    shutil.copy(named, uprobe.cwd / "prog")
    os.symlink("prog", uprobe.cwd / "prog_link")
    return uprobe.cwd / "prog"


def sites(binary) -> dict[str, int]:
    """Function name -> link-time address, from the ELF's own symbol table."""
    from runtime.elfsyms import ElfFile

    elf = ElfFile.open(str(binary))
    return {name: elf.symbol_vaddr(name) for name in ("tick", "main")}


def test_probe_names_the_file_as_written(uprobe, local_copy):
    tick = sites(local_copy)["tick"]
    script = ('uprobe:./prog:tick /arg0 == 0/ { printf("%s\\n", probe); } '
              'uprobe:prog_link:main { printf("%s\\n", probe); } '
              f'uprobe:./prog:{tick:#x} /arg0 == 1/ {{ printf("%s\\n", probe); }} '
              'uprobe:libc:pthread_create { printf("%s\\n", probe); }')
    r = uprobe.run("-e", script, "-c", "./prog")
    assert r.returncode == 0, r.stderr
    libc = [line for line in r.out.splitlines() if "pthread_create" in line]
    assert libc and libc[0].startswith("uprobe:/") and libc[0].endswith(
        "libc.so.6:pthread_create")
    # libc as the linker cache names it, not its real path (bpftrace's spelling).
    assert libc[0] in {f"uprobe:{p}:pthread_create" for p in _ld_cache("libc.so.6")}
    lines = [line for line in r.out.splitlines() if line and "libc" not in line]
    assert lines == ["uprobe:prog_link:main", "uprobe:./prog:tick", f"uprobe:./prog:{tick:#x}"]


def _ld_cache(soname: str) -> list[str]:
    import subprocess

    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    return [line.split(" => ")[1].strip() for line in out.splitlines()
            if line.strip().startswith(soname + " ") and " => " in line]


def test_listing_names_the_file_as_written(uprobe, local_copy):
    r = uprobe.run("-l", "uprobe:./prog:tic*")
    assert r.stdout == "uprobe:./prog:tick\n", r.stderr
    r = uprobe.run("-l", "uprobe:prog_link:tick")
    assert r.stdout == "uprobe:prog_link:tick\n", r.stderr


def test_quoted_function_name_with_an_offset(uprobe, named):
    from runtime.elfsyms import ElfFile
    from runtime.x86.analyse import analyse

    elf = ElfFile.open(str(named))
    tick = elf.symbol_vaddr("tick")
    off = elf.vaddr_to_offset(tick)
    # The second instruction of tick: the offset is the first instruction's length.
    first = analyse(named.read_bytes()[off:off + 16], tick).length
    r = uprobe.run("-e", f'uprobe:{named}:"tick"+{first} {{ @[probe] = count(); }}',
                   "-c", str(named))
    assert r.returncode == 0, r.stderr
    assert f"@[uprobe:{named}:tick+{first}]: 2" in r.out, r.out
    r = uprobe.run("-e", f'uretprobe:{named}:"tick"+4 {{ @ = count(); }}', "--dry-run")
    assert r.returncode == 1
    assert "offsets are not allowed on return probes" in r.stderr


def test_comm_family_cgroup_and_ntop(uprobe, named):
    script = ('uprobe:' + str(named) + ':tick { printf("%d %s %s %s %d %s %s\\n", arg0, comm, '
              'leader_comm, pcomm, cgroup, ntop(arg1), ntop(buf(arg2, 16))); }')
    r = uprobe.run("-e", script, "-c", f"sh -c '{named}; true'")
    assert r.returncode == 0, r.stderr
    lines = sorted(line for line in r.out.splitlines() if line)
    cg = _cgroup_id()
    assert lines == [f"0 leaderprog leaderprog sh {cg} 127.0.0.1 ::1",
                     f"1 worker7 leaderprog sh {cg} 127.0.0.1 ::1"]


def _cgroup_id() -> int:
    """bpftrace's cgroup: the inode of this process's cgroup v2 directory (the child runs
    in the test's own cgroup)."""
    with open("/proc/self/cgroup") as f:
        path = next((line[3:].strip() for line in f if line.startswith("0::")), None)
    with open("/proc/self/mountinfo") as f:
        mount = next((line.split()[4] for line in f if " - cgroup2 " in line), None)
    if path is None or mount is None:
        return 0
    return os.stat(mount + (path if path != "/" else "")).st_ino
