"""Reports are rendered by the worker (workflow/background.py), never in a request.

A request writes a pending archive row and, once committed, queues the job
``report.render`` with its id. The job claims the row (pending → running, one
try more, this worker's name) with a compare-and-set, so a message delivered
twice renders once; ``archive.run`` then reads, lays out and stores, moving
``progress`` as it goes. While it runs, the worker's heartbeat renews
``heartbeat_at``. The watchdog (every minute) finds what a dead worker left:
a running row whose pulse stopped is tried again, up to REPORT_ATTEMPTS
tries in all, then marked failed with a message; a pending row whose message
was lost (the queue unreachable at commit, a flushed Redis) is queued again.
"""
from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select, update

from models import ReportArchive
from workflow import background
from workflow.extensions import db
from workflow.sqlite import write_transactions
from workflow.timeutil import utcnow
from workflow.vocabulary import ReportStatus

from . import archive

log = logging.getLogger(__name__)

JOB = archive.RENDER_JOB
LOST_MESSAGE = "生成中断：后台处理程序已停止，重试 {n} 次仍未完成，请重新生成。"


@background.job(JOB)
def render(archive_id: int) -> None:
    with background.HEARTBEAT.running("report", archive_id):
        archive.run(archive_id, claim=claim)


def run_now(app, archive_id: int) -> None:
    """Render in this process and thread, in a fresh app context (the command
    line and the demo, which wait for their report): the same claim and run,
    and the same heartbeat, so that a worker elsewhere does not take it over."""
    with app.app_context(), background.pulse(app):
        try:
            render(archive_id)
        finally:
            db.session.remove()


def claim(archive_id: int) -> bool:
    """pending → running for this worker; False if another worker has it or it is finished."""
    write_transactions(True)
    try:
        now = utcnow()
        result = db.session.execute(
            update(ReportArchive)
            .where(ReportArchive.id == archive_id, ReportArchive.status == ReportStatus.PENDING)
            .values(status=ReportStatus.RUNNING, attempts=ReportArchive.attempts + 1,
                    worker=background.worker_name(), heartbeat_at=now, progress=5))
        db.session.commit()
    finally:
        write_transactions(False)
    return result.rowcount == 1


@background.beater("report")
def _renew(ids, now) -> None:
    db.session.execute(update(ReportArchive).where(ReportArchive.id.in_(ids),
                                                   ReportArchive.status == ReportStatus.RUNNING)
                       .values(heartbeat_at=now))


@background.every_minute("report.watchdog")
def watchdog() -> dict[str, int]:
    """Try again, or fail, what dead workers left; queue again lost messages.
    Caller commits (the tick does)."""
    stale = background.stale_before()
    limit = int(current_app.config.get("REPORT_ATTEMPTS", 2))
    retried = failed = requeued = 0
    for row in db.session.scalars(select(ReportArchive).where(ReportArchive.status == ReportStatus.RUNNING)):
        if not (row.heartbeat_at is None or row.heartbeat_at < stale or background.is_dead(row.worker)):
            continue
        if row.attempts < limit:
            row.status = ReportStatus.PENDING
            row.heartbeat_at = utcnow()
            row.progress = 0
            background.enqueue_after_commit(JOB, row.id)
            retried += 1
            log.warning("report %s: worker %s stopped, trying again", row.id, row.worker)
        else:
            row.status = ReportStatus.FAILED
            row.error = LOST_MESSAGE.format(n=row.attempts)
            row.finished_at = utcnow()
            archive.notify_requester(row, f"报告生成失败（存档 #{row.id}）：{row.error}")
            failed += 1
    # A pending row is stamped when queued (heartbeat_at); one older than the
    # stale age was never taken: its message is gone.
    for row in db.session.scalars(select(ReportArchive).where(
            ReportArchive.status == ReportStatus.PENDING,
            (ReportArchive.heartbeat_at < stale) | (ReportArchive.heartbeat_at.is_(None)
                                                    & (ReportArchive.created_at < stale)))):
        row.heartbeat_at = utcnow()
        background.enqueue_after_commit(JOB, row.id)
        requeued += 1
    return {"retried": retried, "failed": failed, "requeued": requeued}
