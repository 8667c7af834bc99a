"""``within(seconds)``: fail a test block that runs too long instead of hanging CI."""

from __future__ import annotations

import contextlib
import signal


@contextlib.contextmanager
def within(seconds: float):
    """Raise ``TimeoutError`` in the block once it has run ``seconds`` (main thread, Unix)."""

    def _expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: a parser loops on its input")

    old = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
