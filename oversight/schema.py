"""The ledger's tables (SQLAlchemy Core). migrations/ creates them; a test keeps both in step.

Every record table is keyed by the record's own id, so writing a record twice is a no-op.
Times are stored as naive UTC. `payload` keeps the record exactly as it was published.
`alert_status` is derived: recomputed from the records of an alert whenever one of them
arrives, so it does not depend on the order topics were read in (a rebuild gets the same).
`access_log` and `followup_runs` are the only tables not rebuilt from topics.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)

metadata = MetaData()

ID = 255  # alert ids join a person id and an event id (64 each) and more


def _id(name: str, **kw) -> Column:
    return Column(name, String(ID), **kw)


alerts = Table(
    "alerts",
    metadata,
    _id("alert_id", primary_key=True),
    Column("version", Integer, primary_key=True),
    _id("person_id", nullable=False),
    Column("tier", String(16), nullable=False),
    Column("typology", String(32), nullable=False),
    Column("score", Float, nullable=False),
    Column("county", String(32), nullable=False),
    Column("station", String(32), nullable=False),
    Column("grid", String(32), nullable=False),
    Column("phone", String(32)),
    Column("elderly", Boolean, nullable=False),
    Column("student", Boolean, nullable=False),
    Column("first_signal_at", DateTime, nullable=False),
    Column("alert_at", DateTime, nullable=False),
    Column("rules_version", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Index("ix_alerts_person", "person_id"),
    Index("ix_alerts_phone", "phone"),
)

# Reach-back (回溯预警): one row per alert version that late intelligence raised (Alert.reach_back),
# the entry and the contact it caught. A side table rather than columns on `alerts`: only retro
# versions have the facts, and the console counts them per intel source without reading payloads.
# A version is retro exactly when it has a row here.
alert_reach_back = Table(
    "alert_reach_back",
    metadata,
    _id("alert_id", primary_key=True),
    Column("version", Integer, primary_key=True),
    _id("person_id", nullable=False),
    Column("kind", String(32), nullable=False),  # the entry's list (IntelKind)
    Column("source", String(64), nullable=False),  # who listed it (intel update's source)
    Column("listed_at", DateTime, nullable=False),
    Column("contacted_at", DateTime, nullable=False),
    _id("event_id", nullable=False),  # the signal that touched the entry
    Column("county", String(32), nullable=False),
    Column("station", String(32), nullable=False),
    Index("ix_alert_reach_back_source", "source"),
)

alert_accounts = Table(
    "alert_accounts",
    metadata,
    _id("alert_id", primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("bank", String(32), primary_key=True),
    Column("account", String(64), primary_key=True),
    _id("person_id", nullable=False),
    Index("ix_alert_accounts_account", "account"),
)

actions = Table(
    "actions",
    metadata,
    _id("action_id", primary_key=True),
    _id("alert_id", nullable=False),
    Column("alert_version", Integer, nullable=False),
    _id("person_id", nullable=False),
    Column("channel", String(32), nullable=False),
    Column("tier", String(16), nullable=False),
    Column("county", String(32), nullable=False),
    Column("station", String(32), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("deadline", DateTime, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("created_at", DateTime),
    Column("payload", Text, nullable=False),
    Index("ix_actions_alert", "alert_id"),
)

outcomes = Table(
    "outcomes",
    metadata,
    _id("outcome_id", primary_key=True),
    _id("action_id", nullable=False),
    _id("alert_id", nullable=False),
    _id("person_id", nullable=False),
    Column("channel", String(32), nullable=False),
    Column("result", String(16), nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("payload", Text, nullable=False),
    Index("ix_outcomes_alert", "alert_id"),
    Index("ix_outcomes_action", "action_id"),
)

escalations = Table(
    "escalations",
    metadata,
    _id("escalation_id", primary_key=True),
    _id("alert_id", nullable=False),
    _id("person_id", nullable=False),
    Column("reason", String(32), nullable=False),
    Column("tier", String(16), nullable=False),
    Column("county", String(32), nullable=False),
    Column("station", String(32), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("payload", Text, nullable=False),
    Index("ix_escalations_alert", "alert_id"),
)

# Which alert a bank request serves: from the escalations that set it off (requests name
# the alert only by an opaque per-bank reference).
bank_request_alerts = Table(
    "bank_request_alerts",
    metadata,
    _id("request_id", primary_key=True),
    _id("alert_id", primary_key=True),
    _id("escalation_id", nullable=False),
    Index("ix_bank_request_alerts_alert", "alert_id"),
)

bank_requests = Table(
    "bank_requests",
    metadata,
    _id("request_id", primary_key=True),
    Column("bank", String(32), nullable=False),
    Column("account", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("reason_code", String(32), nullable=False),
    Column("alert_ref", String(32), nullable=False),
    Column("issued_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("payload", Text, nullable=False),
    Index("ix_bank_requests_account", "account"),
)

bank_acks = Table(
    "bank_acks",
    metadata,
    _id("request_id", primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("bank", String(32), nullable=False),
    Column("acked_at", DateTime, nullable=False),
    Column("reason", String(32)),
    Column("payload", Text, nullable=False),
)

carrier_requests = Table(
    "carrier_requests",
    metadata,
    _id("request_id", primary_key=True),
    Column("carrier", String(32), nullable=False),
    Column("phone", String(32), nullable=False),
    Column("reason_code", String(32), nullable=False),
    Column("issued_at", DateTime, nullable=False),
    Column("payload", Text, nullable=False),
    Index("ix_carrier_requests_phone", "phone"),
)

carrier_acks = Table(
    "carrier_acks",
    metadata,
    _id("request_id", primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("carrier", String(32), nullable=False),
    Column("acked_at", DateTime, nullable=False),
    Column("payload", Text, nullable=False),
)

case_reports = Table(
    "case_reports",
    metadata,
    _id("event_id", primary_key=True),
    Column("case_id", String(32), nullable=False),
    Column("typology", String(32), nullable=False),
    Column("county", String(32), nullable=False),
    Column("station", String(32), nullable=False),
    Column("victim_phone", String(32)),
    Column("victim_account", String(64)),
    Column("loss_amount", Numeric(14, 2)),
    Column("occurred_at", DateTime, nullable=False),
    Column("filed_at", DateTime, nullable=False),
    Column("payload", Text, nullable=False),
    Index("ix_case_reports_case", "case_id"),
)

audits = Table(
    "audits",
    metadata,
    _id("audit_id", primary_key=True),
    Column("case_id", String(32), nullable=False),
    _id("person_id", nullable=False),
    Column("typology", String(32), nullable=False),
    Column("county", String(32), nullable=False),
    Column("station", String(32), nullable=False),
    Column("filed_at", DateTime, nullable=False),
    Column("findings", Integer, nullable=False),
    Column("payload", Text, nullable=False),
    Index("ix_audits_person", "person_id"),
)

# One row per broken step, for counting per unit.
audit_findings = Table(
    "audit_findings",
    metadata,
    _id("audit_id", primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("problem", String(48), nullable=False),
    Column("unit", String(64), nullable=False),
    _id("alert_id", nullable=False),
    Column("county", String(32), nullable=False),
    Column("station", String(32), nullable=False),
    Index("ix_audit_findings_unit", "unit"),
)

followup_tasks = Table(
    "followup_tasks",
    metadata,
    _id("task_id", primary_key=True),
    _id("person_id", nullable=False),
    _id("alert_id", nullable=False),
    Column("county", String(32), nullable=False),
    Column("station", String(32), nullable=False),
    Column("period_start", DateTime, nullable=False),
    Column("due_at", DateTime, nullable=False),
    Column("payload", Text, nullable=False),
    Index("ix_followup_tasks_alert", "alert_id"),
)

followup_outcomes = Table(
    "followup_outcomes",
    metadata,
    _id("followup_outcome_id", primary_key=True),
    _id("task_id", nullable=False),
    _id("alert_id", nullable=False),
    _id("person_id", nullable=False),
    Column("station", String(32), nullable=False),
    Column("result", String(16), nullable=False),
    Column("visited_at", DateTime, nullable=False),
    Column("payload", Text, nullable=False),
    Index("ix_followup_outcomes_alert", "alert_id"),
)

# Every publication of a rules version (a rollback is one too): who, when, why; payload holds both documents.
rules_publications = Table(
    "rules_publications",
    metadata,
    Column("publication_id", String(128), primary_key=True),  # version@published_at
    Column("version", String(64), nullable=False),
    Column("published_by", String(64), nullable=False),
    Column("published_at", DateTime, nullable=False),
    Column("why", Text, nullable=False),
    Column("rollback_from", String(64), nullable=True),
    Column("payload", Text, nullable=False),
    Index("ix_rules_publications_version", "version"),
)

# Every setting of the shadow (docs/rules.md, Shadow): the candidate put in shadow, or none (stopped).
rules_shadows = Table(
    "rules_shadows",
    metadata,
    Column("shadow_id", String(128), primary_key=True),  # set_at, and the candidate's version (or "stopped")
    Column("version", String(64), nullable=True),  # None: the shadow was stopped
    Column("set_by", String(64), nullable=False),
    Column("set_at", DateTime, nullable=False),
    Column("why", Text, nullable=False),
    Column("payload", Text, nullable=False),
)

# The alerts the candidate in shadow raised: never routed, compared with `alerts` on the console.
shadow_alerts = Table(
    "shadow_alerts",
    metadata,
    _id("alert_id", primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("rules_version", String(64), primary_key=True),  # the candidate's: ids repeat across candidates
    _id("person_id", nullable=False),
    Column("tier", String(16), nullable=False),
    Column("typology", String(32), nullable=False),
    Column("county", String(32), nullable=False),
    Column("station", String(32), nullable=False),
    Column("alert_at", DateTime, nullable=False),
    Column("payload", Text, nullable=False),
    Index("ix_shadow_alerts_alert_at", "alert_at"),
)

# Derived: one row per alert, recomputed from its records (oversight.status).
alert_status = Table(
    "alert_status",
    metadata,
    _id("alert_id", primary_key=True),
    _id("person_id", nullable=False),
    Column("version", Integer, nullable=False),
    Column("tier", String(16), nullable=False),
    Column("typology", String(32), nullable=False),
    Column("county", String(32), nullable=False),
    Column("station", String(32), nullable=False),
    Column("grid", String(32), nullable=False),
    Column("alert_at", DateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("channels", String(256), nullable=False),
    Column("first_contact_at", DateTime),
    Column("dissuaded_at", DateTime),
    Column("sla_breaches", Integer, nullable=False),
    Column("escalations", Integer, nullable=False),
    Column("reopened", Boolean, nullable=False),
    Column("case_filed", Boolean, nullable=False),
    Index("ix_alert_status_alert_at", "alert_at"),
    Index("ix_alert_status_area", "county", "station"),
    Index("ix_alert_status_person", "person_id"),
)

# Written by the console, never rebuilt: every reveal of a phone number.
access_log = Table(
    "access_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("unit", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("path", String(256), nullable=False),
    _id("alert_id", nullable=False),
    _id("person_id", nullable=False),
    Column("field", String(32), nullable=False),
    Column("actor", String(64)),  # the signed-in desk user (oversight/desk/people.py); None for a unit token
)

# Written by the follow-up sampler: a period is sampled once.
followup_runs = Table(
    "followup_runs",
    metadata,
    Column("period_start", DateTime, primary_key=True),
    Column("period_end", DateTime, nullable=False),
    Column("ran_at", DateTime, nullable=False),
    Column("seed", Integer, nullable=False),
    Column("candidates", Integer, nullable=False),
    Column("sampled", Integer, nullable=False),
)

# The dissuasion desk (oversight/desk/): one task per human action handed to it, held by one unit,
# worked by people, closed by exactly one outcome (the Outcome produced, as JSON). Written by the
# channel worker and the desk API, never rebuilt from topics: taking and closing are the desk's own.
desk_tasks = Table(
    "desk_tasks",
    metadata,
    _id("task_id", primary_key=True),  # = the outcome id: action id and attempt
    _id("action_id", nullable=False),
    _id("alert_id", nullable=False),
    Column("alert_version", Integer, nullable=False),
    _id("person_id", nullable=False),
    Column("channel", String(16), nullable=False),
    Column("tier", String(16), nullable=False),
    Column("typology", String(32), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("deadline", DateTime, nullable=False),
    Column("script_key", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("holder_role", String(16), nullable=False),  # station, county, centre, hotline
    Column("holder_code", String(64), nullable=False),
    Column("county", String(32), nullable=False),
    Column("station", String(32), nullable=False),
    Column("grid", String(32), nullable=False),
    Column("phone", String(32)),  # hotline calls only; shown masked
    Column("station_reason", Text),
    Column("created_at", DateTime, nullable=False),
    Column("state", String(16), nullable=False),  # open -> closing -> closed
    Column("assignee", String(64)),
    Column("closing_since", DateTime),
    Column("closed_by", String(64)),
    Column("closed_at", DateTime),
    Column("outcome", Text),
    Index("ix_desk_tasks_holder", "holder_role", "holder_code", "state"),
    Index("ix_desk_tasks_due", "state", "deadline"),
    Index("ix_desk_tasks_alert", "alert_id"),
)

# The desk's people: users with a role in a unit (argon2id password hashes) and their sessions
# (the SHA-256 of each session token, never the token).
desk_users = Table(
    "desk_users",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("unit", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
)

desk_sessions = Table(
    "desk_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Index("ix_desk_sessions_user", "user_id"),
)

# A reverse audit's written explanation (预警成案倒查: why a warned resident became a case anyway), one
# per audit and accountable unit, written at the desk (oversight/desk/explanations.py); written once.
audit_explanations = Table(
    "audit_explanations",
    metadata,
    _id("audit_id", primary_key=True),
    Column("unit", String(64), primary_key=True),  # the accountable unit that wrote it
    Column("text", Text, nullable=False),
    Column("written_by", String(64), nullable=False),  # the signed-in user, or the unit for a unit token
    Column("written_at", DateTime, nullable=False),
)

NOT_REBUILT = ("access_log", "followup_runs", "desk_tasks", "desk_users", "desk_sessions", "audit_explanations")
REBUILT_TABLES = [t for t in metadata.sorted_tables if t.name not in NOT_REBUILT]
