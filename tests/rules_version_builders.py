"""Rules versions for tests: the shipped files under another version id, with edits."""

from __future__ import annotations

from datetime import UTC, datetime

from streams.contracts.rules_versions import RulesVersion
from streams.settings import PROJECT_ROOT

SHIPPED_RULES = (PROJECT_ROOT / "rules.yaml").read_text(encoding="utf-8")
SHIPPED_ROUTING = (PROJECT_ROOT / "routing.yaml").read_text(encoding="utf-8")
SMS_LINE = "      - {channel: sms, priority: 5, sla_s: 300}\n"
# The low tier also pushes through the app: an action only this routing plans.
ROUTING_WITH_LOW_PUSH = SHIPPED_ROUTING.replace(SMS_LINE, SMS_LINE + "      - {channel: app_push, priority: 5, sla_s: 300}\n", 1)
# Every funds warning needs an emergency visit at priority 0: this routing breaks that rule.
ROUTING_WITHOUT_EMERGENCY_VISIT = SHIPPED_ROUTING.replace(
    "      - {channel: police_visit, priority: 0, sla_s: 1800, attempts: 2, sla_tracked: true}",
    "      - {channel: hotline_call, priority: 0, sla_s: 1800}", 1)


def rules_text(version: str, rules: str = SHIPPED_RULES) -> str:
    shipped = next(line for line in rules.splitlines() if line.startswith("version:"))
    return rules.replace(shipped, f'version: "{version}"', 1)


def version(version_id: str, routing: str = SHIPPED_ROUTING, rules: str | None = None,
            by: str = "analyst-7", why: str = "test") -> RulesVersion:
    return RulesVersion(version=version_id, rules=rules if rules is not None else rules_text(version_id),
                        routing=routing, published_by=by, published_at=datetime.now(UTC), why=why)
