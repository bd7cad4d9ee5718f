"""`antifraud topics apply`: creates what is missing, reports drift, is idempotent."""

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from streams.catalog import get_catalog, load_catalog
from streams.embedded import start_broker
from streams.settings import PROJECT_ROOT
from streams.topics_admin import apply_topics

pytestmark = pytest.mark.integration  # starts Kafka itself


def test_apply_creates_everything_then_reports_no_changes(tmp_path):
    broker = start_broker(tmp_path)
    try:
        first = apply_topics(get_catalog(), broker.bootstrap)
        assert sorted(first.created) == sorted(t.name for t in get_catalog().topics.values())
        second = apply_topics(get_catalog(), broker.bootstrap)
        assert second.created == [] and second.drift == []
        assert second.lines() == [f"no changes ({len(get_catalog().topics)} topics match topics.yaml)"]
    finally:
        broker.stop()


def test_drift_in_partitions_and_config_is_reported_not_changed(tmp_path):
    broker = start_broker(tmp_path)
    try:
        catalog = get_catalog()
        bank = catalog.topic("in_bank").name
        dead = catalog.topic("dead_letter").name
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        futures = admin.create_topics(
            [
                NewTopic(bank, num_partitions=2, replication_factor=1),
                NewTopic(dead, num_partitions=1, replication_factor=1, config={"retention.ms": "1000"}),
            ]
        )
        for f in futures.values():
            f.result(10)
        report = apply_topics(catalog, broker.bootstrap)
        drift = {(d.topic, d.what): (d.expected, d.actual) for d in report.drift}
        assert drift[(bank, "partition count")] == ("4", "2")
        assert drift[(dead, "retention.ms")] == ("2592000000", "1000")
        assert bank not in report.created
        # Nothing was changed or deleted: a second run sees the same drift.
        again = apply_topics(catalog, broker.bootstrap)
        assert {(d.topic, d.what) for d in again.drift} == set(drift)
    finally:
        broker.stop()


def test_replication_override_reaches_every_topic():
    configs = load_catalog(PROJECT_ROOT / "topics.yaml").configs(replication_override=3)
    assert {c.replication_factor for c in configs} == {3}
