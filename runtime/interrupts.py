"""Ctrl-C and SIGTERM: how every command stops, and the moment it must not.

Both signals stop a command the same way, as ``KeyboardInterrupt`` in the main thread
(``install`` does it for the CLI; Python's own handler does it for Ctrl-C elsewhere).
While outputs are being renamed into place (:func:`held`), a signal waits: the renames
finish, then the block's caller learns that a signal came and says what was written.
A stop in the middle of the renames would leave some outputs published and others not.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

_lock = threading.Lock()
_holding = 0
_pending: list[int] = []


def _stop(signum: int, frame) -> None:
    with _lock:
        if _holding:
            _pending.append(signum)
            return
    raise KeyboardInterrupt


def install() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt in the main thread, except inside ``held``."""
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)


class Held:
    """What came while signals were held: ``signal`` is the first one's number, or None."""

    signal: int | None = None


@contextlib.contextmanager
def held() -> Iterator[Held]:
    """Hold Ctrl-C and SIGTERM for the block; afterwards ``Held.signal`` says whether one came.

    In the main thread the handlers are swapped for the block's length (so this works
    without ``install``, under Python's default handler too); in other threads, where no
    signal is delivered, it only marks the block for the main thread's handler.
    """
    global _holding
    state = Held()
    swapped: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            current = signal.getsignal(sig)
            if current is not _stop and current not in (signal.SIG_IGN, None):
                swapped[sig] = current
                signal.signal(sig, _stop)
    with _lock:
        _holding += 1
    try:
        yield state
    finally:
        with _lock:
            _holding -= 1
            if not _holding and _pending:
                state.signal = _pending[0]
                _pending.clear()
        for sig, handler in swapped.items():
            signal.signal(sig, handler)
