"""One officer at the door: a visit under way carries the person's other alerts.

    visit:<person_id> = {outcome id, alert id}   the person's visit under way, or their last one

Two alerts of one person minutes apart (a funds warning and a high alert, often from the same
transfer) each plan a police visit of their own: routing keeps one action per alert, tier and
channel, so each alert keeps its own deadline, retries and record. Only the first goes to the
door. Before the police-visit worker sends a visit it takes the person's visit record; a visit
for another alert of the person that comes while that visit is under way (its send claim is
`sending`), or that was raised before the visit ended (the officer was still out), is carried by
it: it is not sent, and its outcome is the carrying visit's result, naming that visit. Escalation
(retries, SLA, bank protection, closing) and the ledger then treat each alert as ever.

Never carried: a visit of the same alert (a retry or an escalation of it) and a supervisor visit
(`sla_breach`: sent because a visit was not confirmed in time). A record whose visit ended before
this alert was raised, was interrupted (its claim outlived the send lease) or is gone is taken
over: when in doubt a second visit, never none. docs/dissuasion.md says why this rule is the
channel's and not route's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import msgspec
import redis

from channels.claims import ClaimRecord, ClaimState
from streams.contracts.actions import Action, Outcome

SUPERVISOR_REASON = "sla_breach"  # streams.escalation: a visit sent because another was not confirmed in time

# Take the record if it is still what the caller looked at (ARGV[1], '' for none): two visits
# that both saw the same stale record cannot both take it.
_TAKE = """
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


class VisitRecord(msgspec.Struct, forbid_unknown_fields=True):
    oid: str  # the outcome id (send claim) of the visit
    alert_id: str


@dataclass(frozen=True, slots=True)
class SeenVisit:
    raw: bytes  # the stored bytes, for compare-and-set
    record: VisitRecord


class Verdict(str, Enum):
    take = "take"  # nobody is at the door: this visit goes and becomes the person's visit
    alone = "alone"  # goes on its own and leaves the record to the visit under way (same alert, supervisor)
    wait = "wait"  # another alert's visit is under way: this one is carried once its outcome is in
    carried = "carried"  # the person's visit ended after this alert was raised: it answered for it


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(VisitRecord).decode


def visit_key(person_id: str) -> str:
    return f"visit:{person_id}"


def decide(action: Action, holder: VisitRecord | None, holder_claim: ClaimRecord | None, now: float,
           lease_s: float) -> Verdict:
    """What to do with a visit, given the person's visit record and that visit's send claim."""
    if holder is None or holder_claim is None:
        return Verdict.take
    under_way = holder_claim.state is ClaimState.sending and now - holder_claim.since < lease_s
    if holder.alert_id == action.alert_id or action.reason == SUPERVISOR_REASON:
        return Verdict.alone if under_way else Verdict.take
    if under_way:
        return Verdict.wait
    ended = holder_claim.outcome.finished_at if holder_claim.outcome is not None else None
    if ended is not None and action.created_at is not None and action.created_at < ended:
        return Verdict.carried
    return Verdict.take  # it ended before this alert was raised, or was interrupted


def carried_outcome(action: Action, outcome_id: str, carrier: Outcome) -> Outcome:
    """The carried visit's own outcome: the carrying visit's result and times, naming that visit."""
    return Outcome(
        outcome_id=outcome_id, action_id=action.action_id, alert_id=action.alert_id, person_id=action.person_id,
        channel=action.channel, result=carrier.result, started_at=carrier.started_at,
        finished_at=carrier.finished_at, attempt=action.attempt,
        # The carrier's detail is scrubbed already; the ids are not scrubbed (a digit run in one is no phone).
        detail=f"carried by the visit for alert {carrier.alert_id} ({carrier.outcome_id}), one visit for both: "
               f"{carrier.detail}",
    )


class VisitStore:
    def __init__(self, client: redis.Redis, ttl_s: int):
        self.client, self.ttl_s = client, ttl_s
        self._take = client.register_script(_TAKE)

    def get(self, person_id: str) -> SeenVisit | None:
        raw = self.client.get(visit_key(person_id))
        return SeenVisit(raw, _decode(raw)) if raw is not None else None

    def take(self, person_id: str, record: VisitRecord, seen: SeenVisit | None) -> bool:
        """Make `record` the person's visit, unless the record changed since `seen` was read."""
        expected = seen.raw if seen is not None else b""
        return self._take(keys=[visit_key(person_id)], args=[expected, _encode(record), self.ttl_s]) == 1
