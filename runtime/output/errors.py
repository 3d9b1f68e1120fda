"""The output layer's user-facing errors (one line each, printed by the CLI as is)."""

from __future__ import annotations

from runtime.errors import UprobeError


class OutputError(UprobeError):
    """A value that cannot be printed the way the script asks."""


class PrintfError(OutputError):
    """A printf-style format string that does not fit its arguments."""
