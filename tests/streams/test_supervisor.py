"""`antifraud up`: the platform comes up on the embedded default, shows traffic, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import logging
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil
import pytest
from confluent_kafka import TopicPartition

from streams.catalog import get_catalog
from streams.console import one_line
from streams.embedded import start_broker
from streams.kafka import end_offsets
from streams.process_exit import EXIT_TO_REREAD
from streams.settings import Settings
from streams.supervisor import BACKOFF_FIRST_S, BACKOFF_MAX_S, Platform, supervise
from support import Reader, worker_on_own_servers

CATALOG = get_catalog()


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


def assert_every_worker_gets_events(urls: dict[str, str], timeout: float) -> None:
    """The group split the partitions: every worker has read input events (its own counter)."""
    deadline, counts = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        for worker, url in urls.items():
            try:
                text = httpx.get(url, timeout=1.0).text
            except httpx.HTTPError:
                continue
            counts[worker] = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                                 if line.startswith("antifraud_events_in_total{"))
        if len(counts) == len(urls) and all(counts.values()):
            return
        time.sleep(1.0)
    raise AssertionError(f"input events read per worker: {counts}")


def start_up(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """`antifraud up`, and what it printed until the console showed input events."""
    up = subprocess.Popen([sys.executable, "-m", "streams.cli", "up"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env)
    return up, "".join(read_lines_until(up, re.compile(r"events in: .*in_telecom=[1-9].*invalid"), timeout=90))


def assert_up_shows_every_child(up: subprocess.Popen, output: str, run_dir: Path) -> list[psutil.Process]:
    """Both stream workers read events, the simulator is shown, every process runs; returns them."""
    urls = {}
    for worker in ("worker-1", "worker-2"):
        found = re.search(worker + r"\s+pid \d+\s+metrics (http://127\.0\.0\.1:\d+/metrics)", output)
        assert found, output
        urls[worker] = found.group(1)
    assert_every_worker_gets_events(urls, timeout=30)
    assert re.search(r"simulator\s+pid \d+\s+metrics http://127\.0\.0\.1:\d+/metrics", output)
    family = psutil.Process(up.pid).children(recursive=True)
    names = " ".join(" ".join(p.cmdline()) for p in family)
    assert "kafka.Kafka" in names and "valkey-server" in names and "worker" in names and "simulate" in names
    workers = [p for p in family if p.cmdline()[-1:] == ["worker"]]
    assert len(workers) == 2
    assert {p.environ().get("ANTIFRAUD_WORKER_NAME") for p in workers} == {"worker-1", "worker-2"}
    # Each worker its own table stores: two processes never open one RocksDB.
    assert {d.name for d in (run_dir / "faust").iterdir()} >= {"worker-1", "worker-2"}
    return family


def ctrl_c(up: subprocess.Popen, family: list[psutil.Process]) -> None:
    """Ctrl-C ends `up` with 0 and leaves no process behind."""
    up.send_signal(signal.SIGINT)
    assert up.wait(60) == 0
    gone, alive = psutil.wait_procs(family, timeout=10)
    assert alive == [], f"left behind: {[p.pid for p in alive]}"


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_up_shows_traffic_then_ctrl_c_then_up_again_raises_no_alert_twice_and_contacts_no_citizen_twice(tmp_path):
    # One test for both promises: each `up` of the whole platform costs half a minute of make test.
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    env.update(ANTIFRAUD_RUN_DIR=str(tmp_path), ANTIFRAUD_SIMULATOR_RATE="100", PYTHONUNBUFFERED="1",
               ANTIFRAUD_WORKER_PROCESSES="2",  # two stream workers share the group: both start and stop
               ANTIFRAUD_GATEWAY_SIMULATED_TIME_SCALE="0.05")  # outcomes in seconds, not minutes
    outcomes_seen = 0
    for _run in ("first", "second"):
        up, output = start_up(env)
        family: list[psutil.Process] = []
        try:
            family = assert_up_shows_every_child(up, output, tmp_path)
            bootstrap = f"127.0.0.1:{json.loads((tmp_path / 'kafka' / 'ports.json').read_text())['broker']}"
            reader = Reader(bootstrap, CATALOG.topic("outcomes").name)
            try:  # the second run continues the first's topics, and adds outcomes of its own
                reader.read_until(lambda messages, wanted=outcomes_seen + 5: len(messages) >= wanted, timeout=120)
                outcomes_seen = len(reader.messages)
            finally:
                reader.close()
        finally:
            ctrl_c(up, family)

    broker = start_broker(tmp_path)  # what the two runs left on the broker, read with it alone running
    try:
        alerts = read_all(broker.bootstrap, "alerts")
        outcomes = read_all(broker.bootstrap, "outcomes")
    finally:
        broker.stop()
    assert alerts and len(outcomes) >= outcomes_seen
    raised = Counter((a["alert_id"], a["version"]) for a in alerts)
    assert [key for key, n in raised.items() if n > 1] == [], "an alert was raised twice"
    contacts = Counter((o["action_id"], o["attempt"]) for o in outcomes)
    assert [key for key, n in contacts.items() if n > 1] == [], "a citizen was contacted twice for one action"


def read_all(bootstrap: str, topic_id: str) -> list[dict]:
    reader = Reader(bootstrap, CATALOG.topic(topic_id).name)
    try:
        ends = end_offsets(bootstrap, [TopicPartition(reader.topic, p) for p in range(CATALOG.topic(topic_id).partitions)])
        total = sum(ends.values())
        reader.read_until(lambda messages: len(messages) >= total, timeout=60)
        return [json.loads(m.value()) for m in reader.messages]
    finally:
        reader.close()


# ------------------------------------------------------------------ supervision: restarts and stop bounds
HERE = str(Path(__file__).parent)  # exit_child.py, run with -m


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def unused_servers_platform(tmp_path, clock) -> Platform:
    # Children here talk to no server: the addresses only fill their environment.
    settings = Settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9", REDIS_URL="redis://127.0.0.1:9", run_dir=tmp_path)
    return Platform(settings, clock=clock)


def test_an_exited_child_is_restarted_with_doubling_back_off_reset_after_a_long_run(tmp_path, caplog):
    clock = Clock()
    platform = unused_servers_platform(tmp_path, clock)
    child = platform.spawn("crasher", "exit-70", module="exit_child", PYTHONPATH=HERE)
    delays = []
    try:
        with caplog.at_level(logging.WARNING, logger="streams.supervisor"):
            for _ in range(8):
                child.process.wait(30)
                clock.now += 0.1
                platform.restart_exited()  # noticed: waits out its back-off
                assert child.restart_at is not None and child.last_exit == 70
                delays.append(round(child.restart_at - clock.now, 1))
                before = child.restarts
                clock.now = child.restart_at - 0.01
                platform.restart_exited()
                assert child.restarts == before  # not before its time
                clock.now = child.restart_at
                platform.restart_exited()
                assert child.restarts == before + 1 and child.process.poll() in (None, 70)
            assert delays == [1, 2, 4, 8, 16, 32, BACKOFF_MAX_S, BACKOFF_MAX_S]
            # A child that ran a minute is not in a crash loop: back to 1 s.
            child.process.wait(30)
            clock.now += 61
            platform.restart_exited()
            assert child.restart_at - clock.now == 1
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 9 and all("crasher" in w and "exit code 70" in w for w in warnings)
        assert child.crashed_agents == ["ingest"]
        assert "restarts: crasher=8 (last exit 70; crashed: ingest)" in one_line(platform, {})
    finally:
        platform.stop()


def test_a_worker_that_stopped_itself_to_reread_is_restarted_after_a_second_every_time(tmp_path, caplog):
    # Not a crash loop: in the fault suite, a 60 s back-off kept the group a worker short for minutes.
    clock = Clock()
    platform = unused_servers_platform(tmp_path, clock)
    child = platform.spawn("rereader", "exit-3", module="exit_child", PYTHONPATH=HERE)
    try:
        for _ in range(4):
            child.process.wait(30)
            clock.now += 0.1
            platform.restart_exited()
            assert child.last_exit == EXIT_TO_REREAD and child.restart_at - clock.now == BACKOFF_FIRST_S
            clock.now = child.restart_at
            platform.restart_exited()
        assert child.restarts == 4
    finally:
        platform.stop()


def test_a_child_told_to_stop_is_not_restarted_and_one_that_ignores_sigterm_is_killed(tmp_path):
    clock = Clock()
    platform = unused_servers_platform(tmp_path, clock)
    stubborn = platform.spawn("stubborn", "ignore-term", module="exit_child", PYTHONPATH=HERE)
    deadline = time.monotonic() + 30
    while b"ignoring SIGTERM" not in stubborn.log_path.read_bytes():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    started = time.monotonic()
    platform.stop(timeout=1.0)
    assert time.monotonic() - started < 1.0 + 5.0  # 1 s, then SIGKILL (slack for a busy machine)
    assert stubborn.process.returncode == -signal.SIGKILL
    clock.now += 100
    platform.restart_exited()
    assert stubborn.restarts == 0 and stubborn.restart_at is None


@pytest.mark.timeout(180)
def test_a_real_worker_killed_with_sigkill_is_restarted_and_shown(tmp_path):
    own = worker_on_own_servers(tmp_path / "run", ANTIFRAUD_WORKER_NAME="worker-1")
    stop = threading.Event()
    try:
        metrics = own.worker.metrics_url
        wait_for(lambda: answers(metrics), 90, "the worker's metrics endpoint")
        thread = supervise(own.platform, stop, interval=0.2)
        first = own.worker.process.pid
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: own.worker.restarts == 1 and own.worker.process.pid != first, 30, "a restart")
        assert own.worker.last_exit == -signal.SIGKILL
        wait_for(lambda: answers(metrics), 90, "the restarted worker's metrics endpoint")
        assert own.worker.process.poll() is None
        assert "restarts: worker=1 (last exit -9)" in one_line(own.platform, {})
    finally:
        stop.set()
        own.stop()
    thread.join(5)
    assert own.worker.restarts == 1  # stopping is not a crash: no restart after own.stop()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s")
        time.sleep(0.2)
