"""The import as the office sees it: upload → review → confirm."""
from __future__ import annotations

from workflow.extensions import db

from . import load
from .draft import DocumentError  # noqa: F401  (re-exported for callers)

MAX_DOCUMENT_BYTES = 20 * 1024 * 1024


def review_upload(data: bytes, filename: str) -> load.Review:
    """Parse and review without writing. Raises DocumentError (Chinese message)."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentError("文件过大（超过 20 MB），不像是一份实施方案汇编。")
    from .parse import parse_bytes

    draft = parse_bytes(data, filename)
    return load.review(draft, data, filename)


def confirm(rv: load.Review, user=None):
    """Write the reviewed plan in one transaction; on any error nothing stays."""
    try:
        plan = load.write(rv, user=user)
        db.session.commit()
        return plan
    except Exception:
        db.session.rollback()
        raise
