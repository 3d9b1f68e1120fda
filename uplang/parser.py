"""Script text -> uplang.ast.Program: Lark parses, one Transformer builds the AST with spans.

Lark's own exceptions never leave this module: they become UplangSyntaxError diagnostics
phrased as "unexpected X; expected Y".
"""

from __future__ import annotations

from typing import Any

from lark import Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, VisitError
from lark.tree import Meta

from uplang import ast
from uplang.diagnostics import Diagnostic, UplangError, UplangSyntaxError
from uplang.grammar_loader import lalr_parser
from uplang.probes import Segment, interpret, parse_int
from uplang.terminals import describe_expected, describe_token
from uplang.vocab.calls import BUILTIN_ALIASES
from uplang.vocab.ctypes import SPELLINGS

_ESCAPES = {
    "n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
    "b": "\b", "f": "\f", "v": "\v", "e": "\x1b", "?": "?",
}



def parse(text: str, filename: str = "<input>") -> ast.Program:
    """Parse a whole script. Raises UplangSyntaxError at the first problem."""
    try:
        tree = lalr_parser().parse(text)
    except UnexpectedInput as exc:
        raise UplangSyntaxError([_lark_diagnostic(exc, text, filename)], text) from None
    try:
        return AstBuilder(filename).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, UplangError):
            raise UplangSyntaxError(exc.orig_exc.diagnostics, text) from None
        if isinstance(exc.orig_exc, RecursionError):
            raise _too_deep(filename, text) from None
        raise
    except RecursionError:
        raise _too_deep(filename, text) from None


def _too_deep(filename: str, text: str) -> UplangSyntaxError:
    return UplangSyntaxError([Diagnostic(filename, 0, 0, "script is nested too deeply")], text)


def _lark_diagnostic(exc: UnexpectedInput, text: str, filename: str) -> Diagnostic:
    line, col = max(exc.line, 1), max(exc.column, 1)
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream
        char = text[pos] if pos is not None and pos < len(text) else ""
        if char == '"':
            return Diagnostic(filename, line, col, "unterminated string",
                              "a string ends with '\"' on the same line")
        message = f"unexpected character {char!r}"
        expected = describe_expected(exc.allowed or ())
        return Diagnostic(filename, line, col, message, f"expected {expected}" if expected else "")
    if isinstance(exc, UnexpectedEOF):
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
        return Diagnostic(
            filename, line, col, "unexpected end of script",
            f"expected {describe_expected(exc.expected)}",
        )
    token = getattr(exc, "token", None)
    expected = describe_expected(_acceptable(exc))
    if token is None or token.type == "$END":
        lines = text.splitlines() or [""]
        return Diagnostic(
            filename, len(lines), len(lines[-1]) + 1, "unexpected end of script",
            f"expected {expected}" if expected else "",
        )
    end_col = (token.end_column or 0) if token.end_line == token.line else 0
    message = f"unexpected {describe_token(token)}"
    if expected:
        message += f"; expected {expected}"
    return Diagnostic(filename, line, col, message, _syntax_hint(token), end_col)


def _acceptable(exc: UnexpectedInput) -> set[str]:
    """The terminals that could really come next: LALR's per-state set is too generous."""
    interactive = getattr(exc, "interactive_parser", None)
    if interactive is not None:
        try:
            return set(interactive.accepts())
        except Exception:  # noqa: BLE001 - a better message is not worth a crash
            pass
    return set(getattr(exc, "expected", ()) or ())


UINT64_MAX = (1 << 64) - 1
INT64_MIN_MAGNITUDE = 1 << 63


def _syntax_hint(token: Token) -> str:
    if token.type == "PROBE_SEG" and "/" in token.value:
        return "a predicate needs whitespace before its opening '/'"
    if token.type == "PREPROC":
        return "'#' lines are only accepted before the first probe"
    return ""


def _span(file: str, meta: Meta | Token) -> ast.Span:
    if isinstance(meta, Meta) and getattr(meta, "empty", True):
        return ast.Span(file)
    return ast.Span(
        file, meta.line or 0, meta.column or 0, meta.end_line or 0, meta.end_column or 0
    )


def _fail(file: str, where: Meta | Token, message: str, hint: str = "") -> UplangError:
    return UplangError([Diagnostic.at(_span(file, where), message, hint)])


