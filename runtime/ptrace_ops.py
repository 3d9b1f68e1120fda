"""Thin ctypes bindings for the ptrace requests the engine issues, tuned for the hit path.

python-ptrace's own helpers allocate a fresh register struct per call and lack SEIZE,
INTERRUPT and LISTEN; the engine instead calls libc `ptrace` directly with one reusable
`user_regs_struct` (python-ptrace's type, as the HitContext contract promises).
"""

from __future__ import annotations

import ctypes
import errno
import os

from ptrace.binding.linux_struct import user_regs_struct

from runtime.errors import TargetError, TracePermissionError

PTRACE_TRACEME = 0
PTRACE_PEEKUSER = 3
PTRACE_POKEUSER = 6
PTRACE_CONT = 7
PTRACE_SINGLESTEP = 9
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_DETACH = 17
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETEVENTMSG = 0x4201
PTRACE_GETSIGINFO = 0x4202
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_LISTEN = 0x4208

O_TRACESYSGOOD = 0x1
O_TRACEFORK = 0x2
O_TRACEVFORK = 0x4
O_TRACECLONE = 0x8
O_TRACEEXEC = 0x10
O_TRACEVFORKDONE = 0x20
O_EXITKILL = 0x100000

EVENT_FORK = 1
EVENT_VFORK = 2
EVENT_CLONE = 3
EVENT_EXEC = 4
EVENT_VFORK_DONE = 5
EVENT_STOP = 128

# waitpid flags Python's os module does not name.
WALL = 0x40000000
WNOTHREAD = 0x20000000

SI_KERNEL = 0x80

# offsetof(struct user, regs.rip): the regs come first in struct user.
RIP_OFFSET = user_regs_struct.rip.offset

_libc = ctypes.CDLL(None, use_errno=True)
_ptrace = _libc.ptrace
_ptrace.argtypes = (ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_ptrace.restype = ctypes.c_long
# The hit path's requests skip argtypes conversion (a third of each call's cost): ints
# go as C ints, which libffi sign-extends into the 64-bit variadic slots ptrace() reads,
# and the register struct goes as a prebuilt c_void_p.
# Without use_errno (ctypes would swap errno around every call); on failure `failure`
# reads the thread's errno straight from libc, which nothing has touched since.
fast_ptrace = ctypes.CDLL(None).ptrace
fast_ptrace.restype = ctypes.c_long
_fast = fast_ptrace
_errno_location = _libc.__errno_location
_errno_location.restype = ctypes.POINTER(ctypes.c_int)


class PtraceFailed(OSError):
    """A ptrace request failed; `errno` tells why (ESRCH: the thread is gone or not stopped)."""


def failure(request: int, tid: int) -> PtraceFailed:
    """The error for a failed fast_ptrace request (call right after the failure)."""
    err = _errno_location()[0]
    return PtraceFailed(err, f"ptrace({request:#x}, {tid}): {os.strerror(err)}")


def _fast_call(request: int, tid: int, data: object) -> int:
    r = _fast(request, tid, 0, data)
    if r == -1:
        raise failure(request, tid)
    return r


def _fail(request: int, tid: int) -> PtraceFailed:
    err = ctypes.get_errno()
    return PtraceFailed(err, f"ptrace({request:#x}, {tid}): {os.strerror(err)}")


def ptrace(request: int, tid: int, addr: int = 0, data: int = 0) -> int:
    """One ptrace request; raises PtraceFailed on -1 (never used for PEEK requests)."""
    r = _ptrace(request, tid, addr, data)
    if r == -1:
        raise _fail(request, tid)
    return r


def new_regs() -> user_regs_struct:
    return user_regs_struct()


def regs_address(regs: user_regs_struct) -> ctypes.c_void_p:
    """The pointer to pass to getregs/setregs, built once per struct."""
    return ctypes.c_void_p(ctypes.addressof(regs))


def getregs(tid: int, regs_ptr: ctypes.c_void_p) -> None:
    """Fill the struct behind `regs_ptr` (see regs_address): no allocation per hit."""
    _fast_call(PTRACE_GETREGS, tid, regs_ptr)


def setregs(tid: int, regs_ptr: ctypes.c_void_p) -> None:
    _fast_call(PTRACE_SETREGS, tid, regs_ptr)


def cont(tid: int, sig: int = 0) -> None:
    _fast_call(PTRACE_CONT, tid, sig)


def try_cont(tid: int, sig: int = 0) -> bool:
    """CONT that tolerates a thread killed meanwhile (ESRCH): its exit is reported later."""
    if _fast(PTRACE_CONT, tid, 0, sig) == -1:
        e = failure(PTRACE_CONT, tid)
        if e.errno == errno.ESRCH:
            return False
        raise e
    return True


def singlestep(tid: int) -> None:
    ptrace(PTRACE_SINGLESTEP, tid)


def listen(tid: int) -> None:
    ptrace(PTRACE_LISTEN, tid)


def interrupt(tid: int) -> bool:
    """Ask a seized thread to stop; False when it is already gone."""
    if _ptrace(PTRACE_INTERRUPT, tid, 0, 0) == -1:
        if ctypes.get_errno() == errno.ESRCH:
            return False
        raise _fail(PTRACE_INTERRUPT, tid)
    return True


def detach(tid: int, sig: int = 0) -> bool:
    """Detach a stopped thread, delivering `sig`; False when it is already gone."""
    if _ptrace(PTRACE_DETACH, tid, 0, sig) == -1:
        if ctypes.get_errno() == errno.ESRCH:
            return False
        raise _fail(PTRACE_DETACH, tid)
    return True


def seize(tid: int, options: int) -> None:
    """PTRACE_SEIZE with options; permission problems become one-line user errors."""
    if _ptrace(PTRACE_SEIZE, tid, 0, options) == -1:
        err = ctypes.get_errno()
        if err == errno.EPERM:
            raise TracePermissionError(
                f"cannot trace pid {tid}: operation not permitted "
                "(already traced, or kernel.yama.ptrace_scope forbids it)"
            )
        if err == errno.ESRCH:
            raise TargetError(f"no process with pid {tid}")
        raise _fail(PTRACE_SEIZE, tid)


def geteventmsg(tid: int) -> int:
    msg = ctypes.c_ulong(0)
    ptrace(PTRACE_GETEVENTMSG, tid, 0, ctypes.addressof(msg))
    return msg.value


def siginfo_code(tid: int) -> int | None:
    """si_code of the signal the thread is stopped with, None when there is none (a
    group-stop or event stop reports EINVAL)."""
    buf = ctypes.create_string_buffer(128)
    if _ptrace(PTRACE_GETSIGINFO, tid, 0, ctypes.addressof(buf)) == -1:
        return None
    return int.from_bytes(buf.raw[8:12], "little", signed=True)


def traceme() -> None:
    ptrace(PTRACE_TRACEME, 0)
