"""The application's clock (LUOSHI_TODAY): honoured in demo mode only, shown on
every page, the one "today" of the deadline rules and of the reports' as-of
default; never the time stamped on records."""
from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import make_app

ROOT = Path(__file__).resolve().parent.parent
CLOCK = "2022-09-30"
CLOCK_DAY = date(2022, 9, 30)
SHOWN = "演示时钟：2022年9月30日"
DUE = date(2022, 10, 10)     # ten days after the clock: near due (14 days), long overdue really
CST = timezone(timedelta(hours=8))


@pytest.fixture
def db_template() -> str:
    return "seed"


@pytest.fixture
def app_config(request) -> dict:
    """The extra configuration of this module's ``app`` (parametrise indirectly to change it)."""
    return getattr(request, "param", {"LUOSHI_ENV": "demo", "LUOSHI_TODAY": CLOCK})


def real_today() -> date:
    return datetime.now(CST).date()


def set_deadline(app, day: date) -> int:
    """Give the first planned, dated, not long-term task ``day`` as its deadline."""
    from models import Task
    from workflow.extensions import db

    with app.app_context():
        task = db.session.scalars(select(Task).where(Task.long_term.is_(False), Task.state == "planned")
                                  .order_by(Task.id)).first()
        task.deadline = day
        db.session.commit()
        return task.id


def row_of(html: str, task_id: int) -> str:
    rows = [r for r in re.findall(r"<tr>.*?</tr>", html, re.S) if f'href="/tasks/{task_id}"' in r]
    assert rows, f"task {task_id} is not on the page"
    return rows[0]


def overview_near(html: str) -> int:
    match = re.search(r'class="stat near"[^>]*><div class="n">(\d+)</div>', html)
    assert match, "no near-due figure on the overview"
    return int(match.group(1))


def near_count(app, today: date) -> int:
    from models import Task
    from workflow.due import NEAR, due_status
    from workflow.extensions import db

    with app.app_context():
        return sum(due_status(t, today, app.config["NEAR_DUE_DAYS"]) == NEAR for t in db.session.scalars(select(Task)))


# ---------------------------------------------------------------- demo mode, clock set

def test_demo_clock_is_today_for_the_list_and_the_overview(app, login):
    from workflow.timeutil import today_local

    task_id = set_deadline(app, DUE)
    with app.app_context():
        assert today_local() == CLOCK_DAY
    office = login("office")

    near_page = office.get("/tasks/?due=near")
    assert near_page.status_code == 200
    assert "临期" in row_of(near_page.text, task_id)
    assert "已逾期" not in row_of(office.get("/tasks/").text, task_id)
    assert 'href="/tasks/%d"' % task_id not in office.get("/tasks/?due=late").text

    expected = near_count(app, CLOCK_DAY)
    assert expected >= 1 and expected != near_count(app, real_today())
    assert overview_near(office.get("/overview").text) == expected


def test_demo_clock_is_the_default_as_of_of_reports(app, login):
    from workflow.reports import archive

    office = login("office")
    form = office.get("/reports/new").text
    assert re.search(r'name="as_of"[^>]*value="2022-09-30"', form), "the form's as-of is not the clock's day"
    with app.app_context():
        params = archive.make_params("overall")
        assert params.as_of == CLOCK_DAY
        built = archive.build_html(params, "测试")
    assert "截至 2022-09-30" in built.html and built.filename.endswith("-2022-09-30.pdf")


def test_demo_clock_does_not_move_recorded_time(app, login):
    from models import AuditEntry
    from workflow.extensions import db

    before = datetime.now(timezone.utc).replace(tzinfo=None)
    login("office")
    with app.app_context():
        entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert entry.action == "login"
        assert before - timedelta(seconds=5) <= entry.at <= datetime.now(timezone.utc).replace(tzinfo=None)


def test_header_shows_the_clock_on_every_page(app, login, client):
    assert SHOWN in client.get("/auth/login").text
    office = login("office")
    for path in ("/", "/tasks/", "/overview", "/reports/", "/tasks/999999"):
        page = office.get(path)
        assert SHOWN in page.text, path
    assert office.get("/tasks/999999").status_code == 404


# ---------------------------------------------------------------- not set, or not demo mode

@pytest.mark.parametrize("app_config", [{"LUOSHI_ENV": "demo"}, {"LUOSHI_ENV": "demo", "LUOSHI_TODAY": ""}],
                         indirect=True)
def test_without_the_clock_no_indicator_and_the_real_date(app, login, client):
    from workflow.timeutil import today_local

    with app.app_context():
        assert today_local() == real_today()
    assert "演示时钟" not in client.get("/auth/login").text
    assert "演示时钟" not in login("office").get("/tasks/").text


