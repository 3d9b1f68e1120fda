"""The DWARF reader: types as the language models them, signatures with argument slots,
lazy compilation-unit parsing, and separate debug files found by build-id."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from runtime.dwarf.debugfile import how_to_get, locate
from runtime.dwarf.info import DebugInfo
from runtime.dwarf.source import DwarfTypes, signature_of
from runtime.elfsyms import ElfFile
from uplang import ast

FLAGS = ("-O1", "-fno-omit-frame-pointer")


@pytest.fixture(scope="module")
def types_prog(builder):
    return builder.build("dwarf_types.c", *FLAGS)


def _info(path) -> tuple[ElfFile, DebugInfo]:
    return ElfFile.open(str(path)), DebugInfo.open(str(path))


def test_struct_layout_matches_the_compiler(types_prog):
    _, info = _info(types_prog)
    req = info.types.layout("struct req")
    assert req is not None and req.kind == "struct" and req.name == "req"
    by = {m.name: m for m in req.members}
    # gcc's offsets, as offsetof() in the C program would give them.
    assert (by["id"].offset, by["id"].size, by["id"].type) == (0, 4, ast.TypeRef("uint32"))
    assert (by["name"].offset, by["name"].array_len, by["name"].type.name) == (4, 16, "char")
    assert (by["in"].offset, by["in"].type) == (20, ast.TypeRef("struct inner"))
    assert (by["pair"].offset, by["pair"].array_len, by["pair"].size) == (28, 2, 16)
    assert by["col"].type == ast.TypeRef("enum color")
    assert by["v"].type == ast.TypeRef("union val")
    assert by["next"].type == ast.TypeRef("struct req", 1)
    assert by["label"].type == ast.TypeRef("char", 1)
    # The anonymous union's members belong to struct req itself, as C reaches them.
    assert by["u1"].offset == by["u2"].offset == 88
    assert req.size == 96


def test_bitfields_enums_unions(types_prog):
    _, info = _info(types_prog)
    fl = {m.name: m for m in info.types.layout("struct flags").members}
    # a:3 b:5 in the first byte, c:4 from bit 8, d:40 from bit 12
    assert [(fl[n].offset * 8 + fl[n].bit_offset, fl[n].bit_size) for n in "abcd"] == [
        (0, 3), (3, 5), (8, 4), (12, 40)]
    assert fl["c"].type.name == "int32" and fl["d"].type.name == "uint64"
    color = info.types.layout("enum color")
    assert color.enumerators == (("RED", 0), ("GREEN", 5), ("BLUE", 6)) and color.size == 4
    val = info.types.layout("union val")
    assert val.kind == "union" and {m.offset for m in val.members} == {0} and val.size == 8


def test_signature_slots_and_typedef_chain(types_prog):
    elf, info = _info(types_prog)
    fn = info.function_at(elf.function("take_req").vaddr)
    sig = signature_of(info, fn)
    assert [(p.name, p.type, p.index) for p in sig.params] == [
        ("r", ast.TypeRef("struct req", 1), 0),
        ("count", ast.TypeRef("int32"), 1),
        ("c", ast.TypeRef("enum color"), 2),
    ]
    assert sig.ret == ast.TypeRef("int32")
    make = signature_of(info, info.function_at(elf.function("make").vaddr))
    assert make.ret == ast.TypeRef("struct req", 1)


def test_only_the_needed_compilation_units_are_parsed(builder, tmp_path):
    """A program of 40 compilation units: one function's signature parses one CU."""
    sources = []
    for i in range(40):
        src = tmp_path / f"unit{i}.c"
        src.write_text(f"struct s{i} {{ int a{i}; long b{i}; }};\n"
                       f"long f{i}(struct s{i} *p) {{ return p->a{i} + p->b{i}; }}\n")
        sources.append(str(src))
    main = tmp_path / "main.c"
    main.write_text("int main(void) { return 0; }\n")
    out = tmp_path / "many"
    subprocess.run(["gcc", "-g", "-O1", "-o", str(out), str(main), *sources], check=True)
    elf, info = _info(out)
    fn = info.function_at(elf.function("f27").vaddr)
    assert signature_of(info, fn).params[0].type == ast.TypeRef("struct s27", 1)
    assert info.cus_parsed == 1
    assert info.types.layout("struct s27").members[1].name == "b27"
    assert info.cus_parsed == 1 and not info._indexed  # known from the signature's CU
    # A type of another unit: CUs are indexed in file order until it turns up, no further.
    assert info.types.layout("struct s3").members[0].name == "a3"
    assert len(info._indexed) < 10


def test_separate_debug_file_by_build_id(builder, tmp_path):
    lib = builder.build("dwarf_lib.c", "-O1", "-Wl,--build-id", shared=True)
    stripped = tmp_path / "libitems.so"
    shutil.copy(lib, stripped)
    debug = tmp_path / "full.debug"
    subprocess.run(["objcopy", "--only-keep-debug", str(stripped), str(debug)], check=True)
    subprocess.run(["objcopy", "--strip-debug", str(stripped)], check=True)
    build_id = ElfFile.open(str(stripped)).build_id
    root = tmp_path / "dbg"
    missing = locate(str(stripped), (str(root),))
    assert missing.path is None
    message = how_to_get(missing)
    assert str(stripped) in message and f".build-id/{build_id[:2]}/{build_id[2:]}.debug" in message
    place = root / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug"
    place.parent.mkdir(parents=True)
    shutil.copy(debug, place)
    assert locate(str(stripped), (str(root),)).path == str(place)
    types = DwarfTypes([str(stripped)], roots=(str(root),))
    sig = types.signature(ast.ProbeSpec("uprobe", str(stripped), "lib_visit"))
    assert [p.name for p in sig.params] == ["item", "depth"]
    assert types.layout("struct lib_item").members[1].array_len == 8
    without = DwarfTypes([str(stripped)])
    problem = without.signature(ast.ProbeSpec("uprobe", str(stripped), "lib_visit"))
    assert isinstance(problem, str) and "no DWARF debug info" in problem


def test_repl_completes_args_and_members_from_dwarf(types_prog):
    from runtime.live import LiveSymbols

    class Driver:  # what LiveSymbols.members needs of a live driver: no process yet
        pid = None

    symbols = LiveSymbols(Driver())  # type: ignore[arg-type]
    target = str(types_prog)
    assert symbols.members(target, "take_req", []) == ["r", "count", "c"]
    assert symbols.members(target, "take_req", ["r"])[:4] == ["id", "name", "in", "pair"]
    assert symbols.members(target, "take_req", ["r", "in"]) == ["m", "n"]
    assert symbols.members(target, "take_req", ["r", "nope"]) == []
    assert symbols.members(target, "no_such_function", []) == []
