"""Creation times of units, users and plans are UTC, like every other timestamp, even when
the database session runs in another time zone (PostgreSQL: Asia/Shanghai here, eight hours
ahead; the old server default CURRENT_TIMESTAMP gave its local time there)."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text

from tests.conftest import PG_URL
from workflow.extensions import db
from workflow.timeutil import utcnow

ZONE = "Asia/Shanghai"
PREVIOUS = "681e495e97b5"


@pytest.fixture
def app_config() -> dict:
    if not PG_URL:
        return {}
    # Every connection of the application, migrations included, runs in Shanghai time.
    return {"SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True,
                                          "connect_args": {"options": f"-c timezone={ZONE}"}}}


def _is_postgresql() -> bool:
    return db.engine.dialect.name == "postgresql"


def _assert_utc(value: datetime, since: datetime) -> None:
    # A local time would be eight hours off; a few seconds of test run are not.
    assert since - timedelta(seconds=5) <= value <= utcnow() + timedelta(seconds=5), (value, since)


def _session_zone_is_shanghai() -> None:
    if _is_postgresql():
        assert db.session.scalar(text("SHOW TimeZone")) == ZONE


def test_units_users_and_plans_made_by_the_application_get_utc(app):
    from models import Plan, Role, Unit, User

    with app.app_context():
        _session_zone_is_shanghai()
        since = utcnow().replace(microsecond=0)
        unit = Unit(name="区测试局")
        db.session.add(unit)
        db.session.flush()
        user = User(username="u1", display_name="测试", password_hash="x", unit_id=unit.id, role=Role.VIEWER)
        plan = Plan(title="测试方案", source_filename="t.txt", source_sha256="a" * 64)
        db.session.add_all([user, plan])
        db.session.commit()
        for row in (unit, user, plan):
            db.session.refresh(row)
        _assert_utc(unit.created_at, since)
        _assert_utc(user.created_at, since)
        _assert_utc(plan.imported_at, since)


def test_rows_inserted_by_plain_sql_get_utc_from_the_server_default(app):
    from models import Plan, Unit, User

    with app.app_context():
        _session_zone_is_shanghai()
        since = utcnow().replace(microsecond=0)
        db.session.execute(text("INSERT INTO unit (name, kind) VALUES ('区测试局', 'other')"))
        unit_id = db.session.scalar(select(Unit.id).where(Unit.name == "区测试局"))
        db.session.execute(text('INSERT INTO "user" (username, display_name, password_hash, unit_id, role, active,'
                                " session_version) VALUES ('u1', '测试', 'x', :unit, 'viewer', :yes, 1)"),
                           {"unit": unit_id, "yes": True})
        db.session.execute(text("INSERT INTO plan (title, source_filename, source_sha256)"
                                " VALUES ('测试方案', 't.txt', :sha)"), {"sha": "a" * 64})
        db.session.commit()
        _assert_utc(db.session.scalar(select(Unit.created_at)), since)
        _assert_utc(db.session.scalar(select(User.created_at)), since)
        _assert_utc(db.session.scalar(select(Plan.imported_at)), since)


def test_the_migration_converts_local_times_already_stored(app):
    """Rows written under the old default hold Shanghai time; after the upgrade they hold UTC."""
    from flask_migrate import downgrade, upgrade

    from models import Unit

    with app.app_context():
        downgrade(revision=PREVIOUS)
        db.session.remove()
        _session_zone_is_shanghai()
        since = utcnow().replace(microsecond=0)
        db.session.execute(text("INSERT INTO unit (name, kind) VALUES ('区测试局', 'other')"))
        db.session.commit()
        stored = db.session.scalar(select(Unit.created_at))
        if _is_postgresql():
            assert stored - since > timedelta(hours=7), "the old default gave local time"
        db.session.remove()
        upgrade()
        db.session.remove()
        _assert_utc(db.session.scalar(select(Unit.created_at)), since)
