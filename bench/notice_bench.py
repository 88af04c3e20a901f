"""Benchmark: notices delivered per second through each outside channel.

    .venv/bin/python bench/notice_bench.py [--n 500] [--no-worker] [--keep DIR]

On a scratch SQLite database (the project's own database is never touched; an
empty migrated schema, one unit, one user) it writes N notices to the outbox
(notices.send, committed in batches of 100) and times:
  - e-mail: N deliveries over SMTP to a MailSink (aiosmtpd on 127.0.0.1), sent
    by ``notice_delivery.pump()`` in this process;
  - robot: N 企业微信 markdown posts to a RobotSink (HTTP on 127.0.0.1), likewise;
  - worker: N e-mails again, written while no worker runs, then sent by a
    ``flask worker --threads 2`` process (the sends' pump messages: one per
    commit, so both threads pump), timed over the sends' own timestamps.
Each figure includes claiming, sending and recording every delivery (three
commits per delivery on SQLite), and is notices per second, end to end.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def settings(folder: Path, mail_port: int) -> dict:
    return {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'bench.sqlite'}",
        "UPLOAD_FOLDER": str(folder / "uploads"), "REPORT_FOLDER": str(folder / "reports"),
        "QUEUE_URL": f"sqlite:///{folder / 'queue.sqlite3'}",
        "LUOSHI_ENV": "testing", "SECRET_KEY": "bench", "QUIET_HOURS": "",
        "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": mail_port, "PUBLIC_URL": "https://luoshi.example.gov.cn",
    }


def make_app(folder: Path, mail_port: int):
    from workflow.app import create_app

    return create_app(settings(folder, mail_port))


def _outbox(n: int, user_id: int) -> float:
    """N notices to the user, committed every 100; the seconds it took."""
    from models import User
    from workflow import notices
    from workflow.extensions import db
    from workflow.sqlite import write_transactions

    started = time.perf_counter()
    for first in range(0, n, 100):
        write_transactions(True)
        user = db.session.get(User, user_id)
        for i in range(first, min(first + 100, n)):
            notices.send([user], "urged", f"基准通知第 {i + 1} 条：请抓紧推进并按时提交完成材料。")
        db.session.commit()
        write_transactions(False)
    return time.perf_counter() - started


def _status_counts() -> dict[str, int]:
    from sqlalchemy import func, select

    from models import Delivery
    from workflow.extensions import db

    counts = dict(db.session.execute(select(Delivery.status, func.count(Delivery.id)).group_by(Delivery.status)).all())
    db.session.rollback()
    return counts


def _clear_outbox() -> None:
    from models import Delivery
    from workflow.extensions import db
    from workflow.sqlite import write_transactions

    write_transactions(True)
    db.session.execute(Delivery.__table__.delete())
    db.session.commit()
    write_transactions(False)


def _worker(folder: Path, mail_port: int, n: int, user_id: int, sink) -> dict:
    """N e-mails written to the outbox first (their pumps wait on the queue),
    then a worker started: the rate is over the span of the sends' own
    timestamps, so the worker's start-up is not in it (and is printed apart)."""
    from sqlalchemy import func, select

    from models import Delivery
    from workflow.extensions import db

    before = len(sink.received.mails)
    outbox = _outbox(n, user_id)
    env = dict(os.environ, FLASK_APP="wsgi.py", PYTHONUNBUFFERED="1")
    for key, value in settings(folder, mail_port).items():
        env["DATABASE_URL" if key == "SQLALCHEMY_DATABASE_URI" else key] = str(value)
    log = open(folder / "worker.log", "wb")
    started = time.perf_counter()
    process = subprocess.Popen([str(ROOT / ".venv" / "bin" / "flask"), "worker", "--threads", "2"], cwd=ROOT,
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while _status_counts().get("sent", 0) < n:
            if process.poll() is not None or time.perf_counter() - started > 600:
                raise RuntimeError((folder / "worker.log").read_text(errors="replace")[-2000:])
            time.sleep(0.02)
        wall = time.perf_counter() - started
        first, last = db.session.execute(select(func.min(Delivery.sent_at), func.max(Delivery.sent_at))).one()
        db.session.rollback()
        assert len(sink.received.mails) - before == n
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
    span = (last - first).total_seconds() * n / max(n - 1, 1)
    return {"outbox": outbox, "seconds": span, "wall": wall}


def run(folder: Path, n: int, with_worker: bool) -> dict:
    from flask_migrate import upgrade

    from models import Role, Unit, UnitKind, User
    from workflow import background
    from workflow.extensions import db
    from workflow.notices import delivery as notice_delivery
    from workflow.notices.sink import MailSink, RobotSink
    from workflow.sqlite import write_transactions

    mail, robot = MailSink(), RobotSink()
    figures: dict = {"n": n}
    try:
        app = make_app(folder, mail.port)
        with app.app_context():
            write_transactions(True)
            upgrade()
            unit = Unit(name="基准单位", kind=UnitKind.BUREAU)
            db.session.add(unit)
            db.session.flush()
            user = User(username="bench", display_name="基准用户", unit_id=unit.id, role=Role.UNIT_STAFF,
                        password_hash="!", email="bench@example.gov.cn", notify_email=True, notify_robot=True)
            db.session.add(user)
            db.session.commit()
            write_transactions(False)
            user_id, unit_id = user.id, unit.id

            # E-mail alone: the unit has no robot yet.
            figures["outbox_email"] = _outbox(n, user_id)
            started = time.perf_counter()
            tried = notice_delivery.pump()
            figures["email"] = time.perf_counter() - started
            assert tried == n and _status_counts() == {"sent": n}, _status_counts()
            assert len(mail.received.mails) == n

            # The robot alone: mail off, the unit's 企业微信 robot on.
            _clear_outbox()
            app.config["MAIL_SERVER"] = None
            write_transactions(True)
            db.session.get(Unit, unit_id).robot_kind = "wecom"
            db.session.get(Unit, unit_id).robot_url = robot.url()
            db.session.commit()
            write_transactions(False)
            figures["outbox_robot"] = _outbox(n, user_id)
            started = time.perf_counter()
            tried = notice_delivery.pump()
            figures["robot"] = time.perf_counter() - started
            assert tried == n and _status_counts() == {"sent": n}, _status_counts()
            assert len(robot.received.posts) == n

            if with_worker:
                _clear_outbox()
                app.config["MAIL_SERVER"] = "127.0.0.1"
                write_transactions(True)
                db.session.get(Unit, unit_id).robot_url = None
                db.session.commit()
                write_transactions(False)
                # The pumps queued by the sends above ran nowhere: start from an empty queue.
                background.huey_for(app).flush()
                db.session.remove()
                figures["worker"] = _worker(folder, mail.port, n, user_id, mail)
            db.session.remove()
            db.engine.dispose()
    finally:
        mail.stop()
        robot.stop()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="notices per channel (default 500)")
    parser.add_argument("--no-worker", action="store_true", help="skip the worker process run")
    parser.add_argument("--keep", type=Path, help="keep the scratch database in this folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="luoshi-notice-bench-"))
    try:
        figures = run(folder, args.n, not args.no_worker)
    finally:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copytree(folder, args.keep, dirs_exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
    n = figures["n"]
    print(f"Python {platform.python_version()} · {platform.machine()} · {os.cpu_count()} CPUs · SQLite · "
          f"{n} notices per channel")
    print(f"  outbox (notices.send, 100 per commit)   {n / figures['outbox_email']:8.1f} notices/s")
    print(f"  e-mail, pump() → MailSink (SMTP)        {n / figures['email']:8.1f} notices/s"
          f"   ({figures['email']:.2f} s)")
    print(f"  企业微信 robot, pump() → RobotSink       {n / figures['robot']:8.1f} notices/s"
          f"   ({figures['robot']:.2f} s)")
    if "worker" in figures:
        worker = figures["worker"]
        print(f"  e-mail, flask worker --threads 2        {n / worker['seconds']:8.1f} notices/s"
              f"   ({worker['seconds']:.2f} s of sending; {worker['wall']:.1f} s from the process start)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
