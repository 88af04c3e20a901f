"""The queue for real: ``flask worker`` processes on the test's database and
queue (the embedded SQLite queue, and a real Redis started by conftest), which
render reports and deliver notices to a real SMTP server; two workers on one
outbox send each notice once; a worker killed mid-report is replaced by one
that tries the report again. Plus the queue's own rules (drain, enqueue after
commit, is_dead)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
FLASK = ROOT / ".venv" / "bin" / "flask"
AS_OF = "2022-06-30"
START_TIMEOUT = 60
JOB_TIMEOUT = 180


@pytest.fixture
def db_template():
    return "seed"


@pytest.fixture
def app_config(request):
    """``sqlite`` (the default: conftest's embedded queue file) or ``redis``."""
    if getattr(request, "param", "sqlite") == "redis":
        return {"QUEUE_URL": request.getfixturevalue("redis_url")}
    return {}


both_queues = pytest.mark.parametrize("app_config", ["sqlite", "redis"], indirect=True)


class Worker:
    """One ``flask worker`` process with the app's settings in its environment
    (workflow/config.py reads them), its output in a file."""

    def __init__(self, app, tmp_path: Path, name: str, threads: int = 2):
        env = {key: value for key, value in os.environ.items() if not key.startswith(("LUOSHI_", "MAIL_"))}
        config = app.config
        env.update({
            "FLASK_APP": "wsgi.py", "LUOSHI_ENV": "testing", "SECRET_KEY": config["SECRET_KEY"],
            "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"], "QUEUE_URL": config["QUEUE_URL"],
            "UPLOAD_FOLDER": config["UPLOAD_FOLDER"], "REPORT_FOLDER": config["REPORT_FOLDER"],
            "QUIET_HOURS": "", "PUBLIC_URL": config["PUBLIC_URL"],
            # A quick pulse, so that a dead worker's claims go stale within the test.
            "HEARTBEAT_SECONDS": "1", "JOB_STALE_SECONDS": "30", "PYTHONUNBUFFERED": "1",
        })
        if config.get("MAIL_SERVER"):
            env.update(MAIL_SERVER=config["MAIL_SERVER"], MAIL_PORT=str(config["MAIL_PORT"]))
        self.log = tmp_path / f"worker-{name}.log"
        self.started = time.monotonic()
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen([str(FLASK), "worker", "--threads", str(threads)], cwd=ROOT, env=env,
                                            stdout=out, stderr=subprocess.STDOUT)
        self.pid = self.process.pid

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()      # reaped: no zombie left answering signal 0


@pytest.fixture
def workers(app, tmp_path):
    started: list[Worker] = []

    def start(name: str = "w", threads: int = 2) -> Worker:
        worker = Worker(app, tmp_path, name, threads)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for(predicate, timeout: float, what: str, worker: Worker | None = None, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker is not None and worker.process.poll() is not None:
            pytest.fail(f"worker exited ({worker.process.returncode}) before {what}:\n{worker.output()[-3000:]}")
        time.sleep(every)
    pytest.fail(f"timed out after {timeout}s waiting for {what}"
                + (f"\nworker output:\n{worker.output()[-3000:]}" if worker else ""))


def in_app(app, fn):
    from workflow.extensions import db

    with app.app_context():
        try:
            return fn()
        finally:
            db.session.remove()


def no_sweep_today(app) -> None:
    """The worker's start-up tick would run today's reminder sweep over the seed
    (its 2022 deadlines are long past): mark the days around today as swept."""
    from models import SweepRun
    from workflow.extensions import db
    from workflow.timeutil import today_local, utcnow

    with app.app_context():
        today = today_local()
        for day in (today - timedelta(days=1), today, today + timedelta(days=1)):
            db.session.add(SweepRun(as_of=day, status="done", requested_by="test", created_at=utcnow(),
                                    finished_at=utcnow()))
        db.session.commit()
        db.session.remove()


def request_report(app, kind: str = "item", *, queue: bool = True) -> int:
    from models import User
    from workflow.extensions import db
    from workflow.reports import archive

    with app.app_context():
        office = db.session.scalar(select(User).where(User.username == "office"))
        params = (archive.make_params("item", item_number="1", as_of=AS_OF) if kind == "item"
                  else archive.make_params("overall", as_of=AS_OF))
        row = archive.request_report(params, user=office, queue=queue).archive
        db.session.commit()     # queued now
        archive_id = row.id
        db.session.remove()
    return archive_id


def report_row(app, archive_id: int):
    from models import ReportArchive
    from workflow.extensions import db

    def read():
        row = db.session.get(ReportArchive, archive_id)
        db.session.expunge(row)
        return row

    return in_app(app, read)


def send_notices(app, username: str, count: int, email: str) -> list[int]:
    """``count`` notices to one user with an address: one e-mail delivery each (committed, queued)."""
    from models import Delivery, User
    from workflow import notices
    from workflow.extensions import db
    from workflow.sqlite import write_transactions

    with app.app_context():
        # Workers may be writing meanwhile: take SQLite's write lock first, as a request does.
        write_transactions(True)
        try:
            user = db.session.scalar(select(User).where(User.username == username))
            user.email = email
            rows = [notices.send([user], "urged", f"第 {i} 条催办")[0] for i in range(count)]
            db.session.commit()
        finally:
            write_transactions(False)
        ids = db.session.scalars(select(Delivery.id).where(Delivery.notification_id.in_([r.id for r in rows]))).all()
        db.session.remove()
    assert len(ids) == count
    return list(ids)


def delivery_counts(app) -> dict[str, int]:
    from models import Delivery
    from workflow.extensions import db

    return in_app(app, lambda: dict(db.session.execute(
        select(Delivery.status, func.count(Delivery.id)).group_by(Delivery.status)).all()))


# ---------------------------------------------------------------- a real worker

@both_queues
def test_a_worker_renders_a_queued_report_and_delivers_a_notice(app, workers, mail_sink, tmp_path):
    from models import WorkerBeat
    from workflow.extensions import db

    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=mail_sink.port)
    no_sweep_today(app)
    archive_id = request_report(app)
    [delivery_id] = send_notices(app, "u03.staff", 1, "staff@unit.example.gov.cn")
    assert report_row(app, archive_id).status == "pending"

    worker = workers("one")
    started = time.monotonic()
    wait_for(lambda: len(mail_sink.received.mails) == 1, JOB_TIMEOUT, "the e-mail", worker)
    mailed = time.monotonic() - started
    done = wait_for(lambda: (r := report_row(app, archive_id)).status in ("done", "failed") and r, JOB_TIMEOUT,
                    "the report", worker)
    rendered = time.monotonic() - started
    assert done.status == "done", done.error
    assert (done.progress, done.attempts) == (100, 1)
    assert done.worker.endswith(f":{worker.pid}") and done.sha256
    assert delivery_counts(app) == {"sent": 1}
    assert mail_sink.received.mails[0]["To"] == "staff@unit.example.gov.cn"
    # Its pulse is in the database while it runs, and gone once it stops.
    assert in_app(app, lambda: db.session.scalar(select(func.count(WorkerBeat.id)).where(
        WorkerBeat.name.endswith(f":{worker.pid}")))) == 1
    assert worker.stop() == 0, worker.output()
    assert in_app(app, lambda: db.session.scalar(select(func.count(WorkerBeat.id)))) == 0
    queue = "Redis" if app.config["QUEUE_URL"].startswith("redis") else "SQLite"
    assert ("队列 SQLite 文件" if queue == "SQLite" else "队列 redis://127.0.0.1:") in worker.output()
    print(f"\n{queue} queue: e-mail after {mailed:.1f}s, report after {rendered:.1f}s from the worker's start")


