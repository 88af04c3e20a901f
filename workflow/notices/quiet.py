"""Quiet hours: outside notices (e-mail, robots) wait until the office's working
day begins. QUIET_HOURS is "22:00-07:30" in China Standard Time; empty: none."""
from __future__ import annotations

import re
from datetime import datetime, time, timedelta, timezone

from flask import current_app, has_app_context

from workflow.timeutil import CST

_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse(value: str | None) -> tuple[time, time] | None:
    """(start, end) of the quiet hours, None for none; ValueError (Chinese) if malformed."""
    if not value or not value.strip():
        return None
    match = _RANGE.match(value)
    if not match:
        raise ValueError(f"QUIET_HOURS “{value}” 格式应为 HH:MM-HH:MM（北京时间），例如 22:00-07:30。")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"QUIET_HOURS “{value}” 的时间无效。")
    if (h1, m1) == (h2, m2):
        raise ValueError(f"QUIET_HOURS “{value}” 的开始与结束相同。")
    return time(h1, m1), time(h2, m2)


def release_time(now_utc: datetime, quiet: tuple[time, time] | None | str = "config") -> datetime:
    """The first moment at or after ``now_utc`` (naive UTC) outside the quiet hours."""
    if quiet == "config":
        quiet = parse(current_app.config.get("QUIET_HOURS")) if has_app_context() else None
    if quiet is None:
        return now_utc
    start, end = quiet
    local = now_utc.replace(tzinfo=timezone.utc).astimezone(CST)
    clock = local.time().replace(tzinfo=None)
    if start < end:                      # e.g. 12:00-14:00, within one day
        inside = start <= clock < end
        release_day = local.date()
    else:                                # e.g. 22:00-07:30, across midnight
        inside = clock >= start or clock < end
        release_day = local.date() + timedelta(days=1) if clock >= start else local.date()
    if not inside:
        return now_utc
    released = datetime.combine(release_day, end, CST)
    return released.astimezone(timezone.utc).replace(tzinfo=None)
