"""Child processes the project starts (the embedded broker, replay workers): they die with us."""

from __future__ import annotations

import ctypes
import signal
import socket

__all__ = ["die_with_parent", "free_port"]


def die_with_parent() -> None:
    """For `preexec_fn`: the child gets SIGTERM when its parent dies, even by SIGKILL."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
