"""rules.yaml: the detection rules as a validated, frozen object.

Designed for hot reload and shadow evaluation later: the rules are plain data handed
to streams.scoring, which keeps no state of its own.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from streams.contracts.signals import CounterpartType
from streams.settings import PROJECT_ROOT
from streams.yamlconfig import ConfigError, parse_yaml, validate

RULES_FILE = PROJECT_ROOT / "rules.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Weighted(_Strict):
    comment: str = Field(min_length=3)
    weight: float = Field(gt=0)
    window_s: int = Field(gt=0)


class ContactRule(Weighted):
    min_call_s: int = Field(ge=0)


class LongCallRule(Weighted):
    min_duration_s: int = Field(gt=0)
    counterpart_types: tuple[CounterpartType, ...] = Field(min_length=1)


class DistinctNumbersRule(Weighted):
    min_distinct: int = Field(ge=2)
    counterpart_types: tuple[CounterpartType, ...] = Field(min_length=1)


class SessionRule(Weighted):
    banking_session_bonus: float = Field(ge=0)


class CountRule(Weighted):
    min_count: int = Field(ge=2)


class AmountRule(Weighted):
    min_amount: float = Field(gt=0)


class VulnerabilityRule(_Strict):
    comment: str = Field(min_length=3)
    elderly_weight: float = Field(ge=0)
    student_weight: float = Field(ge=0)


class Signals(_Strict):
    fraud_number_contact: ContactRule
    phishing_link: Weighted
    long_suspect_call: LongCallRule
    many_suspect_numbers: DistinctNumbersRule
    fraud_app_installed: Weighted
    screen_sharing: SessionRule
    remote_control: SessionRule
    suspicious_report: Weighted
    rapid_transfers: CountRule
    new_payee_amount: AmountRule
    contact_then_transfer: Weighted
    vulnerability: VulnerabilityRule


class Tiers(_Strict):
    low: float = Field(gt=0)
    medium: float = Field(gt=0)
    high: float = Field(gt=0)

    @model_validator(mode="after")
    def _ascending(self) -> Tiers:
        if not self.low < self.medium < self.high:
            raise ValueError("tier cut-offs must rise: low < medium < high")
        return self


class Repeat(_Strict):
    raise_tier: bool


class FundsWarning(_Strict):
    min_confidence: float = Field(ge=0, le=1)


class TypologyRule(_Strict):
    min_confidence: float = Field(ge=0, le=1)


class ReachBackRule(_Strict):
    window_s: int = Field(gt=0)
    fresh_listing_s: int = Field(gt=0)


class Rules(_Strict):
    version: str = Field(min_length=1)
    tiers: Tiers
    lateness_s: int = Field(ge=0)
    history_s: int = Field(gt=0)
    max_history: int = Field(ge=10)
    cooldown_s: int = Field(ge=0)
    alert_open_s: int = Field(gt=0)
    repeat: Repeat
    signals: Signals
    funds_warning: FundsWarning
    typology: TypologyRule
    reach_back: ReachBackRule

    @model_validator(mode="after")
    def _history_covers_windows(self) -> Rules:
        longest = max(
            getattr(self.signals, name).window_s
            for name in type(self.signals).model_fields
            if hasattr(getattr(self.signals, name), "window_s")
        )
        if longest > self.history_s:
            raise ValueError(f"history_s ({self.history_s}) is shorter than the longest signal window ({longest})")
        return self


def load_rules(path: Path = RULES_FILE) -> Rules:
    return parse_rules(path.read_text(encoding="utf-8"), path)


def parse_rules(text: str, path: Path) -> Rules:
    """The rules in `text` (a file's, or a published version's); errors name `path` and the line."""
    data, root = parse_yaml(text, path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping")
    return validate(path, data, root, Rules)


@lru_cache(maxsize=1)
def get_rules() -> Rules:
    from streams.settings import get_settings

    return load_rules(get_settings().rules_file)
