"""The runtime's user-facing errors: each carries one line that the CLI prints as is."""

from __future__ import annotations


class UprobeError(Exception):
    """Base of every error a user may see; `message` is a single line, never a traceback.
    `advice`, when set, is a second line saying what to do about it."""

    advice: str = ""

    def __init__(self, message: str) -> None:
        # Multi-line text would break the "one line per error" promise of the CLI.
        self.message = " ".join(message.split("\n"))
        super().__init__(self.message)


class ResolveError(UprobeError):
    """A probe spec matches nothing, or names an offset/address we cannot use."""


class TargetError(UprobeError):
    """The target is unusable: bad pid or path, not an ELF file, process gone."""


class TracePermissionError(UprobeError):
    """The kernel refused ptrace (permissions, yama ptrace_scope, already traced)."""


class PlacementError(UprobeError):
    """A site we refuse to probe; `reason` says why (e.g. the instruction is a syscall)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class MemoryReadError(UprobeError):
    """A read from the target's memory failed at `address`."""

    def __init__(self, message: str, address: int) -> None:
        super().__init__(message)
        self.address = address
