"""The planner and the plan printout: scripts -> the Plan expected, printouts in full."""

from __future__ import annotations

import pytest

from uplang import ast as A
from uplang.checks import CheckOptions
from uplang.plan import Config, MapDecl, MemberLayout, Plan, PlanClause, PlanProbe, TypeLayout
from uplang.planner import compile_script
from uplang.planprint import format_plan


def plan(text: str, **options) -> Plan:
    return compile_script(text, "p.up", CheckOptions(**options))


PROBES = [
    ("uprobe:/bin/bash:readline", PlanProbe(0, 0, "uprobe", "uprobe:/bin/bash:readline",
                                            target="/bin/bash", func="readline")),
    ("u:libc:malloc", PlanProbe(0, 0, "uprobe", "u:libc:malloc", target="libc", func="malloc")),
    ("uprobe:./a.out:f+0x10", PlanProbe(0, 0, "uprobe", "uprobe:./a.out:f+0x10",
                                        target="./a.out", func="f", offset=16)),
    ("uprobe:./a.out:0x401000", PlanProbe(0, 0, "uprobe", "uprobe:./a.out:0x401000",
                                          target="./a.out", address=0x401000)),
    ("uretprobe:libc:malloc", PlanProbe(0, 0, "uretprobe", "uretprobe:libc:malloc",
                                        target="libc", func="malloc")),
    ("usdt:./p:prov:tick", PlanProbe(0, 0, "usdt", "usdt:./p:prov:tick", target="./p",
                                     usdt_provider="prov", usdt_name="tick")),
    ("usdt:./p:tick", PlanProbe(0, 0, "usdt", "usdt:./p:tick", target="./p", usdt_name="tick")),
    ("BEGIN", PlanProbe(0, 0, "begin", "BEGIN")),
    ("end", PlanProbe(0, 0, "end", "end")),
    ("interval:s:2", PlanProbe(0, 0, "interval", "interval:s:2", period_ns=2_000_000_000)),
    ("interval:ms:5", PlanProbe(0, 0, "interval", "interval:ms:5", period_ns=5_000_000)),
    ("interval:us:7", PlanProbe(0, 0, "interval", "interval:us:7", period_ns=7_000)),
    ("interval:hz:4", PlanProbe(0, 0, "interval", "interval:hz:4", period_ns=250_000_000)),
    ("profile:hz:99", PlanProbe(0, 0, "profile", "profile:hz:99", period_ns=10_101_010)),
    ("pid$target:libc:malloc:entry", PlanProbe(0, 0, "uprobe", "pid$target:libc:malloc:entry",
                                               target="libc", func="malloc")),
    ("pid$target:a.out:main:return", PlanProbe(0, 0, "uretprobe",
                                               "pid$target:a.out:main:return", func="main")),
    ("pid$target:a.out:main:10", PlanProbe(0, 0, "uprobe", "pid$target:a.out:main:10",
                                           func="main", offset=16)),
]


@pytest.mark.parametrize("spec,expected", PROBES, ids=[p[0] for p in PROBES])
def test_probe_lands_in_plan(spec: str, expected: PlanProbe) -> None:
    got = plan(f"{spec} {{ }}")
    assert got.probes == (expected,)
    assert got.clauses == (PlanClause(0, (0,), None, (), reads_regs=False),)


def test_clauses_share_probe_ids_in_order() -> None:
    got = plan("BEGIN { } sync uprobe:a:f, uprobe:a:g /pid == 1/ { exit(); } END { }")
    assert [(p.id, p.clause, p.kind) for p in got.probes] == [
        (0, 0, "begin"), (1, 1, "uprobe"), (2, 1, "uprobe"), (3, 2, "end")
    ]
    assert got.clauses[1] == PlanClause(
        1, (1, 2), A.Binary("==", A.Builtin("pid"), A.Int(1)),
        (A.ExprStmt(A.Call("exit")),), sync=True, reads_regs=False,
    )


def test_enum_constants_become_integers() -> None:
    got = plan("enum E { A = 3, B };\nuprobe:a:f /arg0 == B/ { @[A] = count(); }")
    assert got.clauses[0].predicate == A.Binary("==", A.Builtin("arg0"), A.Int(4))
    assert got.clauses[0].body[0].target == A.MapRef("", (A.Int(3),))


def test_config_params_and_unsafe() -> None:
    got = plan(
        'config = { max_strlen = 32; print_maps_on_exit = false; missing_probes = "warn" }\n'
        "BEGIN { printf(\"%s\\n\", $1); }",
        params=("a", "2"), unsafe=True,
    )
    assert got.config == Config((("max_strlen", 32), ("print_maps_on_exit", 0),
                                 ("missing_probes", "warn")))
    assert got.config.get("max_strlen") == 32 and got.config.get("nope", 7) == 7
    assert got.params == ("a", "2") and got.unsafe


