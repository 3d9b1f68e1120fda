"""The type check of both packages (uplang and runtime): mypy, configured in pyproject.toml,
must report nothing. A test, so that the suite fails when a change breaks the types."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(300)


def test_mypy_is_clean_on_both_packages() -> None:
    # No cache: a stale one could hide an error, and the checkout stays clean.
    r = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", "/dev/null"],
                       cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success: no issues found" in r.stdout
