"""Claims in Valkey that make repeats harmless: one round trip for a whole micro-batch.

A claim stores its owner (for input events: topic:partition:offset). Claiming again
with the same owner succeeds, so a message redelivered after a crash is processed
again (downstream is idempotent) instead of being mistaken for a duplicate; a different
owner within the window is a true repeat.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis


@dataclass(frozen=True, slots=True)
class Claim:
    key: str
    owner: str


async def claim_all(client: aioredis.Redis, claims: list[Claim], window_s: int) -> list[bool]:
    """True for each claim that is ours (new, or already held by the same owner)."""
    if not claims:
        return []
    pipe = client.pipeline(transaction=False)
    for claim in claims:
        pipe.set(claim.key, claim.owner, nx=True, ex=window_s, get=True)
    previous = await pipe.execute()
    return [old is None or old.decode() == claim.owner for old, claim in zip(previous, claims)]
