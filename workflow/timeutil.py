"""Time: stored as naive UTC, shown in China Standard Time (the office's clock)."""
from datetime import date, datetime, timedelta, timezone

CST = timezone(timedelta(hours=8), "CST")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def to_local(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc).astimezone(CST)


def today_local() -> date:
    return datetime.now(CST).date()


def format_local(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    local = to_local(value)
    return local.strftime(fmt) if local else ""
