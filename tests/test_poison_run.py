"""10,000 malformed records of every kind, between valid traffic, through the running platform.

The platform as `antifraud up --no-simulator` starts it (streams.supervisor.bring_up, on
embedded servers of its own): stream worker, channel workers, partners, oversight, console.
Malformed records go into every topic a stage decodes: the six inputs (ingest), the
outcomes (escalate) and the SMS actions (its channel worker); valid input records go in
between them. Then, read from the broker:
- every malformed record is in the dead-letter topic exactly once, with a documented
  reason (never internal_error), the expected one where the kind names it;
- every valid record reached its normalized topic;
- no process of the platform exited (an agent that crashes stops its worker: its exit
  would show here).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from confluent_kafka import Producer

from streams.catalog import get_catalog
from streams.contracts import DeadLetter, DeadLetterReason
from streams.contracts.examples import EXAMPLES
from streams.kafka import producer_config
from streams.settings import get_settings
from streams.supervisor import bring_up
from support import Reader

pytestmark = pytest.mark.slow

CATALOG = get_catalog()
MALFORMED = 10_000
VALID_EVERY = 5  # a valid input record after every fifth malformed one
INPUTS = ("in_telecom", "in_bank", "in_app_report", "in_case", "in_intel", "in_registry")
INPUT_NAMES = {CATALOG.topic(t).name for t in INPUTS}  # where the reason is the feed's business: exact
INTERNAL = ("outcomes", "actions_sms")  # written by the platform: a bad record there is a bug upstream
DOCUMENTED = set(DeadLetterReason) - {DeadLetterReason.internal_error}
R = DeadLetterReason
GOOD_ID = re.compile(rb'"(good-\d+)"')


@dataclass
class Sent:
    topic: str
    kind: str
    expected: DeadLetterReason | None  # None: any documented reason
    partition: int = -1
    offset: int = -1


def valid(topic_id: str, event_id: str, **changes) -> dict:
    now = datetime.now(UTC).isoformat()
    return dict(EXAMPLES[CATALOG.topic(topic_id).contract], event_id=event_id, event_time=now, **changes)


def encode(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode()


def malformed_kinds(topic_id: str, n: int, rng: random.Random) -> list[tuple[str, bytes | None, bytes | None, R | None]]:
    """(kind, key, value, expected reason) of every kind the issue names; the record-shaped
    ones start from a valid record of the topic (an input) or an empty object (internal)."""
    base = valid(topic_id, f"bad-{n}") if topic_id in INPUTS else {"event_id": f"bad-{n}"}
    good = encode(base)
    future = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    kinds = [
        # "你好" in GBK is not UTF-8 (some GBK words are: "诈骗" decodes as two Armenian/Latin letters).
        ("gbk_text", None, good.replace(b'"event_id": "', b'"event_id": "' + "你好".encode("gbk"), 1), R.not_utf8),
        ("invalid_utf8_key_and_value", b"\xff\xfe\xc4", good.replace(b'"event_id": "', b'"event_id": "\xc3\x28', 1),
         R.not_utf8),
        ("nan", None, b'{"event_id": NaN, ' + good[1:], R.not_json),
        ("truncated", None, good[: len(good) // 2], R.not_json),
        ("binary", None, b"\x00\xff" + rng.randbytes(rng.randrange(1, 300)), None),
        ("huge_number", None, good[:-1] + b', "duration_s": 1' + b"0" * 400 + b"}", None),
        ("deep_nesting", None, b"[" * 5_000 + b"]" * 5_000, None),
        ("json_null", None, b"null", None),
        ("tombstone", b"k", None, None),
        ("empty", None, b"", None),
        ("oversized", None, good[:-1] + b', "pad": "' + b"x" * 70_000 + b'"}', R.oversized),
        ("duplicated_keys", None, good[:-1] + b', "event_id": 7}', None),
        ("wrong_type", None, encode({**base, "event_time": 12}), None),
        ("missing_field", None, encode({k: v for k, v in base.items() if k != "event_id"}), None),
    ]
    if topic_id in INPUTS:
        kinds += [
            ("unknown_enum", None, encode({**base, "kind": "telepathy"}), R.schema_violation),
            ("future_timestamp", None, encode({**base, "event_time": future}), R.future_timestamp),
        ]
    return kinds


def test_ten_thousand_malformed_records_are_dead_lettered_and_every_valid_one_is_processed(tmp_path):
    settings = get_settings().model_copy(update={"run_dir": tmp_path, "kafka_bootstrap_servers": None,
                                                 "redis_url": None, "worker_processes": 1})
    platform = bring_up(settings, with_simulator=False)
    try:
        settings = platform.settings
        rng = random.Random(17)
        producer = Producer(producer_config(settings))
        sent: list[Sent] = []
        valid_ids: dict[str, set[str]] = {t: set() for t in INPUTS}

        def delivered(record: Sent):
            def on_delivery(err, msg):
                assert err is None, err
                record.partition, record.offset = msg.partition(), msg.offset()
            return on_delivery

        topics = INPUTS + INTERNAL
        for n in range(MALFORMED):
            topic_id = topics[n % len(topics)]
            kind, key, value, expected = rng.choice(malformed_kinds(topic_id, n, rng))
            record = Sent(CATALOG.topic(topic_id).name, kind, expected)
            sent.append(record)
            producer.produce(record.topic, value, key=key, partition=rng.randrange(4), on_delivery=delivered(record))
            if n % VALID_EVERY == 0:
                input_id = INPUTS[(n // VALID_EVERY) % len(INPUTS)]
                event_id = f"good-{n}"
                valid_ids[input_id].add(event_id)
                producer.produce(CATALOG.topic(input_id).name, encode(valid(input_id, event_id)),
                                 key=b"\xff\xfe" if n % 3 == 0 else None)  # a broken key on a valid record is no reason
            producer.poll(0)
        assert producer.flush(60) == 0
        assert all(r.offset >= 0 for r in sent)

        dead_reader = Reader(settings.kafka_bootstrap_servers, CATALOG.topic("dead_letter").name)
        dead_reader.read_until(lambda m: len(m) >= MALFORMED, timeout=300)
        dead = dead_reader.read_for(3.0)  # and nothing more: no valid record among them
        dead_reader.close()
        letters = [msgspec.json.decode(m.value(), type=DeadLetter) for m in dead]
        by_place = Counter((d.source_topic, d.source_partition, d.source_offset) for d in letters)
        assert len(letters) == MALFORMED and max(by_place.values()) == 1, "each malformed record once, no other"
        reasons = {(d.source_topic, d.source_partition, d.source_offset): d.reason for d in letters}
        missing = [r for r in sent if (r.topic, r.partition, r.offset) not in reasons]
        assert not missing, f"{len(missing)} malformed records not dead-lettered, first {missing[:3]}"
        wrong = [(r.topic, r.kind, reasons[(r.topic, r.partition, r.offset)].value) for r in sent
                 if reasons[(r.topic, r.partition, r.offset)] not in DOCUMENTED
                 or (r.expected is not None and r.topic in INPUT_NAMES
                     and reasons[(r.topic, r.partition, r.offset)] is not r.expected)]
        assert not wrong, f"{len(wrong)} with an undocumented or unexpected reason, e.g. {Counter(wrong).most_common(5)}"

        for input_id, ids in valid_ids.items():
            reader = Reader(settings.kafka_bootstrap_servers, CATALOG.topic(CATALOG.topic(input_id).normalized_to).name)
            reader.read_until(holds_every(ids), timeout=120)
            reader.close()

        exited = {c.name: c.process.poll() for c in platform.children if c.process and c.process.poll() is not None}
        assert not exited, f"platform processes exited: {exited}"
    finally:
        platform.stop()


def holds_every(ids: set[str]):
    """A read_until predicate: every id is in some record read (each record looked at once)."""
    found: set[str] = set()
    looked = 0

    def predicate(messages: list) -> bool:
        nonlocal looked
        for m in messages[looked:]:
            found.update(i.decode() for i in GOOD_ID.findall(m.value() or b""))
        looked = len(messages)
        return ids <= found

    return predicate
