"""Embedded servers: start on free ports, stop cleanly, Valkey keeps its data across a restart."""

import redis

from streams.embedded import start_broker, start_valkey


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


def test_broker_stops_and_releases_its_port(tmp_path):
    broker = start_broker(tmp_path)
    port = broker.port
    broker.stop()
    assert not broker.running()
    start_broker(tmp_path, port=port).stop()
