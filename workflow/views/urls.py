"""Reading ids, page numbers and redirect targets from request input (URLs, query args, form fields).

Nothing here queries beyond one ``session.get``: workflow/queries.py holds the
queries and imports the parser for its filter classes. No imports from the
views, so the lower layers may use it without a cycle.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import select

from workflow.extensions import db

MAX_ID = 2**31 - 1   # an id beyond the INTEGER range cannot exist (and PostgreSQL would reject the query)
MAX_PAGE = 100000


def parse_id(raw: str | None) -> int | None:
    """A row id from user input, or None if it is not one."""
    raw = (raw or "").strip()
    if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_ID:
        return int(raw)
    return None


def page_number(raw: str | None) -> int:
    value = parse_id(raw)
    return value if value is not None and value <= MAX_PAGE else 1


def get_row(model, row_id: int):
    """``session.get`` for an id from a URL; None for ids that cannot exist."""
    if not 0 < row_id <= MAX_ID:
        return None
    return db.session.get(model, row_id)


def rows_in_order(model, ids) -> list | None:
    """The rows of the ticked ``ids`` (repeats dropped), in the order ticked; None
    when any of them does not exist (a forged or stale form)."""
    ids = list(dict.fromkeys(ids or ()))
    if not ids:
        return []
    found = {row.id: row for row in db.session.scalars(select(model).where(model.id.in_(ids)))}
    return [found[i] for i in ids] if len(found) == len(ids) else None


def safe_next(target: str | None) -> str | None:
    """A redirect target from user input, only if it is a path on this site.

    Browsers drop tabs and newlines and read a backslash as a slash, so
    "/\t/evil.example" would leave the site: any control character or
    backslash disqualifies the target, as does a scheme or a host."""
    if not target or any(ord(ch) < 32 or ch == "\x7f" for ch in target) or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target