def test_two_workers_on_one_outbox_send_each_notice_once(app, workers, mail_sink):
    from models import Delivery, WorkerBeat
    from workflow import background
    from workflow.extensions import db
    from workflow.notices import PUMP

    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=mail_sink.port)
    no_sweep_today(app)
    first, second = workers("a"), workers("b")
    wait_for(lambda: in_app(app, lambda: db.session.scalar(select(func.count(WorkerBeat.id)))) == 2,
             START_TIMEOUT, "both workers' pulse", first)
    count = 60
    ids = send_notices(app, "u03.staff", count, "staff@unit.example.gov.cn")
    # Several pumps at once, so that both workers' threads take deliveries together.
    with app.app_context():
        for _ in range(5):
            assert background.enqueue(PUMP)
    wait_for(lambda: delivery_counts(app).get("sent") == count, JOB_TIMEOUT, "every delivery sent", first)
    time.sleep(1)    # anything sent twice would arrive meanwhile
    message_ids = mail_sink.received.message_ids()
    assert len(message_ids) == count and len(set(message_ids)) == count
    rows = in_app(app, lambda: db.session.execute(select(Delivery.attempts, Delivery.worker)
                                                  .where(Delivery.id.in_(ids))).all())
    assert {attempts for attempts, _ in rows} == {1}
    pids = {worker.split(":")[1] for _, worker in rows}
    assert pids <= {str(first.pid), str(second.pid)}
    print("\ndeliveries per worker: " + ", ".join(
        f"{pid}: {sum(1 for _, w in rows if w.split(':')[1] == pid)}" for pid in sorted(pids)))


def test_a_worker_killed_while_rendering_is_replaced_and_the_report_finishes(app, workers, mail_sink):
    import socket

    from models import Delivery
    from workflow.extensions import db
    from workflow.timeutil import utcnow

    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=mail_sink.port)
    no_sweep_today(app)
    archive_id = request_report(app)
    doomed = workers("doomed")
    # The claim comes a second or two before the PDF is done: poll closely.
    wait_for(lambda: report_row(app, archive_id).status == "running", JOB_TIMEOUT, "the claim", doomed, every=0.02)
    doomed.kill()
    left = report_row(app, archive_id)
    assert left.status == "running", "the report finished before the worker was killed: make it bigger"
    assert left.attempts == 1 and left.worker.endswith(f":{doomed.pid}")

    # A notice the dead worker was sending, its lease still long: only its death frees it.
    [delivery_id] = send_notices(app, "u03.staff", 1, "staff@unit.example.gov.cn")
    with app.app_context():
        row = db.session.get(Delivery, delivery_id)
        row.status, row.worker = "sending", f"{socket.gethostname()}:{doomed.pid}:deadbeef"
        row.lease_until = utcnow() + timedelta(hours=1)
        db.session.commit()
        db.session.remove()

    # Its start-up tick sees that the claims' process is gone (same host) and tries again.
    heir = workers("heir")
    done = wait_for(lambda: (r := report_row(app, archive_id)).status in ("done", "failed") and r, JOB_TIMEOUT,
                    "the retried report", heir)
    assert done.status == "done", done.error
    assert done.attempts == 2 and done.progress == 100 and done.worker.endswith(f":{heir.pid}")
    assert "trying again" in heir.output()
    wait_for(lambda: delivery_counts(app) == {"sent": 1}, JOB_TIMEOUT, "the released delivery", heir)
    assert len(mail_sink.received.mails) == 1


