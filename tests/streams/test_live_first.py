"""streams.live_first: background work yields to live traffic, never to nothing, never against a live wait."""

from __future__ import annotations

import asyncio
import time

import pytest

from streams.live_first import LiveFirst


def test_without_live_traffic_background_work_never_pauses():
    assert LiveFirst(0.5).pause_after(0.2) == 0.0


def test_while_live_traffic_flows_background_work_keeps_to_its_share():
    gate = LiveFirst(0.25)
    gate.live_seen()
    assert gate.pause_after(0.1) == pytest.approx(0.3)  # busy 0.1 of every 0.4 s
    assert LiveFirst(1.0).pause_after(0.1) == 0.0  # the bound turned off


def test_no_pause_while_a_live_stage_waits_for_background_work():
    gate = LiveFirst(0.5)
    gate.live_seen()
    with gate.needed():
        assert gate.pause_after(1.0) == 0.0
    assert gate.pause_after(1.0) == 1.0


def test_background_batches_take_turns_and_a_pause_ends_when_a_live_stage_needs_them():
    async def scenario():
        gate, order = LiveFirst(0.5), []
        gate.live_seen()

        async def background(name: str) -> None:
            await gate.take_turn()
            order.append(f"{name} starts")
            await asyncio.sleep(0.01)
            order.append(f"{name} ends")
            await gate.end_turn(5.0)  # would pause 5 s

        first = asyncio.ensure_future(background("a"))
        second = asyncio.ensure_future(background("b"))
        await asyncio.sleep(0.1)
        assert order == ["a starts", "a ends"]  # b waits for a's turn, pause included
        started = time.monotonic()
        with gate.needed():  # enrich's barrier now waits for the loader
            await asyncio.wait_for(asyncio.gather(first, second), 2)
        assert order == ["a starts", "a ends", "b starts", "b ends"]
        assert time.monotonic() - started < 1.0

    asyncio.run(scenario())


def test_a_share_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError):
        LiveFirst(0)
