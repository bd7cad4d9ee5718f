"""Send claims: one Valkey key per action attempt, so a citizen is contacted at most once.

    (no key) --SET NX--> sending(owner, since) --CAS--> done(outcome)
                                             or  --CAS--> handed (a desk task: its outcome comes from the desk)

- Only the worker whose SET NX created the key may send.
- The outcome is stored in the claim *before* it is produced to Kafka: a crash between
  the two is healed by the redelivery, which finds `done` and produces the stored
  outcome again (same outcome_id, same bytes).
- A claim still `sending` after the send lease belonged to a worker that died mid-send.
  Nobody knows whether the citizen was reached, so the action is never sent again: the
  finder writes a failed outcome that says so. Writing `done` is a compare-and-set on
  the exact `sending` record, so if the original sender does finish after all, exactly
  one outcome wins and every worker produces that one.

Keys live for channel_claim_ttl_s, longer than the action topics keep records, so a
replay of a whole topic is always recognised.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import msgspec
import redis

from streams.contracts.actions import Outcome

_FINISH = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 'OK'
end
return current
"""


class ClaimState(str, Enum):
    sending = "sending"
    done = "done"
    handed = "handed"  # recorded as a desk task (channels.gateways.desk); the desk produces its outcome


class ClaimRecord(msgspec.Struct, forbid_unknown_fields=True):
    state: ClaimState
    owner: str  # worker instance that claimed it
    since: float  # epoch seconds the send started
    outcome: Outcome | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    raw: bytes  # the stored bytes, for compare-and-set
    record: ClaimRecord


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(ClaimRecord).decode


def claim_key(outcome_id: str) -> str:
    return f"claim:{outcome_id}"


class ClaimStore:
    def __init__(self, client: redis.Redis, ttl_s: int):
        self.client, self.ttl_s = client, ttl_s
        self._finish = client.register_script(_FINISH)

    def get(self, outcome_id: str) -> Claim | None:
        raw = self.client.get(claim_key(outcome_id))
        return Claim(raw, _decode(raw)) if raw is not None else None

    def claim(self, outcome_id: str, owner: str, now: float) -> tuple[bool, Claim]:
        """(True, our claim) when we may send; (False, the existing claim) when someone already did."""
        record = ClaimRecord(ClaimState.sending, owner, now)
        raw = _encode(record)
        previous = self.client.set(claim_key(outcome_id), raw, nx=True, ex=self.ttl_s, get=True)
        if previous is None:
            return True, Claim(raw, record)
        return False, Claim(previous, _decode(previous))

    def hand_over(self, outcome_id: str, sending: Claim) -> ClaimRecord:
        """Mark `sending` as handed to the desk unless another record replaced it; returns the one that stands."""
        handed = ClaimRecord(ClaimState.handed, sending.record.owner, sending.record.since)
        result = self._finish(keys=[claim_key(outcome_id)], args=[sending.raw, _encode(handed), self.ttl_s])
        return handed if result == b"OK" else _decode(result)

    def finish(self, outcome_id: str, sending: Claim, outcome: Outcome) -> Outcome:
        """Store the outcome unless another already replaced `sending`; returns the outcome that stands."""
        done = _encode(ClaimRecord(ClaimState.done, sending.record.owner, sending.record.since, outcome))
        result = self._finish(keys=[claim_key(outcome_id)], args=[sending.raw, done, self.ttl_s])
        if result == b"OK":
            return outcome
        winner = _decode(result)
        if winner.outcome is None:  # cannot happen: only `done` replaces `sending`
            raise RuntimeError(f"claim {outcome_id} changed to {winner.state} without an outcome")
        return winner.outcome
