"""`python -m uplang.cli` and the `uprobe` console script: the command's stable entry point.

The command itself lives in uplang.app.cli (the application layer); this module only gives
it the name that pyproject's entry point, the docs and the benchmarks use.
"""

from __future__ import annotations

import sys

from uplang.app.cli import listing_query, main

__all__ = ["listing_query", "main"]

if __name__ == "__main__":
    sys.exit(main())
