"""Plan clause -> Python source of one handler function, compiled once.

Each clause becomes `def handler(_ctx): ...` whose body is straight-line Python: scratch
variables are locals, map objects and parsed printf formats are constants bound in the
function's globals, and every builtin is a direct attribute access or helper call. So a hit
costs a function call, not a walk over the AST. Each expression gets a static type (VType)
as it is generated, only where C semantics need it (memory reads, casts, string
operations): from the types the checks inferred and the plan carries (`Shared.of`), the C
layouts and the expression itself; nothing is inferred across clauses here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runtime.handlers.ctypes_ import (
    BUF,
    INT64,
    NONE,
    STACK,
    STR,
    UINT64,
    VType,
    int_type,
    member_type,
    resolve_typeref,
    size_of,
)
from uplang import ast
from uplang.plan import MapDecl, MemberLayout, Param, Plan, TypeLayout, ValueType
from uplang.vocab.calls import AGGREGATIONS, USTACK_MODES
from uplang.vocab.registers import register_field

ARITH = {"+", "-", "*", "&", "|", "^"}
COMPARE = {"==", "!=", "<", ">", "<=", ">="}


class CompileError(Exception):
    """A construct the handler compiler cannot translate (the checks should have caught it)."""


@dataclass
class Shared:
    """Compile-time facts shared by all clauses of one plan."""

    layouts: dict[str, TypeLayout]
    maps: dict[str, MapDecl]
    params: tuple[str, ...]
    consts: dict[str, object] = field(default_factory=dict)  # generated-code globals
    tl_types: dict[str, VType] = field(default_factory=dict)
    map_types: dict[str, VType] = field(default_factory=dict)
    max_loop: int = 1000
    max_ustack: int = 127  # config max_ustack: the depth of a bare `ustack`
    map_names: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, plan: Plan, max_loop: int = 1000, max_ustack: int = 127) -> Shared:
        """The facts of a plan, with the types the checks inferred for `self->` variables
        and map values: one generation pass needs no second look at other clauses."""
        layouts = {t.name: t for t in plan.types}
        maps = {m.name: m for m in plan.maps}
        return cls(
            layouts=layouts, maps=maps, params=plan.params,
            tl_types={name: vtype_of(t, layouts) for name, t in plan.thread_locals},
            map_types={m.name: vtype_of(m.value_type, layouts)
                       for m in plan.maps if m.value_type is not None},
            max_loop=max_loop, max_ustack=max_ustack,
        )

    def const(self, value: object, prefix: str = "_k") -> str:
        """Bind `value` as a global of the generated code; identical objects share a name."""
        for name, existing in self.consts.items():
            if existing is value:
                return name
        name = f"{prefix}{len(self.consts)}"
        self.consts[name] = value
        return name


@dataclass
class ClauseGen:
    """Generates the source of one clause's handler."""

    shared: Shared
    kind: str  # probe kind of the clause ('uprobe', 'uretprobe', 'begin', ...)
    lines: list[str] = field(default_factory=list)
    var_types: dict[str, VType] = field(default_factory=dict)
    uses_tl: bool = False
    uses_while: bool = False  # the handler needs its loop budget (_iters)
    tmp: int = 0
    args: tuple[Param, ...] | None = None  # DWARF parameters of the clause's functions
    ret: ast.TypeRef | None = None  # and their return type

    # ------------------------------------------------------------------ entry

    def function(self, name: str, predicate: ast.Expr | None,
                 body: tuple[ast.Stmt, ...]) -> str:
        body_lines: list[str] = []
        if self.kind not in ("begin", "end"):
            body_lines.append("if _stopped[0]: return")
        if predicate is not None:
            src, _ = self.expr(predicate)
            body_lines.append(f"if not ({src}): return")
        self.block(body, body_lines, 0, in_loop=False)
        head = [f"def {name}(_ctx):"]
        if self.uses_tl:
            head.append("    _T = _tls_of(_ctx)")
        if self.uses_while:
            # One iteration budget per hit, shared by every while loop of the handler:
            # nested loops cannot multiply max_loop_iterations.
            head.append("    _iters = 0")
        inits = [f"    v_{v} = {_zero_src(t)}" for v, t in self.var_types.items()]
        text = head + inits + ["    " + line for line in body_lines]
        if len(text) == 1:
            text.append("    pass")
        return "\n".join(text) + "\n"

    # ------------------------------------------------------------------ statements

    def block(self, stmts: tuple[ast.Stmt, ...], out: list[str], depth: int,
              in_loop: bool) -> None:
        start = len(out)
        for stmt in stmts:
            self.stmt(stmt, out, depth, in_loop)
        if len(out) == start:
            out.append("    " * depth + "pass")

    def stmt(self, s: ast.Stmt, out: list[str], depth: int, in_loop: bool) -> None:
        pad = "    " * depth
        if isinstance(s, ast.ExprStmt):
            src, _ = self.expr(s.expr)
            out.append(pad + src)
        elif isinstance(s, ast.Assign):
            for line in self.assign(s):
                out.append(pad + line)
        elif isinstance(s, ast.If):
            cond, _ = self.expr(s.cond)
            out.append(f"{pad}if {cond}:")
            self.block(s.then, out, depth + 1, in_loop)
            if s.orelse:
                out.append(f"{pad}else:")
                self.block(s.orelse, out, depth + 1, in_loop)
        elif isinstance(s, ast.While):
            cond, _ = self.expr(s.cond)
            cap = self.shared.max_loop
            self.uses_while = True
            out.append(f"{pad}while {cond}:")
            out.append(f"{pad}    _iters += 1")
            # Past the budget every enclosing loop breaks at its next turn too; the error
            # event is reported once.
            out.append(f"{pad}    if _iters > {cap}:")
            out.append(f"{pad}        if _iters == {cap + 1}: _loop_cap(_ctx, {cap})")
            out.append(f"{pad}        break")
            self.block(s.body, out, depth + 1, in_loop=True)
        elif isinstance(s, ast.ForMap):
            mname = self.map_const(s.map)
            decl = self.shared.maps.get(s.map)
            key_t = INT64
            if decl is not None and decl.key_kinds:
                kinds = [_kind_type(k) for k in decl.key_kinds]
                key_t = kinds[0] if len(kinds) == 1 else VType("tuple", items=tuple(kinds))
            self.var_types[s.var] = VType("tuple", items=(key_t, self.map_value_type(s.map)))
            out.append(f"{pad}for v_{s.var} in _map_items({mname}):")
            self.block(s.body, out, depth + 1, in_loop=True)
        elif isinstance(s, ast.Unroll):
            i = self.fresh("_u")
            out.append(f"{pad}for {i} in range({int(s.count)}):")
            self.block(s.body, out, depth + 1, in_loop=in_loop)
        elif isinstance(s, ast.Return):
            out.append(pad + "return")
        elif isinstance(s, ast.Break):
            out.append(pad + ("break" if in_loop else "return"))
        elif isinstance(s, ast.Continue):
            out.append(pad + ("continue" if in_loop else "return"))
        elif isinstance(s, ast.Block):
            self.block(s.body, out, depth, in_loop)
        else:
            raise CompileError(f"unsupported statement {type(s).__name__}")

    def assign(self, s: ast.Assign) -> list[str]:
        target, value, op = s.target, s.value, s.op
        if isinstance(target, ast.MapRef):
            if isinstance(value, ast.Call) and value.name in AGGREGATIONS and op == "=":
                return [self.aggregate(target, value)]
            m = self.map_const(target.name)
            key = self.key_src(target)
            vsrc, vt = self.expr(value)
            if op == "=":
                self.shared.map_types.setdefault(target.name, vt)
                return [f"_map_set({m}, {key}, {self.value(vsrc, vt)})"]
            old = f"_map_get({m}, {key})"
            return [f"_map_set({m}, {key}, {self.binop(op[:-1], old, vsrc, INT64, vt)[0]})"]
        vsrc, vt = self.expr(value)
        if isinstance(target, ast.Var):
            name = f"v_{target.name}"
            if op == "=":
                self.var_types.setdefault(target.name, vt)
                return [f"{name} = {vsrc}"]
            self.var_types.setdefault(target.name, INT64)
            t = self.var_types[target.name]
            return [f"{name} = {self.binop(op[:-1], name, vsrc, t, vt)[0]}"]
        if isinstance(target, ast.ThreadLocal):
            self.uses_tl = True
            if op == "=":
                self.shared.tl_types.setdefault(target.name, vt)
                return [f"_T[{target.name!r}] = {vsrc}"]
            old = f"_T.get({target.name!r}, 0)"
            return [f"_T[{target.name!r}] = {self.binop(op[:-1], old, vsrc, INT64, vt)[0]}"]
        raise CompileError("cannot assign to this expression")

    def aggregate(self, target: ast.MapRef, call: ast.Call) -> str:
        m = self.map_const(target.name)
        key = self.key_src(target)
        args = [self.expr(a)[0] for a in call.args]
        if call.name == "count":
            return f"_agg({m}, {key}, 'count', 1)"
        if call.name == "lhist":
            lo, hi, step = (self.const_int(a) for a in call.args[1:4])
            return f"_agg_lhist({m}, {key}, {args[0]}, {lo}, {hi}, {step})"
        if call.name == "hist" and len(call.args) > 1:
            return f"_agg_hist({m}, {key}, {args[0]}, {self.const_int(call.args[1])})"
        return f"_agg({m}, {key}, {call.name!r}, {args[0]})"

    # ------------------------------------------------------------------ expressions

    def expr(self, e: ast.Expr) -> tuple[str, VType]:
        method = getattr(self, "e_" + type(e).__name__, None)
        if method is None:
            raise CompileError(f"unsupported expression {type(e).__name__}")
        return method(e)

    def e_Int(self, e: ast.Int) -> tuple[str, VType]:
        return repr(_wrap(e.value) if e.value < (1 << 64) else e.value), INT64

    def e_Str(self, e: ast.Str) -> tuple[str, VType]:
        return repr(e.value), STR

    def e_Positional(self, e: ast.Positional) -> tuple[str, VType]:
        params = self.shared.params
        if e.count:
            return repr(len(params)), INT64
        if e.index > len(params):
            return "0", INT64
        text = params[e.index - 1]
        try:
            return repr(int(text, 0)), INT64
        except ValueError:
            return repr(text), STR

    def e_Builtin(self, e: ast.Builtin) -> tuple[str, VType]:
        n = e.name
        simple = {
            "pid": ("_ctx.pid", INT64), "tid": ("_ctx.tid", INT64),
            "comm": ("_ctx.comm", STR), "cpu": ("_ctx.cpu", INT64),
            "nsecs": ("_ctx.nsecs", INT64), "elapsed": ("(_ctx.nsecs - _start_ns())", INT64),
            "retval": ("_s64(_ctx.retval)", INT64), "func": ("_func(_ctx)", STR),
            "probe": ("_probe_name(_ctx)", STR), "ustack": (f"_ustack(_ctx, {self.shared.max_ustack})", STACK),
            "cpid": ("_cpid()", INT64), "rand": ("_rand()", UINT64),
            "ppid": ("_proc_field(_ctx.pid, 'PPid')", INT64),
            "uid": ("_proc_field(_ctx.pid, 'Uid')", INT64),
            "gid": ("_proc_field(_ctx.pid, 'Gid')", INT64),
            "pcomm": ("_proc_text(_ctx.pid, 'pcomm')", STR),
            "leader_comm": ("_proc_text(_ctx.pid, 'leader_comm')", STR),
            "cgroup": ("_proc_field(_ctx.pid, 'cgroup')", INT64),
        }
        if n in simple:
            return simple[n]
        if n.startswith("arg") and n[3:].isdigit():
            return f"_s64(_ctx.arg({int(n[3:])}))", INT64
        if n == "args":
            if self.args is None:
                raise CompileError("'args' without the function's DWARF parameters")
            parts = []
            for p in self.args:
                src, t = self.arg_value(p)
                parts.append(f"({p.name!r}, {self.value(src, t)}), ")
            return f"_Record(({''.join(parts)}))", VType("args")
        raise CompileError(f"unsupported builtin {n}")

    def arg_value(self, p: Param) -> tuple[str, VType]:
        """Argument `p` from its register or stack word, as its C type; a variable at a
        line probe from its DWARF location (a register, or memory at register + k)."""
        t = resolve_typeref(p.type, self.shared.layouts)
        if p.location is not None:
            kind, reg, off = p.location
            if kind == "breg":
                return self.load(f"(_dwreg(_ctx, {reg}) + {off})", t)
            if kind == "addr":  # an array variable: its address, as a pointer
                return f"_w(_dwreg(_ctx, {reg}) + {off})", t
            raw = f"_dwreg(_ctx, {reg})"
            return (f"_cast({raw}, {t.size}, {t.signed})", t) if t.kind == "int" else (raw, t)
        if p.index is None:
            raise CompileError(f"parameter '{p.name}' is not in an integer register")
        raw = f"_ctx.arg({p.index})"
        if t.kind == "int":
            return f"_cast({raw}, {t.size}, {t.signed})", t
        return raw, t

    def e_Var(self, e: ast.Var) -> tuple[str, VType]:
        t = self.var_types.setdefault(e.name, INT64)
        return f"v_{e.name}", t

    def e_ThreadLocal(self, e: ast.ThreadLocal) -> tuple[str, VType]:
        self.uses_tl = True
        t = self.shared.tl_types.get(e.name, INT64)
        return f"_T.get({e.name!r}, {_zero_src(t)})", t

    def e_MapRef(self, e: ast.MapRef) -> tuple[str, VType]:
        m = self.map_const(e.name)
        return f"_map_get({m}, {self.key_src(e)})", self.map_value_type(e.name)

    def e_Tuple(self, e: ast.Tuple) -> tuple[str, VType]:
        parts = [self.expr(i) for i in e.items]
        vals = [self.value(src, t) for src, t in parts]
        src = "(" + ", ".join(vals) + ("," if len(parts) == 1 else "") + ")"
        return src, VType("tuple", items=tuple(p[1] for p in parts))

    def e_TupleIndex(self, e: ast.TupleIndex) -> tuple[str, VType]:
        src, t = self.expr(e.operand)
        it = t.items[e.index] if t.kind == "tuple" and e.index < len(t.items) else INT64
        return f"{src}[{e.index}]", it

    def e_Ternary(self, e: ast.Ternary) -> tuple[str, VType]:
        c, _ = self.expr(e.cond)
        a, at = self.expr(e.then)
        b, _ = self.expr(e.orelse)
        return f"({a} if {c} else {b})", at

    def e_Sizeof(self, e: ast.Sizeof) -> tuple[str, VType]:
        if isinstance(e.target, ast.TypeRef):
            t = resolve_typeref(e.target, self.shared.layouts)
        else:
            t = self.expr(e.target)[1]
        return repr(size_of(t)), UINT64

    def e_Offsetof(self, e: ast.Offsetof) -> tuple[str, VType]:
        offset = 0
        t = resolve_typeref(e.type, self.shared.layouts)
        for name in e.members:
            layout = t.layout if t.kind == "record" else None
            member = next((m for m in layout.members if m.name == name), None) if layout else None
            if member is None:
                raise CompileError(f"offsetof: no member '{name}'")
            offset += member.offset
            t = resolve_typeref(member.type, self.shared.layouts)
        return repr(offset), UINT64

    def e_Unary(self, e: ast.Unary) -> tuple[str, VType]:
        src, t = self.expr(e.operand)
        if e.op == "-":
            return f"_w(-{src})", INT64
        if e.op == "+":
            return src, t
        if e.op == "!":
            return f"(0 if {src} else 1)", INT64
        if e.op == "~":
            return f"_w(~{src})", INT64
        if e.op == "*":
            if t.kind == "ptr" and t.target is not None:
                return self.load(src, t.target)
            return self.load(src, INT64)
        if e.op == "&":
            if t.kind in ("record", "array"):
                return src, VType("ptr", target=t if t.kind == "record" else t.target)
            raise CompileError("& needs a struct member or array lvalue")
        raise CompileError(f"unsupported unary {e.op}")

    def e_IncDec(self, e: ast.IncDec) -> tuple[str, VType]:
        delta = 1 if e.op == "++" else -1
        post = not e.prefix
        tgt = e.target
        if isinstance(tgt, ast.Var):
            self.var_types.setdefault(tgt.name, INT64)
            name = f"v_{tgt.name}"
            new = f"({name} := _w({name} + {delta}))"
            return (f"_w({new} - {delta})" if post else new), INT64
        if isinstance(tgt, ast.ThreadLocal):
            self.uses_tl = True
            return f"_tl_add(_T, {tgt.name!r}, {delta}, {post})", INT64
        if isinstance(tgt, ast.MapRef):
            m = self.map_const(tgt.name)
            return f"_map_add({m}, {self.key_src(tgt)}, {delta}, {post})", INT64
        raise CompileError("++/-- needs a variable or map element")

    def e_Binary(self, e: ast.Binary) -> tuple[str, VType]:
        a, at = self.expr(e.left)
        b, bt = self.expr(e.right)
        if e.op == "&&":
            return f"(1 if ({a}) and ({b}) else 0)", INT64
        if e.op == "||":
            return f"(1 if ({a}) or ({b}) else 0)", INT64
        return self.binop(e.op, a, b, at, bt)

    def binop(self, op: str, a: str, b: str, at: VType, bt: VType) -> tuple[str, VType]:
        if op in COMPARE:
            return f"(1 if {a} {op} {b} else 0)", INT64
        if op in ("+", "-") and at.kind == "ptr" and at.target is not None:
            scale = size_of(at.target)
            b = f"({b}) * {scale}" if scale != 1 else b
            return f"_w({a} {op} {b})", at
        if op in ARITH:
            return f"_w({a} {op} {b})", (UINT64 if (not at.signed and not bt.signed) else INT64)
        # Shift counts are masked to 0..63 as BPF does: a negative or huge count is no error.
        if op == "<<":
            return f"_shl({a}, {b})", (UINT64 if (not at.signed and not bt.signed) else INT64)
        if op == ">>":
            return (f"_shr({a}, {b})" if at.signed else f"_lshr({a}, {b})"), at
        if op == "/":
            return f"_div({a}, {b})", INT64
        if op == "%":
            return f"_mod({a}, {b})", INT64
        raise CompileError(f"unsupported operator {op}")

    def e_Cast(self, e: ast.Cast) -> tuple[str, VType]:
        src, _ = self.expr(e.operand)
        t = resolve_typeref(e.type, self.shared.layouts)
        if t.kind == "int":
            return f"_cast({src}, {t.size}, {t.signed})", t
        return src, t

    def e_FieldAccess(self, e: ast.FieldAccess) -> tuple[str, VType]:
        operand = e.operand
        if isinstance(operand, ast.Builtin) and operand.name == "args":
            param = next((p for p in self.args or () if p.name == e.name), None)
            if param is None:
                raise CompileError(f"no parameter '{e.name}'")
            return self.arg_value(param)
        if isinstance(operand, ast.Builtin) and operand.name == "retval" and self.ret:
            t = resolve_typeref(self.ret, self.shared.layouts)
            src = "_ctx.retval"
        else:
            src, t = self.expr(operand)
        if t.kind == "tuple":
            raise CompileError("use .N to index tuples")
        # `.` on a pointer dereferences it, like `->`.
        record = t.target if t.kind == "ptr" else t
        if record is None or record.kind != "record" or record.layout is None:
            raise CompileError(f"field '{e.name}' of a value that is not a struct")
        for m in record.layout.members:
            if m.name == e.name:
                addr = f"({src} + {m.offset})" if m.offset else src
                if m.bit_size:
                    signed = resolve_typeref(m.type, self.shared.layouts).signed
                    return (f"_rd_bits(_ctx, {addr}, {m.size}, {m.bit_offset}, {m.bit_size}, "
                            f"{signed})"), int_type(8, signed)
                mt = member_type(m.type, m.array_len, self.shared.layouts)
                return self.load(addr, mt)
        raise CompileError(f"no field '{e.name}' in {record.layout.kind} {record.layout.name}")

    def value(self, src: str, t: VType) -> str:
        """An expression as a value to print or store: struct and array lvalues (addresses)
        are read and decoded at the hit; pointers keep their pointer type."""
        if t.kind == "record" and t.layout is not None:
            lay = self.shared.const(t.layout, "_lay")
            return f"_rd_record(_ctx, {src}, {lay}, {self.layouts_const()})"
        if t.kind == "array" and t.target is not None and t.target.kind in ("int", "ptr",
                                                                             "record"):
            elem = self.shared.const(_element(t.target), "_elem")
            return f"_rd_array(_ctx, {src}, {elem}, {t.count}, {self.layouts_const()})"
        return _as_pointer(src, t)

    def layouts_const(self) -> str:
        return self.shared.const(self.shared.layouts, "_lays")

    def e_Index(self, e: ast.Index) -> tuple[str, VType]:
        src, t = self.expr(e.operand)
        i, _ = self.expr(e.index)
        if t.kind in ("ptr", "array") and t.target is not None:
            size = size_of(t.target)
            return self.load(f"({src} + ({i}) * {size})", t.target)
        if t.kind == "str":
            return f"_str_index({src}, {i})", INT64
        return self.load(f"({src} + ({i}) * 8)", INT64)

    def load(self, addr: str, t: VType) -> tuple[str, VType]:
        """Reading a value of type t at addr; records and arrays stay lvalues (addresses)."""
        if t.kind in ("record", "array"):
            return addr, t
        if t.kind == "int":
            return f"_rd_int(_ctx, {addr}, {t.size}, {t.signed})", t
        if t.kind == "ptr":
            return f"_rd_int(_ctx, {addr}, 8, False)", t
        if t.kind == "str":
            return f"_rd_str(_ctx, {addr}, {t.size})", STR
        raise CompileError("cannot read this type from memory")

    # ------------------------------------------------------------------ calls

    def e_Call(self, e: ast.Call) -> tuple[str, VType]:
        n, args = e.name, e.args
        fn = getattr(self, "f_" + n, None)
        if fn is not None:
            return fn(args)
        if n in AGGREGATIONS:
            raise CompileError(f"{n}() must be assigned to a map")
        raise CompileError(f"unsupported function {n}")

    def srcs(self, args: tuple[ast.Expr, ...]) -> list[str]:
        return [self.expr(a)[0] for a in args]

    def f_printf(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        fmt = self.const_str(args[0])
        k = self.shared.const(("printf", fmt), "_fmt")
        vals = self.srcs(args[1:])
        tup = "(" + "".join(v + ", " for v in vals) + ")"
        return f"_printf(_ctx, {k}, {tup})", NONE

    def f_print(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        first = args[0]
        if isinstance(first, ast.MapRef) and not first.keys:
            m = self.map_const(first.name)
            top = self.srcs(args[1:2])[0] if len(args) > 1 else "0"
            div = self.srcs(args[2:3])[0] if len(args) > 2 else "1"
            return f"_print_map(_ctx, {m}, {top}, {div})", NONE
        src, t = self.expr(first)
        return f"_print_value(_ctx, {self.value(src, t)})", NONE

    def f_str(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        src, t = self.expr(args[0])
        if t.kind == "str":
            return src, STR
        n = self.srcs(args[1:2])[0] if len(args) > 1 else "None"
        return f"_str(_ctx, {src}, {n})", STR

    def f_buf(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        src, t = self.expr(args[0])
        if len(args) > 1:
            n = self.srcs(args[1:2])[0]
        elif t.kind == "array":
            n = str(t.size)
        else:
            raise CompileError("buf() needs a length unless its argument is an array")
        return f"_buf(_ctx, {src}, {n})", BUF

    def f_strlen(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        return f"len({self.str_arg(args[0])})", INT64

    def f_strcontains(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        return f"(1 if {self.str_arg(args[1])} in {self.str_arg(args[0])} else 0)", INT64

    def f_strncmp(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        a, b = self.str_arg(args[0]), self.str_arg(args[1])
        n = self.srcs(args[2:3])[0]
        return f"_strncmp({a}, {b}, {n})", INT64

    def str_arg(self, e: ast.Expr) -> str:
        src, t = self.expr(e)
        return src if t.kind == "str" else f"_str(_ctx, {src}, None)"

    def f_usym(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        return f"_usym(_ctx, {self.srcs(args)[0]})", STR

    def f_ntop(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        srcs = self.srcs(args)
        if len(srcs) == 1:
            return f"_ntop(None, {srcs[0]})", STR
        return f"_ntop({srcs[0]}, {srcs[1]})", STR

    def f_uaddr(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        return f"_ptr(_uaddr(_ctx, {self.const_str(args[0])!r}))", UINT64

    def f_reg(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        name = self.const_str(args[0])
        field = register_field(name)
        if field is None:
            raise CompileError(f"unknown register '{name}'")
        return f"_s64(_ctx.regs.{field})", INT64

    def f_ustack(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        mode = None
        if args and isinstance(args[0], ast.Builtin) and args[0].name in USTACK_MODES:
            mode, args = args[0].name, args[1:]
        limit = self.const_int(args[0]) if args else self.shared.max_ustack
        return f"_ustack(_ctx, {limit}, {mode!r})", STACK

    def f_time(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        fmt = self.const_str(args[0]) if args else "%H:%M:%S\n"
        return f"_time(_ctx, {fmt!r})", NONE

    def f_strftime(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        fmt = self.const_str(args[0])
        return f"_strftime({fmt!r}, {self.srcs(args[1:2])[0]})", STR

    def f_join(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        src = self.srcs(args[:1])[0]
        sep = self.const_str(args[1]) if len(args) > 1 else " "
        return f"_join(_ctx, {src}, {sep!r})", NONE

    def f_cat(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        fmt = self.const_str(args[0])
        vals = self.srcs(args[1:])
        tup = "(" + "".join(v + ", " for v in vals) + ")"
        return f"_cat(_ctx, {self.shared.const(('printf', fmt), '_fmt')}, {tup})", NONE

    def f_system(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        fmt = self.const_str(args[0])
        vals = self.srcs(args[1:])
        tup = "(" + "".join(v + ", " for v in vals) + ")"
        return f"_system(_ctx, {self.shared.const(('printf', fmt), '_fmt')}, {tup})", NONE

    def f_exit(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        code = self.srcs(args[:1])[0] if args else "0"
        return f"_exit(_ctx, {code})", NONE

    def f_signal(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        a = args[0]
        if isinstance(a, ast.Str):
            return f"_signal(_ctx, {a.value!r})", NONE
        return f"_signal(_ctx, {self.srcs(args)[0]})", NONE

    def f_sleep(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        return f"_sleep(_ctx, {self.srcs(args)[0]})", NONE

    def f_sizeof(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        return self.e_Sizeof(ast.Sizeof(args[0]))

    def f_delete(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        target = args[0]
        if isinstance(target, ast.ThreadLocal):  # DTrace frees a thread-local this way
            self.uses_tl = True
            return f"_T.pop({target.name!r}, None)", NONE
        if not isinstance(target, ast.MapRef):
            raise CompileError("delete() needs a map element")
        if len(args) > 1:  # delete(@m, key): the newer bpftrace spelling
            key = self.tuple_key(args[1:])
        else:
            key = self.key_src(target)
        return f"_map_delete({self.map_const(target.name)}, {key})", NONE

    def f_clear(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        return f"_map_clear({self.map_arg(args[0])})", NONE

    def f_zero(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        return f"_map_zero({self.map_arg(args[0])})", NONE

    def f_len(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        return f"_map_len({self.map_arg(args[0])})", INT64

    def f_has_key(self, args: tuple[ast.Expr, ...]) -> tuple[str, VType]:
        m = self.map_arg(args[0])
        return f"_map_has({m}, {self.tuple_key(args[1:])})", INT64

    # ------------------------------------------------------------------ helpers

    def map_arg(self, e: ast.Expr) -> str:
        if not isinstance(e, ast.MapRef):
            raise CompileError("expected a map")
        return self.map_const(e.name)

    def map_const(self, name: str) -> str:
        self.shared.map_names.add(name)
        return map_global(name)

    def map_value_type(self, name: str) -> VType:
        if name in self.shared.map_types:
            return self.shared.map_types[name]
        decl = self.shared.maps.get(name)
        return _kind_type(decl.value_kind) if decl is not None else INT64

    def key_src(self, ref: ast.MapRef) -> str:
        return self.tuple_key(ref.keys)

    def tuple_key(self, keys: tuple[ast.Expr, ...]) -> str:
        if len(keys) == 1 and isinstance(keys[0], ast.Tuple):
            keys = keys[0].items
        parts = [self.value(*self.expr(k)) for k in keys]
        if not parts:
            return "()"
        return "(" + "".join(p + ", " for p in parts) + ")"

    def const_str(self, e: ast.Expr) -> str:
        if isinstance(e, ast.Str):
            return e.value
        if isinstance(e, ast.Positional):
            src, t = self.e_Positional(e)
            if t.kind == "str":
                return eval(src)  # noqa: S307 - a repr() we produced
        raise CompileError("expected a string literal")

    def const_int(self, e: ast.Expr) -> int:
        if isinstance(e, ast.Int):
            return e.value
        if isinstance(e, ast.Unary) and e.op == "-" and isinstance(e.operand, ast.Int):
            return -e.operand.value
        if isinstance(e, ast.Positional):
            src, t = self.e_Positional(e)
            if t.kind == "int":
                return int(src)
        raise CompileError("expected an integer literal")

    def fresh(self, prefix: str) -> str:
        self.tmp += 1
        return f"{prefix}{self.tmp}"


def map_global(name: str) -> str:
    """The generated-code global bound to map `@name` (`@` is the name "")."""
    return "_m_" + name


def _wrap(v: int) -> int:
    return ((v + (1 << 63)) & ((1 << 64) - 1)) - (1 << 63)


def _zero_src(t: VType) -> str:
    return {"str": "''", "tuple": "()", "buf": "b''", "stack": "()"}.get(t.kind, "0")


def vtype_of(t: ValueType, layouts: dict[str, TypeLayout]) -> VType:
    """The compile-time type of a value whose type the checks inferred."""
    if t.kind in ("ptr", "struct") and t.ctype is not None:
        return resolve_typeref(t.ctype, layouts)
    if t.kind == "tuple":
        return VType("tuple", items=tuple(vtype_of(i, layouts) for i in t.items))
    return _kind_type(t.kind)


def _kind_type(kind: str) -> VType:
    if kind in ("str", "string", "usym", "comm", "func", "probe"):
        return STR
    if kind in ("stack", "ustack"):
        return STACK
    if kind == "buf":
        return BUF
    if kind == "tuple":
        return VType("tuple")
    return int_type(8, True)


def _element(t: VType) -> MemberLayout:
    """An array element described as a member at offset 0, for the array decoder."""
    if t.kind == "ptr":
        return MemberLayout("", 0, 8, ast.TypeRef("void", 1))
    if t.kind == "record" and t.layout is not None:
        kind = t.layout.kind
        return MemberLayout("", 0, t.size, ast.TypeRef(f"{kind} {t.layout.name}"))
    return MemberLayout("", 0, t.size, ast.TypeRef(f"{'' if t.signed else 'u'}int{t.size * 8}"))


def _as_pointer(src: str, t: VType) -> str:
    """A pointer-typed value stored or printed keeps its type: it prints as 0x..."""
    return f"_ptr({src})" if t.kind == "ptr" else src
