"""Alert statuses (oversight.status) derived from the rows the ledger writes for the records."""

from __future__ import annotations

from datetime import timedelta

from ledger_data import ledger_rows

from channels.visits import carried_outcome
from dissuasion_builders import alert, new_person, outcome, planned_visit
from oversight import records, status
from streams.contracts.actions import Result
from streams.contracts.alerts import Tier


def test_an_alert_whose_visit_was_carried_by_another_alerts_visit_is_dissuaded_in_the_ledger():
    person = new_person()
    funds = alert(person, Tier.funds_warning, alert_id=f"{person}-F-ev1")
    high = alert(person, Tier.high, alert_id=f"{person}-A1", at=funds.alert_at + timedelta(minutes=2))
    visits = {a.alert_id: planned_visit(a) for a in (funds, high)}
    reported = outcome(visits[funds.alert_id], Result.dissuaded, at=high.alert_at + timedelta(minutes=10))
    carried = carried_outcome(visits[high.alert_id], f"{visits[high.alert_id].action_id}:1", reported)
    for a, o in ((funds, reported), (high, carried)):
        row = status.derive(ledger_rows(records.alert_rows, a)[:1], ledger_rows(records.action_rows, visits[a.alert_id]),
                            ledger_rows(records.outcome_rows, o), [], [], [])
        assert (row["alert_id"], row["status"], row["channels"]) == (a.alert_id, "dissuaded", "police_visit")
        assert row["dissuaded_at"] == row["first_contact_at"]
