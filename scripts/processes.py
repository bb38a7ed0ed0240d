"""Child processes that never outlive `make dev`: each in its own process group, stopped as a whole.

A terminal's Ctrl-C reaches every process of the foreground group, but SIGTERM from a process manager and
the SIGHUP of a closed terminal usually reach only our own process (make forwards nothing). So `make dev`
turns all three into one orderly stop (`stop_on_signals`) and stops each child's whole group itself
(`stop_group`): grandchildren included, SIGKILL for whatever outlives the grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(Exception):
    """Raised in the main thread when one of STOP_SIGNALS arrives (after `stop_on_signals`)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def stop_on_signals(what: str) -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise `Stopped`, once: the stop that follows is bounded, so signals
    arriving during it (a second Ctrl-C, the hangup after a SIGTERM) are ignored rather than cutting it short."""

    def handler(signum: int, frame: FrameType | None) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        # os.write, not print: a handler may run in the middle of another write to stderr. After a hangup
        # the terminal is gone and the write fails; the stop goes on regardless.
        with contextlib.suppress(OSError):
            os.write(2, f"\n{signal.Signals(signum).name}: stopping {what} …\n".encode())
        raise Stopped(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)


def start_group(command: list[str], **popen: Any) -> subprocess.Popen[bytes]:
    """`command` as the leader of a new process group (its pid is the group id); not in the terminal's group,
    so only `stop_group` stops it, in order."""
    return subprocess.Popen(command, process_group=0, **popen)


def stop_group(process: subprocess.Popen[bytes], sig: int, grace_s: float) -> None:
    """Send `sig` to the process's whole group, wait up to `grace_s` for the leader to exit, then SIGKILL
    every member still there (all of them when the grace ran out) and reap the leader."""
    if process.returncode is not None:
        return
    _signal_group(process.pid, sig)
    deadline = time.monotonic() + grace_s
    while not _exited(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    # Not yet reaped, the leader's zombie keeps the group id from being reused: nothing else can be hit.
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _exited(pid: int) -> bool:
    """True once `pid` has exited, without reaping it (WNOWAIT)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True
