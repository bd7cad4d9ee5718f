"""A recorded week (simulator/recording.py): every input in event-time order, in simulated time, with its truth."""

from __future__ import annotations

import msgspec
import pytest

from backtest.history import TRUTH, decode_truth, read_header, read_records
from simulator.recording import record_week
from streams.catalog import get_catalog
from streams.contracts import contract

DECODERS = {t.id: msgspec.json.Decoder(contract(t.contract)) for t in get_catalog().of_kind("input")}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "week.jsonl.gz"
    header = record_week(path, residents=300, days=2, seed=5, frauds_per_10k_week=3000, late_listing_share=0.5)
    events, truths = [], []
    for topic, value in read_records(path):
        if topic == TRUTH:
            truths.append(decode_truth(value))
        else:
            events.append((topic, DECODERS[topic].decode(value)))
    return path, header, events, truths


def test_reference_first_then_traffic_in_event_time_order_inside_the_days(recorded):
    _, header, events, _ = recorded
    kinds = [topic in ("in_registry", "in_intel") for topic, _ in events]
    seeded = kinds.index(False)
    assert all(kinds[:seeded]) and all(e.event_time < header.start for _, e in events[:seeded])
    traffic = [e.event_time for _, e in events[seeded:]]
    assert traffic == sorted(traffic) and header.start <= traffic[0] and traffic[-1] < header.end


def test_the_frauds_truth_their_late_listings_and_cases_are_in_it(recorded):
    path, header, events, truths = recorded
    assert header == read_header(path) and len(truths) == header.frauds == round(300 / 10_000 * 3000 * 2 / 7)
    assert {t.typology for t in truths} >= {"impersonate_police", "investment"}
    listed_late = [e for topic, e in events if topic == "in_intel" and e.event_time >= header.start]
    assert listed_late and any(t.listed_late for t in truths)
    assert header.by_topic.get("in_case", 0) > 0
