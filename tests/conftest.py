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

# A test that names one of these (directly or through another fixture) starts or talks to
# real servers, processes or programs.
INTEGRATION_FIXTURES = {"servers", "settings", "topic_factory", "producer", "consumer_factory", "platform_factory",
                        "tiny_results", "broker", "browser"}


def pytest_collection_modifyitems(items):
    """Mark `integration` every test that needs real servers or processes: one of the fixtures
    above, servers of its own through tests/support.py, or the `slow` and `faults` markers
    (a module that starts servers another way says `integration` itself). The rest, pure and
    in-process, is the fast lane: `make test-fast` (pytest -m "not integration"), seconds."""
    for item in items:
        module = getattr(item, "module", None)
        own_servers = module is not None and any(getattr(v, "__module__", None) == "support"
                                                 for v in vars(module).values())
        if (INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())) or own_servers
                or item.get_closest_marker("slow") or item.get_closest_marker("faults")):
            item.add_marker(pytest.mark.integration)
    # `make test` runs two pytest-xdist workers, a file at a time: files with the longest tests
    # go first, so that neither worker ends the run alone on one of them.
    heavy = {item.path for item in items if item.get_closest_marker("slow") or item.get_closest_marker("faults")}
    items.sort(key=lambda item: item.path not in heavy)


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


# The simulator's tests share one small city and its intelligence (here: tests/ has no packages,
# so a conftest.py of their own would shadow this one).
@pytest.fixture(scope="session")
def population():
    from simulator.population import Population

    return Population.generate(2_000, 11)


@pytest.fixture(scope="session")
def intel():
    from simulator.reference import Intel

    return Intel(500, 11)
