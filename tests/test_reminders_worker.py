"""The reminder sweep in a real worker process, killed half-way (SIGKILL) and
restarted: no reminder lost, none sent twice, to a real SMTP server on
localhost (workflow/reminders.py, docs/background.md)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from models import Delivery, Notification, Reminder, ReminderRule, SweepRun, TaskPart, User
from workflow import reminders
from workflow.extensions import db
from workflow.notices.sink import MailSink
from workflow.vocabulary import ReminderKind

ROOT = Path(__file__).resolve().parent.parent
AS_OF = date(2023, 3, 31)      # after every dated deadline of the seed plan


@pytest.fixture
def db_template() -> str:
    return "seed"


@pytest.fixture
def mail_sink():
    sink = MailSink()
    yield sink
    sink.stop()


def start_worker(app, mail_port: int, log: Path) -> subprocess.Popen:
    config = app.config
    env = {**os.environ, "FLASK_APP": "wsgi.py", "LUOSHI_ENV": "testing", "SECRET_KEY": config["SECRET_KEY"],
           "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"], "QUEUE_URL": config["QUEUE_URL"],
           "UPLOAD_FOLDER": config["UPLOAD_FOLDER"], "REPORT_FOLDER": config["REPORT_FOLDER"],
           "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(mail_port), "QUIET_HOURS": "", "REMINDER_TIME": "off",
           "SWEEP_CHUNK": "10", "SWEEP_PAUSE_MS": "60", "HEARTBEAT_SECONDS": "1",
           # Should the start-up tick miss the dead claim, the minute tick still finds it stale.
           "JOB_STALE_SECONDS": "5"}
    return subprocess.Popen([sys.executable, "-m", "flask", "worker", "--threads", "2"], cwd=ROOT, env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.remove()
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_worker_killed_mid_sweep_loses_no_reminder_and_sends_none_twice(app, mail_sink, tmp_path):
    log = tmp_path / "worker.log"
    with app.app_context():
        # Every part open and overdue on AS_OF; only the deadline rule, reminding daily after the date.
        db.session.execute(update(TaskPart).values(state="in_progress"), execution_options={"synchronize_session": False})
        for kind in ReminderKind.values():
            row = reminders.rule_row(kind)
            row.enabled = kind == ReminderKind.DEADLINE
            row.days_before, row.on_due, row.repeat_days, row.escalate_after = "", True, 1, 0
        for user in db.session.scalars(select(User)):
            user.email = f"{user.username}@example.gov.cn"
        db.session.commit()
        rule = reminders.rules()[ReminderKind.DEADLINE]
        expected = sum(1 for p in db.session.scalars(select(TaskPart))
                       if p.deadline_in_force() and not p.task.long_term
                       and reminders.occasion(rule, p.deadline_in_force(), AS_OF))
        assert expected > 100
        reminders.request_sweep(AS_OF, "test")
        db.session.commit()          # queued for the worker

        first = start_worker(app, mail_sink.port, log)
        try:
            killed_at = wait_for(lambda: db.session.scalar(select(SweepRun.checked).where(
                SweepRun.status == "running", SweepRun.checked >= 40)), 60, "the sweep to be half-way")
            first.send_signal(signal.SIGKILL)
            first.wait(10)           # reaped: a dead pid on this host is what the next worker looks for
        finally:
            if first.poll() is None:
                first.kill()
        db.session.remove()
        sent_before = db.session.scalar(select(func.count(Reminder.id)))
        assert db.session.scalar(select(SweepRun.status)) == "running"
        assert 0 < sent_before < expected, (sent_before, expected)
        assert killed_at < db.session.scalar(select(func.count(TaskPart.id)))
        assert mail_sink.received.mails == []            # the sweep's notices wait for its end

        second = start_worker(app, mail_sink.port, log)
        try:
            wait_for(lambda: db.session.scalar(select(SweepRun.status)) == "done", 150, "the resumed sweep")
            emails = wait_for(lambda: (db.session.scalar(select(func.count(Delivery.id)).where(
                Delivery.status == "sent")) == db.session.scalar(select(func.count(Delivery.id)))
                and db.session.scalar(select(func.count(Delivery.id)))), 60, "every delivery sent")
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(20)
        run = db.session.scalar(select(SweepRun))
        assert run.attempts == 2
        # No reminder lost: one per overdue part; none twice: the keys are unique, the notices one per user and kind.
        assert db.session.scalar(select(func.count(Reminder.id))) == expected
        assert db.session.scalar(select(func.count(func.distinct(Reminder.part_id)))) == expected
        per_user = Counter(db.session.execute(select(Notification.user_id, Notification.kind)
                                              .where(Notification.kind == "overdue_remind")).all())
        assert per_user and max(per_user.values()) == 1
        # The mail server got every e-mail exactly once.
        ids = mail_sink.received.message_ids()
        assert len(ids) == emails == len(set(ids)), (len(ids), emails, len(set(ids)))
        assert db.session.get(ReminderRule, "deadline").repeat_days == 1
