"""`antifraud dead-letters list|replay` end to end: a real worker, broker and Valkey, the real command.

The registry feed sends GBK text (a cell named in Chinese) before topics.yaml declares its encoding: dead-lettered
`not_utf8`. The feed is declared `encoding: gb18030` (a copy of topics.yaml, read by the
restarted worker through ANTIFRAUD_TOPICS_FILE) and the dead letters are replayed: the
GBK record is accepted; a record that is not GB18030 either is dead-lettered again, once,
and a second replay sends nothing.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
import yaml
from confluent_kafka import Producer

from streams.catalog import get_catalog
from streams.contracts import DeadLetter, DeadLetterReason
from streams.contracts.examples import EXAMPLES
from streams.redrive import REPLAY_HEADER, Letter, plan_replay, replay_of
from support import Reader, worker_on_own_servers

CATALOG = get_catalog()
IN_REGISTRY = CATALOG.topic("in_registry").name
CELL = "中原区-基站-4711"  # GBK-encoded below; never printed in clear (the list masks every value)


def registry_record(event_id: str, identifier: bytes) -> bytes:
    event = dict(EXAMPLES["RegistryUpdate"], event_id=event_id, identifier_kind="cell", identifier="PLACEHOLDER",
                 person_id=None, event_time=datetime.now(UTC).isoformat())
    return json.dumps(event).encode().replace(b"PLACEHOLDER", identifier)


def antifraud(settings, *args: str) -> str:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers, "REDIS_URL": settings.redis_url}
    done = subprocess.run([sys.executable, "-m", "streams.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def original_bytes(message) -> bytes:
    return base64.b64decode(json.loads(message.value())["original_b64"])


def wait_for_log(path, text: bytes, since: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_bytes()[since:]:
        assert time.monotonic() < deadline, path.read_text(errors="replace")[-3000:]
        time.sleep(0.2)


@pytest.mark.timeout(300)
def test_a_fixed_record_is_accepted_on_replay_and_a_still_bad_one_comes_back_once(tmp_path):
    own = worker_on_own_servers(tmp_path / "run", ANTIFRAUD_WORKER_NAME="worker-1")
    settings = own.settings
    dead = Reader(settings.kafka_bootstrap_servers, CATALOG.topic("dead_letter").name)
    normalized = Reader(settings.kafka_bootstrap_servers, CATALOG.topic("norm_registry").name)
    gbk = CELL.encode("gbk")  # valid GB18030, not UTF-8
    bad_id = b"\xff\xfe-4712"  # neither UTF-8 nor GB18030
    try:
        producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
        for event_id, identifier in (("reg-redrive-1", gbk), ("reg-redrive-2", bad_id)):
            producer.produce(IN_REGISTRY, registry_record(event_id, identifier), key=event_id.encode())
        producer.flush(30)
        first = list(dead.read_until(lambda m: len(m) >= 2, timeout=120))
        assert {json.loads(m.value())["reason"] for m in first} == {"not_utf8"}

        # The fix: the feed's encoding declared; the worker restarted with it.
        topics = yaml.safe_load(settings.topics_file.read_text())
        topics["topics"]["in_registry"]["encoding"] = "gb18030"
        fixed = tmp_path / "topics.yaml"
        fixed.write_text(yaml.safe_dump(topics, allow_unicode=True))
        own.platform.stop_child(own.worker)
        own.worker = own.platform.spawn("worker", "worker", ANTIFRAUD_WORKER_NAME="worker-1",
                                        ANTIFRAUD_TOPICS_FILE=str(fixed))
        wait_for_log(own.worker.log_path, b"Worker ready", own.worker.log_offset)

        listed = antifraud(settings, "dead-letters", "list", "--source", "in_registry")
        assert "not_utf8" in listed and "4711" not in listed and "基站" not in listed
        replay = ("dead-letters", "replay", "--reason", "not_utf8", "--source", "in_registry")
        dry = antifraud(settings, *replay, "--dry-run")
        assert "would send 2" in dry
        assert "0 dead letters match" in antifraud(settings, *replay, "--since", "2999-01-01", "--dry-run")
        assert "sending 2" in antifraud(settings, *replay)

        accepted = normalized.read_until(lambda m: len(m) >= 1, timeout=120)
        assert [json.loads(m.value())["event"]["identifier"] for m in accepted] == [CELL]
        letters = dead.read_until(lambda m: len(m) >= 3, timeout=120)
        again = letters[2]
        assert json.loads(again.value())["reason"] == "not_utf8"
        bad_original = next(json.loads(m.value()) for m in first if bad_id in original_bytes(m))
        assert replay_of(again.headers()) == bad_original["dead_letter_id"]
        assert original_bytes(again) == original_bytes(next(m for m in first if bad_id in original_bytes(m)))

        # Not a loop: a second replay sends nothing, and nothing more arrives anywhere.
        second = antifraud(settings, *replay)
        assert "sending 0" in second and "replayed before" in second and "refused again" in second
        time.sleep(3)
        assert len(dead.read_for(5)) == 3
        assert len(normalized.read_for(1)) == 1
        listed = antifraud(settings, "dead-letters", "list")
        # count, replayed (both originals), came back (one), truncated
        assert re.search(r"antifraud\.in\.registry\s+ingest\s+not_utf8\s+3\s+2\s+1\s+0", listed), listed
        assert "4711" not in listed and "(replay of antifraud.in.registry:" in listed
        assert REPLAY_HEADER in dict(again.headers())
        log = own.worker.log_path.read_text(errors="replace")
        assert " ERROR " not in log and "[ERROR]" not in log, "an ERROR line in a clean run"
    finally:
        dead.close()
        normalized.close()
        own.stop()


def letter(dead_letter_id: str, topic: str = IN_REGISTRY, truncated: bool = False, replayed_from: str | None = None):
    record = DeadLetter(
        dead_letter_id=dead_letter_id, stage="ingest", source_topic=topic, source_partition=0, source_offset=0,
        reason=DeadLetterReason.not_json, detail="not JSON", received_at=datetime.now(UTC),
        original_size=3, original_sha256="-", original_b64="e30=", original_truncated=truncated)
    return Letter(record, replayed_from)


def test_replay_plan_never_sends_a_truncated_record_nor_a_loop():
    letters = [letter("a"), letter("cut", truncated=True), letter("internal", topic=CATALOG.topic("norm_bank").name),
               letter("b"), letter("b-again", replayed_from="b"), letter("sent-before")]
    plan = plan_replay(letters, replayed={"sent-before"}, catalog=CATALOG)
    assert [x.record.dead_letter_id for x in plan.send] == ["a"]
    assert sum(plan.skipped.values()) == 5
    forced = plan_replay(letters, replayed={"sent-before"}, catalog=CATALOG, force=True)
    assert [x.record.dead_letter_id for x in forced.send] == ["a", "b", "b-again", "sent-before"]  # never "cut"