def decode_string(token: Token, file: str) -> str:
    """C escapes in a string literal, which arrives with its quotes."""
    body = token.value[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in "01234567":
            j = i + 1
            while j < len(body) and j < i + 4 and body[j] in "01234567":
                j += 1
            out.append(chr(int(body[i + 1 : j], 8) & 0xFF))
            i = j
        elif nxt == "x":
            j = i + 2
            while j < len(body) and j < i + 4 and body[j] in "0123456789abcdefABCDEF":
                j += 1
            if j == i + 2:
                raise _fail(file, token, "\\x needs hex digits", "write e.g. \\x41")
            out.append(chr(int(body[i + 2 : j], 16)))
            i = j
        else:
            raise _fail(file, token, f"unknown escape sequence '\\{nxt}' in string")
    return "".join(out)


@v_args(meta=True, inline=True)
class AstBuilder(Transformer):
    """Lark tree -> uplang.ast; one method per grammar rule (or alias)."""

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file

    def sp(self, meta: Meta | Token) -> ast.Span:
        return _span(self.file, meta)

    # ------------------------------------------------------------- program

    def start(self, meta: Meta, _shebang: Token | None, *items: Any) -> ast.Program:
        config: list[ast.ConfigItem] = []
        types: list[ast.TypeDef] = []
        clauses: list[ast.Clause] = []
        for item in items:
            if isinstance(item, ast.TypeDef):
                types.append(item)
            elif isinstance(item, ast.Clause):
                clauses.append(item)
            else:
                config.extend(item)
        return ast.Program(tuple(config), tuple(types), tuple(clauses), span=self.sp(meta))

    def include(self, meta: Meta, token: Token) -> None:
        directive = token.value.split()[0] if token.value.split() else "#"
        if directive.startswith("#include") or token.value.lstrip("# \t").startswith("include"):
            raise _fail(
                self.file, token, "#include is not supported",
                "only struct/union/enum definitions written in the script are supported; "
                "copy the definitions you need into the script",
            )
        raise _fail(self.file, token, f"preprocessor directive '{directive}' is not supported")

    def config(self, meta: Meta, *items: ast.ConfigItem) -> list[ast.ConfigItem]:
        return list(items)

    def config_item(self, meta: Meta, name: Token, value: int | str) -> ast.ConfigItem:
        return ast.ConfigItem(name.value, value, span=self.sp(meta))

    def config_str(self, meta: Meta, token: Token) -> str:
        return decode_string(token, self.file)

    def config_word(self, meta: Meta, token: Token) -> str:
        return token.value

    def signed_int(self, meta: Meta, token: Token) -> int:
        return self._int(token)

    def neg_int(self, meta: Meta, token: Token) -> int:
        return -self._int(token, INT64_MIN_MAGNITUDE)

    def _int(self, token: Token, largest: int = UINT64_MAX) -> int:
        """The literal's value; one beyond 64 bits is an error, never wrapped (a negated
        literal may reach 2**63)."""
        try:
            value = parse_int(token.value)
        except ValueError:
            raise _fail(self.file, token, f"invalid integer '{token.value}'",
                        "a leading 0 makes an octal number (digits 0-7)") from None
        if value > largest:
            sign = "-" if largest == INT64_MIN_MAGNITUDE else ""
            raise _fail(self.file, token,
                        f"integer '{sign}{token.value}' is out of range: it does not fit in "
                        "64 bits", f"the range is -{INT64_MIN_MAGNITUDE} to {UINT64_MAX}")
        return value

    # ------------------------------------------------------------- C types

    def struct_def(self, meta: Meta, name: Token, *fields: list[ast.FieldDef]) -> ast.TypeDef:
        return self._aggregate("struct", meta, name, fields)

    def union_def(self, meta: Meta, name: Token, *fields: list[ast.FieldDef]) -> ast.TypeDef:
        return self._aggregate("union", meta, name, fields)

    def _aggregate(self, kind: str, meta: Meta, name: Token, fields: Any) -> ast.TypeDef:
        flat = tuple(f for group in fields for f in group)
        return ast.TypeDef(kind, name.value, fields=flat, span=self.sp(meta))

    def field(self, meta: Meta, base: ast.TypeRef, *decls: tuple) -> list[ast.FieldDef]:
        out = []
        for pointer, name, array_len, span in decls:
            ref = ast.TypeRef(base.name, base.pointer + pointer, span=base.span)
            # The member's span runs from its type to its name, as a reader sees the field.
            whole = ast.Span(self.file, base.span.line, base.span.col, span.end_line, span.end_col)
            out.append(ast.FieldDef(name, ref, array_len, span=whole))
        return out

    def declarator(self, meta: Meta, pointer: int | None, name: Token, length: Token | None
                   ) -> tuple[int, str, int | None, ast.Span]:
        array_len = self._int(length) if length is not None else None
        if length is not None and array_len is not None and array_len <= 0:
            raise _fail(self.file, length, "array length must be positive")
        return (pointer or 0, name.value, array_len, self.sp(meta))

    def enum_def(self, meta: Meta, name: Token, values: list) -> ast.TypeDef:
        enumerators: list[tuple[str, int]] = []
        nxt = 0
        for ident, value in values:
            nxt = nxt if value is None else value
            enumerators.append((ident, nxt))
            nxt += 1
        return ast.TypeDef("enum", name.value, enumerators=tuple(enumerators), span=self.sp(meta))

    def enumerators(self, meta: Meta, *items: tuple[str, int | None]) -> list:
        return list(items)

    def enumerator(self, meta: Meta, name: Token, value: int | None) -> tuple[str, int | None]:
        return (name.value, value)

    def type(self, meta: Meta, base: ast.TypeRef, pointer: int | None) -> ast.TypeRef:
        return ast.TypeRef(base.name, base.pointer + (pointer or 0), span=self.sp(meta))

    def basic_type(self, meta: Meta, *words: Token) -> ast.TypeRef:
        spelled = " ".join(w.value for w in words)
        name = SPELLINGS.get(spelled)
        if name is None:
            raise _fail(self.file, meta, f"unknown type '{spelled}'")
        return ast.TypeRef(name, span=self.sp(meta))

    def struct_type(self, meta: Meta, name: Token) -> ast.TypeRef:
        return ast.TypeRef(f"struct {name.value}", span=self.sp(meta))

    def union_type(self, meta: Meta, name: Token) -> ast.TypeRef:
        return ast.TypeRef(f"union {name.value}", span=self.sp(meta))

    def enum_type(self, meta: Meta, name: Token) -> ast.TypeRef:
        return ast.TypeRef(f"enum {name.value}", span=self.sp(meta))

    def pointer(self, meta: Meta, *stars: Token) -> int:
        return len(stars)

    # ------------------------------------------------------------- clauses

    def clause(self, meta: Meta, sync: Token | None, *rest: Any) -> ast.Clause:
        *probes, predicate, body = rest
        return ast.Clause(tuple(probes), predicate, body, sync is not None, span=self.sp(meta))

    def quoted_offset(self, meta: Meta, name: Token, offset: Token) -> Segment:
        return Segment(decode_string(name, self.file), True, offset.value)

    def probe(self, meta: Meta, provider: Token, *segs: Token | Segment | None
              ) -> ast.ProbeSpec:
        segments = [
            s if isinstance(s, Segment)
            else Segment("")
            if s is None
            else Segment(decode_string(s, self.file), True)
            if s.type == "STRING"
            else Segment(s.value)
            for s in segs
        ]
        fields = interpret(provider.value, segments).fields
        return ast.ProbeSpec(**fields, span=self.sp(meta))  # type: ignore[arg-type]

    def predicate(self, meta: Meta, expr: ast.Expr, _end: Token) -> ast.Expr:
        return expr

    # ------------------------------------------------------------- statements

    def block(self, meta: Meta, *stmts: ast.Stmt | None) -> tuple[ast.Stmt, ...]:
        return tuple(s for s in stmts if s is not None)

    body = block

    def block_stmt(self, meta: Meta, body: tuple[ast.Stmt, ...]) -> ast.Block:
        return ast.Block(body, span=self.sp(meta))

    def expr_stmt(self, meta: Meta, expr: ast.Expr) -> ast.ExprStmt:
        return ast.ExprStmt(expr, span=self.sp(meta))

    def assign(self, meta: Meta, target: ast.Expr, op: str, value: ast.Expr) -> ast.Assign:
        return ast.Assign(target, op, value, span=self.sp(meta))

    def assign_op(self, meta: Meta, token: Token) -> str:
        return token.value

    def return_stmt(self, meta: Meta) -> ast.Return:
        return ast.Return(span=self.sp(meta))

    def break_stmt(self, meta: Meta) -> ast.Break:
        return ast.Break(span=self.sp(meta))

    def continue_stmt(self, meta: Meta) -> ast.Continue:
        return ast.Continue(span=self.sp(meta))

    def if_stmt(self, meta: Meta, cond: ast.Expr, then: tuple, orelse: Any) -> ast.If:
        if orelse is None:
            rest: tuple[ast.Stmt, ...] = ()
        elif isinstance(orelse, ast.If):
            rest = (orelse,)
        else:
            rest = orelse
        return ast.If(cond, then, rest, span=self.sp(meta))

    def while_stmt(self, meta: Meta, cond: ast.Expr, body: tuple) -> ast.While:
        return ast.While(cond, body, span=self.sp(meta))

    def for_stmt(self, meta: Meta, var: Token, map_: Token, body: tuple) -> ast.ForMap:
        return ast.ForMap(var.value[1:], map_.value[1:], body, span=self.sp(meta))

    def unroll_stmt(self, meta: Meta, count: Token, body: tuple) -> ast.Unroll:
        return ast.Unroll(self._int(count), body, span=self.sp(meta))

    # ------------------------------------------------------------- expressions

    def _binary(self, meta: Meta, left: ast.Expr, op: Token, right: ast.Expr) -> ast.Binary:
        return ast.Binary(op.value, left, right, span=self.sp(meta))

    logor = logand = bitor = bitxor = bitand = _binary
    equality = relational = shift = additive = mult = _binary

    def ternary(self, meta: Meta, cond: ast.Expr, then: ast.Expr, orelse: ast.Expr
                ) -> ast.Ternary:
        return ast.Ternary(cond, then, orelse, span=self.sp(meta))

    def cast(self, meta: Meta, type_: ast.TypeRef, operand: ast.Expr) -> ast.Cast:
        return ast.Cast(type_, operand, span=self.sp(meta))

    def unary_op(self, meta: Meta, op: Token, operand: ast.Expr) -> ast.Unary:
        return ast.Unary(op.value, operand, span=self.sp(meta))

    def deref(self, meta: Meta, operand: ast.Expr) -> ast.Unary:
        return ast.Unary("*", operand, span=self.sp(meta))

    def addr_of(self, meta: Meta, operand: ast.Expr) -> ast.Unary:
        return ast.Unary("&", operand, span=self.sp(meta))

    def neg(self, meta: Meta, operand: ast.Expr) -> ast.Unary:
        return ast.Unary("-", operand, span=self.sp(meta))

    def pos(self, meta: Meta, operand: ast.Expr) -> ast.Unary:
        return ast.Unary("+", operand, span=self.sp(meta))

    def pre_incdec(self, meta: Meta, op: Token, target: ast.Expr) -> ast.IncDec:
        return ast.IncDec(op.value, True, target, span=self.sp(meta))

    def post_incdec(self, meta: Meta, target: ast.Expr, op: Token) -> ast.IncDec:
        return ast.IncDec(op.value, False, target, span=self.sp(meta))

    def dot_field(self, meta: Meta, operand: ast.Expr, name: Token) -> ast.FieldAccess:
        return ast.FieldAccess(operand, name.value, False, span=self.sp(meta))

    def arrow_field(self, meta: Meta, operand: ast.Expr, name: Token) -> ast.FieldAccess:
        return ast.FieldAccess(operand, name.value, True, span=self.sp(meta))

    def tuple_index(self, meta: Meta, operand: ast.Expr, index: Token) -> ast.TupleIndex:
        return ast.TupleIndex(operand, self._int(index), span=self.sp(meta))

    def index(self, meta: Meta, operand: ast.Expr, index: ast.Expr) -> ast.Index:
        return ast.Index(operand, index, span=self.sp(meta))

    def int_lit(self, meta: Meta, token: Token) -> ast.Int:
        return ast.Int(self._int(token), span=self.sp(meta))

    def str_lit(self, meta: Meta, token: Token) -> ast.Str:
        return ast.Str(decode_string(token, self.file), span=self.sp(meta))

    def var(self, meta: Meta, token: Token) -> ast.Var:
        return ast.Var(token.value[1:], span=self.sp(meta))

    def positional(self, meta: Meta, token: Token) -> ast.Positional:
        index = int(token.value[1:])
        if index == 0:
            raise _fail(self.file, token, "positional parameters start at $1")
        return ast.Positional(index, span=self.sp(meta))

    def poscount(self, meta: Meta, token: Token) -> ast.Positional:
        return ast.Positional(0, count=True, span=self.sp(meta))

    def map_ref(self, meta: Meta, token: Token, *keys: ast.Expr) -> ast.MapRef:
        return ast.MapRef(token.value[1:], tuple(keys), span=self.sp(meta))

    def thread_local(self, meta: Meta, name: Token) -> ast.ThreadLocal:
        return ast.ThreadLocal(name.value, span=self.sp(meta))

    def builtin(self, meta: Meta, name: Token) -> ast.Builtin:
        return ast.Builtin(BUILTIN_ALIASES.get(name.value, name.value), span=self.sp(meta))

    def call(self, meta: Meta, name: Token, *args: ast.Expr | None) -> ast.Call:
        return ast.Call(name.value, tuple(a for a in args if a is not None), span=self.sp(meta))

    def sizeof_type(self, meta: Meta, type_: ast.TypeRef) -> ast.Sizeof:
        return ast.Sizeof(type_, span=self.sp(meta))

    def sizeof_expr(self, meta: Meta, expr: ast.Expr) -> ast.Sizeof:
        return ast.Sizeof(expr, span=self.sp(meta))

    def offsetof(self, meta: Meta, type_: ast.TypeRef, *members: Token) -> ast.Offsetof:
        return ast.Offsetof(type_, tuple(m.value for m in members), span=self.sp(meta))

    def tuple(self, meta: Meta, *items: ast.Expr | None) -> ast.Tuple:
        return ast.Tuple(tuple(i for i in items if i is not None), span=self.sp(meta))
