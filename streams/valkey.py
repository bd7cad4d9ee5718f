"""Valkey (Redis protocol) access: clients, and waiting out an outage without losing work.

While Valkey is unreachable a stage retries with backoff and does not return: its batch
is not acknowledged, so offsets hold and events wait. Nothing is dropped or processed
without the lookup it needs.
"""

from __future__ import annotations

import logging

import redis
import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge
from tenacity import AsyncRetrying, Retrying, retry_if_exception_type, wait_exponential

from streams.settings import Settings

log = logging.getLogger(__name__)

VALKEY_OUTAGE_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, OSError)

WAITING_ON_VALKEY = Gauge(
    "antifraud_waiting_on_valkey", "1 while a stage is retrying because Valkey is unreachable", ["stage"]
)
VALKEY_RETRIES = Counter("antifraud_valkey_retries_total", "Valkey calls retried after an outage", ["stage"])


def async_client(settings: Settings) -> aioredis.Redis:
    return aioredis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)


def sync_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)


def _retry_policy(stage: str, settings: Settings) -> dict:
    """Retry on an outage only, backoff growing to valkey_retry_max_s, never giving up."""

    def _log_retry(state) -> None:
        WAITING_ON_VALKEY.labels(stage).set(1)
        VALKEY_RETRIES.labels(stage).inc()
        log.warning("%s: Valkey unreachable (%s), retry %d", stage, type(state.outcome.exception()).__name__,
                    state.attempt_number)

    return dict(
        retry=retry_if_exception_type(VALKEY_OUTAGE_ERRORS),
        wait=wait_exponential(multiplier=0.05, max=settings.valkey_retry_max_s),
        before_sleep=_log_retry,
        reraise=True,
    )


async def until_valkey_answers(stage: str, settings: Settings, call):
    """Await `call()` until Valkey answers (stream stages)."""
    async for attempt in AsyncRetrying(**_retry_policy(stage, settings)):
        with attempt:
            result = await call()
    WAITING_ON_VALKEY.labels(stage).set(0)
    return result


def until_valkey_answers_sync(stage: str, settings: Settings, call):
    """`call()` until Valkey answers (synchronous channel workers: offsets held, nothing sent)."""
    for attempt in Retrying(**_retry_policy(stage, settings)):
        with attempt:
            result = call()
    WAITING_ON_VALKEY.labels(stage).set(0)
    return result
