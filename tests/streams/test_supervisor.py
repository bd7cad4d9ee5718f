"""`antifraud up`: the platform comes up on the embedded default, shows traffic, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time

import psutil


def read_lines_until(process: subprocess.Popen, pattern: re.Pattern, timeout: float) -> list[str]:
    """Lines of output until one matches; fails at the deadline with what was seen."""
    seen: list[str] = []
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not selector.select(timeout=1.0):
            continue
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if pattern.search(line):
            return seen
    raise AssertionError(f"no line matched {pattern.pattern!r} in {timeout:.0f} s:\n{''.join(seen[-20:])}")


def test_up_shows_traffic_and_ctrl_c_stops_every_child(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    env.update(ANTIFRAUD_RUN_DIR=str(tmp_path), ANTIFRAUD_SIMULATOR_RATE="100", PYTHONUNBUFFERED="1")
    env.pop("ANTIFRAUD_PRODUCER_BATCHING", None)  # `up` must probe its own broker
    up = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines = read_lines_until(up, re.compile(r"events in: .*in_telecom=[1-9].*invalid"), timeout=60)
        output = "".join(lines)
        assert re.search(r"worker\s+pid \d+\s+metrics http://127\.0\.0\.1:\d+/metrics", output)
        assert re.search(r"simulator\s+pid \d+\s+metrics http://127\.0\.0\.1:\d+/metrics", output)
        family = psutil.Process(up.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in family)
        assert "broker" in names and "valkey-server" in names and "worker" in names and "simulate" in names
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)
    gone, alive = psutil.wait_procs(family, timeout=10)
    assert alive == [], f"left behind: {[p.pid for p in alive]}"
    assert up.returncode == 0
