"""Fixtures: one real embedded broker and Valkey per session, and factories over them.

No mocks of Kafka or Redis: every integration test talks to the real servers over real
connections. Readers use assign(), not group subscription, so reading never waits on a
group join.
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.catalog import get_catalog
from streams.kafka import producer_config
from streams.settings import Settings
from streams.supervisor import Platform
from support import Reader, make_servers, make_settings


@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    broker, valkey, info = make_servers(tmp_path_factory.mktemp("run"))
    yield info
    broker.stop()
    valkey.stop()


@pytest.fixture(scope="session")
def settings(servers) -> Settings:
    return make_settings(servers)


@pytest.fixture(scope="session")
def catalog():
    return get_catalog()


@pytest.fixture
def topic_factory(servers):
    """Creates uniquely named topics for tests that must not see each other's records."""

    def create(partitions: int = 1, prefix: str = "test") -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:10]}"
        admin = AdminClient({"bootstrap.servers": servers.bootstrap})
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(10)
        return name

    return create


@pytest.fixture
def producer(settings):
    p = Producer(producer_config(settings))
    yield p
    p.flush(10)


@pytest.fixture
def consumer_factory(servers):
    readers: list[Reader] = []

    def create(topic: str) -> Reader:
        reader = Reader(servers.bootstrap, topic)
        readers.append(reader)
        return reader

    yield create
    for reader in readers:
        reader.close()


@pytest.fixture
def platform_factory():
    """Starts platform processes (`antifraud worker`, ...) as real child processes."""
    platforms: list[Platform] = []

    def create(settings: Settings) -> Platform:
        platform = Platform(settings)
        platforms.append(platform)
        return platform

    yield create
    for platform in platforms:
        platform.stop()
