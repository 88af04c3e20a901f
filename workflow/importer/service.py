"""The import as the office sees it: upload → review → confirm."""
from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta

from flask import current_app, has_app_context
from sqlalchemy import select

from models import Item, Task, TaskPart, Unit
from workflow import notices
from workflow.extensions import db
from workflow.timeutil import chinese_date, today_local
from workflow.vocabulary import NotificationKind
from workflow.text import clean_line

from . import load
from .draft import DocumentError  # noqa: F401  (re-exported for callers)
from .parse import InvalidBytesError  # noqa: F401  (re-exported for callers)
from .parse import parse_bytes

#: MAX_IMPORT_MB when there is no app (the setting's default): parsing is linear in the size
#: (bench/import_bench.py: ~3.6 s and ~40× the document in memory per MB on a 2-core machine).
DEFAULT_IMPORT_MB = 20


def max_document_mb() -> int:
    return int(current_app.config.get("MAX_IMPORT_MB", DEFAULT_IMPORT_MB)) if has_app_context() \
        else DEFAULT_IMPORT_MB

log = logging.getLogger(__name__)


class ImportRefused(DocumentError):
    """The review found problems that stop the import (``Review.problems``)."""


def review_upload(data: bytes, filename: str, replace_invalid: bool = False,
                  choices: load.ImportChoices | None = None) -> load.Review:
    """Parse and review without writing, with the office's ``choices`` (column mapping, names,
    deadlines) applied. Raises DocumentError (Chinese message); :class:`InvalidBytesError` when a
    UTF-8 text has invalid bytes and ``replace_invalid`` is not set (with it, they are read as
    U+FFFD and warned)."""
    limit = max_document_mb()
    if len(data) > limit * 1024 * 1024:
        raise DocumentError(f"文件过大（超过 {limit} MB），未读取。请确认文件是否正确，或将文件拆分后分批导入。")
    filename = clean_line(filename or "") or "document"
    choices = choices or load.ImportChoices()
    draft = parse_bytes(data, filename, replace_invalid=replace_invalid, **_mapping_of(choices))
    return load.review(draft, data, filename, choices)


def _mapping_of(choices: load.ImportChoices) -> dict:
    # Only tables have columns to map; the text parsers take no mapping.
    return {"mapping": choices.mapping} if choices.mapping else {}


def confirm(rv: load.Review, user=None):
    """Write the reviewed plan in one transaction; on any error nothing stays.

    A review with problems is refused (``ImportRefused``): the review is where
    they are named.  Should the write fail all the same, the transaction is
    rolled back and a DocumentError with a Chinese message is raised instead of
    the database's exception (logged with its traceback for the administrator)."""
    if rv.problems:
        raise ImportRefused(f"该文件有 {len(rv.problems)} 处问题，不能导入：{rv.problems_text(limit=5)}。"
                            "请修改文件后重新上传。")
    try:
        plan = load.write(rv, user=user)
        notify_assigned(plan)
        db.session.commit()
        return plan
    except Exception:  # noqa: BLE001 - the last resort: whatever it is, nothing is written
        db.session.rollback()
        log.exception("import of %s (sha256 %s) failed in the write", rv.filename, rv.sha256)
        raise DocumentError("写入数据库时出错，导入未完成，没有写入任何数据。"
                            "请将该文件交给系统管理员检查（错误已记入日志）。") from None


def notify_assigned(plan) -> int:
    """新任务: each unit given parts by the import hears once, with the count and
    the receipt date (RECEIPT_DUE_DAYS after today). How many units."""
    counts = Counter(db.session.scalars(select(TaskPart.unit_id).join(Task).join(Item)
                                        .where(Item.plan_id == plan.id)))
    due = chinese_date(today_local() + timedelta(days=int(current_app.config.get("RECEIPT_DUE_DAYS", 3))))
    units = db.session.scalars(select(Unit).where(Unit.id.in_(list(counts))).order_by(Unit.id)).all()
    for unit in units:
        notices.send(notices.unit_users([unit]), NotificationKind.ASSIGNED,
                     f"《{plan.title}》已导入，{unit.name}承办其中 {counts[unit.id]} 项任务，"
                     f"请于{due}前在“我的待办”中签收。")
    return len(units)
