"""Score a replayed version against the case reports: recall per tier, load per 10,000 residents, lead time.

Positives are the persons who became cases (预警成案 reports in the history). A case is
recalled at a tier when one of its victim's person ids got an alert of that tier or higher
before the case was filed; it was warned in time when the first alert came no later than
the fraud itself (the case's occurred_at). Load is normalized per 10,000 residents and per
week, so a history of another length or a --from/--to slice compares.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from backtest.replay import Raised, Replayed, VersionRun
from streams.contracts.actions import Channel
from streams.contracts.alerts import TIER_RANK, Tier
from streams.dissuasion import CONTACT_CHANNELS

WEEK_S = 7 * 86400
TIERS = sorted(Tier, key=TIER_RANK.get)


@dataclass
class Scores:
    name: str
    rules_version: str
    cases: int
    recall: dict[Tier, float]  # share of cases warned at this tier or higher before they were filed
    in_time: float  # share of cases whose first alert came at or before the fraud
    lead_minutes: list[float]  # per recalled case: from the first alert to the fraud (negative: after it)
    to_filing_minutes: list[float]  # per recalled case: from the first alert to the case report
    alerts_per_10k: dict[Tier, float]  # alert versions per 10,000 residents and week
    alerted_per_10k: float  # distinct persons alerted
    actions_per_10k: dict[Channel, float]
    contacts_per_10k: float  # actions that reach a person (not line suspensions)
    victims_recall: float  # share of simulated fraud victims alerted at all (the ground truth, not only cases)
    alerted_not_victims_per_10k: float  # persons alerted who were no simulated victim
    per_case: dict[str, Tier | None] = field(default_factory=dict)  # case id -> highest tier before filing

    @property
    def median_lead_minutes(self) -> float | None:
        return statistics.median(self.lead_minutes) if self.lead_minutes else None

    @property
    def median_to_filing_minutes(self) -> float | None:
        return statistics.median(self.to_filing_minutes) if self.to_filing_minutes else None


def score(run: VersionRun, replayed: Replayed) -> Scores:
    span_s = max(replayed.end - replayed.start, 1.0)
    per_10k_week = 10_000 / replayed.residents * WEEK_S / span_s
    by_person: dict[str, list[Raised]] = {}
    for alert in run.alerts:
        by_person.setdefault(alert.person_id, []).append(alert)
    per_case: dict[str, Tier | None] = {}
    leads: list[float] = []
    to_filing: list[float] = []
    in_time = 0
    for case in replayed.cases:
        before = [a for p in case.persons for a in by_person.get(p, []) if a.at <= case.filed_at]
        per_case[case.case_id] = max((a.tier for a in before), key=TIER_RANK.get, default=None)
        if before:
            first = min(a.at for a in before)
            leads.append((case.occurred_at - first) / 60)
            to_filing.append((case.filed_at - first) / 60)
            in_time += first <= case.occurred_at
    n = len(replayed.cases)
    recall = {t: _share(sum(1 for got in per_case.values() if got and TIER_RANK[got] >= TIER_RANK[t]), n)
              for t in TIERS}
    alerts_by_tier = {t: sum(1 for a in run.alerts if a.tier is t) * per_10k_week for t in TIERS}
    victims = {t.person_id for t in replayed.truths}
    return Scores(
        name=run.name, rules_version=run.rules.version, cases=n, recall=recall, in_time=_share(in_time, n),
        lead_minutes=leads, to_filing_minutes=to_filing, alerts_per_10k=alerts_by_tier, alerted_per_10k=len(by_person) * per_10k_week,
        actions_per_10k={ch: run.actions.get(ch, 0) * per_10k_week for ch in Channel},
        contacts_per_10k=sum(run.actions.get(ch, 0) for ch in CONTACT_CHANNELS) * per_10k_week,
        victims_recall=_share(len(victims & by_person.keys()), len(victims)),
        alerted_not_victims_per_10k=len(by_person.keys() - victims) * per_10k_week, per_case=per_case,
    )


def _share(k: int, n: int) -> float:
    return k / n if n else 0.0


def cases_recalled(scores: Scores, tier: Tier) -> list[str]:
    """Case ids warned at `tier` or higher before filing (what a test or an analyst looks up)."""
    return sorted(c for c, got in scores.per_case.items() if got and TIER_RANK[got] >= TIER_RANK[tier])

