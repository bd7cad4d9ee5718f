"""The contact policy: may this action go out now, or must it wait, and until when?

Order matters. Quiet hours come first and reserve nothing (the action will be asked
again in the morning). The frequency cap then reserves the person's place, and the
rate limit last reserves a send slot, so a slot is never wasted on an action that
another policy would stop.

High risk and funds warnings are urgent (money moves in minutes): quiet hours and the
frequency cap never hold them, though they still count as contacts. The rate limit
holds every tier: it is the physical capacity of the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

import redis

from channels.limits import FrequencyCap, RateLimiter
from channels.quiet_hours import QuietHours
from streams.contracts.actions import Action, Channel
from streams.contracts.alerts import Tier
from streams.settings import Settings

URGENT_TIERS = frozenset({Tier.high, Tier.funds_warning})
SLOT_SLACK_S = 0.001  # a slot this close to now is now (times cross Valkey as text)


class Policy(str, Enum):
    quiet_hours = "quiet_hours"
    frequency_cap = "frequency_cap"
    rate_limit = "rate_limit"


@dataclass(frozen=True, slots=True)
class Hold:
    policy: Policy
    until: float  # epoch seconds
    rate_reserved: bool = False  # the rate-limit slot at `until` is this action's already


def is_urgent(action: Action) -> bool:
    return action.tier in URGENT_TIERS


def quiet_hours_release(action: Action, now: float, quiet: QuietHours | None, channels: set[str]) -> float | None:
    """When the quiet hours holding this action end; None when they do not hold it."""
    if quiet is None or is_urgent(action) or action.channel.value not in channels:
        return None
    release = quiet.release_at(datetime.fromtimestamp(now, UTC))
    return release.timestamp() if release else None


class ContactPolicy:
    def __init__(self, settings: Settings, channel: Channel, client: redis.Redis):
        self.quiet = QuietHours.parse(settings.channel_quiet_hours, settings.contact_timezone)
        self.quiet_channels = set(settings.channel_quiet_hours_channels)
        self.frequency = (
            FrequencyCap(client, settings.contact_frequency_cap, settings.contact_frequency_window_s)
            if settings.contact_frequency_cap > 0
            else None
        )
        per_second = settings.channel_rate_limits.get(channel.value)
        self.rate = RateLimiter(client, channel.value, per_second) if per_second else None

    def uncount(self, person_id: str, member: str) -> None:
        """Take back a contact counted for an action that contacted nobody (a visit another visit carried)."""
        if self.frequency is not None:
            self.frequency.forget(person_id, member)

    def decide(self, action: Action, member: str, now: float, rate_reserved: bool = False) -> Hold | None:
        """None = send now (the contact is counted and a slot taken); else hold until Hold.until."""
        release = quiet_hours_release(action, now, self.quiet, self.quiet_channels)
        if release is not None:
            return Hold(Policy.quiet_hours, release)
        if self.frequency is not None:
            release = self.frequency.reserve(action.person_id, member, now, enforce=not is_urgent(action))
            if release is not None:
                return Hold(Policy.frequency_cap, release)
        if self.rate is not None and not rate_reserved:
            slot = self.rate.reserve(now)
            if slot > now + SLOT_SLACK_S:
                return Hold(Policy.rate_limit, slot, rate_reserved=True)
        return None
