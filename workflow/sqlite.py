"""SQLite plumbing: how connections are made and kept, write transactions,
and WAL checkpoints when a process is idle. PostgreSQL needs none of this;
every function here does nothing for another database.

Connections: SQLAlchemy's default for a file database (QueuePool, with
``check_same_thread=False``), the timeout below as the driver's busy wait.
pool_pre_ping is dropped: a local file has no server that drops idle connections.

Write transactions: on SQLite a request that may write takes the write lock
when its transaction begins (BEGIN IMMEDIATE): a second writer then waits and
reads the committed state, instead of failing half-way through.

Checkpoints: SQLite's automatic checkpoint (after a commit, once the WAL holds
1000 pages) is PASSIVE and cannot restart the WAL while any reader still uses
it, so under sustained load the file only grows. When the last request of a
process has ended and none has started for ``SQLITE_IDLE_CHECKPOINT_SECONDS``,
a background thread checkpoints with TRUNCATE on its own connection with no
busy timeout: it never waits for a lock (a reader or writer elsewhere makes it
give up at once, and it tries again after the next quiet interval); a writer
arriving meanwhile waits only while the remaining frames are copied.
``journal_size_limit`` lets a WAL that restarts during load shrink as well.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30000
# After a WAL restart the file is cut back to this size (bytes).
JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024
DEFAULT_IDLE_SECONDS = 1.0

_WRITE_TRANSACTION: ContextVar[bool] = ContextVar("luoshi_write_transaction", default=False)


def write_transactions(enabled: bool = True) -> None:
    """For CLI commands and threads that write outside a request."""
    _WRITE_TRANSACTION.set(enabled)


def is_sqlite(uri: str | None) -> bool:
    return bool(uri) and uri.startswith("sqlite")


def engine_options(options: dict | None) -> dict:
    """The engine options for a SQLite database (see the module docstring)."""
    options = dict(options or {})
    options.pop("pool_pre_ping", None)
    connect_args = dict(options.get("connect_args") or {})
    # SQLite locks the file per transaction; wait rather than fail at once.
    connect_args.setdefault("timeout", BUSY_TIMEOUT_MS / 1000)
    options["connect_args"] = connect_args
    return options


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """Foreign keys on, WAL so readers do not block the writer; transactions
    begun by us (see _sqlite_begin) rather than by the driver."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn):
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE" if _WRITE_TRANSACTION.get() else "BEGIN")


@event.listens_for(Engine, "commit")
def _sqlite_commit(conn):
    if conn.dialect.name == "sqlite" and conn.engine.url.database:
        _checkpointer.wrote(conn.engine.url.database)


# ---------------------------------------------------------------- idle checkpoints

def checkpoint(path: str) -> tuple[int, int, int] | None:
    """``PRAGMA wal_checkpoint(TRUNCATE)`` on a connection of its own that
    never waits for a lock; returns (busy, WAL frames, frames checkpointed),
    or None if the file is gone or locked. busy == 0: the WAL is now empty."""
    try:
        # mode=rw: a database removed meanwhile is not created again, empty.
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=0, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        return tuple(conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())
    except sqlite3.Error:   # "database is locked": someone is writing
        return None
    finally:
        conn.close()


class _Checkpointer:
    """Counts this process's requests in flight; one daemon thread per process
    checkpoints every database written to once the process has been idle."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._in_flight = 0
        self._last_end = 0.0
        self._idle_for: dict[str, float] = {}   # database path -> quiet seconds before a checkpoint
        self._dirty: dict[str, float] = {}      # written since its last complete checkpoint
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def register(self, path: str, idle_seconds: float) -> None:
        with self._cond:
            self._idle_for[path] = idle_seconds

    def wrote(self, path: str) -> None:
        with self._cond:
            idle = self._idle_for.get(path)
            if idle:   # only databases of apps that asked for it
                self._dirty[path] = idle
                if self._in_flight == 0:   # a write outside any request (report job, command)
                    self._last_end = time.monotonic()
                    self._ensure_thread()
                    self._cond.notify_all()

    def request_started(self) -> None:
        with self._cond:
            self._in_flight += 1

    def request_ended(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._last_end = time.monotonic()
            if self._in_flight == 0 and self._dirty:
                self._ensure_thread()
                self._cond.notify_all()

    def _ensure_thread(self) -> None:
        # After a fork (gunicorn --preload) the parent's thread does not exist here.
        if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="luoshi-sqlite-checkpoint", daemon=True)
            self._thread.start()

    def _due(self) -> tuple[list[str], float | None]:
        """(paths to checkpoint now, seconds until the next is due or None)."""
        if self._in_flight or not self._dirty:
            return [], None
        quiet = time.monotonic() - self._last_end
        due = [p for p, idle in self._dirty.items() if quiet >= idle]
        waits = [idle - quiet for idle in self._dirty.values() if quiet < idle]
        return due, (min(waits) if waits else None)

    def _run(self) -> None:
        while True:
            with self._cond:
                due, wait = self._due()
                while not due:
                    self._cond.wait(wait)
                    due, wait = self._due()
            for path in due:
                result = checkpoint(path)
                with self._cond:
                    if result is not None and result[0] == 0:
                        self._dirty.pop(path, None)
                    else:
                        # Another process is using the database: try again
                        # once this one has been quiet for another interval.
                        self._last_end = time.monotonic()
                log.debug("idle checkpoint %s: %s", path, result)


_checkpointer = _Checkpointer()


def install(app) -> None:
    """Called by the app factory after the engine options are set."""
    uri = app.config.get("SQLALCHEMY_DATABASE_URI")
    if not is_sqlite(uri):
        return
    idle = app.config.get("SQLITE_IDLE_CHECKPOINT_SECONDS", DEFAULT_IDLE_SECONDS)
    path = make_url(uri).database
    if idle and path and path != ":memory:":
        _checkpointer.register(path, float(idle))
        app.wsgi_app = _CountRequests(app.wsgi_app)


class _CountRequests:
    """WSGI middleware: a request is in flight from the moment it reaches Flask
    until its app context (and database session) is gone, whatever hooks did."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        _checkpointer.request_started()
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            _checkpointer.request_ended()


def _pragma_outside_transaction(raw, pragma: str) -> None:
    # PRAGMA foreign_keys is silently ignored inside a transaction: end the one
    # under way (SQLite DDL here is not transactional anyway) and begin it again.
    was_open = raw.in_transaction
    if was_open:
        raw.execute("COMMIT")
    raw.execute(pragma)
    if was_open:
        raw.execute("BEGIN")


@contextmanager
def foreign_keys_off(bind):
    """For migrations that rebuild a table on SQLite (Alembic batch mode copies,
    drops and renames it): with foreign keys on, the DROP of a parent table fires
    every ON DELETE of its children, or fails. Off during the rebuild, then
    ``foreign_key_check`` proves nothing was left dangling. A no-op elsewhere."""
    if bind.dialect.name != "sqlite":
        yield
        return
    raw = bind.connection.dbapi_connection
    _pragma_outside_transaction(raw, "PRAGMA foreign_keys=OFF")
    try:
        yield
        dangling = bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if dangling:
            raise RuntimeError(f"foreign keys broken by the table rebuild: {dangling[:5]}")
    finally:
        # The pooled connection goes back to the application: keys on again.
        _pragma_outside_transaction(raw, "PRAGMA foreign_keys=ON")
