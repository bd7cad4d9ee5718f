"""Helpers shared by the simulator tests (a unique module name: tests/ has no packages)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=timezone(timedelta(hours=8)))


class FakeProducer:
    """Records what would have been produced; deliveries are reported on poll/flush, like librdkafka."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes | None, bytes]] = []
        self._pending: list = []

    def produce(self, topic, value=None, key=None, on_delivery=None):
        self.messages.append((topic, key, value))
        self._pending.append(on_delivery)

    def poll(self, timeout=0):
        pending, self._pending = self._pending, []
        for callback in pending:
            callback(None, None)
        return len(pending)

    def flush(self, timeout=0):
        self.poll()
        return 0
