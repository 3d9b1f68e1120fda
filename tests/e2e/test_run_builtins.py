"""`uprobe run` end to end: builtins, arguments, memory, return values, stacks, on a real
compiled target whose behaviour is known exactly (tests/e2e/groundtruth.py)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from e2e.groundtruth import NAMES, checksum, done_line

pytestmark = pytest.mark.timeout(120)


def test_arguments_strings_and_identity(uprobe, target) -> None:
    script = (
        f'uprobe:{target}:work {{ printf("%d %d %s|%d %d %d %d %d|%s %s %s|%d %d\\n", '
        "arg0, arg1, str(arg2), pid == cpid, tid == pid, uid, gid, ppid, comm, func, probe, "
        "cpu >= 0, elapsed > 0); }"
    )
    r = uprobe.run("-e", script, "-c", f"{target} 3")
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.out.splitlines() if "|" in line]
    want_comm = target.name[:15]
    for i, line in enumerate(lines):
        head, ids, names, flags = line.split("|")
        assert head == f"{i} {i * 10} {NAMES[i % 3]}"
        one, same, uid, gid, ppid = ids.split()
        assert (one, same, uid, gid) == ("1", "1", str(os.getuid()), str(os.getgid()))
        assert int(ppid) > 1
        assert names == f"{want_comm} work uprobe:{target}:work"
        assert flags == "1 1"
    assert len(lines) == 3
    assert r.stderr.startswith("Attached 1 probe\n")
    assert done_line(r.stdout)[0] == checksum(3)


def test_ppid_is_the_tracer_that_spawned_the_target(uprobe, target) -> None:
    p = uprobe.popen("-e", f'uprobe:{target}:work {{ printf("%d\\n", ppid); exit(); }}',
                     "-c", f"{target} 2")
    out, err = p.communicate(timeout=90)
    assert p.returncode == 0, err
    assert int(out.split()[0]) == p.pid


def test_stack_arguments_struct_fields_and_join(uprobe, target) -> None:
    script = f"""
struct point {{ int x; long y; char name[8]; struct point *next; }}
uprobe:{target}:add8 {{ printf("add8 %d %d %d\\n", arg0, arg6, arg7); }}
uprobe:{target}:visit {{
    $p = (struct point *)arg0;
    printf("visit %d %d %s %s %d %d\\n", $p->x, $p->y, $p->name, $p->next->name,
           $p->next->x, $p->next->next == 0);
}}
uprobe:{target}:argv_list {{ join(arg0); }}
"""
    r = uprobe.run("-e", script, "-c", f"{target} 2")
    assert r.returncode == 0, r.stderr
    got = [line for line in r.out.splitlines() if line and not line.startswith("done")]
    assert got == [
        "add8 1 7 0", "visit 3 30 first second 7 1", "one two three",
        "add8 1 7 1", "visit 3 30 first second 7 1", "one two three",
    ]


def test_return_values_and_thread_local_latency(uprobe, target) -> None:
    script = f"""
