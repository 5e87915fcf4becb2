"""Ctrl-C that stops a torch export even where torch catches the first KeyboardInterrupt.

torch's dynamo exporter tries several capture strategies and turns a failed one
into a reason to try the next; a KeyboardInterrupt that some layer below
re-raised as an ordinary exception then starts the next strategy, and the
export goes on for minutes. :func:`sticky_interrupt` makes one Ctrl-C final:
after it, SIGINT is raised again every second until the export has unwound,
and the caller is told that it was interrupted whatever the export did.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Dict, Iterator

#: seconds between repeated interrupts once the first one arrived
REPEAT_EVERY = 1.0


@contextlib.contextmanager
def sticky_interrupt() -> Iterator[Dict[str, bool]]:
    """Within the block a first SIGINT raises KeyboardInterrupt and keeps raising it every second.

    Yields a dict whose ``'interrupted'`` is True once SIGINT arrived: the
    caller stops as interrupted even if the code it ran swallowed every one.
    Outside the main thread, or where SIGINT has a handler other than
    Python's default, the block runs unchanged (the flag stays False).
    """
    state = {'interrupted': False}
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield state
        return
    done = threading.Event()
    repeater = threading.Thread(target=_repeat_until, args=(done, threading.main_thread().ident),
                                name='mmdeploy-sigint', daemon=True)

    def on_sigint(signum: int, frame: Any) -> None:
        if done.is_set():  # the block is over; the caller already knows
            return
        if not state['interrupted']:
            state['interrupted'] = True
            repeater.start()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield state
    finally:
        done.set()
        if repeater.is_alive():
            repeater.join()  # at most REPEAT_EVERY: no SIGINT of ours lands after the default handler is back
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _repeat_until(done: threading.Event, main_thread: int) -> None:
    while not done.wait(REPEAT_EVERY):
        # to the main thread only: a signal sent to the process may land on a native worker thread (ONNX
        # Runtime, OpenMP) and cut short the system call it is waiting in
        signal.pthread_kill(main_thread, signal.SIGINT)
