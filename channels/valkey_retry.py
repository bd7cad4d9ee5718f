"""Waiting out a Valkey outage in a (synchronous) channel worker.

Claims, holds and limits all live in Valkey: without it a worker cannot know whether an
action was already sent, so it waits (offsets held, nothing sent) rather than guess.
"""

from __future__ import annotations

import logging
from typing import Callable, TypeVar

from tenacity import Retrying, retry_if_exception_type, wait_exponential

from streams.settings import Settings
from streams.valkey import VALKEY_OUTAGE_ERRORS, VALKEY_RETRIES, WAITING_ON_VALKEY

log = logging.getLogger(__name__)
T = TypeVar("T")


def until_valkey_answers(stage: str, settings: Settings, call: Callable[[], T]) -> T:
    """`call()` until Valkey answers; the backoff grows to valkey_retry_max_s and never gives up."""

    def _log_retry(state) -> None:
        WAITING_ON_VALKEY.labels(stage).set(1)
        VALKEY_RETRIES.labels(stage).inc()
        log.warning("%s: Valkey unreachable (%s), retry %d", stage, type(state.outcome.exception()).__name__,
                    state.attempt_number)

    for attempt in Retrying(
        retry=retry_if_exception_type(VALKEY_OUTAGE_ERRORS),
        wait=wait_exponential(multiplier=0.05, max=settings.valkey_retry_max_s),
        before_sleep=_log_retry,
        reraise=True,
    ):
        with attempt:
            result = call()
    WAITING_ON_VALKEY.labels(stage).set(0)
    return result
