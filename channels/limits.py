"""Contact limits kept in Valkey, so every worker of every channel sees the same counts.

Both limits are single Lua scripts: the check and the reservation are one atomic step,
so two workers cannot both take the last place.

- Frequency cap: a sorted set per person (contacts:<person>) of the contacts in the
  sliding window, one member per action attempt. Asking again for the same member is
  allowed without counting twice (an action released from a hold keeps its place).
- Rate limit: GCRA (a leaky bucket kept as one "theoretical arrival time" per channel).
  Every request gets a slot: now if the channel has capacity (up to one second's worth
  in a burst), else a future slot that is reserved for it, so a held action released at
  its slot sends without asking again and the queue never thrashes.

Times go back to Python as "%.6f" text: Lua's tostring keeps only 14 digits, which for
epoch seconds would move a slot by tens of microseconds.
"""

from __future__ import annotations

import math

import redis

_FREQUENCY = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZSCORE', KEYS[1], ARGV[4]) then
  return ''
end
if ARGV[5] == '1' and cap > 0 and redis.call('ZCARD', KEYS[1]) >= cap then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return string.format('%.6f', tonumber(oldest[2]) + window)
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(window) + 60)
return ''
"""

_RATE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local slot = tat - tolerance
if slot < now then slot = now end
redis.call('SET', KEYS[1], string.format('%.6f', tat + interval), 'PX', math.ceil((tat + interval - now) * 1000) + 1000)
return string.format('%.6f', slot)
"""


class FrequencyCap:
    def __init__(self, client: redis.Redis, cap: int, window_s: float):
        self.cap, self.window_s, self.client = cap, window_s, client
        self._script = client.register_script(_FREQUENCY)

    def reserve(self, person_id: str, member: str, now: float, enforce: bool) -> float | None:
        """Count this contact and return None, or (when enforced and full) the time a place frees up.

        Not enforced (urgent tiers) still counts the contact: a police visit is a contact too.
        """
        args = [now, self.window_s, self.cap, member, "1" if enforce else "0"]
        release = self._script(keys=[f"contacts:{person_id}"], args=args)
        return float(release) if release else None

    def forget(self, person_id: str, member: str) -> None:
        """Remove a contact counted by `reserve` (the action reached nobody on its own)."""
        self.client.zrem(f"contacts:{person_id}", member)


class RateLimiter:
    def __init__(self, client: redis.Redis, channel: str, per_second: float):
        self.interval = 1.0 / per_second
        burst = max(1, math.floor(per_second))  # up to one second's capacity at once
        self.tolerance = (burst - 1) * self.interval
        self.key = f"rate:{channel}"
        self._script = client.register_script(_RATE)

    def reserve(self, now: float) -> float:
        """The slot reserved for one send: <= now means send now, else at that time."""
        return float(self._script(keys=[self.key], args=[now, self.interval, self.tolerance]))
