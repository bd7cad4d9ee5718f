"""A child for the supervision tests: `python -m exit_child <how>`.

    exit-70       logs an agent crash the way streams.isolation does, then exits 70
    exit-3        exits as a worker that stopped itself to read skipped records again
    ignore-term   ignores SIGTERM and sleeps (a child whose stop hangs)
"""

from __future__ import annotations

import signal
import sys
import time

if __name__ == "__main__":
    how = sys.argv[1]
    if how == "exit-70":
        print("CRITICAL streams.isolation: agent ingest crashed (KeyError: x): stopping the worker", flush=True)
        sys.exit(70)
    if how == "exit-3":
        print("CRITICAL streams.isolation: agent consumer crashed (SkippedRecords: t[0] 5..6)", flush=True)
        sys.exit(3)
    if how == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring SIGTERM", flush=True)
        time.sleep(600)
