"""Writes scripted stories straight into a ledger database, as the sink would (no broker needed)."""

from __future__ import annotations

import msgspec

from oversight.records import RECORD_KINDS, decode
from oversight.writer import write_batch

CONTRACT_OF = {"alerts": "Alert", "outcomes": "Outcome", "escalations": "Escalation", "bank_requests": "BankRequest",
               "bank_acks": "BankAck", "carrier_requests": "CarrierRequest", "carrier_acks": "CarrierAck",
               "norm_case": "Ingested[CaseReport]", "audits": "AuditRecord", "followup_tasks": "FollowupTask",
               "followup_outcomes": "FollowupOutcome"}


def contract_of(topic_id: str) -> str:
    return "Action" if topic_id.startswith("actions_") else CONTRACT_OF[topic_id]


def load(engine, stories) -> None:
    batch = [decode(RECORD_KINDS[contract_of(topic_id)], msgspec.json.encode(record))
             for story in stories for topic_id, _key, record in story.records]
    with engine.begin() as conn:
        write_batch(conn, batch)


def ledger_rows(rows_of, record) -> list[dict]:
    """The rows the sink writes for one record (an oversight.records *_rows function), without a database."""
    return [row for _table, row in rows_of(record, msgspec.json.encode(record).decode())]