@pytest.mark.parametrize("env", ["production", "development", "testing"])
def test_clock_outside_demo_mode_is_ignored_with_a_warning(databases, tmp_path, caplog, env):
    from workflow.timeutil import today_local

    url = databases.clone("seed", tmp_path)
    with caplog.at_level(logging.WARNING):
        app = make_app(url, tmp_path, LUOSHI_ENV=env, LUOSHI_TODAY=CLOCK)
    try:
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("已忽略环境变量 LUOSHI_TODAY=2022-09-30" in m and "真实日期" in m for m in warnings), warnings
        with app.app_context():
            assert today_local() == real_today()
        assert "演示时钟" not in app.test_client().get("/auth/login").text
    finally:
        from workflow.extensions import db

        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        databases.drop(url)


@pytest.mark.parametrize("app_config", [{"LUOSHI_ENV": "development", "LUOSHI_TODAY": CLOCK}], indirect=True)
def test_clock_outside_demo_mode_changes_no_page(app, login):
    from workflow.reports import archive

    task_id = set_deadline(app, DUE)
    office = login("office")
    assert "已逾期" in row_of(office.get("/tasks/").text, task_id)
    assert 'href="/tasks/%d"' % task_id not in office.get("/tasks/?due=near").text
    assert overview_near(office.get("/overview").text) == near_count(app, real_today())
    assert "演示时钟" not in office.get("/tasks/").text
    assert f'value="{real_today().isoformat()}"' in office.get("/reports/new").text
    with app.app_context():
        assert archive.make_params("overall").as_of == real_today()


@pytest.fixture
def migrated_after_logging(tmp_path) -> str:
    """A database migrated in this process after the application's logger was made
    (in a fixture: Alembic's logging set-up also replaces the root handlers, the
    capture's among them, for the rest of the phase it runs in)."""
    from flask_migrate import upgrade

    url = f"sqlite:///{tmp_path / 'a.sqlite'}"
    first = make_app(url, tmp_path)
    first.logger.info("the application's logger exists before the migrations run")
    with first.app_context():
        upgrade()
    return url


def test_the_warning_survives_migrations_run_in_the_process(migrated_after_logging, tmp_path, caplog):
    """Alembic's logging set-up (migrations/env.py) must not switch off the
    application's logger that already exists: the warning is still written."""
    with caplog.at_level(logging.WARNING):
        make_app(migrated_after_logging, tmp_path, LUOSHI_ENV="development", LUOSHI_TODAY=CLOCK)
    assert any("已忽略环境变量 LUOSHI_TODAY" in r.getMessage() for r in caplog.records)


def test_no_warning_without_the_setting(databases, tmp_path, caplog):
    url = databases.clone("empty", tmp_path)
    with caplog.at_level(logging.WARNING):
        app = make_app(url, tmp_path, LUOSHI_ENV="production", LUOSHI_TODAY=None)
    assert not [r for r in caplog.records if "LUOSHI_TODAY" in r.getMessage()]
    from workflow.extensions import db

    with app.app_context():
        db.engine.dispose()
    databases.drop(url)


# ---------------------------------------------------------------- invalid values

@pytest.mark.parametrize("value", ["2022-9-30", "20220930", "2022-02-30", "2022-W39-5", "明天", "1999-12-31",
                                   "2101-01-01", "2022-09-30T00:00"])
@pytest.mark.parametrize("env", ["demo", "production"])
def test_an_invalid_clock_refuses_to_start(tmp_path, value, env):
    from workflow.app import create_app

    with pytest.raises(RuntimeError, match="LUOSHI_TODAY") as refused:
        create_app({"LUOSHI_ENV": env, "SECRET_KEY": "a-real-secret", "LUOSHI_TODAY": value,
                    "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.sqlite"})
    assert "拒绝启动" in str(refused.value)


def _run_factory(env: dict) -> subprocess.CompletedProcess:
    code = ("from workflow.app import create_app\nfrom workflow.timeutil import today_local\n"
            "app = create_app()\nwith app.app_context(): print(today_local().isoformat())")
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY", "LUOSHI_ENV", "LUOSHI_TODAY")}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


def test_the_clock_is_read_from_the_environment(tmp_path):
    database = {"DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite"}
    demo = _run_factory({**database, "LUOSHI_ENV": "demo", "LUOSHI_TODAY": CLOCK})
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.strip() == CLOCK

    ignored = _run_factory({**database, "LUOSHI_ENV": "development", "LUOSHI_TODAY": CLOCK})
    assert ignored.returncode == 0, ignored.stderr
    assert ignored.stdout.strip() == real_today().isoformat()
    assert "已忽略环境变量 LUOSHI_TODAY" in ignored.stderr

    refused = _run_factory({**database, "LUOSHI_ENV": "demo", "LUOSHI_TODAY": "2022-13-01"})
    assert refused.returncode != 0
    assert "环境变量 LUOSHI_TODAY" in refused.stderr and "拒绝启动" in refused.stderr
