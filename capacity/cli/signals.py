"""Closing the terminal (SIGHUP) or a polite kill (SIGTERM) stops a command as Ctrl-C does.

The exchange and the load generator run in sessions of their own, so a terminal's hang-up reaches only
this process; dying of it by default would leave them running. Forwarding both signals to whatever handles
SIGINT at that moment reuses every Ctrl-C path: children stopped, data kept, and a second signal while
stopping only hurries the stop.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


def stop_on_hangup_and_terminate() -> None:
    """Handle SIGHUP and SIGTERM as SIGINT from now on (main thread only: elsewhere signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, _as_interrupt)


def _as_interrupt(signum: int, frame: FrameType | None) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signum, frame)
    else:  # SIGINT ignored (a background job) or default: these signals still stop the command
        raise KeyboardInterrupt
