"""routing.yaml and banks.yaml: the dissuasion policy and the partner list, loaded and validated.

A mistake in either file fails on load with the file, the line and what is wrong, so the
anti-fraud centre can change a rule without reading Python. The per-bank request topics
in topics.yaml are generated from banks.yaml by render_bank_topics();
`python -m streams.routing` rewrites them and tests/streams/test_routing.py fails while
topics.yaml is stale.
"""

from __future__ import annotations

import re
import sys
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from streams.contracts.actions import Channel
from streams.contracts.alerts import TIER_RANK, Tier
from streams.contracts.common import Typology
from streams.contracts.dissuasion import BankMeasure
from streams.contracts.signals import Carrier
from streams.settings import PROJECT_ROOT, Settings, get_settings
from streams.signing import derive_dev_key, dev_secret, load_key
from streams.yamlconfig import ConfigError, parse_yaml, validate

TOPICS_BEGIN = "  # >>> generated: bank request topics"
TOPICS_END = "  # <<< generated"
REGENERATE = "python -m streams.routing"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------- routing.yaml
class ActionRule(_Strict):
    channel: Channel
    priority: int = Field(ge=0, le=9)
    sla_s: float = Field(gt=0)
    attempts: int = Field(1, ge=1, le=5, description="Attempts while the person is not reached.")
    sla_tracked: bool = False


