"""How a worker process ends: always, and soon, once it has decided to.

A worker that crashed or was told to stop must exit, so that the supervisor restarts it;
one that lives on holds its partitions and reads nothing. Two things were seen to keep one
alive: Faust's own stop hanging (a Python timer then ends the process, `exit_after`), and
Python's finalization after Faust had stopped (CI, 2026-12-07: a worker that stopped
itself on skipped records never exited, and its timer thread, which finalization no longer
lets run, never fired). So the worker skips finalization (`run_to_exit`), and every timer
has a backstop in faulthandler's C thread, which runs whatever Python is doing: it writes
every thread's stack to the log, then ends the process with exit code 1.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import sys
import threading
import time

log = logging.getLogger(__name__)

BACKSTOP_AFTER_S = 1.5  # after a timer's own deadline: the timer logs why, the backstop only if it could not
# The worker stopped itself to read records again (streams.faust_transport): not a crash, so the
# supervisor restarts it at once instead of backing off (streams.supervisor).
EXIT_TO_REREAD = 3

_requested_code: int | None = None

_backstop_at: float | None = None
_lock = threading.Lock()


def arm_backstop(after_s: float) -> None:
    """In `after_s`: every thread's stack to file descriptor 2 (the log), then _exit(1); the earliest deadline asked for wins."""
    global _backstop_at
    at = time.monotonic() + after_s
    with _lock:
        if _backstop_at is not None and _backstop_at <= at:
            return
        # File descriptor 2, not sys.stderr: Faust may have replaced that with a logging proxy.
        faulthandler.dump_traceback_later(after_s, exit=True, file=2)
        _backstop_at = at


def exit_after(grace_s: float, code: int, why: str) -> threading.Timer:
    """End the process with `code` in `grace_s` unless it ended by then; a backstop a little later."""

    def give_up() -> None:
        log.critical("%s: the worker did not stop within %.0f s: exiting now (code %d); uncommitted records are "
                     "read again by the next worker", why, grace_s, code)
        logging.shutdown()
        os._exit(code)

    timer = threading.Timer(grace_s, give_up)
    timer.daemon = True
    timer.start()
    arm_backstop(grace_s + BACKSTOP_AFTER_S)
    return timer


def request_exit_code(code: int) -> None:
    """The code the process ends with when the worker's run ends (the first request wins)."""
    global _requested_code
    if _requested_code is None:
        _requested_code = code


def exit_code_of(stop: SystemExit) -> int:
    if stop.code is None:
        return 0
    return stop.code if isinstance(stop.code, int) else 1


def run_to_exit(worker) -> None:
    """Run a Faust/mode worker to its end, then end the process at once with the worker's exit code.

    By then Faust has committed, flushed its producer and closed its stores; what Python's
    finalization would still do (join threads, collect what is left of the clients) has
    nothing to save and was seen hanging.
    """
    code = 1
    try:
        worker.execute_from_commandline()
    except SystemExit as stop:
        code = exit_code_of(stop)
    finally:
        if _requested_code is not None and code != 0:
            code = _requested_code
        arm_backstop(5.0)  # flushing below writes to files and pipes: those too must not hold the exit
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed or broken pipe: nothing more to say there
                pass
        logging.shutdown()
        os._exit(code)
