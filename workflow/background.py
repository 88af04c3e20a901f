"""Work that runs off the request path: one Huey queue per app, its jobs, the
minute tick, and the worker (``flask worker``).

The queue's backend is QUEUE_URL: by default a SQLite file in the instance
folder (no server to run); ``redis://…`` in production. Huey removes a message
when a worker takes it, so a job that dies with its worker would be lost: the
database is therefore the record of what must happen (a pending report, a
delivery not yet sent, a sweep not finished), and the queue only says "now".
Each job claims its row before working (a compare-and-set UPDATE, so of two
workers exactly one proceeds), a worker's heartbeat keeps its claims fresh,
and the tick's watchdogs queue again what a dead worker left (docs/background.md).

Jobs are registered by name with ``@job("name")`` in their own modules and
queued with ``enqueue_after_commit`` — never before the rows they read are
committed. ``@every_minute`` functions run on each tick of the scheduler; each
decides for itself, from the database, whether anything is due, so a tick run
twice (two workers, a restart) does nothing twice.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta, timezone

from flask import Flask, current_app
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from workflow import pending
from workflow.extensions import db
from workflow.sqlite import write_transactions
from workflow.timeutil import played_at, utcnow

log = logging.getLogger(__name__)

JOBS: dict[str, Callable] = {}
PERIODIC: dict[str, Callable] = {}
_PENDING_KIND = "job"


def job(name: str):
    """Register ``fn(*args)`` as the job ``name`` (it runs in an app context)."""
    def register(fn):
        JOBS[name] = fn
        return fn
    return register


def every_minute(name: str):
    """Register ``fn()`` to run on every tick (it runs in an app context)."""
    def register(fn):
        PERIODIC[name] = fn
        return fn
    return register


# ------------------------------------------------------------------ the queue

def queue_url(app: Flask) -> str:
    return app.config.get("QUEUE_URL") or "sqlite:///" + os.path.join(app.instance_path, "queue.sqlite3")


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def check_queue_url(url: str) -> None:
    """RuntimeError (Chinese) for a QUEUE_URL the queue cannot use."""
    if not url.startswith(REDIS_SCHEMES + ("sqlite:///",)):
        raise RuntimeError(f"QUEUE_URL 无法识别：{url}（应为 sqlite:///路径 或 redis://主机:端口/库号）")


def huey_for(app: Flask):
    """The app's Huey, made on first use (a web process that queues nothing
    never opens the queue)."""
    huey = app.extensions.get("luoshi.huey")
    if huey is None:
        huey = app.extensions["luoshi.huey"] = _make_huey(app)
    return huey


def _make_huey(app: Flask):
    from huey import RedisHuey, SqliteHuey, crontab

    url = queue_url(app)
    check_queue_url(url)
    name = app.config.get("QUEUE_NAME", "luoshi")
    if url.startswith(REDIS_SCHEMES):
        from redis import ConnectionPool

        # Bounded waits: a Redis that does not answer (a dropped route, not a
        # refusal) must not hold the request that queues a job for minutes.
        # Reads wait longer than the consumer's blocking pop (1 s).
        pool = ConnectionPool.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        huey = RedisHuey(name, connection_pool=pool, results=False)
    elif url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        huey = SqliteHuey(name, filename=path, results=False)

    # One task runs every job by name: a job registered after the queue was
    # made (a module imported later) is still found, and the message holds
    # nothing but a name and ids.
    @huey.task(name="luoshi.run")
    def run(name: str, *args):
        run_job(app, name, *args)

    @huey.periodic_task(crontab(minute="*"), name="luoshi.tick")
    def tick_task():
        tick(app)

    huey.luoshi_run = run
    return huey


def run_job(app: Flask, name: str, *args) -> None:
    fn = JOBS.get(name)
    if fn is None:
        log.error("unknown job %s", name)
        return
    with app.app_context():
        try:
            fn(*args)
        except Exception:
            db.session.rollback()
            raise
        finally:
            db.session.remove()
            write_transactions(False)   # a job never leaves its thread writing


def enqueue(name: str, *args, delay: float | None = None, at: datetime | None = None,
            app: Flask | None = None) -> bool:
    """Put a job on the queue now (to run after ``delay`` seconds, or at ``at``,
    a naive UTC moment); False (logged) when the queue cannot be reached — the
    watchdogs will find the row and queue it again."""
    app = app or current_app._get_current_object()
    try:
        huey = huey_for(app)
        if at is not None and at > utcnow():
            # Aware, or Huey would read a naive moment as the host's local time.
            huey.luoshi_run.schedule((name, *args), eta=at.replace(tzinfo=timezone.utc))
        elif delay:
            huey.luoshi_run.schedule((name, *args), delay=delay)
        else:
            huey.luoshi_run(name, *args)
        return True
    except Exception:
        log.exception("could not queue %s%r", name, args)
        return False


def enqueue_after_commit(name: str, *args, delay: float | None = None, at: datetime | None = None) -> None:
    """Queue the job once the current transaction commits (dropped on rollback,
    and with a savepoint rolled back if it was asked for inside one)."""
    pending.add(db.session(), _PENDING_KIND, (name, args, delay, at))


@event.listens_for(Session, "after_commit")
def _flush_pending(session):
    if not pending.committing_outermost(session):
        return
    jobs = pending.take(session, _PENDING_KIND)
    if jobs and current_app:
        # One message per distinct job: a transaction that sent notices to a
        # hundred units needs one pump, not a hundred.
        for name, args, delay, at in dict.fromkeys(jobs):
            enqueue(name, *args, delay=delay, at=at)



def drain(app: Flask, *, limit: int = 10_000, until: datetime | None = None) -> int:
    """Run the jobs waiting on the queue in this thread, as a worker would,
    until none is left (tests, and the command line when no worker runs); how
    many ran. A delayed job (a retry, a notice held by quiet hours) runs once
    its time has come: ``until`` (a naive UTC datetime) is that moment, and the
    jobs run as if it were now (``timeutil.utcnow()`` answers it), so that what
    they find due in the database is what a worker would find then."""
    huey = huey_for(app)
    moment = until or huey._get_timestamp()
    ran = 0
    with played_at(until) if until is not None else nullcontext():
        while ran < limit:
            for task in huey.read_schedule(moment):
                huey.enqueue(task)
            task = huey.dequeue()
            if task is None:
                return ran
            if not huey.ready_to_run(task, moment):
                # Not yet: back to the schedule (Huey's own execute would do the
                # same, but it is not a job that ran).
                huey.add_schedule(task)
                continue
            huey.execute(task, timestamp=moment)
            ran += 1
    return ran


# ------------------------------------------------------------------ the tick

def tick(app: Flask) -> None:
    """Every minute, on the scheduler: each periodic function in its own app
    context and transaction; one failing does not stop the others."""
    for name, fn in list(PERIODIC.items()):
        with app.app_context():
            # Each reads, then writes what it found: on SQLite it takes the write
            # lock first, or a commit elsewhere in between makes its write fail.
            write_transactions(True)
            try:
                fn()
                db.session.commit()
            except Exception:
                db.session.rollback()
                log.exception("periodic %s failed", name)
            finally:
                write_transactions(False)
                db.session.remove()


# ------------------------------------------------------------------ the worker

def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def is_dead(claimed_by: str | None) -> bool:
    """A claim (``host:pid`` or ``host:pid:token``) whose process is gone from
    this host. A claim from another host is judged by its heartbeat alone."""
    if not claimed_by:
        return False
    host, _, rest = claimed_by.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # A killed process its parent has not reaped yet still answers signal 0.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


class Heartbeat:
    """The worker's pulse: every HEARTBEAT_SECONDS it renews the claims of the
    jobs this process is running (``beat(kind, id)`` while a job runs), so a
    watchdog can tell a slow job from one whose worker died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, set[int]] = {}

    def running(self, kind: str, row_id: int):
        beat = self

        class _Claim:
            def __enter__(self):
                with beat._lock:
                    beat._running.setdefault(kind, set()).add(row_id)

            def __exit__(self, *exc):
                with beat._lock:
                    beat._running.get(kind, set()).discard(row_id)

        return _Claim()

    def snapshot(self) -> dict[str, list[int]]:
        with self._lock:
            return {kind: sorted(ids) for kind, ids in self._running.items() if ids}


