"""The Lark parser for grammar/uplang.lark, loaded as package data.

Lark's own way for grammars inside installed packages (`Lark.open_from_package`, which
reads through pkgutil and so works from a wheel or a zip too). The grammar ships inside
the `uplang` package as `uplang/grammar/uplang.lark` (pyproject maps the top-level
grammar/ directory there); in a source checkout it sits next to uplang/, so the loader
looks in `grammar/` first and in `../grammar/` second. The LALR tables are built once and
kept beside the grammar (see lalr_parser).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import lark
from lark import Lark
from lark.load_grammar import FromPackageLoader

GRAMMAR_FILE = "uplang.lark"
SEARCH_PATHS = ("grammar", "../grammar")  # installed package, source checkout
OPTIONS = {"parser": "lalr", "lexer": "contextual", "propagate_positions": True,
           "maybe_placeholders": True}


def tables_name(text: str) -> str:
    """The file of built tables for this grammar text: its name carries a fingerprint of
    the text, the options and the Lark and Python versions, so a changed grammar or an
    upgraded Lark never loads stale tables (it builds and writes its own file)."""
    key = "\0".join((text, repr(sorted(OPTIONS.items())), lark.__version__,
                     "{}.{}".format(*sys.version_info[:2])))
    return f"uplang-{hashlib.sha256(key.encode()).hexdigest()[:20]}.lark-tables"


def grammar_folder() -> Path | None:
    """The folder holding the grammar file: inside the installed package, or the
    checkout's grammar/ next to uplang/."""
    package = Path(__file__).resolve().parent
    for where in SEARCH_PATHS:
        folder = (package / where).resolve()
        if (folder / GRAMMAR_FILE).is_file():
            return folder
    return None


def build(text: str) -> Lark:
    """The parser as `Lark.open_from_package` makes it."""
    return Lark(text, source_path=GRAMMAR_FILE,
                import_paths=[FromPackageLoader("uplang", SEARCH_PATHS)], **OPTIONS)


def save_tables(parser: Lark, path: Path) -> None:
    """Write atomically: a concurrent reader sees the whole file or none."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tables-")
    try:
        with os.fdopen(fd, "wb") as f:
            parser.save(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@functools.cache
def lalr_parser() -> Lark:
    """Building the LALR tables takes about a third of a second, so they are built once
    and kept beside the grammar (the wheel ships them, built by setup.py; a checkout
    writes them on first use); every caller in a process shares one parser."""
    # Read through pkgutil, as open_from_package does: works from a wheel or a zip too.
    _, text = FromPackageLoader("uplang", SEARCH_PATHS)(None, GRAMMAR_FILE)
    folder = grammar_folder()
    tables = folder / tables_name(text) if folder is not None else None
    if tables is not None and tables.is_file():
        try:
            with open(tables, "rb") as f:
                return Lark.load(f)
        except Exception:  # noqa: BLE001 - a damaged file is rebuilt below
            pass
    parser = build(text)
    if tables is not None and os.access(tables.parent, os.W_OK):
        try:
            save_tables(parser, tables)
        except OSError:
            pass  # a read-only or full disk costs start-up time, nothing else
    return parser
