"""`args`, struct values and casts to the program's own types, read from its DWARF.

Ground truth is the C source of tests/programs/dwarf_types.c: take_req(&r, i, GREEN) is
called for i = 0..N-1 with r initialised as written there.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.timeout(180)

FLAGS = ("-O1", "-fno-omit-frame-pointer")
INNER = "{ .m = 2, .n = 3 }"
PAIR = "[{ .m = 1, .n = 2 },{ .m = 3, .n = 4 }]"


@pytest.fixture(scope="module")
def prog(builder):
    return builder.build("dwarf_types.c", *FLAGS)


def test_args_fields_both_spellings_and_struct_values(uprobe, prog):
    script = (f"uprobe:{prog}:take_req {{ "
              "printf(\"%d %d %s %d %d|\", args->r->in.m, args.count, args.r->name, args->c, "
              "args.r.col); print(args.r->in); print(args->r->pair); print(args.r.fl); }")
    r = uprobe.run("-e", script, "-c", f"{prog} 2")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "840\n".replace("840", _total(2))
    fl = "{ .a = 5, .b = 17, .c = -3, .d = 123456789012 }"  # bitfields, c signed
    one = f"{INNER}\n{PAIR}\n{fl}\n"
    assert r.out == f"2 0 hello 5 6|{one}2 1 hello 5 6|{one}\n\n"


def _total(n: int) -> str:
    # main's total: sum over i of take_req (m + i + GREEN) + add (i + 200)
    return str(sum((2 + i + 5) + (i + 200) for i in range(n)))


def test_whole_struct_args_and_maps(uprobe, prog):
    script = (f"uprobe:{prog}:take_req {{ @keys[args->r->in] = count(); @vals[args.count] = "
              "args.r->in; @t = (args.r->in, args.count); @pairs[args.r.pair] = count(); "
              "if (args.count == 0) { print(args.r->v); print(*args.r); "
              "print(args.r->anon_pt); } }")
    r = uprobe.run("-e", script, "-c", f"{prog} 3")
    assert r.returncode == 0, r.stderr
    lines = r.out.split("\n")
    assert lines[0] == "{ .i = 42, .d = 42, .b = [42,0,0,0,0,0,0,0] }"
    whole = lines[1]
    assert whole.startswith("{ .id = 7, .name = hello, .in = { .m = 2, .n = 3 }, .pair = "
                            f"{PAIR}, .col = 6, ")
    assert ".next = 0x" in whole and ".label = 0x" in whole
    assert whole.endswith(".anon_pt = { .x = 9, .y = 10 }, .u1 = 77, .u2 = 77 }")
    assert lines[2] == "{ .x = 9, .y = 10 }"
    # Struct keys print compactly inside @[...], as bpftrace 0.17 prints them.
    assert "@keys[{.m=2,.n=3}]: 3" in r.out
    assert "@pairs[[{.m=1,.n=2},{.m=3,.n=4}]]: 3" in r.out
    assert f"@t: ({INNER}, 2)" in r.out
    assert f"@vals[0]: {INNER}\n@vals[1]: {INNER}\n@vals[2]: {INNER}" in r.out


def test_json_struct_values(uprobe, prog):
    r = uprobe.run("-f", "json", "-e",
                   f"uprobe:{prog}:take_req {{ print(args.r->in); @[args.r->in] = count(); }}",
                   "-c", f"{prog} 1")
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.out.splitlines()]
    assert {"type": "value", "data": {"m": 2, "n": 3}} in events
    assert {"type": "map", "data": {"@": {"{.m=2,.n=3}": 1}}} in events


def test_casts_dot_on_pointer_sizeof_and_script_types_win(uprobe, prog):
    script = (f"struct inner {{ int32 n; int32 m; }}; uprobe:{prog}:take_req "
              "{ $r = (struct req *)arg0; printf(\"%d %s %d %d %d %d %d\\n\", $r.id, "
              "$r.next.name, sizeof(struct req), sizeof(union val), $r->in.m, "
              "offsetof(struct req, u2), offsetof(struct req, fl)); }")
    r = uprobe.run("-e", script, "-c", f"{prog} 1")
    assert r.returncode == 0, r.stderr
    # The script's struct inner swaps m and n: its layout wins over the program's.
    assert r.out == "7 second 96 8 3 88 56\n\n\n"


def test_typed_retval(uprobe, prog):
    r = uprobe.run("-e", f"uretprobe:{prog}:make {{ @[retval->id] = count(); }}",
                   "-c", f"{prog} 3")
    assert r.returncode == 0, r.stderr
    assert r.out == "\n\n@[0]: 1\n@[1]: 1\n@[2]: 1\n"


def test_errors_before_attaching(uprobe, prog):
    r = uprobe.run("-e", f"uprobe:{prog}:take_req {{ @ = args.r->nmae; @x = args.cnt; "
                   "$p = (struct nosuch *)arg0; }", "-c", f"{prog} 1")
    assert r.returncode == 1
    assert "<program>:1:" in r.stderr
    assert "struct req has no member 'nmae'" in r.stderr and "did you mean 'name'?" in r.stderr
    assert "no parameter 'cnt'" in r.stderr and "did you mean 'count'?" in r.stderr
    assert f"unknown type 'struct nosuch': not defined in the script nor in the debug info " \
           f"of {prog}" in r.stderr
    assert r.stdout == ""  # nothing ran
    r = uprobe.run("-e", f"uretprobe:{prog}:take_req {{ @ = args.count; }}", "-c", str(prog))
    assert r.returncode == 1 and "'args' in a uretprobe" in r.stderr


def test_binary_without_debug_info(uprobe, builder):
    bare = builder.build("dwarf_types.c", "-O1", "-g0")
    r = uprobe.run("-e", f"uprobe:{bare}:take_req {{ @ = args.count; }}", "-c", str(bare))
    assert r.returncode == 1
    assert f"no DWARF debug info for {bare}" in r.stderr
    assert "debug package" in r.stderr and ".build-id/" in r.stderr


def test_library_through_its_build_id_debug_file(uprobe, builder, tmp_path):
    lib = builder.build("dwarf_lib.c", "-O1", "-Wl,--build-id", shared=True)
    stripped = tmp_path / "libitems.so"
    shutil.copy(lib, stripped)
    build_id = subprocess.run(["readelf", "-n", str(stripped)], capture_output=True,
                              text=True, check=True).stdout.split("Build ID:")[1].split()[0]
    place = tmp_path / "dbg" / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug"
    place.parent.mkdir(parents=True)
    subprocess.run(["objcopy", "--only-keep-debug", str(stripped), str(place)], check=True)
    subprocess.run(["objcopy", "--strip-debug", str(stripped)], check=True)
    main = builder.build("dwarf_lib_main.c", "-O1", "-Wl,--no-as-needed", str(stripped),
                         f"-Wl,-rpath,{tmp_path}")
    script = (f"uprobe:{stripped}:lib_visit {{ @[args.depth, args.item->tag, "
              "args.item->next->key] = count(); }")
    r = uprobe.run("--debug-dir", str(tmp_path / "dbg"), "-e", script, "-c", f"{main} 2")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "total 90\n"
    assert r.out == "\n\n@[1, one, 20]: 1\n@[2, one, 20]: 1\n"
    r = uprobe.run("-e", script, "-c", f"{main} 2")
    assert r.returncode == 1 and "no DWARF debug info" in r.stderr


def test_listing_shows_parameters(uprobe, prog):
    r = uprobe.run("-lv", f"uprobe:{prog}:take_req")
    assert r.returncode == 0, r.stderr
    assert r.out == "" and r.stdout.splitlines()[1:] == [
        "    struct req* r", "    int count", "    enum color c"]
