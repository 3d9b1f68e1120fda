"""The plan: what to probe and what to do on each hit, as plain frozen data.

A Plan is the only thing the runtime receives from the language. It never touches a
process, is deterministic for a given script and arguments, prints with `--dry-run`, and can
be written by hand in Python (the runtime's tests do).

Handler bodies are uplang.ast statements (frozen dataclasses, not Lark trees).
"""

from __future__ import annotations

from dataclasses import dataclass

from uplang import ast


@dataclass(frozen=True)
class MemberLayout:
    """One member of a C aggregate, laid out with the x86-64 SysV rules."""

    name: str
    offset: int
    size: int
    type: ast.TypeRef
    array_len: int | None = None
    # A bitfield: `bit_size` bits starting `bit_offset` bits into the `size` bytes at offset.
    bit_size: int = 0
    bit_offset: int = 0


@dataclass(frozen=True)
class Param:
    """One parameter of a probed function, from DWARF: `args.NAME` reads integer argument
    `index` (arg0, arg1, ...) as `type`; index None means it is not passed in an integer
    register or stack word (a float, a struct by value) and `note` says so."""

    name: str
    type: ast.TypeRef
    index: int | None
    note: str = ""
    # A variable at a source-line probe: ("reg", R, 0) the value is DWARF register R,
    # ("breg", R, K) the value is in memory at register R + K, ("addr", R, K) the value is
    # the address R + K itself (an array variable) (index is None then).
    location: tuple[str, int, int] | None = None


@dataclass(frozen=True)
class FunctionSig:
    """The DWARF parameters and return type (None: void) of the functions one probe names."""

    params: tuple[Param, ...]
    ret: ast.TypeRef | None


@dataclass(frozen=True)
class TypeLayout:
    """A struct/union from the script, laid out; enums carry their enumerators."""

    kind: str  # 'struct', 'union', 'enum'
    name: str
    size: int
    align: int
    members: tuple[MemberLayout, ...] = ()
    enumerators: tuple[tuple[str, int], ...] = ()
    signed: bool = True  # enums: whether the underlying integer is signed


@dataclass(frozen=True)
class ValueType:
    """The type of a value as the checks inferred it, carried so that no later stage infers
    it again.

    kind: 'int', 'str', 'ptr', 'struct', 'tuple', 'stack', 'usym', 'buf', 'timestamp',
    'void', 'agg' or 'unknown'. ctype: the C type of a pointer or struct value (a cast).
    items: the item types of a tuple.
    """

    kind: str
    ctype: ast.TypeRef | None = None
    items: tuple[ValueType, ...] = ()


@dataclass(frozen=True)
class MapDecl:
    """A map as the checks inferred it.

    value_kind: 'count', 'sum', 'avg', 'min', 'max', 'stats', 'hist', 'lhist' for
    aggregations; 'int', 'str', 'tuple', 'stack', 'usym', ... for plain values.
    key_arity: 0 for a scalar map, otherwise the number of key elements.
    lhist_args: (min, max, step) for lhist maps.
    value_type: the full type of a plain value (tuple items, ...); None when unknown.
    """

    name: str
    key_arity: int
    key_kinds: tuple[str, ...]
    value_kind: str
    lhist_args: tuple[int, int, int] | None = None
    value_type: ValueType | None = None


@dataclass(frozen=True)
class PlanProbe:
    """One probe point of one clause, ready to resolve.

    kind: 'uprobe', 'uretprobe', 'usdt', 'begin', 'end', 'interval', 'profile'.
    For uprobe/uretprobe: target (path, library short name or glob; "" means the -p/-c
    process's main executable), func (symbol or glob, "" when address is given),
    offset (bytes from the function start, 0 for the entry), address (absolute
    virtual address in the file's own address space, for `uprobe:T:0xADDR`).
    For usdt: target, usdt_provider ("" = any), usdt_name (may be a glob).
    For interval/profile: period_ns; `offcpu` (wallclock:) samples threads that are not
    on a CPU too.
    """

    id: int
    clause: int
    kind: str
    spec: str  # the probe as the user wrote it, for `probe` and messages
    target: str = ""
    func: str = ""
    offset: int = 0
    address: int | None = None
    usdt_provider: str = ""
    usdt_name: str = ""
    period_ns: int = 0
    offcpu: bool = False


@dataclass(frozen=True)
class PlanClause:
    """A clause's handler: shared by all of its probes."""

    index: int
    probes: tuple[int, ...]  # PlanProbe ids
    predicate: ast.Expr | None
    body: tuple[ast.Stmt, ...]
    sync: bool = False
    # Whether the handler may read the hit thread's registers (arg*, retval, reg(), ustack,
    # func: the `reads_regs` column of uplang.vocab.calls). False lets the runtime skip
    # GETREGS at a hit; a hand-written plan that leaves it True is merely slower.
    reads_regs: bool = True
    # From DWARF, when the clause uses `args` or a typed `retval`: the parameters of its
    # functions and their return type (None: void or not known).
    args: tuple[Param, ...] | None = None
    ret: ast.TypeRef | None = None


@dataclass(frozen=True)
class Config:
    """Settings from the script's `config = {...}` block and the command line."""

    items: tuple[tuple[str, int | str], ...] = ()

    def get(self, name: str, default: int | str | None = None) -> int | str | None:
        for key, value in self.items:
            if key == name:
                return value
        return default


@dataclass(frozen=True)
class Plan:
    probes: tuple[PlanProbe, ...]
    clauses: tuple[PlanClause, ...]
    maps: tuple[MapDecl, ...] = ()
    types: tuple[TypeLayout, ...] = ()
    config: Config = Config()
    params: tuple[str, ...] = ()  # positional parameters $1..$N as given
    unsafe: bool = False
    # The type of every `self->` variable, by name, as the checks inferred it.
    thread_locals: tuple[tuple[str, ValueType], ...] = ()
