"""A recorded history of the input topics: one gzip'd file of JSON lines, in the order the platform got them.

    {"format": 1, "seed": ..., "residents": ..., ...}        the header (HistoryHeader), first line
    in_registry\t{...}                                       one input record: topic id, a tab, its value
    truth\t{...}                                             ground truth of one simulated fraud (FraudTruth)

Values are exactly what a partner would send on the topic (the contracts' JSON), so the
backtest judges them through the same ingest validation as the live platform. Reference
updates come first, then the traffic by event time. Written by simulator/recording.py, read
by backtest/replay.py.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import msgspec

FORMAT = 1
TRUTH = "truth"  # not a topic: the simulator's ground truth, for the fraud-victim recall


class HistoryHeader(msgspec.Struct, kw_only=True):
    format: int = FORMAT
    seed: int
    residents: int  # the population the registry holds: what "per 10,000 residents" divides by
    start: datetime  # first traffic event time (reference updates are stamped just before)
    end: datetime
    records: int = 0  # input records in the file (for a progress bar)
    by_topic: dict[str, int] = {}
    frauds: int = 0
    note: str = ""


class FraudTruth(msgspec.Struct):
    person_id: str
    typology: str
    started_at: datetime
    funds_warning_expected: bool
    listed_late: bool


_encode = msgspec.json.Encoder().encode
_decode_header = msgspec.json.Decoder(HistoryHeader).decode
_decode_truth = msgspec.json.Decoder(FraudTruth).decode


class HistoryWriter:
    """Records in order, then `close(header)`: the header goes first in the file, with the counts the records made.

    The body is written as one gzip member to a side file, then the file is the header's member
    followed by the body's (a gzip file may hold several members; readers see one stream).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._body_path = path.with_name(path.name + ".body")
        # Level 1: the file is written once and read a few times; speed over the last percent of size.
        self._body = gzip.open(self._body_path, "wb", compresslevel=1)
        self.by_topic: dict[str, int] = {}

    def record(self, topic_id: str, value: msgspec.Struct | bytes) -> None:
        payload = value if isinstance(value, bytes) else _encode(value)
        self._body.write(topic_id.encode() + b"\t" + payload + b"\n")
        self.by_topic[topic_id] = self.by_topic.get(topic_id, 0) + 1

    def truth(self, truth: FraudTruth) -> None:
        self.record(TRUTH, truth)

    def close(self, header: HistoryHeader) -> HistoryHeader:
        self._body.close()
        header.by_topic = {k: v for k, v in self.by_topic.items() if k != TRUTH}
        header.records = sum(header.by_topic.values())
        header.frauds = self.by_topic.get(TRUTH, 0)
        with open(self.path, "wb") as out, open(self._body_path, "rb") as body:
            out.write(gzip.compress(_encode(header) + b"\n", compresslevel=1))
            shutil.copyfileobj(body, out, 1 << 20)
        self._body_path.unlink()
        return header


def read_header(path: Path) -> HistoryHeader:
    with gzip.open(path, "rb") as f:
        return _decode_header(f.readline())


def read_records(path: Path) -> Iterator[tuple[str, bytes]]:
    """(topic id, value bytes) of every line after the header, truth lines included (topic id TRUTH)."""
    with gzip.open(path, "rb") as f:
        f.readline()
        for line in f:
            topic_id, _, value = line.rstrip(b"\n").partition(b"\t")
            yield topic_id.decode(), value


def decode_truth(value: bytes) -> FraudTruth:
    return _decode_truth(value)