class TierRule(_Strict):
    actions: tuple[ActionRule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_action_per_channel(self) -> TierRule:
        channels = [a.channel for a in self.actions]
        if len(set(channels)) != len(channels):
            raise ValueError("a channel appears twice in one tier")
        return self


class SupervisorVisit(_Strict):
    sla_s: float = Field(gt=0)
    max_per_alert: int = Field(ge=0)


class EscalationPolicy(_Strict):
    next_tier: dict[Tier, Tier]
    supervisor_visit: SupervisorVisit
    alert_expiry_s: float = Field(gt=0)
    closed_retention_s: float = Field(ge=0)
    timer_interval_s: float = Field(gt=0, le=60)

    @model_validator(mode="after")
    def _ladder_goes_up(self) -> EscalationPolicy:
        for lower, higher in self.next_tier.items():
            if TIER_RANK[higher] <= TIER_RANK[lower]:
                raise ValueError(f"next_tier: {lower.value} must escalate to a higher tier, not {higher.value}")
        return self


class BankRequestPolicy(_Strict):
    measures: tuple[BankMeasure, ...] = Field(min_length=1)
    expires_s: float = Field(gt=0)
    renew_before_s: float = Field(ge=0)
    max_renewals: int = Field(ge=0, le=10)


class LineSuspensionPolicy(_Strict):
    expires_s: float = Field(gt=0)


# Unit codes as the registry writes them (streams.contracts.common.Code): letters, digits, - and _.
UNIT_CODE = r"^[A-Za-z0-9_-]{1,32}$"
# What enrich and correlate write where the evidence placed the person nowhere.
UNPLACED = frozenset({"", "unknown"})


class DutyDesks(_Strict):
    """值班台: the units that take a visit no police station can be placed for.

    A person not in the registry whose cell and bank branch are not registered either has
    the station "unknown"; a visit sent there reaches nobody. The county bureau's duty desk
    takes it when the evidence gave a county, else the city anti-fraud centre's, which is
    always there.
    """

    city_centre: str = Field(pattern=UNIT_CODE)
    counties: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _codes(self) -> DutyDesks:
        for county, desk in self.counties.items():
            if not re.fullmatch(UNIT_CODE, county) or county in UNPLACED:
                raise ValueError(f"counties: {county!r} is not a county code")
            if not re.fullmatch(UNIT_CODE, desk) or desk in UNPLACED:
                raise ValueError(f"counties.{county}: {desk!r} is not a unit code")
        desks = [*self.counties.values(), self.city_centre]
        shared = sorted({d for d in desks if desks.count(d) > 1})
        if shared:
            # Two units behind one code: oversight could not tell which of them held the visit.
            raise ValueError(f"duty desk {', '.join(shared)} is named twice")
        if self.city_centre in UNPLACED:
            raise ValueError("city_centre: a duty desk needs a unit code")
        return self


class Routing(_Strict):
    tiers: dict[Tier, TierRule]
    escalation: EscalationPolicy
    bank_requests: BankRequestPolicy
    line_suspension: LineSuspensionPolicy
    duty_desks: DutyDesks
    scripts: dict[str, str]

    @model_validator(mode="after")
    def _complete(self) -> Routing:
        missing = [t.value for t in Tier if t not in self.tiers]
        if missing:
            raise ValueError(f"tiers: no rule for {', '.join(missing)}")
        emergency = [a for a in self.tiers[Tier.funds_warning].actions if a.channel is Channel.police_visit]
        if not emergency or emergency[0].priority != 0:
            raise ValueError("tiers.funds_warning: every funds warning needs a police_visit at priority 0")
        unknown = sorted(set(self.scripts) - {t.value for t in Typology} - {"default"})
        if unknown:
            raise ValueError(f"scripts: unknown warning type {', '.join(unknown)}")
        if "default" not in self.scripts:
            raise ValueError("scripts: a default script is required")
        return self

    def script_for(self, typology: Typology) -> str:
        return self.scripts.get(typology.value, self.scripts["default"])


# ------------------------------------------------------------------------------ banks.yaml
class Partner(_Strict):
    name: str = Field(min_length=1)
    key_env: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")


class Partners(_Strict):
    alert_ref_key_env: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    banks: dict[str, Partner] = Field(min_length=1)
    carriers: dict[str, Partner] = Field(min_length=1)

    @model_validator(mode="after")
    def _codes(self) -> Partners:
        for code in self.banks:
            if not re.fullmatch(r"[A-Z][A-Z0-9]{1,15}", code):
                raise ValueError(f"banks: code {code!r} must be 2-16 capital letters or digits")
        unknown = sorted(set(self.carriers) - {c.value for c in Carrier})
        if unknown:
            raise ValueError(f"carriers: unknown carrier {', '.join(unknown)}")
        envs = [p.key_env for p in (*self.banks.values(), *self.carriers.values())] + [self.alert_ref_key_env]
        shared = sorted({e for e in envs if envs.count(e) > 1})
        if shared:
            raise ValueError(f"key_env {', '.join(shared)} is used twice: every partner has its own key")
        return self


def bank_topic_id(code: str) -> str:
    return f"bank_requests_{code.lower()}"


# ---------------------------------------------------------------------------------- loading
def _load(path: Path, model: type[BaseModel]):
    return _parse(path.read_text(encoding="utf-8"), path, model)


def _parse(text: str, path: Path, model: type[BaseModel]):
    data, root = parse_yaml(text, path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping")
    return validate(path, data, root, model)


def load_routing(path: Path) -> Routing:
    return _load(path, Routing)


def parse_routing(text: str, path: Path) -> Routing:
    """The routing in `text` (a file's, or a published version's); errors name `path` and the line."""
    return _parse(text, path, Routing)


def load_partners(path: Path) -> Partners:
    return _load(path, Partners)


@lru_cache(maxsize=4)
def _routing(path: Path) -> Routing:
    return load_routing(path)


@lru_cache(maxsize=4)
def _partners(path: Path) -> Partners:
    return load_partners(path)


def get_routing(settings: Settings | None = None) -> Routing:
    return _routing((settings or get_settings()).routing_file)


def get_partners(settings: Settings | None = None) -> Partners:
    return _partners((settings or get_settings()).banks_file)


# ------------------------------------------------------------------------------------- keys
def partner_key(settings: Settings, env: str, label: str) -> bytes:
    """The key in `env`; in development (partner_keys=dev) a missing one is derived from the dev secret."""
    if settings.partner_keys == "env":
        return load_key(env, label, dev=None)

    def derived() -> bytes:
        given = settings.partner_dev_secret
        return derive_dev_key(given.get_secret_value().encode() if given else dev_secret(settings.run_dir), label)

    return load_key(env, label, dev=derived)


def bank_key(settings: Settings, partners: Partners, code: str) -> bytes:
    return partner_key(settings, partners.banks[code].key_env, f"bank:{code}")


def carrier_key(settings: Settings, partners: Partners, code: str) -> bytes:
    return partner_key(settings, partners.carriers[code].key_env, f"carrier:{code}")


class PartnerKeys:
    """Every partner's signing key, and the platform's key for opaque alert references (the worker's view)."""

    def __init__(self, partners: Partners, settings: Settings):
        self.banks = {code: bank_key(settings, partners, code) for code in partners.banks}
        self.carriers = {code: carrier_key(settings, partners, code) for code in partners.carriers}
        self.alert_ref = partner_key(settings, partners.alert_ref_key_env, "alert-ref")


# ------------------------------------------------------------------- topics.yaml generation
def render_bank_topics(partners: Partners | None = None) -> str:
    """The generated block of topics.yaml: one request topic per bank in banks.yaml."""
    partners = partners or get_partners()
    lines = [f"{TOPICS_BEGIN} (from banks.yaml by `{REGENERATE}`; do not edit)"]
    for code in partners.banks:
        lines += [
            f"  {bank_topic_id(code)}:",
            f"    name: antifraud.bank-requests.{code.lower()}",
            "    domain: dissuasion",
            "    kind: output",
            f"    purpose: Signed protective requests for {code} only (保护性止付 / 停止非柜面业务); no other bank reads it.",
            "    partitions: 1             # a handful a day per bank; one partition keeps apply, renew, release in order",
            "    key: account token",
            "    contract: BankRequest",
            "    producers: [agents/escalate.py]",
            f"    consumers: [{code} (reference - channels/partners.py bank_consumer_main), oversight/ledger.py]",
            "",
        ]
    return "\n".join(lines) + TOPICS_END + "\n"


def with_bank_topics(topics_text: str, partners: Partners | None = None) -> str:
    """topics.yaml text with its generated block replaced by the current one."""
    pattern = re.compile(rf"^{re.escape(TOPICS_BEGIN)}.*?^{re.escape(TOPICS_END)}\n", re.S | re.M)
    if not pattern.search(topics_text):
        raise ConfigError(f"topics.yaml has no '{TOPICS_BEGIN.strip()}' ... '{TOPICS_END.strip()}' block")
    return pattern.sub(lambda _m: render_bank_topics(partners), topics_text, count=1)


def main(topics_file: Path = PROJECT_ROOT / "topics.yaml") -> int:
    text = topics_file.read_text(encoding="utf-8")
    fresh = with_bank_topics(text)
    if fresh != text:
        topics_file.write_text(fresh, encoding="utf-8")
        print(f"wrote the bank request topics into {topics_file}")
    else:
        print(f"{topics_file}: bank request topics are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
