"""Fixtures: an app on a fresh database per test, on SQLite or PostgreSQL.

The backend is chosen by LUOSHI_TEST_DATABASE_URL (empty: SQLite); scripts/test.sh
runs the suite once on each. Databases are built once per session by the real
migrations (and, for "seed", the real importer and demo loader) and then cloned
for every test: a file copy on SQLite, CREATE DATABASE … TEMPLATE on PostgreSQL.

A test module picks its starting data by overriding the ``db_template`` fixture.

Shared set-up for the tests themselves (plain functions are in tests/helpers.py):
``login`` (a logged-in test client), ``one_part_task`` (a seed task with one
part, as ids and usernames) and ``count_queries`` (SQL statements on db.engine).
"""
from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from jinja2 import BytecodeCache
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from workflow.config import normalise_database_url

SEED_PATH = Path(__file__).resolve().parent.parent / "workflow" / "demo_data" / "zhoucun-2022-batch1.txt"
PG_URL = normalise_database_url(os.environ.get("LUOSHI_TEST_DATABASE_URL") or None)


def _share_url_builders() -> None:
    """Werkzeug compiles two URL-building functions per rule (ast + compile) each time a rule is
    added, about 35 ms per app for our ~70 rules, and the suite creates an app per test. The
    compiled function depends only on the rule's parts and defaults (it reaches the converters
    through the rule it is bound to), so the same rule in the next app reuses it."""
    from werkzeug.routing.rules import Rule

    compile_builder = Rule._compile_builder
    built: dict[tuple, object] = {}

    def shared_builder(self, append_unknown: bool = True):
        defaults = self.defaults or {}
        if any(name in defaults for name in self._converters):
            return compile_builder(self, append_unknown)   # a default resolved by a converter: not shared
        key = (tuple(self._trace), tuple(sorted((k, repr(v)) for k, v in defaults.items())), append_unknown)
        if key not in built:
            built[key] = compile_builder(self, append_unknown)
        return built[key]

    Rule._compile_builder = shared_builder


_share_url_builders()


class _SharedTemplateCode(BytecodeCache):
    """Jinja compiles every template anew in each app's environment (~60 ms for a page and its
    parents); the suite's apps all read the same templates with the same settings, so the
    compiled code is kept here for the next app, checked against the source's checksum (an
    edited template is compiled again). make_app installs it as each app's bytecode cache."""

    def __init__(self):
        self.code: dict[str, tuple[str, object]] = {}

    def load_bytecode(self, bucket):
        kept = self.code.get(bucket.key)
        if kept is not None and kept[0] == bucket.checksum:
            bucket.code = kept[1]

    def dump_bytecode(self, bucket):
        self.code[bucket.key] = (bucket.checksum, bucket.code)


SHARED_TEMPLATE_CODE = _SharedTemplateCode()


def make_app(database_url: str, tmp: Path, **extra):
    from workflow.app import create_app

    config = {
        "TESTING": True,
        "LUOSHI_ENV": "testing",
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "UPLOAD_FOLDER": str(tmp / "uploads"),
        "REPORT_FOLDER": str(tmp / "reports"),
        "WTF_CSRF_ENABLED": True,
        # scrypt with a lower work factor: the suite logs in hundreds of times.
        # tests/test_auth.py checks the production default separately.
        "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
        # The embedded queue, one per test; no worker runs unless a test starts
        # one (tests/test_background.py) or drains the queue itself (background.drain).
        "QUEUE_URL": f"sqlite:///{tmp / 'queue.sqlite3'}",
        # Outside notices go at once whatever the hour the suite runs (quiet hours: their own tests).
        "QUIET_HOURS": "",
        "MAIL_SERVER": None,
    }
    config.update(extra)
    app = create_app(config)
    app.jinja_env.bytecode_cache = SHARED_TEMPLATE_CODE
    app.instance_path = str(tmp / "instance")
    os.makedirs(app.instance_path, exist_ok=True)
    return app