def test_struct_layout_in_plan() -> None:
    got = plan(
        "struct P { char c; int64 q; int16 s; };\n"
        "union U { char b[3]; int32 i; };\n"
        "uprobe:a:f { @ = ((struct P *)arg0)->q; }"
    )
    assert got.types == (
        TypeLayout("struct", "P", 24, 8, (
            MemberLayout("c", 0, 1, A.TypeRef("char")),
            MemberLayout("q", 8, 8, A.TypeRef("int64")),
            MemberLayout("s", 16, 2, A.TypeRef("int16")),
        )),
        TypeLayout("union", "U", 4, 4, (
            MemberLayout("b", 0, 3, A.TypeRef("char"), 3),
            MemberLayout("i", 0, 4, A.TypeRef("int32")),
        )),
    )


def test_plan_is_deterministic_and_hand_buildable() -> None:
    text = "uprobe:libc:malloc { @[comm] = count(); }"
    assert plan(text) == plan(text)
    by_hand = Plan(
        probes=(PlanProbe(0, 0, "uprobe", "uprobe:libc:malloc", target="libc", func="malloc"),),
        clauses=(PlanClause(0, (0,), None, (
            A.Assign(A.MapRef("", (A.Builtin("comm"),)), "=", A.Call("count")),
        ), reads_regs=False),),
        maps=(MapDecl("", 1, ("str",), "count"),),
    )
    assert plan(text) == by_hand
    assert format_plan(plan(text)) == format_plan(by_hand)


def test_printout_malloc_latency() -> None:
    got = format_plan(plan(
        "uprobe:libc:malloc /pid == $1/ { self->ts = nsecs; @sizes = hist(arg0); }\n"
        "uretprobe:libc:malloc /self->ts/ {\n"
        "  @lat[comm] = lhist(nsecs - self->ts, 0, 10000, 1000);\n"
        "  self->ts = 0;\n"
        "}\n"
        "interval:s:1 { print(@lat, 5); clear(@lat); }\n",
        params=("42",),
    ))
    assert got == """\
config: (defaults)
params: $1='42'
unsafe: no
maps:
    @lat  keys=[str]  value=lhist lhist(0, 10000, 1000)
    @sizes  keys=[-]  value=hist
probes:
    #0 uprobe target=libc func=malloc  (uprobe:libc:malloc)
    #1 uretprobe target=libc func=malloc  (uretprobe:libc:malloc)
    #2 interval period_ns=1000000000  (interval:s:1)
clause 0: probes #0
    predicate: pid == $1
    self->ts = nsecs;
    @sizes = hist(arg0);
clause 1: probes #1
    predicate: self->ts
    @lat[comm] = lhist(nsecs - self->ts, 0, 10000, 1000);
    self->ts = 0;
clause 2: probes #2
    print(@lat, 5);
    clear(@lat);
"""


def test_printout_control_flow_types_and_sync() -> None:
    got = format_plan(plan(
        "config = { max_loop_iterations = 64 }\n"
        "struct Req { int32 id; char path[32]; struct Req *next; };\n"
        "sync uprobe::handle+0x8, usdt::srv:req {\n"
        "  $r = (struct Req *)arg0;\n"
        "  if ($r->id > 10) { @big[$r->id] = str($r->path); }\n"
        "  else if ($r->id < 0) { return; }\n"
        "  else { $i = 0; while ($i < 3) { $i++; } }\n"
        "  unroll(2) { @n++; }\n"
        "}\n"
        "END { for ($kv : @big) { printf(\"%d %s\\n\", $kv.0, $kv.1); } }\n",
        unsafe=True,
    ))
    assert got == """\
config:
    max_loop_iterations = 64
unsafe: yes
types:
    struct Req (size 48, align 8)
        +0    int32 id (size 4)
        +4    char path[32] (size 32)
        +40   struct Req * next (size 8)
maps:
    @big  keys=[int]  value=str
    @n  keys=[-]  value=int
probes:
    #0 uprobe target=(process) func=handle offset=0x8  (uprobe::handle+0x8)
    #1 usdt target=(process) provider=srv name=req  (usdt::srv:req)
    #2 end  (END)
clause 0: probes #0, #1  sync
    $r = (struct Req *)arg0;
    if ($r->id > 10) {
        @big[$r->id] = str($r->path);
    } else if ($r->id < 0) {
        return;
    } else {
        $i = 0;
        while ($i < 3) {
            $i++;
        }
    }
    unroll (2) {
        @n++;
    }
clause 1: probes #2
    for ($kv : @big) {
        printf("%d %s\\n", $kv.0, $kv.1);
    }
"""
