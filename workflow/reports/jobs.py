"""Reports are rendered off the request path, by one worker thread per process.

A request only writes a pending archive row and queues its id; the thread
renders with its own app context and database session and moves the row to
done or failed (archive.run). One thread, one report at a time: WeasyPrint is
CPU-bound, so more threads would not finish sooner, and one bounds memory.
A job lost with its process (restart) is marked failed after
archive.STALE_AFTER, and the same report can then be asked for again.
"""
from __future__ import annotations

import logging
import os
import queue
import threading

from workflow.extensions import db

from . import archive

log = logging.getLogger(__name__)

_queue: queue.Queue = queue.Queue()
_thread: threading.Thread | None = None
_pid: int | None = None
_start_lock = threading.Lock()
_idle = threading.Condition()
_active = 0


def submit(app, archive_id: int) -> None:
    """Queue a committed pending archive row for rendering."""
    global _active
    with _idle:
        _active += 1
    _ensure_thread()
    _queue.put((app, archive_id))


def _ensure_thread() -> None:
    global _thread, _pid
    with _start_lock:
        # After a fork (gunicorn preload) the parent's thread does not exist here.
        if _thread is None or not _thread.is_alive() or _pid != os.getpid():
            _pid = os.getpid()
            _thread = threading.Thread(target=_work, name="luoshi-report-worker", daemon=True)
            _thread.start()


def _work() -> None:
    global _active
    while True:
        app, archive_id = _queue.get()
        try:
            run_now(app, archive_id)
        except Exception:  # the thread must survive one bad job
            log.exception("report job %s crashed", archive_id)
        finally:
            with _idle:
                _active -= 1
                _idle.notify_all()


def run_now(app, archive_id: int) -> None:
    """Render in this thread, in a fresh app context (own session)."""
    with app.app_context():
        try:
            archive.run(archive_id)
        finally:
            db.session.remove()


def wait_idle(timeout: float = 120.0) -> bool:
    """Block until every submitted job has finished (tests, shutdown)."""
    with _idle:
        return _idle.wait_for(lambda: _active == 0, timeout=timeout)