# ---------------------------------------------------------------- the queue's own rules

def test_a_job_is_queued_only_once_its_transaction_commits(app):
    from models import ReportArchive, User
    from workflow import background
    from workflow.extensions import db
    from workflow.reports import archive

    with app.app_context():
        office = db.session.scalar(select(User).where(User.username == "office"))
        row = archive.request_report(archive.make_params("overall", as_of=AS_OF), user=office).archive
        assert row.id
        db.session.rollback()
        db.session.remove()
    assert background.drain(app) == 0
    with app.app_context():
        assert db.session.scalar(select(func.count(ReportArchive.id))) == 0


def test_one_commit_queues_one_message_per_distinct_job(app):
    from workflow import background
    from workflow.extensions import db

    ran = []
    background.JOBS["test.record"] = lambda *args: ran.append(args)
    try:
        with app.app_context():
            for _ in range(50):
                background.enqueue_after_commit("test.record", 1)
            background.enqueue_after_commit("test.record", 2)
            db.session.commit()
        assert background.drain(app) == 2
        assert sorted(ran) == [(1,), (2,)]
    finally:
        del background.JOBS["test.record"]


def test_drain_runs_a_delayed_job_only_once_its_time_has_come(app):
    from workflow import background
    from workflow.timeutil import utcnow

    seen = []
    background.JOBS["test.clock"] = lambda: seen.append(utcnow())
    try:
        with app.app_context():
            at = utcnow() + timedelta(minutes=10)
            assert background.enqueue("test.clock", at=at)
        assert background.drain(app) == 0 and seen == []
        assert background.drain(app, until=at - timedelta(seconds=1)) == 0 and seen == []
        assert background.drain(app, until=at) == 1
        # The job ran as if at that moment.
        assert seen == [at]
        assert background.drain(app, until=at + timedelta(days=1)) == 0
    finally:
        del background.JOBS["test.clock"]


def test_is_dead_knows_a_gone_or_unreaped_process_on_this_host(tmp_path):
    import socket

    from workflow import background

    host = socket.gethostname()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert background.is_dead(f"{host}:{child.pid}") is False
        assert background.is_dead(f"{host}:{child.pid}:abc123") is False
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not background.is_dead(f"{host}:{child.pid}:abc123") and time.monotonic() < deadline:
            time.sleep(0.05)
        # Killed and not yet reaped (a zombie): dead all the same.
        assert background.is_dead(f"{host}:{child.pid}:abc123") is True
    finally:
        child.kill()
        child.wait()
    assert background.is_dead(f"{host}:{child.pid}") is True
    assert background.is_dead(f"{host}:{os.getpid()}") is False          # this very process
    assert background.is_dead(f"elsewhere.example:{child.pid}") is False   # another host: its heartbeat decides
    assert background.is_dead(None) is False and background.is_dead(f"{host}:notapid") is False


def test_a_report_rendered_by_the_command_line_keeps_its_heartbeat(app, monkeypatch):
    """run_now (flask report generate, the demo) renders in its own process: a
    worker's watchdog must not take a render longer than JOB_STALE_SECONDS for
    one whose worker died."""
    from models import WorkerBeat
    from workflow.extensions import db
    from workflow.reports import archive, jobs

    app.config.update(HEARTBEAT_SECONDS=0.2, JOB_STALE_SECONDS=1)
    archive_id = request_report(app, queue=False)
    real_pdf = archive.render_report
    seen = {}

    def slow_pdf(html, section_size, progress=None):
        time.sleep(1.6)          # longer than JOB_STALE_SECONDS, mid-render
        with app.app_context():  # what a worker's watchdog would decide now
            seen["watchdog"] = jobs.watchdog()
            db.session.rollback()
            db.session.remove()
        return real_pdf(html, section_size, progress)

    monkeypatch.setattr(archive, "render_report", slow_pdf)
    jobs.run_now(app, archive_id)
    assert seen["watchdog"] == {"retried": 0, "failed": 0, "requeued": 0}
    row = report_row(app, archive_id)
    assert (row.status, row.attempts) == ("done", 1)
    # Renewing its claims does not make it a worker.
    assert in_app(app, lambda: db.session.scalar(select(func.count(WorkerBeat.id)))) == 0
