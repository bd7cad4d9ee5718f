"""Broker quirks are detected at start-up, not assumed."""

import os

from streams.quirks import BATCHING_ENV, has_last_batch_offset_quirk, resolve_settings
from streams.settings import ProducerBatching, Settings


def test_probe_detects_tansu_last_batch_offset_quirk(settings):
    assert has_last_batch_offset_quirk(settings.kafka_bootstrap_servers) is True


def test_auto_resolves_to_single_record_batches_on_tansu(servers, settings):
    auto = Settings(KAFKA_BOOTSTRAP_SERVERS=servers.bootstrap, REDIS_URL=servers.redis_url, producer_batching="auto")
    resolved = resolve_settings(auto)
    assert resolved.producer_batching is ProducerBatching.single
    assert os.environ[BATCHING_ENV] == "single"


def test_explicit_choice_is_kept_without_probing(monkeypatch):
    # An unreachable broker proves no probe runs when the operator has chosen.
    monkeypatch.setenv(BATCHING_ENV, "single")
    chosen = Settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", REDIS_URL="redis://127.0.0.1:1", producer_batching="full")
    assert resolve_settings(chosen).producer_batching is ProducerBatching.full
    assert os.environ[BATCHING_ENV] == "full"
