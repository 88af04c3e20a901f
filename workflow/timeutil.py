"""Time: stored as naive UTC, shown in China Standard Time (the office's clock).

Two different questions, two functions:

- ``utcnow()`` — *when something happened*. Every timestamp written to the
  database (audit entries, submissions, evidence, notices, report jobs) comes
  from it and is always the real instant, whatever the clock below says.
- ``today_local()`` — *what day it is for deadlines*: the due / late / near-due
  rules, the overview, the lists, the reports' default as-of date and the CLI
  defaults all ask it, and nothing else asks for "today".

The demo's seed has deadlines in 2022, so a demo (``LUOSHI_ENV=demo``) may set
``LUOSHI_TODAY=YYYY-MM-DD``: ``today_local()`` then answers that day, and every
page says so in its header. The setting moves deadlines' "today" only, never
the recorded time of anything. Outside demo mode it is ignored, with a warning
in the log, so production always runs on the real date; an invalid value is
refused at start-up in every mode (``configure_clock``).
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime, timedelta, timezone

from flask import Flask, current_app, has_app_context

CST = timezone(timedelta(hours=8), "CST")

CLOCK_SETTING = "LUOSHI_TODAY"
# Where create_app keeps the day in effect (a date, or None for the real date):
# apart from the raw setting, so that nothing can read a value it did not check.
_CLOCK_KEY = "luoshi.clock"
# The same bounds as a report's as-of date (reports/archive.make_params), so
# the clock's day is always a valid default there.
CLOCK_MIN, CLOCK_MAX = date(2000, 1, 1), date(2100, 12, 31)
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


# Set only while the demo plays its history (workflow/demo_activity.py): the
# moment, in naive UTC, at which the step being played happens.
_played_at: ContextVar[datetime | None] = ContextVar("luoshi_played_at", default=None)


@contextmanager
def played_at(moment: datetime):
    """Inside the block, ``utcnow()`` is ``moment`` (naive UTC) and ``today_local()``
    its day in China Standard Time. For the demo's history alone: it plays April to
    September 2022 through the real services, so every record carries the time the
    story says. Nothing a user does runs inside it."""
    token = _played_at.set(moment)
    try:
        yield
    finally:
        _played_at.reset(token)


def utcnow() -> datetime:
    played = _played_at.get()
    if played is not None:
        return played
    return datetime.now(timezone.utc).replace(tzinfo=None)


def to_local(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc).astimezone(CST)


def real_today() -> date:
    """Today's date in China Standard Time, by the wall clock."""
    return datetime.now(CST).date()


def clock_date() -> date | None:
    """The day the demo clock is set to, or None when the app runs on the real date
    (also outside an application context, where no setting can apply)."""
    if not has_app_context():
        return None
    return current_app.extensions.get(_CLOCK_KEY)


def today_local() -> date:
    """Today for every deadline rule: the demo clock's day when set, else the real
    date in China Standard Time. Not for timestamps: those are ``utcnow()``."""
    played = _played_at.get()
    if played is not None:
        return to_local(played).date()
    return clock_date() or real_today()


def format_local(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    local = to_local(value)
    return local.strftime(fmt) if local else ""


def chinese_date(value: date) -> str:
    """2022年9月30日 (no leading zeros, as dates are written in Chinese)."""
    return f"{value.year}年{value.month}月{value.day}日"


class ClockError(RuntimeError):
    """LUOSHI_TODAY cannot be read; the message (Chinese) names the variable."""


def parse_clock(raw) -> date | None:
    """The day a LUOSHI_TODAY value names; None when it is unset or blank."""
    if raw is None or (isinstance(raw, date) and not isinstance(raw, datetime)):
        return raw
    text = str(raw).strip()
    if not text:
        return None
    # date.fromisoformat alone also takes 20220930 and 2022-W39-5: one spelling only.
    day = None
    if _ISO_DAY.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            day = None
    if day is None:
        raise ClockError(f"环境变量 {CLOCK_SETTING} 的值“{text[:30]}”不是有效日期，请使用 YYYY-MM-DD 格式，"
                         f"例如 {CLOCK_SETTING}=2022-09-30；拒绝启动。")
    if not CLOCK_MIN <= day <= CLOCK_MAX:
        raise ClockError(f"环境变量 {CLOCK_SETTING} 的日期 {day.isoformat()} 超出范围"
                         f"（{CLOCK_MIN.isoformat()} 至 {CLOCK_MAX.isoformat()}）；拒绝启动。")
    return day


def configure_clock(app: Flask) -> None:
    """Decide once, at start-up, which day ``today_local()`` answers for this app.

    The value is checked in every mode, so a typo is found where it was made
    rather than on the day someone switches to demo mode. It applies only when
    LUOSHI_ENV is "demo": anywhere else the app runs on the real date, entirely,
    and the log says that the setting was ignored."""
    day = parse_clock(app.config.get(CLOCK_SETTING))
    env = app.config.get("LUOSHI_ENV")
    if day is not None and env != "demo":
        app.logger.warning("已忽略环境变量 %s=%s：演示时钟只在演示模式（LUOSHI_ENV=demo）下生效，"
                           "当前为 %s，系统使用真实日期。", CLOCK_SETTING, day.isoformat(), env)
        day = None
    app.extensions[_CLOCK_KEY] = day
