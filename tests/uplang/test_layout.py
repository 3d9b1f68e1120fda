"""C layout of in-script types against gcc's own sizeof/_Alignof/offsetof."""

from __future__ import annotations

import subprocess

import pytest

from uplang.planner import compile_script

# The same definitions as tests/programs/uplang_layout.c, spelled in the script language.
SCRIPT = """
struct A { char c; int64_t q; int16_t s; };
struct B { int8 a; int32 b[3]; char name[5]; };
union U { char b[3]; int32 i; double d; };
struct Node { int32 id; struct Node *next; char tag; };
struct Outer { char c; struct A inner; union U u; uint16 tail; };
struct Scalars { unsigned char a; unsigned short b; unsigned int c; unsigned long d; float f;
                 _Bool z; long long ll; signed char sc; size_t sz; };
enum E { E0, E1 };
struct WithEnum { char c; enum E e; char d; };
struct Arrays { char c; struct A as[2]; uint16 w[3]; };
BEGIN { }
"""


@pytest.mark.timeout(120)
def test_layout_matches_gcc(builder) -> None:
    exe = builder.build("uplang_layout.c", "-O0")
    truth = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    expected: dict[str, object] = {}
    for line in truth.splitlines():
        words = line.split()
        if "=" in words:
            name = " ".join(words[: words.index("=")])
            expected[name] = (int(words[-2]), int(words[-1]))
        else:
            kind, tname, member, offset, size = words
            expected[f"{kind} {tname}.{member}"] = (int(offset), int(size))

    plan = compile_script(SCRIPT)
    got: dict[str, object] = {}
    for t in plan.types:
        got[f"{t.kind} {t.name}"] = (t.size, t.align)
        for m in t.members:
            got[f"{t.kind} {t.name}.{m.name}"] = (m.offset, m.size)
    assert {k: v for k, v in got.items() if k in expected} == expected
    assert len(expected) == 39
