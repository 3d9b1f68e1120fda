"""fanotify through ctypes: a group, inode marks, permission events and their answers.

The standard library has no binding. The constants are the kernel's own
(/usr/include/linux/fanotify.h; tests/runtime/test_fanotify.py checks them against the
header). Only what system-wide probes need is here: one content-class group that reports
thread ids, inode marks, reading events, answering FAN_ALLOW.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import struct
from dataclasses import dataclass

from runtime.errors import UprobeError

FAN_CLOEXEC = 0x00000001
FAN_NONBLOCK = 0x00000002
FAN_CLASS_CONTENT = 0x00000004
FAN_UNLIMITED_QUEUE = 0x00000010
FAN_REPORT_TID = 0x00000100

FAN_MARK_ADD = 0x00000001
FAN_MARK_REMOVE = 0x00000002
FAN_MARK_INODE = 0x00000000

FAN_Q_OVERFLOW = 0x00004000
FAN_OPEN_PERM = 0x00010000
FAN_OPEN_EXEC_PERM = 0x00040000

FAN_ALLOW = 0x01
FAN_NOFD = -1
FANOTIFY_METADATA_VERSION = 3

# struct fanotify_event_metadata: event_len u32, vers u8, reserved u8, metadata_len u16,
# mask u64 (8-aligned), fd s32, pid s32.
_METADATA = struct.Struct("=IBBHQii")
# struct fanotify_response: fd s32, response u32.
_RESPONSE = struct.Struct("=iI")
CAP_SYS_ADMIN = 21
NO_CAP_SYS_ADMIN = (
    "system-wide probes (no -c or -p) need CAP_SYS_ADMIN, for fanotify permission events, "
    "and this process does not have it: run as root, or trace one command with -c CMD or "
    "one process with -p PID, which work without it")

_libc = ctypes.CDLL(None, use_errno=True)
_init = _libc.fanotify_init
_init.argtypes = (ctypes.c_uint, ctypes.c_uint)
_init.restype = ctypes.c_int
_mark = _libc.fanotify_mark
_mark.argtypes = (ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p)
_mark.restype = ctypes.c_int


class FanotifyPermissionError(UprobeError):
    """fanotify_init refused: the caller lacks CAP_SYS_ADMIN."""


@dataclass(frozen=True)
class Event:
    """One event: `mask` (FAN_*), `fd` (the opened file, or FAN_NOFD), `pid` (a thread id
    with FAN_REPORT_TID)."""

    mask: int
    fd: int
    pid: int

    @property
    def is_permission(self) -> bool:
        return bool(self.mask & (FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM)) and self.fd >= 0


def parse_events(data: bytes) -> list[Event]:
    """The events in one read() of the group's descriptor."""
    events = []
    pos = 0
    while pos + _METADATA.size <= len(data):
        length, vers, _, _, mask, fd, pid = _METADATA.unpack_from(data, pos)
        if vers != FANOTIFY_METADATA_VERSION or length < _METADATA.size:
            raise UprobeError(f"fanotify: unexpected event layout (version {vers})")
        events.append(Event(mask, fd, pid))
        pos += length
    return events


class FanotifyGroup:
    """One fanotify group (a descriptor); closing it makes the kernel allow every
    permission event still unanswered, so nothing waits on a group that is gone."""

    def __init__(self, flags: int = FAN_CLASS_CONTENT | FAN_REPORT_TID | FAN_UNLIMITED_QUEUE,
                 event_flags: int = os.O_RDONLY | os.O_LARGEFILE) -> None:
        fd = _init(flags | FAN_CLOEXEC, event_flags | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            if err == errno.EPERM:
                raise FanotifyPermissionError(NO_CAP_SYS_ADMIN)
            raise UprobeError(f"fanotify_init: {os.strerror(err)}")
        self.fd = fd

    def mark(self, path: str, mask: int) -> None:
        """An inode mark: events for this very file, whatever path opens it."""
        if _mark(self.fd, FAN_MARK_ADD | FAN_MARK_INODE, mask, -1, os.fsencode(path)) < 0:
            err = ctypes.get_errno()
            raise UprobeError(f"cannot watch {path} (fanotify_mark): {os.strerror(err)}")

    def unmark(self, path: str, mask: int) -> None:
        _mark(self.fd, FAN_MARK_REMOVE | FAN_MARK_INODE, mask, -1, os.fsencode(path))

    def read(self, size: int = 4096) -> list[Event]:
        """The events available now (blocks unless the group is non-blocking)."""
        try:
            data = os.read(self.fd, size)
        except BlockingIOError:
            return []
        return parse_events(data)

    def allow(self, event_fd: int) -> None:
        """Answer a permission event FAN_ALLOW and close its descriptor. An answer to an
        event the kernel no longer waits for (the group was closed meanwhile) is harmless."""
        with contextlib.suppress(OSError):
            os.write(self.fd, _RESPONSE.pack(event_fd, FAN_ALLOW))
        with contextlib.suppress(OSError):
            os.close(event_fd)

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


def has_cap_sys_admin() -> bool:
    """Whether this process holds CAP_SYS_ADMIN in its effective set."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_SYS_ADMIN & 1)
    except OSError:
        pass
    return False
