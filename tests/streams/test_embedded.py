"""Embedded servers: start on free ports, stop cleanly, keep their data across a restart."""

import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.embedded import start_broker, start_valkey
from streams.kafka_provision import MissingTool, java_binary, kafka_classpath, kafka_version

pytestmark = pytest.mark.integration  # starts Kafka and Valkey itself


def test_valkey_data_survives_a_restart(tmp_path):
    valkey = start_valkey(tmp_path)
    client = redis.Redis.from_url(valkey.url)
    client.set("ref:registry:probe", "P123")
    client.close()
    port = valkey.port
    valkey.stop()
    assert not valkey.running()
    again = start_valkey(tmp_path, port=port)
    try:
        assert redis.Redis.from_url(again.url).get("ref:registry:probe") == b"P123"
    finally:
        again.stop()


def test_the_broker_keeps_its_data_and_port_across_a_restart(tmp_path):
    broker = start_broker(tmp_path)
    port = broker.port
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("kept", num_partitions=2, replication_factor=1)])["kept"].result(10)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce("kept", value=b"still here", partition=1)
    assert producer.flush(10) == 0
    broker.stop()
    assert not broker.running()

    again = start_broker(tmp_path)
    try:
        assert again.port == port, "a second `make run` finds the broker where the first left it"
        reader = Consumer({"bootstrap.servers": again.bootstrap, "group.id": "test-kept"})
        _, high = reader.get_watermark_offsets(TopicPartition("kept", 1), timeout=10)
        reader.close()
        assert high == 1
    finally:
        again.stop()


def test_the_broker_names_its_kafka_version_in_its_log(tmp_path):
    broker = start_broker(tmp_path)
    broker.stop()
    assert f"Kafka version: {kafka_version()}" in (tmp_path / "logs" / "kafka.log").read_text()


def test_the_cached_kafka_needs_no_maven_and_a_missing_one_says_what_to_install(tmp_path, monkeypatch):
    kafka_classpath()  # cached by now (the session's broker fetched it)
    monkeypatch.setenv("PATH", str(tmp_path))  # no mvn, no java on it
    assert kafka_classpath().endswith("/libs/*"), "a cached Kafka makes no Maven (network) call"

    monkeypatch.setenv("ANTIFRAUD_CACHE_DIR", str(tmp_path / "empty-cache"))
    with pytest.raises(MissingTool, match="install Maven"):
        kafka_classpath()
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(MissingTool, match="Java 17"):
        java_binary()
