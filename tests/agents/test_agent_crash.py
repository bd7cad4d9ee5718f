"""A crashed agent ends its worker process non-zero (so the supervisor restarts it), never lives on inside it.

A real Faust worker process on the session's embedded broker; its agent raises outside
record handling. Faust's default (shown too) logs the crash and keeps the worker alive,
its partitions read by nobody.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.isolation import EXIT_AFTER_CRASH
from streams.process_exit import EXIT_TO_REREAD

WORKER = Path(__file__).with_name("crashing_worker.py")
PROJECT_ROOT = WORKER.parents[2]


def start_worker(servers, tmp_path: Path, wrap: bool, **env: str) -> tuple[subprocess.Popen, Path]:
    app_id = f"test-crash-{uuid.uuid4().hex[:8]}"
    source = f"{app_id}.in"
    admin = AdminClient({"bootstrap.servers": servers.bootstrap})
    for future in admin.create_topics([NewTopic(source, num_partitions=1, replication_factor=1)]).values():
        future.result(10)
    producer = Producer({"bootstrap.servers": servers.bootstrap})
    for value in (b"fine", b"boom", b"never read"):
        producer.produce(source, value=value)
    assert producer.flush(10) == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
           "CRASH_APP_ID": app_id, "CRASH_BOOTSTRAP": servers.bootstrap, "CRASH_SOURCE": source,
           "CRASH_WRAP": "1" if wrap else "0", **env}
    log_path = tmp_path / f"worker-{'wrapped' if wrap else 'default'}-{app_id}.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen([sys.executable, str(WORKER), "worker", "--loglevel", "info"], cwd=tmp_path,
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
    return worker, log_path


def exited_non_zero(worker: subprocess.Popen, log_path: Path) -> tuple[int, str]:
    """The worker's exit code and log, once it has exited non-zero (fails if it is still alive 90 s on)."""
    try:
        code = worker.wait(90)
    except subprocess.TimeoutExpired:
        worker.kill()
        pytest.fail(f"the worker outlived its crash; log: {log_path}")
    log = log_path.read_text(errors="replace")
    assert code != 0, log[-3000:]
    return code, log


def test_a_crashed_agent_ends_the_worker_non_zero(servers, tmp_path):
    code, log = exited_non_zero(*start_worker(servers, tmp_path, wrap=True))
    assert code == EXIT_AFTER_CRASH
    assert "agent crash_on_boom crashed (RuntimeError" in log
    assert "never read" not in log


def test_a_crashed_worker_exits_even_when_python_cannot_finalize(servers, tmp_path):
    # Seen in CI: a worker that stopped itself never exited (its finalization hung, and the timer
    # thread that should have ended it is one that a finalizing interpreter no longer runs).
    code, log = exited_non_zero(*start_worker(servers, tmp_path, wrap=True, CRASH_BLOCK_FINALIZATION="1",
                                              CRASH_AS_CONSUMER="1"))
    assert code == EXIT_TO_REREAD  # the code it asked for, which the supervisor restarts without back-off
    assert "agent consumer crashed (RuntimeError: records were skipped)" in log
    assert "did not stop within" not in log, "Faust's stop completed: the exit is the one after it, not the timer's"


def test_faust_alone_keeps_a_crashed_agents_worker_alive(servers, tmp_path):
    # Why the wrapper exists: without it the process lives on and reads nothing more.
    worker, log_path = start_worker(servers, tmp_path, wrap=False)
    try:
        deadline = time.monotonic() + 60
        while b"boom" not in log_path.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(5)
        assert worker.poll() is None, log_path.read_text(errors="replace")[-3000:]
    finally:
        worker.terminate()
        worker.wait(30)
