"""AST -> script text. Expressions come out fully parenthesised, so the text parses back to
the same tree; the plan printout and the round-trip tests rely on that."""

from __future__ import annotations

from uplang import ast

INDENT = "    "


def type_text(ref: ast.TypeRef) -> str:
    return ref.name + (" " + "*" * ref.pointer if ref.pointer else "")


def string_literal(value: str) -> str:
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _postfix_operand(e: ast.Expr) -> str:
    text = expr(e)
    simple = (ast.Int, ast.Str, ast.Builtin, ast.Positional, ast.Var, ast.ThreadLocal,
              ast.MapRef, ast.Call, ast.FieldAccess, ast.Index, ast.TupleIndex, ast.Tuple,
              ast.Sizeof, ast.Offsetof)
    if isinstance(e, ast.Int) and e.value < 0:
        return f"({text})"
    return text if isinstance(e, simple) else f"({text})"


_WRAPPED = (ast.Unary, ast.IncDec, ast.Binary, ast.Ternary, ast.Cast)


def bare(e: ast.Expr) -> str:
    """`expr` without its outer parentheses, where the context delimits it already
    (conditions, statements, arguments, keys)."""
    text = expr(e)
    return text[1:-1] if isinstance(e, _WRAPPED) else text


def expr(e: ast.Expr) -> str:
    match e:
        case ast.Int(value=v):
            return str(v)
        case ast.Str(value=v):
            return string_literal(v)
        case ast.Builtin(name=n):
            return n
        case ast.Positional(count=True):
            return "$#"
        case ast.Positional(index=i):
            return f"${i}"
        case ast.Var(name=n):
            return f"${n}"
        case ast.ThreadLocal(name=n):
            return f"self->{n}"
        case ast.MapRef(name=n, keys=keys):
            return f"@{n}" + (f"[{', '.join(bare(k) for k in keys)}]" if keys else "")
        case ast.Call(name=n, args=args):
            return f"{n}({', '.join(bare(a) for a in args)})"
        case ast.Unary(op=op, operand=o):
            return f"({op}{_postfix_operand(o)})"
        case ast.IncDec(op=op, prefix=True, target=t):
            return f"({op}{_postfix_operand(t)})"
        case ast.IncDec(op=op, target=t):
            return f"({_postfix_operand(t)}{op})"
        case ast.Binary(op=op, left=a, right=b):
            return f"({expr(a)} {op} {expr(b)})"
        case ast.Ternary(cond=c, then=a, orelse=b):
            return f"({expr(c)} ? {expr(a)} : {expr(b)})"
        case ast.Cast(type=t, operand=o):
            return f"(({type_text(t)}){_postfix_operand(o)})"
        case ast.FieldAccess(operand=o, name=n, arrow=arrow):
            return f"{_postfix_operand(o)}{'->' if arrow else '.'}{n}"
        case ast.Index(operand=o, index=i):
            return f"{_postfix_operand(o)}[{bare(i)}]"
        case ast.Tuple(items=items):
            inner = ", ".join(bare(i) for i in items)
            return f"({inner},)" if len(items) == 1 else f"({inner})"
        case ast.TupleIndex(operand=o, index=i):
            return f"{_postfix_operand(o)}.{i}"
        case ast.Sizeof(target=ast.TypeRef() as t):
            return f"sizeof({type_text(t)})"
        case ast.Sizeof(target=t) if not isinstance(t, ast.TypeRef):
            return f"sizeof({bare(t)})"
        case ast.Offsetof(type=t, members=members):
            return f"offsetof({type_text(t)}, {'.'.join(members)})"
    raise TypeError(f"not an expression: {e!r}")


def stmts(body: tuple[ast.Stmt, ...], depth: int = 0) -> list[str]:
    out: list[str] = []
    for s in body:
        out.extend(stmt(s, depth))
    return out


def _block(head: str, body: tuple[ast.Stmt, ...], depth: int) -> list[str]:
    pad = INDENT * depth
    return [f"{pad}{head}{{", *stmts(body, depth + 1), f"{pad}}}"]


def stmt(s: ast.Stmt, depth: int = 0) -> list[str]:
    pad = INDENT * depth
    match s:
        case ast.ExprStmt(expr=e):
            return [f"{pad}{bare(e)};"]
        case ast.Assign(target=t, op=op, value=v):
            return [f"{pad}{expr(t)} {op} {bare(v)};"]
        case ast.If(cond=c, then=then, orelse=orelse):
            lines = _block(f"if ({bare(c)}) ", then, depth)
            if len(orelse) == 1 and isinstance(orelse[0], ast.If):
                nested = stmt(orelse[0], depth)
                lines[-1] += " else " + nested[0].lstrip()
                lines.extend(nested[1:])
            elif orelse:
                tail = _block("", orelse, depth)
                lines[-1] += " else " + tail[0].lstrip()
                lines.extend(tail[1:])
            return lines
        case ast.While(cond=c, body=body):
            return _block(f"while ({bare(c)}) ", body, depth)
        case ast.ForMap(var=v, map=m, body=body):
            return _block(f"for (${v} : @{m}) ", body, depth)
        case ast.Unroll(count=n, body=body):
            return _block(f"unroll ({n}) ", body, depth)
        case ast.Return():
            return [f"{pad}return;"]
        case ast.Break():
            return [f"{pad}break;"]
        case ast.Continue():
            return [f"{pad}continue;"]
        case ast.Block(body=body):
            return _block("", body, depth)
    raise TypeError(f"not a statement: {s!r}")


def probe(spec: ast.ProbeSpec) -> str:
    return spec.raw or spec.provider


def program(p: ast.Program) -> str:
    """The whole program as script text (config, types, clauses)."""
    out: list[str] = []
    if p.config:
        items = " ".join(
            f"{c.name} = {string_literal(c.value) if isinstance(c.value, str) else c.value};"
            for c in p.config
        )
        out.append(f"config = {{ {items} }}")
    for t in p.types:
        if t.kind == "enum":
            values = ", ".join(f"{n} = {v}" for n, v in t.enumerators)
            out.append(f"enum {t.name} {{ {values} }};")
            continue
        out.append(f"{t.kind} {t.name} {{")
        for f in t.fields:
            array = f"[{f.array_len}]" if f.array_len is not None else ""
            stars = "*" * f.type.pointer
            out.append(f"{INDENT}{f.type.name} {stars}{f.name}{array};")
        out.append("};")
    for c in p.clauses:
        head = ("sync " if c.sync else "") + ", ".join(probe(s) for s in c.probes)
        if c.predicate is not None:
            head += f" /{bare(c.predicate)}/"
        out.extend(_block(head + " ", c.body, 0))
    return "\n".join(out) + "\n"
