"""The build step that pyproject.toml cannot express: ship the parser tables.

Building the LALR tables of grammar/uplang.lark takes about a third of a second; the wheel
carries them, built here exactly as the loader builds them (uplang/grammar_loader.py) and
saved beside the grammar under a name that fingerprints the grammar text, the options and
the Lark and Python versions: a changed grammar or another Lark never loads them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithParserTables(build_py):
    def run(self) -> None:
        super().run()
        sys.path.insert(0, str(HERE))
        try:
            from uplang.grammar_loader import GRAMMAR_FILE, build, save_tables, tables_name
        finally:
            sys.path.remove(str(HERE))
        target = Path(self.build_lib) / "uplang" / "grammar"
        grammar = (HERE / "grammar" / GRAMMAR_FILE).read_text(encoding="utf-8")
        save_tables(build(grammar), target / tables_name(grammar))


setup(cmdclass={"build_py": BuildWithParserTables})