uretprobe:{target}:greet {{ printf("greet %s\\n", str(retval)); }}
uretprobe:{target}:neg {{ printf("neg %d\\n", retval); }}
uprobe:{target}:level1 {{ self->ts = nsecs; self->arg = arg0; }}
uretprobe:{target}:level1 /self->ts/ {{
    printf("level1(%d) = %d after %d\\n", self->arg, retval, nsecs - self->ts > 0);
    self->ts = 0;
}}
"""
    r = uprobe.run("-e", script, "-c", f"{target} 3")
    assert r.returncode == 0, r.stderr
    got = [line for line in r.out.splitlines() if line and not line.startswith("done")]
    want = []
    for i in range(3):
        want += [f"greet {NAMES[i % 3]}", f"level1({i}) = {2 * i + 2} after 1", f"neg {-i}"]
    assert got == want


def _return_offsets(target) -> dict[str, int]:
    """Where each caller resumes after its call in the chain main->level1->level2->leaf:
    function+offset of the instruction after the call, from objdump (ground truth)."""
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(target)],
                          capture_output=True, text=True, check=True).stdout
    funcs: dict[str, int] = {}
    out: dict[str, int] = {}
    current, pending = "", ""
    for line in text.splitlines():
        m = re.match(r"^([0-9a-f]+) <(\w+)>:", line)
        if m:
            current, funcs[m.group(2)] = m.group(2), int(m.group(1), 16)
            continue
        m = re.match(r"^\s+([0-9a-f]+):\s+(\w+)\s*(.*)$", line)
        if not m:
            continue
        addr = int(m.group(1), 16)
        if pending:
            out.setdefault(pending, addr - funcs[current])
            pending = ""
        if m.group(2) == "call" and re.search(r"<(level1|level2|leaf)>", m.group(3)):
            callee = re.search(r"<(\w+)>", m.group(3)).group(1)
            pending = {"leaf": "level2", "level2": "level1", "level1": "main"}[callee]
    return out


def test_ustack_and_usym(uprobe, target) -> None:
    script = (f"uprobe:{target}:leaf {{ @[ustack] = count(); @two[ustack(2)] = count(); "
              f'printf("%s %s\\n", usym(reg("rip")), usym(uaddr("level2"))); }}')
    r = uprobe.run("-e", script, "-c", f"{target} 2")
    assert r.returncode == 0, r.stderr
    off = _return_offsets(target)
    assert r.out.count("leaf level2\n") == 2
    stack = r.out.split("@[\n", 1)[1].split("]: 2\n", 1)[0].splitlines()
    assert stack[:4] == [
        "        leaf+0", f"        level2+{off['level2']}", f"        level1+{off['level1']}",
        f"        main+{off['main']}",
    ]
    assert f"@two[\n        leaf+0\n        level2+{off['level2']}\n]: 2\n" in r.out


def test_bad_pointer_is_an_error_event_not_a_crash(uprobe, target) -> None:
    r = uprobe.run("-e", f'uprobe:{target}:work {{ printf("[%s] %d\\n", str(arg0 + 16), arg0); }}',
                   "-c", f"{target} 2")
    assert r.returncode == 0, r.stderr
    assert [x for x in r.out.splitlines() if x.startswith("[")] == ["[] 0", "[] 1"]
    assert r.stderr.count("ERROR: str(): failed to read a string at 0x1") == 2


def test_positional_parameters_and_predicates(uprobe, target, tmp_path) -> None:
    script = tmp_path / "filter.up"
    script.write_text(f'uprobe:{target}:work /arg0 >= $1 && str(arg2) == $2/ '
                      f'{{ printf("%d %s\\n", arg0, str(arg2)); }}\n')
    r = uprobe.run("run", str(script), "-c", f"{target} 9", "3", "alpha")
    assert r.returncode == 0, r.stderr
    assert [x for x in r.out.splitlines() if x and not x.startswith("done")] == [
        "3 alpha", "6 alpha"]


def test_time_strftime_and_printf_conversions(uprobe, target) -> None:
    script = (f'uprobe:{target}:work /arg0 == 1/ {{ time("T %H:%M:%S\\n"); '
              f'printf("%s|%5d|%-5d|%05d|%x|%X|%o|%c|%u|%lld|%s|%%\\n", strftime("%Y", nsecs), '
              f"arg0, arg0, arg1, 255, 255, 8, 65, -1, -1, str(arg2)); }}")
    r = uprobe.run("-e", script, "-c", f"{target} 3")
    assert r.returncode == 0, r.stderr
    lines = r.out.splitlines()
    assert re.fullmatch(r"T \d\d:\d\d:\d\d", lines[0])
    year = lines[1].split("|")[0]
    assert re.fullmatch(r"20\d\d", year)
    assert lines[1][len(year):] == "|    1|1    |00010|ff|FF|10|A|4294967295|-1|beta|%"


def test_string_functions_buf_casts_and_control_flow(uprobe, target) -> None:
    script = f"""
uprobe:{target}:work /arg0 < 3/ {{
    $s = str(arg2);
    printf("%s %d %d %d %d|%r|%d %d|", $s, strlen($s), strcontains($s, "mm"),
           strncmp($s, "alp", 3), $s == "beta", buf(arg2, 3), (uint8)(arg1 + 250),
           (int8)(arg1 + 250));
    $i = 0; $acc = 0;
    while ($i < arg0 + 3) {{ $i++; if ($i == 2) {{ continue; }} $acc += $i; }}
    unroll(2) {{ $acc = $acc * 10; }}
    printf("%d %s\\n", $acc, arg0 > 1 ? "big" : "small");
    @m[$s] = arg1;
}}
END {{ for ($kv : @m) {{ printf("%s=%d ", $kv.0, $kv.1); }} printf("\\n"); clear(@m); }}
"""
    r = uprobe.run("-e", script, "-c", f"{target} 5")
    assert r.returncode == 0, r.stderr
    got = [x for x in r.out.splitlines() if x and not x.startswith("done")]
    assert got == [
        "alpha 5 0 0 0|alp|250 -6|400 small",
        "beta 4 0 1 1|bet|4 4|800 small",
        "gamma 5 1 1 0|gam|14 14|1300 big",
        "alpha=0 beta=10 gamma=20 ",
    ]


def test_json_error_event(uprobe, target) -> None:
    import json

    r = uprobe.run("-f", "json", "-e", f'uprobe:{target}:work /arg0 == 0/ '
                   f'{{ printf("%s\\n", str(16)); }}', "-c", f"{target} 2")
    assert r.returncode == 0, r.stderr
    events = [json.loads(x) for x in r.out.splitlines() if x.startswith("{")]
    assert {"type": "error", "data": "str(): failed to read a string at 0x10"} in events
    assert {"type": "printf", "data": "\n"} in events


def test_thread_locals_and_tid_keys_per_thread(uprobe, builder) -> None:
    prog = builder.build("e2e_threads.c", "-O1", "-pthread")
    script = (f"uprobe:{prog}:step {{ self->n++; @calls[arg0] = max(self->n); "
              f"@per_tid[tid] = count(); @main = max(tid == pid); }}")
    r = uprobe.run("-e", script, "-c", f"{prog} 25")
    assert r.returncode == 0, r.stderr
    rounds = 25
    total = sum(w * 1000 * rounds + rounds * (rounds - 1) // 2 for w in range(1, 5))
    assert r.stdout == f"total {total}\n"
    assert "@calls[1]: 25\n@calls[2]: 25\n@calls[3]: 25\n@calls[4]: 25\n" in r.out
    assert r.out.count(": 25\n") == 8  # four workers by argument, four by tid
    assert "@main: 0\n" in r.out