HEARTBEAT = Heartbeat()
# kind → fn(ids, now): renew those rows' heartbeat (registered by the job modules).
BEATERS: dict[str, Callable] = {}


def beater(kind: str):
    def register(fn):
        BEATERS[kind] = fn
        return fn
    return register


def beat_once(app: Flask, register: bool = True) -> None:
    """Renew the claims of the jobs running here, and (``register``) this
    worker's own pulse."""
    from models import WorkerBeat

    with app.app_context():
        write_transactions(True)
        try:
            now = utcnow()
            for kind, ids in HEARTBEAT.snapshot().items():
                if kind in BEATERS:
                    BEATERS[kind](ids, now)
            if register:
                name = worker_name()
                row = db.session.scalar(select(WorkerBeat).where(WorkerBeat.name == name))
                if row is None:
                    row = WorkerBeat(name=name, started_at=now)
                    db.session.add(row)
                row.seen_at = now
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception("heartbeat failed")
        finally:
            write_transactions(False)
            db.session.remove()


def _heartbeat_loop(app: Flask, stop: threading.Event, register: bool = True) -> None:
    interval = float(app.config.get("HEARTBEAT_SECONDS", 10))
    while not stop.is_set():
        beat_once(app, register)
        stop.wait(interval)


@contextmanager
def pulse(app: Flask):
    """A heartbeat for the claims of a process that is not a worker (the
    command line, the demo, rendering a report and waiting for it): without
    one, a worker's watchdog would take a render longer than JOB_STALE_SECONDS
    for a dead one and start it again. Not a worker's pulse (worker_alive)."""
    stop = threading.Event()
    thread = threading.Thread(target=_heartbeat_loop, args=(app, stop, False), name="luoshi-pulse", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def worker_alive(app: Flask | None = None) -> bool:
    """Whether any worker has shown its pulse lately (the pages that wait on
    one say so when none has)."""
    from models import WorkerBeat

    app = app or current_app
    seconds = float(app.config.get("JOB_STALE_SECONDS", 60))
    latest = db.session.scalar(select(WorkerBeat.seen_at).order_by(WorkerBeat.seen_at.desc()).limit(1))
    return latest is not None and latest >= utcnow() - timedelta(seconds=seconds)


def run_worker(app: Flask, *, workers: int = 2, periodic: bool = True) -> None:
    """Run the consumer until SIGINT/SIGTERM (``flask worker``)."""
    huey = huey_for(app)
    stop = threading.Event()
    pulse = threading.Thread(target=_heartbeat_loop, args=(app, stop), name="luoshi-heartbeat", daemon=True)
    pulse.start()
    # Before taking new work, queue again what a dead worker left behind.
    tick(app)
    consumer = huey.create_consumer(workers=workers, worker_type="thread", periodic=periodic,
                                    check_worker_health=True, max_delay=2.0)
    try:
        consumer.run()
    finally:
        stop.set()
        with app.app_context():
            from models import WorkerBeat

            db.session.execute(WorkerBeat.__table__.delete().where(WorkerBeat.name == worker_name()))
            db.session.commit()
            db.session.remove()


def stale_before(app: Flask | None = None):
    """Claims whose heartbeat is older than this belong to a dead worker."""
    app = app or current_app
    return utcnow() - timedelta(seconds=float(app.config.get("JOB_STALE_SECONDS", 60)))


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
