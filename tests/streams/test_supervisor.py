"""`antifraud up`: the platform comes up on the embedded default, shows traffic, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter

import httpx
import psutil
import pytest
from confluent_kafka import TopicPartition

from streams.catalog import get_catalog
from streams.embedded import start_broker
from streams.kafka import end_offsets
from support import Reader

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


def test_up_shows_traffic_and_ctrl_c_stops_every_child(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    env.update(ANTIFRAUD_RUN_DIR=str(tmp_path), ANTIFRAUD_SIMULATOR_RATE="100", PYTHONUNBUFFERED="1",
               ANTIFRAUD_WORKER_PROCESSES="2")  # two stream workers share the group: both start and stop
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
        urls = {}
        for worker in ("worker-1", "worker-2"):
            found = re.search(worker + r"\s+pid \d+\s+metrics (http://127\.0\.0\.1:\d+/metrics)", output)
            assert found
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
        assert {d.name for d in (tmp_path / "faust").iterdir()} >= {"worker-1", "worker-2"}
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)
    gone, alive = psutil.wait_procs(family, timeout=10)
    assert alive == [], f"left behind: {[p.pid for p in alive]}"
    assert up.returncode == 0


def start_up(env: dict[str, str]) -> subprocess.Popen:
    up = subprocess.Popen([sys.executable, "-m", "streams.cli", "up"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env)
    read_lines_until(up, re.compile(r"events in: .*in_telecom=[1-9]"), timeout=90)
    return up


def ctrl_c(up: subprocess.Popen) -> None:
    up.send_signal(signal.SIGINT)
    assert up.wait(60) == 0


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_ctrl_c_then_up_again_raises_no_alert_twice_and_contacts_no_citizen_twice(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    env.update(ANTIFRAUD_RUN_DIR=str(tmp_path), ANTIFRAUD_SIMULATOR_RATE="100", PYTHONUNBUFFERED="1",
               ANTIFRAUD_GATEWAY_SIMULATED_TIME_SCALE="0.05")  # outcomes in seconds, not minutes
    outcomes_seen = 0
    for run in ("first", "second"):
        up = start_up(env)
        try:
            bootstrap = "127.0.0.1:%d" % json.loads((tmp_path / "kafka" / "ports.json").read_text())["broker"]
            reader = Reader(bootstrap, CATALOG.topic("outcomes").name)
            try:  # the second run continues the first's topics, and adds outcomes of its own
                reader.read_until(lambda messages: len(messages) >= outcomes_seen + 5, timeout=120)
                outcomes_seen = len(reader.messages)
            finally:
                reader.close()
        finally:
            ctrl_c(up)

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
