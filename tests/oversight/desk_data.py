"""Desk tasks for the desk tests: synthetic actions recorded straight into a ledger database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from oversight.desk.tasks import holder_of, record_task
from streams.contracts.actions import Action, Channel, Target
from streams.contracts.alerts import Jurisdiction, Tier
from streams.contracts.common import Typology
from streams.routing import get_routing

PHONE = "+8613800000001"  # synthetic: the 138-0000 range is not assigned to anyone here


def desk_action(channel: Channel = Channel.police_visit, *, station: str = "ZK01-PS01", county: str = "ZK01",
                tier: Tier = Tier.funds_warning, priority: int = 0, deadline_in: timedelta = timedelta(minutes=30),
                attempt: int = 1, typology: Typology = Typology.impersonate_police) -> Action:
    now = datetime.now(UTC)
    alert_id = f"AL-desk-{uuid.uuid4().hex[:10]}"
    return Action(
        action_id=f"{alert_id}:1:{channel.value}:initial", alert_id=alert_id, alert_version=1,
        person_id=f"P-{uuid.uuid4().hex[:10]}", channel=channel, tier=tier, typology=typology,
        target=Target(station=station) if channel is Channel.police_visit else Target(phone=PHONE),
        jurisdiction=Jurisdiction(county=county, station=station, grid=f"{station}-G01"), priority=priority,
        deadline=now + deadline_in, script_key=get_routing().script_for(typology), reason="initial", attempt=attempt,
        created_at=now,
    )


def task_id_of(action: Action) -> str:
    return f"{action.action_id}:{action.attempt}"


def recorded(engine, action: Action, hotline_team: str = "96110") -> str:
    """Record the action's task as the desk gateway does; its task id."""
    with engine.begin() as conn:
        record_task(conn, action, task_id_of(action), holder_of(action, get_routing().duty_desks, hotline_team),
                    datetime.now(UTC))
    return task_id_of(action)
