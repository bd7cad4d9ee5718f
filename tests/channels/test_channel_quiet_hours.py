"""Quiet hours: pure time arithmetic in the city's time zone."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from channel_helpers import make_action

from channels.policy import quiet_hours_release
from channels.quiet_hours import QuietHours
from streams.contracts.actions import Channel
from streams.contracts.alerts import Tier

CITY = ZoneInfo("Asia/Shanghai")
NIGHT = QuietHours.parse("22:00-08:00", "Asia/Shanghai")


def city(y, mo, d, h, mi, s=0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=CITY)


def test_late_evening_waits_until_next_morning():
    assert NIGHT.release_at(city(2026, 3, 1, 23, 15)) == city(2026, 3, 2, 8, 0)


def test_small_hours_wait_until_the_same_morning():
    assert NIGHT.release_at(city(2026, 3, 2, 3, 0)) == city(2026, 3, 2, 8, 0)


def test_daytime_is_not_quiet():
    assert NIGHT.release_at(city(2026, 3, 2, 12, 0)) is None


def test_the_window_includes_its_start_and_excludes_its_end():
    assert NIGHT.release_at(city(2026, 3, 1, 22, 0)) == city(2026, 3, 2, 8, 0)
    assert NIGHT.release_at(city(2026, 3, 2, 8, 0)) is None
    assert NIGHT.release_at(city(2026, 3, 2, 7, 59, 59)) == city(2026, 3, 2, 8, 0)


def test_utc_input_is_judged_in_city_time():
    # 15:30 UTC is 23:30 in Shanghai (UTC+8).
    release = NIGHT.release_at(datetime(2026, 3, 1, 15, 30, tzinfo=UTC))
    assert release == city(2026, 3, 2, 8, 0)
    assert release.tzinfo is UTC


def test_same_day_window_and_seconds():
    lunch = QuietHours.parse("12:00:00-13:30:15", "Asia/Shanghai")
    assert lunch.release_at(city(2026, 3, 2, 12, 10)) == city(2026, 3, 2, 13, 30, 15)
    assert lunch.release_at(city(2026, 3, 2, 13, 30, 15)) is None
    assert lunch.release_at(city(2026, 3, 2, 23, 0)) is None


@pytest.mark.parametrize("bad", ["22:00", "25:00-08:00", "22:00-08:00-09:00", "10:00-10:00", "ten-eight"])
def test_bad_windows_are_refused(bad):
    with pytest.raises(ValueError):
        QuietHours.parse(bad, "Asia/Shanghai")


def test_empty_means_no_quiet_hours():
    assert QuietHours.parse("", "Asia/Shanghai") is None
    assert quiet_hours_release(make_action(), city(2026, 3, 1, 23, 0).timestamp(), None, {"sms"}) is None


@pytest.mark.parametrize("tier", [Tier.high, Tier.funds_warning])
def test_urgent_tiers_ignore_quiet_hours(tier):
    night = city(2026, 3, 1, 23, 0).timestamp()
    assert quiet_hours_release(make_action(Channel.sms, tier), night, NIGHT, {"sms", "ai_voice"}) is None


@pytest.mark.parametrize("tier", [Tier.low, Tier.medium])
def test_low_and_medium_wait(tier):
    night = city(2026, 3, 1, 23, 0).timestamp()
    release = quiet_hours_release(make_action(Channel.ai_voice, tier), night, NIGHT, {"sms", "ai_voice"})
    assert release == city(2026, 3, 2, 8, 0).timestamp()


def test_channels_outside_the_list_ignore_quiet_hours():
    night = city(2026, 3, 1, 23, 0).timestamp()
    assert quiet_hours_release(make_action(Channel.app_push), night, NIGHT, {"sms", "ai_voice"}) is None