def _build(name: str, app) -> None:
    from flask_migrate import upgrade

    from workflow.extensions import db

    with app.app_context():
        upgrade()
        if name in ("seed", "activity"):
            from workflow import demo

            demo.load_demo(SEED_PATH)
            db.session.commit()
        if name == "activity" and hasattr(demo, "play_activity"):
            demo.play_activity()
            db.session.commit()
            # As `flask demo` does: the 调度通报 of the rounds the story closed.
            demo.render_pending_reports(app)
        db.session.remove()
        db.engine.dispose()


class Databases:
    """Builds each named template once and hands out clones."""

    def __init__(self, root: Path):
        self.root = root
        self.templates: dict[str, str] = {}
        self.admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT") if PG_URL else None
        self.created: list[str] = []

    def _pg_url(self, dbname: str) -> str:
        return make_url(PG_URL).set(database=dbname).render_as_string(hide_password=False)

    def template(self, name: str) -> str:
        if name not in self.templates:
            # Each template keeps its own upload and report folders (the activity
            # stores evidence files and 调度通报), copied with the database to every clone.
            folder = self.root / name
            folder.mkdir(exist_ok=True)
            if self.admin is None:
                path = self.root / f"template-{name}.sqlite"
                _build(name, make_app(f"sqlite:///{path}", folder))
                self.templates[name] = str(path)
            else:
                dbname = f"luoshi_tpl_{name}_{uuid.uuid4().hex[:6]}"
                with self.admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{dbname}"'))
                self.created.append(dbname)
                _build(name, make_app(self._pg_url(dbname), folder))
                # Statistics now, as autovacuum gathers them on a live database: otherwise a clone has
                # them or not by when autovacuum last woke, and a query plan depends on the test order.
                analyst = create_engine(self._pg_url(dbname), isolation_level="AUTOCOMMIT", poolclass=NullPool)
                with analyst.connect() as conn:
                    conn.execute(text("ANALYZE"))
                self.templates[name] = dbname
        return self.templates[name]

    def clone(self, name: str, tmp: Path) -> str:
        source = self.template(name)
        for kept in ("uploads", "reports"):
            if (self.root / name / kept).exists():
                shutil.copytree(self.root / name / kept, tmp / kept)
        if self.admin is None:
            target = tmp / "luoshi.sqlite"
            shutil.copyfile(source, target)
            return f"sqlite:///{target}"
        return self._create("luoshi_t", f' TEMPLATE "{source}"')

    def new_empty(self, folder: Path) -> str:
        """A database with nothing in it at all (no tables): a new SQLite file in ``folder``, or a
        new PostgreSQL database (dropped at the end of the session) — what a restore needs."""
        if self.admin is None:
            return f"sqlite:///{folder / 'luoshi.sqlite'}"
        return self._create("luoshi_r", "")

    def _create(self, prefix: str, template: str) -> str:
        dbname = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{dbname}"{template}'))
        self.created.append(dbname)
        return self._pg_url(dbname)

    def drop(self, url: str) -> None:
        if self.admin is None:
            return
        dbname = make_url(url).database
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        self.created.remove(dbname)

    def close(self) -> None:
        if self.admin is not None:
            with self.admin.connect() as conn:
                for dbname in list(self.created):
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
            self.admin.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory):
    dbs = Databases(tmp_path_factory.mktemp("templates"))
    yield dbs
    dbs.close()


@pytest.fixture
def db_template() -> str:
    """Override in a module: "empty" (migrated schema) or "seed" (seed plan + demo accounts)."""
    return "empty"


@pytest.fixture
def app_config() -> dict:
    """Override in a module (or parametrise indirectly): extra configuration for ``app``."""
    return {}


@pytest.fixture
def app(databases, db_template, app_config, tmp_path):
    url = databases.clone(db_template, tmp_path)
    app = make_app(url, tmp_path, **app_config)
    yield app
    from workflow.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    databases.drop(url)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def app_context(app):
    """The test body runs inside the app's context (for tests that call services
    and queries directly); whatever it left uncommitted is rolled back."""
    from workflow.extensions import db

    with app.app_context():
        yield
        db.session.rollback()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def seed_bytes() -> bytes:
    return SEED_PATH.read_bytes()


