"""The same DWARF script under bpftrace 0.17 and uprobe: struct values, arrays of structs,
struct map keys and tuples print alike. Skipped where bpftrace cannot attach here.

Where they differ, uprobe is right and bpftrace 0.17 is wrong (not compared here, tested in
test_dwarf_args.py): bitfield members (0.17: "does not contain a field named"), unions
(0.17 prints `{  }`), anonymous members (0.17 aborts with a std::logic_error).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.timeout(180)

SCRIPT = ("uprobe:{prog}:take_req {{ print(args->r->in); print(args->r->pair); "
          "@[args->r->in] = count(); @t[1] = (args->r->in, args->count); @c[args->c] = count(); }}")


def _bpftrace(prog) -> list[str] | None:
    exe = shutil.which("bpftrace")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, "-e", SCRIPT.format(prog=prog), "-c", f"{prog} 2"],
                              capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        return None
    lines = [x for x in done.stdout.splitlines() if x[:1] in "{[@"]
    return lines or None


def test_struct_output_matches_bpftrace(uprobe, builder):
    # bpftrace 0.17 cannot read the anonymous members of dwarf_types.c's struct req, so
    # compare on a struct it can read: that file without them.
    prog = builder.build("dwarf_types.c", "-O1", "-fno-omit-frame-pointer", "-DNO_ANON")
    theirs = _bpftrace(prog)
    if theirs is None:
        pytest.skip("bpftrace cannot attach uprobes here")
    r = uprobe.run("-e", SCRIPT.format(prog=prog), "-c", f"{prog} 2")
    assert r.returncode == 0, r.stderr
    ours = [x for x in r.out.splitlines() if x[:1] in "{[@"]
    assert ours == theirs
