"""Maps and output end to end, byte for byte: the final dump, print(), JSON lines, -o, -q."""

from __future__ import annotations

import json

import pytest
from e2e.groundtruth import checksum, done_line

pytestmark = pytest.mark.timeout(120)

HIST_0_TO_19 = (
    "[0]                    1 |@@@@@@                                              |\n"
    "[1]                    1 |@@@@@@                                              |\n"
    "[2, 4)                 2 |@@@@@@@@@@@@@                                       |\n"
    "[4, 8)                 4 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
    "[8, 16)                8 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
    "[16, 32)               4 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
)


def _script(target) -> str:
    return f"""
uprobe:{target}:work {{
    @calls = count();
    @by_name[str(arg2)] = count();
    @pair[str(arg2), arg0 % 2] = count();
    @total = sum(arg0);
    @low = min(arg0);
    @high = max(arg0);
    @mean = avg(arg0);
    @st = stats(arg0);
    @h = hist(arg0);
    @l = lhist(arg0, 0, 20, 5);
    @last = arg0;
    @who = comm;
}}
uprobe:{target}:neg {{ @negs = hist(-arg0); }}
"""


def test_final_map_dump_is_bpftrace_text(uprobe, target) -> None:
    r = uprobe.run("-e", _script(target), "-c", f"{target} 20")
    assert r.returncode == 0, r.stderr
    body = r.out
    assert done_line(r.stdout)[0] == checksum(20)
    assert body == (
        "\n\n"
        "@by_name[gamma]: 6\n@by_name[alpha]: 7\n@by_name[beta]: 7\n"
        "@calls: 20\n"
        "@h: \n" + HIST_0_TO_19 + "\n"
        "@high: 19\n"
        "@l: \n"
        "[0, 5)                 5 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "[5, 10)                5 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "[10, 15)               5 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "[15, 20)               5 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "\n"
        "@last: 19\n"
        "@low: 0\n"
        "@mean: 9\n\n"
        "@negs: \n"
        "(..., 0)              19 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "[0]                    1 |@@                                                  |\n"
        "\n"
        "@pair[alpha, 1]: 3\n@pair[beta, 0]: 3\n@pair[gamma, 0]: 3\n@pair[gamma, 1]: 3\n"
        "@pair[alpha, 0]: 4\n@pair[beta, 1]: 4\n"
        "@st: { .count = 20, .average = 9, .total = 190 }\n\n"
        "@total: 190\n"
        f"@who: {target.name[:15]}\n"
    )


def test_print_with_top_div_clear_zero_and_end(uprobe, target) -> None:
    script = f"""
uprobe:{target}:work {{ @n[arg0] = sum(arg0 * 100); @c = count(); }}
END {{
    print(@n, 2, 10);
    printf("len %d has %d %d\\n", len(@n), has_key(@n, 3), has_key(@n, 99));
    delete(@n[3]);
    printf("len %d\\n", len(@n));
    zero(@c);
    print(@c);
    clear(@n);
}}
"""
    r = uprobe.run("-e", script, "-c", f"{target} 5")
    assert r.returncode == 0, r.stderr
    body = r.out
    assert body == "@n[3]: 30\n@n[4]: 40\nlen 5 has 1 0\nlen 4\n@c: 0\n\n\n@c: 0\n"


def test_json_output(uprobe, target) -> None:
    script = (f'BEGIN {{ printf("hi\\n"); }} uprobe:{target}:work {{ @c = count(); '
              f"@k[str(arg2), 1] = count(); @h = hist(arg0); @s = stats(arg0); }}")
    r = uprobe.run("-f", "json", "-e", script, "-c", f"{target} 4")
    assert r.returncode == 0, r.stderr
    events = [json.loads(x) for x in r.out.splitlines() if x.startswith("{")]
    assert events[0] == {"type": "attached_probes", "data": {"probes": 2}}
    assert events[1] == {"type": "printf", "data": "hi\n"}
    by_name = {next(iter(e["data"])): e for e in events[2:]}
    assert by_name["@c"] == {"type": "map", "data": {"@c": 4}}
    assert by_name["@k"] == {"type": "map", "data": {"@k": {"alpha,1": 2, "beta,1": 1,
                                                             "gamma,1": 1}}}
    assert by_name["@h"] == {"type": "hist", "data": {"@h": [
        {"min": 0, "max": 0, "count": 1}, {"min": 1, "max": 1, "count": 1},
        {"min": 2, "max": 3, "count": 2}]}}
    assert by_name["@s"]["type"] == "stats"
    assert by_name["@s"]["data"]["@s"] == {"count": 4, "average": 1, "total": 6}


def test_output_file_and_quiet(uprobe, target, tmp_path) -> None:
    out = tmp_path / "out.txt"
    r = uprobe.run("-q", "-o", str(out), "-e",
                   f'uprobe:{target}:work {{ printf("w %d\\n", arg0); @c = count(); }}',
                   "-c", f"{target} 2")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert out.read_text() == "w 0\nw 1\n\n\n@c: 2\n"
    assert r.stdout.startswith("done ")


def test_begin_end_without_a_target(uprobe) -> None:
    r = uprobe.run("-e", 'BEGIN { @x = 5; printf("begin %d\\n", $#); exit(); } '
                   'END { printf("end\\n"); }')
    assert (r.returncode, r.out) == (0, "begin 0\nend\n\n\n@x: 5\n"), r.stderr
    assert r.stderr == "Attached 2 probes\n"


def test_interval_prints_and_clears(uprobe, target) -> None:
    script = (f"uprobe:{target}:work {{ @c = count(); }} "
              f'interval:ms:100 {{ @ticks = count(); print(@c); clear(@c); }} '
              f"interval:ms:450 {{ exit(); }}")
    r = uprobe.run("-e", script, "-c", f"{target} 100000 50")
    assert r.returncode == 0, r.stderr
    counts = [int(x.split(": ")[1]) for x in r.out.splitlines() if x.startswith("@c: ")]
    assert 2 <= len(counts) <= 5 and all(c > 0 for c in counts)
    assert "@ticks: " in r.out
