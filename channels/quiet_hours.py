"""Quiet hours: when the city sleeps, low-risk SMS and AI-voice calls wait until morning.

Pure time arithmetic in the city's time zone (Asia/Shanghai has no daylight saving,
but zoneinfo keeps it right anywhere). A window may cross midnight ("22:00-08:00").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time
    tz: ZoneInfo

    @classmethod
    def parse(cls, window: str, tz_name: str) -> QuietHours | None:
        """'22:00-08:00' or '21:59:30-22:00:05'; an empty string means no quiet hours."""
        window = window.strip()
        if not window:
            return None
        try:
            start_text, end_text = window.split("-")
            start, end = time.fromisoformat(start_text.strip()), time.fromisoformat(end_text.strip())
        except ValueError:
            raise ValueError(f"quiet hours {window!r}: expected HH:MM[:SS]-HH:MM[:SS]") from None
        if start == end:
            raise ValueError(f"quiet hours {window!r}: start and end are the same; use an empty value for none")
        return cls(start, end, ZoneInfo(tz_name))

    def release_at(self, now: datetime) -> datetime | None:
        """None when `now` is outside quiet hours, else the moment they end (UTC)."""
        local = now.astimezone(self.tz)
        clock = local.time().replace(tzinfo=None)
        today = local.date()
        if self.start < self.end:  # same-day window, e.g. 12:00-14:00
            if not (self.start <= clock < self.end):
                return None
            end_day = today
        else:  # crosses midnight, e.g. 22:00-08:00
            if self.end <= clock < self.start:
                return None
            end_day = today if clock < self.end else today + timedelta(days=1)
        return self._at(end_day, self.end)

    def _at(self, day: date, clock: time) -> datetime:
        return datetime.combine(day, clock, tzinfo=self.tz).astimezone(UTC)
