"""streams.isolation: a record that raises is dead-lettered alone; anything else stops the stage."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
import redis

from streams.contracts import DeadLetterReason
from streams.isolation import INTERNAL_ERRORS, about_a_record, isolated
from streams.masking import mask_text


@dataclass
class Message:
    topic: str
    partition: int
    offset: int


@dataclass
class Event:
    message: Message
    value: int


def events(*values: int) -> list[Event]:
    return [Event(Message("t", 0, n), v) for n, v in enumerate(values)]


class Stage:
    """A stage whose handler raises on the value 13, as a bug met on one record would."""

    def __init__(self, error: Exception | None = None) -> None:
        self.handled: list[int] = []
        self.dead: list[tuple[int, object]] = []
        self.error = error or ValueError("unlucky +8613800138000")

    async def handle(self, batch) -> None:
        for event in batch:
            if event.value == 13:
                raise self.error
            self.handled.append(event.value)

    async def dead_letter(self, event, rejected) -> None:
        self.dead.append((event.value, rejected))


def run(stage: Stage, batch) -> None:
    asyncio.run(isolated("test", batch, stage.handle, stage.dead_letter))


def test_a_batch_that_raises_is_retried_record_by_record():
    stage = Stage()
    before = INTERNAL_ERRORS.labels("test", "ValueError")._value.get()
    run(stage, events(1, 2, 13, 4))
    # 1 and 2 were handled before the failure and again alone: stages are idempotent.
    assert stage.handled == [1, 2, 1, 2, 4]
    [(value, rejected)] = stage.dead
    assert value == 13 and rejected.reason is DeadLetterReason.internal_error
    assert rejected.detail.startswith("test: ValueError: ")
    assert "13800138000" not in rejected.detail
    assert INTERNAL_ERRORS.labels("test", "ValueError")._value.get() == before + 1


def test_a_good_batch_is_handled_once():
    stage = Stage()
    run(stage, events(1, 2, 3))
    assert stage.handled == [1, 2, 3] and stage.dead == []


def test_one_record_that_raises_is_dead_lettered_at_once():
    stage = Stage()
    run(stage, events(13))
    assert [v for v, _ in stage.dead] == [13]


@pytest.mark.parametrize("error", [redis.ConnectionError("gone"), redis.ResponseError("OOM command not allowed"),
                                   MemoryError(), OSError("reset")])
def test_what_is_not_about_a_record_stops_the_stage(error):
    stage = Stage(error)
    with pytest.raises(type(error)):
        run(stage, events(1, 13, 2))
    assert stage.dead == []


def test_cancellation_passes_through():
    assert not about_a_record(asyncio.CancelledError())
    assert about_a_record(KeyError("x")) and about_a_record(RecursionError())


@pytest.mark.parametrize("text, hidden", [
    ("KeyError: 'tok_4f2a9c1e7b'", "tok_4f2a9c1e7b"),
    ("bad number +8613800138000 in field", "13800138000"),
    ('cannot parse "张三 138 0013 8000"', "张三"),
    ("account ICBC6222020200112233", "6222020200112233"),
])
def test_masked_text_hides_identifiers(text, hidden):
    assert hidden not in mask_text(text)


def test_masked_text_keeps_what_helps_and_is_short():
    assert mask_text("division by zero at line 12") == "division by zero at line 12"
    assert len(mask_text("x" * 10_000)) <= 300


def test_a_broken_str_is_not_a_second_failure():
    class Nasty(Exception):
        def __str__(self):
            raise RuntimeError("no")

    assert mask_text(Nasty()) == "<unprintable>"
