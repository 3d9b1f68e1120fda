"""The uplang abstract syntax tree: frozen dataclasses, each node with a source span.

The parser builds these from Lark trees; everything downstream (checks, plan, the runtime's
handler compiler) sees only these nodes. Spans never take part in equality, so a tree built
by hand in Python compares equal to the parsed one.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """Where a node came from: 1-based line and column, end exclusive."""

    file: str = "<input>"
    line: int = 0
    col: int = 0
    end_line: int = 0
    end_col: int = 0


NOSPAN = Span()


def _span() -> Span:
    return field(default=NOSPAN, kw_only=True, compare=False, repr=False)


# ----------------------------------------------------------------------------- types


@dataclass(frozen=True)
class TypeRef:
    """A C type as written: `int32`, `uint8`, `struct Foo`, `char`, with pointer depth."""

    name: str
    pointer: int = 0
    span: Span = _span()


# ----------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Int:
    value: int
    span: Span = _span()


@dataclass(frozen=True)
class Str:
    value: str
    span: Span = _span()


@dataclass(frozen=True)
class Builtin:
    """pid, tid, ppid, uid, gid, comm, cpu, nsecs, elapsed, arg0..argN, retval, func,
    probe, ustack, cpid, rand, args: every bare builtin identifier."""

    name: str
    span: Span = _span()


@dataclass(frozen=True)
class Positional:
    """`$1`... (index >= 1); `$#` is index 0 with count=True."""

    index: int
    count: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class Var:
    """A scratch variable `$name` (per hit)."""

    name: str
    span: Span = _span()


@dataclass(frozen=True)
class ThreadLocal:
    """DTrace's `self->name`: a per-thread variable that lives until the thread exits."""

    name: str
    span: Span = _span()


@dataclass(frozen=True)
class MapRef:
    """`@name[k1, k2]`; the anonymous map `@` has name ""; keys empty when not indexed."""

    name: str
    keys: tuple[Expr, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class Call:
    """A function call: printf, str, count, hist, ustack(N), ..."""

    name: str
    args: tuple[Expr, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class Unary:
    """op is one of: '-', '+', '!', '~', '*' (dereference), '&' (address of)."""

    op: str
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True)
class IncDec:
    """`x++`, `++x`, `x--`, `--x` on a variable, thread-local or map element."""

    op: str  # '++' or '--'
    prefix: bool
    target: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Binary:
    """C binary operators including '&&' and '||' (short-circuit)."""

    op: str
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Ternary:
    cond: Expr
    then: Expr
    orelse: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Cast:
    type: TypeRef
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True)
class FieldAccess:
    """`x.name` (arrow=False) or `x->name` (arrow=True)."""

    operand: Expr
    name: str
    arrow: bool
    span: Span = _span()


@dataclass(frozen=True)
class Index:
    """`x[i]` on a pointer or array (maps use MapRef.keys instead)."""

    operand: Expr
    index: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Tuple:
    items: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True)
class TupleIndex:
    """`t.0`"""

    operand: Expr
    index: int
    span: Span = _span()


@dataclass(frozen=True)
class Sizeof:
    """`sizeof(type)` or `sizeof(expr)`."""

    target: TypeRef | Expr
    span: Span = _span()


@dataclass(frozen=True)
class Offsetof:
    """`offsetof(struct Foo, member)`; `members` is a path for nested members (`a.b`)."""

    type: TypeRef
    members: tuple[str, ...]
    span: Span = _span()


Expr = (
    Int | Str | Builtin | Positional | Var | ThreadLocal | MapRef | Call | Unary | IncDec
    | Binary | Ternary | Cast | FieldAccess | Index | Tuple | TupleIndex | Sizeof | Offsetof
)

# ----------------------------------------------------------------------------- statements


@dataclass(frozen=True)
class ExprStmt:
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Assign:
    """`target op value` with op '=' or a compound '+=', '-=', ... '>>='.

    target is a Var, ThreadLocal or MapRef. Aggregations are `@m = count()`, i.e. an
    Assign whose value is a Call to an aggregation function.
    """

    target: Expr
    op: str
    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class If:
    cond: Expr
    then: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...] = ()  # `else if` is an If as the only statement here
    span: Span = _span()


@dataclass(frozen=True)
class While:
    cond: Expr
    body: tuple[Stmt, ...]
    span: Span = _span()


@dataclass(frozen=True)
class ForMap:
    """`for ($kv : @map) { ... }`: $kv is a (key, value) tuple."""

    var: str
    map: str
    body: tuple[Stmt, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Unroll:
    count: int
    body: tuple[Stmt, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Return:
    span: Span = _span()


@dataclass(frozen=True)
class Break:
    span: Span = _span()


@dataclass(frozen=True)
class Continue:
    span: Span = _span()


@dataclass(frozen=True)
class Block:
    """A nested `{ ... }` block."""

    body: tuple[Stmt, ...]
    span: Span = _span()


Stmt = ExprStmt | Assign | If | While | ForMap | Unroll | Return | Break | Continue | Block

# ----------------------------------------------------------------------------- program


@dataclass(frozen=True)
class ProbeSpec:
    """One probe as written, normalised.

    provider: 'uprobe', 'uretprobe', 'usdt', 'BEGIN', 'END', 'interval', 'profile'
    (aliases u/ur/U/i/begin/end and the DTrace pid$target spelling are mapped onto these;
    `raw` keeps the text as typed).
    - uprobe/uretprobe: target (path, short name, glob or "" for -p), func (name or glob),
      offset (FUNC+OFFSET, or an offset from DTrace's pid provider), address (0xADDR).
    - usdt: target, usdt_provider ("" when omitted), usdt_name.
    - interval/profile: unit ('s', 'ms', 'us', 'hz') and value.
    """

    provider: str
    target: str = ""
    func: str = ""
    offset: int | None = None
    address: int | None = None
    usdt_provider: str = ""
    usdt_name: str = ""
    unit: str = ""
    value: int = 0
    raw: str = ""
    span: Span = _span()


@dataclass(frozen=True)
class Clause:
    """`probe[, probe...] [/predicate/] { statements }`; `sync` marks a synchronous clause
    (its handler runs while the hit thread stays stopped)."""

    probes: tuple[ProbeSpec, ...]
    predicate: Expr | None
    body: tuple[Stmt, ...]
    sync: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class FieldDef:
    """One member of a struct/union: `type name[array_len];`"""

    name: str
    type: TypeRef
    array_len: int | None = None
    span: Span = _span()


@dataclass(frozen=True)
class TypeDef:
    """A C definition written in the script: struct/union with fields, or enum with values."""

    kind: str  # 'struct', 'union', 'enum'
    name: str
    fields: tuple[FieldDef, ...] = ()
    enumerators: tuple[tuple[str, int], ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class ConfigItem:
    name: str
    value: int | str
    span: Span = _span()


@dataclass(frozen=True)
class Program:
    config: tuple[ConfigItem, ...]
    types: tuple[TypeDef, ...]
    clauses: tuple[Clause, ...]
    span: Span = _span()
