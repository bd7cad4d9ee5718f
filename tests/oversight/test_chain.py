"""The warning chain's steps (oversight.chain), as the console's timeline and the audit show them."""

from __future__ import annotations

from datetime import timedelta

from ledger_data import ledger_rows

from channels.visits import carried_outcome
from dissuasion_builders import alert, new_person, outcome, planned_visit
from oversight import records
from oversight.chain import Chain
from streams.contracts.actions import Result
from streams.contracts.alerts import Jurisdiction, Tier


def test_a_visit_to_a_duty_desk_says_why_and_a_carried_visit_names_the_visit_that_carried_it():
    person = new_person()
    unplaced = Jurisdiction(county="unknown", station="unknown", grid="unknown")
    funds = alert(person, Tier.funds_warning, alert_id=f"{person}-F-ev1", jurisdiction=unplaced, identity_resolved=False)
    high = alert(person, Tier.high, alert_id=f"{person}-A1", at=funds.alert_at + timedelta(minutes=2),
                 jurisdiction=unplaced, identity_resolved=False)
    emergency, visit = planned_visit(funds), planned_visit(high)
    reported = outcome(emergency, Result.dissuaded, at=high.alert_at + timedelta(minutes=10))
    carried = carried_outcome(visit, f"{visit.action_id}:1", reported)
    chain = Chain(alerts=ledger_rows(records.alert_rows, funds)[:1] + ledger_rows(records.alert_rows, high)[:1],
                  actions=ledger_rows(records.action_rows, emergency) + ledger_rows(records.action_rows, visit),
                  outcomes=ledger_rows(records.outcome_rows, reported) + ledger_rows(records.outcome_rows, carried))
    steps = {s.ref: s for s in chain.steps()}
    desk = "no registered home, cell or branch, county unknown: city centre duty desk"
    for action in (emergency, visit):
        assert steps[action.action_id].unit == "station:ZK-CENTRE-DUTY"
        assert steps[action.action_id].summary.endswith(f"; {desk}")
    assert steps[reported.outcome_id].summary == "police_visit: dissuaded"
    assert steps[carried.outcome_id].summary == f"police_visit: dissuaded (carried by the visit for alert {funds.alert_id})"
    assert steps[carried.outcome_id].alert_id == high.alert_id
