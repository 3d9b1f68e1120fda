"""Human names for grammar terminals, for "unexpected X; expected Y" messages."""

from __future__ import annotations

from collections.abc import Iterable

from lark import Token
from lark.lexer import PatternStr

from uplang.grammar_loader import lalr_parser

# Terminals defined by a regex in grammar/uplang.lark, described in the reference's words.
_NAMED = {
    "PROVIDER": "a probe (e.g. uprobe:TARGET:FUNC)",
    "PROBE_SEG": "a probe target or function",
    "ENDPRED": "'/' closing the predicate",
    "IDENT": "a name",
    "VAR": "a $variable",
    "POSITIONAL": "a positional parameter ($1)",
    "POSCOUNT": "'$#'",
    "MAP": "a map (@name)",
    "INT": "an integer",
    "STRING": "a string",
    "UNARY_OP": "'!' or '~'",
    "INCDEC": "'++' or '--'",
    "SHEBANG": "'#!' line",
    "PREPROC": "a '#' directive",
    "$END": "end of script",
}

_OPERATORS = frozenset(
    "+ - * / % << >> < > <= >= == != & | ^ && || ? . -> [ ++ -- = += -= *= /= %= &= |= ^= "
    "<<= >>=".split()
)

# Whole groups of terminals that mean one thing to a reader, shown as that thing.
_EXPRESSION_START = {"INT", "STRING", "VAR", "MAP", "IDENT", "POSITIONAL"}


def _terminal_text(name: str) -> str:
    if name in _NAMED:
        return _NAMED[name]
    for term in lalr_parser().terminals:
        if term.name == name:
            if isinstance(term.pattern, PatternStr):
                return repr(term.pattern.value).replace('"', "'")
            break
    return name.lower()


def describe_expected(names: Iterable[str], limit: int = 8) -> str:
    names = set(names)
    parts: list[str] = []
    if _EXPRESSION_START <= names:
        parts.append("an expression")
        names -= _EXPRESSION_START | {"LPAR", "MINUS", "PLUS", "STAR", "AMPERSAND", "UNARY_OP",
                                      "INCDEC", "SELF", "SIZEOF", "POSCOUNT"}
    texts = {_terminal_text(n) for n in names}
    operators = {t for t in texts if t.strip("'") in _OPERATORS}
    if len(operators) > 3:
        texts = (texts - operators) | {"an operator"}
    parts.extend(sorted(texts, key=lambda t: (t.startswith("a"), t)))
    if len(parts) > limit:
        parts = parts[:limit] + ["..."]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " or " + parts[-1]


def describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of script"
    value = token.value if len(token.value) <= 30 else token.value[:27] + "..."
    return f"'{value}'"
