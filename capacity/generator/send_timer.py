"""A sub-millisecond wake-up for an event loop: Linux ``timerfd`` on CLOCK_MONOTONIC.

libuv's and the selectors' timers round to 1 ms, which would put up to 1 ms of the generator's own delay
into every corrected latency. A timerfd armed for an absolute ``time.monotonic_ns()`` instant wakes the
loop through its reader callback at the instant asked for, without spinning a core.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import time
from collections.abc import Callable

_CLOCK_MONOTONIC, _TFD_NONBLOCK, _TFD_CLOEXEC, _TFD_TIMER_ABSTIME = 1, 0o4000, 0o2000000, 1


class SendTimer:
    """Calls ``callback`` once the monotonic clock reaches the last instant given to ``arm``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if not hasattr(libc, "timerfd_create"):
            raise OSError("the native load generator needs Linux timerfd (sub-millisecond send times)")
        self._settime = libc.timerfd_settime
        self.fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._spec = (ctypes.c_long * 4)()  # struct itimerspec: interval {sec, nsec}, value {sec, nsec}
        self._callback, self._loop = callback, loop
        self.armed_ns = 0  # the instant armed last (0: never)
        self.fired_ns = 0  # when it last woke the loop
        self.pending = False  # armed and not fired yet (an instant that has passed still fires: it is due)
        loop.add_reader(self.fd, self._fire)

    def arm(self, at_ns: int) -> None:
        """Wake at ``at_ns`` (``time.monotonic_ns()`` clock); replaces the instant armed before."""
        self._spec[2], self._spec[3] = divmod(max(at_ns, 1), 1_000_000_000)
        self._settime(self.fd, _TFD_TIMER_ABSTIME, self._spec, None)
        self.armed_ns = at_ns
        self.pending = True

    def covers(self, at_ns: int, slack_ns: int) -> bool:
        """Whether the wake-up already armed comes by ``at_ns + slack_ns`` (so arming again is not needed)."""
        return self.pending and self.armed_ns <= at_ns + slack_ns

    def _fire(self) -> None:
        try:
            os.read(self.fd, 8)
        except BlockingIOError:  # re-armed after it expired: the old expiry no longer counts
            return
        self.pending = False
        self.fired_ns = time.monotonic_ns()
        self._callback()

    def close(self) -> None:
        self._loop.remove_reader(self.fd)
        os.close(self.fd)
