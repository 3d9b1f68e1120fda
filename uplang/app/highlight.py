"""Pygments lexers for the language (UplangLexer) and for REPL input (ReplLexer).

Why regexes and not the Lark grammar: highlighting must work on half-typed, invalid text
at every keystroke, where a parser would give up. The word lists come from the tables
the checks use (uplang.builtins, uplang.probes), so a new builtin is coloured as soon as
it exists.
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, default, include, inherit, words
from pygments.token import (
    Comment,
    Generic,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    Whitespace,
)

from uplang.vocab.calls import BUILTIN_BY_NAME, FUNCTION_BY_NAME
from uplang.vocab.ctypes import TYPE_WORDS
from uplang.vocab.probetypes import DTRACE_PID, PROBE_TYPES, PROVIDER_ALIASES

KEYWORDS = ("if", "else", "while", "for", "unroll", "return", "break", "continue",
            "config", "sizeof", "offsetof", "sync")
DECL_WORDS = ("struct", "union", "enum")
# Longest first, so that `uretprobe` is not lexed as `u` followed by junk.
PROVIDER_WORDS = tuple(sorted(set(PROVIDER_ALIASES) | {DTRACE_PID}, key=len, reverse=True))
# Providers written without ':' (BEGIN, END and their spellings).
BARE_PROVIDERS = tuple(s for t in PROBE_TYPES if t.resolution == "none" for s in (t.name, *t.aliases))
_PROVIDER_RE = "|".join(p.replace("$", r"\$") for p in PROVIDER_WORDS)


class UplangLexer(RegexLexer):
    """The probe language: probe specs, C-like bodies, maps, variables, builtins."""

    name = "uplang"
    aliases = ["uplang", "uprobe"]
    filenames = ["*.up"]
    mimetypes = ["text/x-uplang"]

    tokens = {
        "root": [
            include("space"),
            # A probe spec: provider, then ':'-separated segments up to a space, ',' or '{'.
            (rf"({_PROVIDER_RE})(:)", bygroups(Keyword.Namespace, Punctuation), "spec"),
            (words(BARE_PROVIDERS, suffix=r"\b"), Keyword.Namespace),
            include("code"),
        ],
        "spec": [
            (r'"(?:[^"\\\n]|\\.)*"', String),
            (r":", Punctuation),
            (r"\+(?:0[xX][0-9a-fA-F]+|[0-9]+)", Number),
            (r'[^\s:{},"+]+', Name.Function),
            (r"\+", Name.Function),
            default("#pop"),
        ],
        "space": [
            (r"\s+", Whitespace),
            (r"#![^\n]*", Comment.Hashbang),
            (r"#[ \t]*[A-Za-z][^\n]*", Comment.Preproc),
            (r"//[^\n]*", Comment.Single),
            (r"/\*(.|\n)*?\*/", Comment.Multiline),
            (r"/\*(.|\n)*", Comment.Multiline),  # still being typed
        ],
        "code": [
            (r'"', String, "string"),
            (r"0[xX][0-9a-fA-F_]+|[0-9][0-9_]*", Number),
            (r"@[A-Za-z_0-9]*", Name.Variable.Global),
            (r"\$(?:[0-9]+|#)", Name.Variable.Magic),
            (r"\$[A-Za-z_][A-Za-z0-9_]*", Name.Variable),
            (r"(self)(->)([A-Za-z_][A-Za-z0-9_]*)",
             bygroups(Name.Builtin.Pseudo, Operator, Name.Variable.Instance)),
            (words(KEYWORDS, suffix=r"\b"), Keyword),
            (words(DECL_WORDS, suffix=r"\b"), Keyword.Declaration),
            (words(TYPE_WORDS, suffix=r"\b"), Keyword.Type),
            (r"arg[0-9]+\b", Name.Builtin),
            (words(tuple(sorted(FUNCTION_BY_NAME)), suffix=r"\b(?=\s*\()"), Name.Function.Magic),
            (words(tuple(sorted(BUILTIN_BY_NAME)), suffix=r"\b"), Name.Builtin),
            (r"[A-Za-z_][A-Za-z0-9_]*", Name),
            (r"->|\+\+|--|<<=|>>=|[-+*/%&|^!=<>]=|&&|\|\||<<|>>|[-+*/%&|^!~<>=?]", Operator),
            (r"[{}()\[\];,.:]", Punctuation),
            (r".", Text),
        ],
        "string": [
            (r'\\(?:[nt\\"0abfrv]|x[0-9a-fA-F]{1,2}|[0-7]{1,3})', String.Escape),
            (r"%[-+ #0]*[0-9*]*(?:\.[0-9*]+)?(?:hh|h|ll|l|z|j|t)?[a-zA-Z%]", String.Interpol),
            (r'[^"\\%\n]+', String),
            (r"%", String),
            (r'"', String, "#pop"),
            (r"\\.?", String.Escape),
            (r"\n", String, "#pop"),  # unterminated: end it at the line
        ],
    }


class ReplLexer(UplangLexer):
    """REPL input: a `:command` line, or language text."""

    name = "uplang-repl"
    aliases = ["uplang-repl"]
    filenames = []
    mimetypes = []

    tokens = {
        "root": [
            (r"^(\s*)(:[A-Za-z]*)", bygroups(Whitespace, Generic.Prompt), "command"),
            inherit,
        ],
        "command": [
            (r"@[A-Za-z_0-9]*", Name.Variable.Global),
            (r"[0-9]+\b", Number),
            (r"[^\n@0-9]+", Text),
            (r".", Text),
        ],
    }