@pytest.fixture
def full_disk(tmp_path):
    """A real file system that is nearly full: a 256 KiB tmpfs."""
    import subprocess

    mount = tmp_path / "small-disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def office_client(app, client):
    """On an empty database: the office unit, an office admin (logged in) and a viewer."""
    from auth.passwords import hash_password
    from workflow.extensions import db
    from models import Role, Unit, UnitKind, User

    with app.app_context():
        office = Unit(name="区指挥部办公室", kind=UnitKind.OFFICE)
        db.session.add(office)
        db.session.flush()
        db.session.add(User(username="office", display_name="办公室", unit_id=office.id, role=Role.OFFICE_ADMIN,
                            password_hash=hash_password("demo-2026")))
        db.session.add(User(username="viewer", display_name="区领导", unit_id=office.id, role=Role.VIEWER,
                            password_hash=hash_password("demo-2026")))
        db.session.commit()
    from tests.helpers import log_in

    return log_in(client, "office")


@pytest.fixture
def login(app):
    """``login(username, password=DEMO_PASSWORD, *, expect=302)``: a new test
    client of ``app``, logged in through the real form (or, with ``expect``,
    refused with that status)."""
    from tests.helpers import DEMO_PASSWORD, log_in

    def login(username: str, password: str = DEMO_PASSWORD, *, expect: int = 302):
        return log_in(app.test_client(), username, password, expect=expect)

    return login


@pytest.fixture
def one_part_task(app, request):
    """The first seed task with one part and one lead unit (tests.helpers.OnePartTask).
    By default the part is another unit's; ``@tests.helpers.lead_owns_part`` (or
    parametrising it indirectly with True) asks for one the lead unit owns itself."""
    from tests.helpers import one_part_task_in

    return one_part_task_in(app, lead_owns_part=getattr(request, "param", False))


@pytest.fixture
def count_queries(app):
    """``with count_queries() as statements: …`` — ``statements`` is the list of
    SQL statements sent on the app's engine inside the block (``len`` is the count)."""
    from sqlalchemy import event

    from workflow.extensions import db

    with app.app_context():
        engine = db.engine

    @contextmanager
    def counting():
        statements: list[str] = []

        def record(conn, cursor, statement, parameters, context, executemany):
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", record)
        try:
            yield statements
        finally:
            event.remove(engine, "before_cursor_execute", record)

    return counting


# ---------------------------------------------------------------- background work and notices

@pytest.fixture
def mail_sink():
    """A real SMTP server (aiosmtpd) on 127.0.0.1 and a free port; ``.received.mails``."""
    from workflow.notices.sink import MailSink

    sink = MailSink()
    yield sink
    sink.stop()


@pytest.fixture
def robot_sink():
    """A real HTTP receiver on 127.0.0.1 answering as 企业微信/钉钉 robots do; ``.received.posts``."""
    from workflow.notices.sink import RobotSink

    sink = RobotSink()
    yield sink
    sink.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """Debian's redis-server (scripts/setup.sh --test installs it), started for the
    session on a free port, without persistence; its base URL."""
    import subprocess
    import time

    import redis

    folder = tmp_path_factory.mktemp("redis")
    port = _free_port()
    process = subprocess.Popen(
        ["/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--daemonize", "no", "--logfile", str(folder / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                log = (folder / "redis.log").read_text(errors="replace") if (folder / "redis.log").exists() else ""
                raise RuntimeError(f"redis-server did not start (exit {process.poll()}): {log[-2000:]}")
            time.sleep(0.05)
    client.close()
    yield f"redis://127.0.0.1:{port}"
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def redis_url(redis_server):
    """A queue URL on the session's Redis, emptied for this test."""
    import redis

    url = f"{redis_server}/0"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


def pytest_terminal_summary(terminalreporter):
    """The fidelity of every fixture document (tests/test_fidelity.py), field by field."""
    from tests import fidelity

    if fidelity.RESULTS:
        terminalreporter.section("导入保真度 (fields that match the hand-checked expectation)")
        for result in fidelity.RESULTS:
            terminalreporter.write_line(str(result))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server on 127.0.0.1 (tests/s3server.py), started on first use."""
    from tests import s3server

    server = s3server.start(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server):
    """A new, empty bucket of the test server (its name)."""
    name = f"luoshi-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name
