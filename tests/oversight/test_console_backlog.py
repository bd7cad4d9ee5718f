"""The reach-back backlog on the console: end offsets minus what the stream worker's group has
committed on intel_reach_back, read from the real embedded broker (a fresh topic and group, so
no other test's records or commits count)."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from fastapi.testclient import TestClient

from oversight.backlog import ReachBackBacklog
from oversight.console import create_app
from streams.catalog import Catalog
from streams.kafka import producer_config

TOKENS = {"tok-centre": "centre", "tok-ps01": "station:ZK01-PS01"}


@pytest.fixture
def reach_back_catalog(catalog, topic_factory) -> Catalog:
    topic = topic_factory(partitions=2, prefix="test.reach_back")
    spec = catalog.topic("intel_reach_back").model_copy(update={"name": topic, "partitions": 2})
    return Catalog(app_id=f"test-backlog-{uuid.uuid4().hex[:8]}", defaults=catalog.defaults,
                   topics={**catalog.topics, "intel_reach_back": spec})


def commit(settings, group: str, topic: str, partition: int, offset: int) -> None:
    """What the worker's group does as it hands re-checks on: commit a position (no group join)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group,
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)
    finally:
        consumer.close()


def test_the_backlog_is_end_offsets_minus_the_groups_commits(settings, reach_back_catalog, ledger_engine):
    topic, group = reach_back_catalog.topic("intel_reach_back").name, reach_back_catalog.app_id
    producer = Producer(producer_config(settings))
    for partition, count in ((0, 5), (1, 3)):
        for n in range(count):
            producer.produce(topic, key=f"P-{n}".encode(), value=b"{}", partition=partition)
    assert producer.flush(10) == 0

    app = create_app(settings.model_copy(update={"console_tokens": TOKENS}), ledger_engine, reach_back_catalog)
    with TestClient(app) as client:
        response = client.get("/api/reach-back/backlog", headers={"Authorization": "Bearer tok-centre"})
        assert response.status_code == 200, response.text
        first = response.json()
        assert client.get("/api/reach-back/backlog", headers={"Authorization": "Bearer tok-ps01"}).status_code == 403
    assert first["error"] is None and (first["topic"], first["group"]) == (topic, group)
    assert first["waiting"] == 8  # nothing committed yet: the group starts at the earliest record
    assert [p["committed"] for p in first["partitions"]] == [None, None]

    commit(settings, group, topic, 0, 2)
    commit(settings, group, topic, 1, 3)
    backlog = ReachBackBacklog(settings, reach_back_catalog, cache_s=0)
    try:
        second = backlog.read()
    finally:
        backlog.close()
    assert second["waiting"] == 3 and [p["waiting"] for p in second["partitions"]] == [3, 0]
    assert [p["committed"] for p in second["partitions"]] == [2, 3]
    assert second["drain_s"] == round(3 / backlog.rate, 1)  # at the configured pace


def test_a_broker_that_does_not_answer_gives_no_figure_and_says_so(catalog):
    from streams.settings import Settings

    backlog = ReachBackBacklog(Settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), catalog, timeout_s=1.0)
    try:
        answer = backlog.read()
    finally:
        backlog.close()
    assert answer["waiting"] is None and "broker not answering" in answer["error"]
