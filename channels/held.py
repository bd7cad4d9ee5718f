"""Held actions: delayed by a contact policy, never dropped.

Two keys per action topic (a hash tag keeps them in one cluster slot):
  held:{<topic>}:due      sorted set, member = outcome id, score = release time (epoch s)
  held:{<topic>}:actions  hash, outcome id -> HeldAction (the original action bytes and why)

An action is written here before its Kafka offset is committed, so a crash loses
nothing. Workers take due actions with a lease: taking one moves its score to now +
lease, so another worker does not take it too, and a worker that dies while sending it
leaves it to come due again (the send claim then keeps the citizen from a second
contact). It is removed only after its outcome is durably produced.
"""

from __future__ import annotations

import msgspec
import redis

_TAKE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member)
  table.insert(out, member)
  table.insert(out, redis.call('HGET', KEYS[2], member) or '')
end
return out
"""


class HeldAction(msgspec.Struct, forbid_unknown_fields=True):
    action: bytes  # the original Action message, exactly as read
    policy: str
    release_at: float
    held_at: float
    source: str  # topic:partition:offset where the action was read
    rate_reserved: bool = False


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(HeldAction).decode


class HeldStore:
    def __init__(self, client: redis.Redis, topic: str, lease_s: float):
        self.client, self.lease_s = client, lease_s
        self.due_key = f"held:{{{topic}}}:due"
        self.data_key = f"held:{{{topic}}}:actions"
        self._take_due = client.register_script(_TAKE_DUE)

    def contains(self, member: str) -> bool:
        return self.client.zscore(self.due_key, member) is not None

    def hold_new(self, member: str, held: HeldAction) -> bool:
        """Hold an action read from Kafka; False when it is already held (a redelivery or replay)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hsetnx(self.data_key, member, _encode(held))
        pipe.zadd(self.due_key, {member: held.release_at}, nx=True)
        added, _ = pipe.execute()
        return bool(added)

    def hold_again(self, member: str, held: HeldAction) -> None:
        """Re-hold an action taken from here (another policy stops it now)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.data_key, member, _encode(held))
        pipe.zadd(self.due_key, {member: held.release_at})
        pipe.execute()

    def take_due(self, now: float, limit: int) -> list[tuple[str, HeldAction | None]]:
        """Due actions, leased to this worker; None for an entry whose data is missing."""
        flat = self._take_due(keys=[self.due_key, self.data_key], args=[repr(now), repr(now + self.lease_s), limit])
        pairs = zip(flat[0::2], flat[1::2])
        return [(member.decode(), _decode(data) if data else None) for member, data in pairs]

    def remove(self, member: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.zrem(self.due_key, member)
        pipe.hdel(self.data_key, member)
        pipe.execute()

    def peek(self) -> tuple[int, float | None]:
        """How many are held, and when the next one comes due (None: none held)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(self.due_key)
        pipe.zrange(self.due_key, 0, 0, withscores=True)
        pending, first = pipe.execute()
        return pending, (first[0][1] if first else None)
