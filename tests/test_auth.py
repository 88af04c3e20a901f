"""Login, lockout, logout, password change, CSRF, production safety, database URLs."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from auth.passwords import METHOD, hash_password, verify_password
from tests.helpers import DEMO_PASSWORD, csrf_token, login
from workflow.config import DEFAULT_SECRET_KEY, normalise_database_url
from workflow.extensions import db
from workflow.timeutil import utcnow

ROOT = Path(__file__).resolve().parent.parent
NEW_PASSWORD = "luoshi2026new"


@pytest.fixture
def db_template():
    return "seed"


def get_user(app, username: str):
    from models import User

    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        db.session.expunge(user)
        return user


def audit_actions(app, username: str) -> list[str]:
    from models import AuditEntry

    with app.app_context():
        return db.session.scalars(select(AuditEntry.action).where(AuditEntry.username == username)
                                  .order_by(AuditEntry.seq)).all()


def post_login(client, username: str, password: str):
    token = csrf_token(client, "/auth/login")
    return client.post("/auth/login", data={"csrf_token": token, "username": username, "password": password})


def is_logged_in(client) -> bool:
    response = client.get("/plans/")
    if response.status_code == 302:
        assert "/auth/login" in response.headers["Location"]
        return False
    assert response.status_code == 200
    return True


# ---------------------------------------------------------------- login

def test_login_ok(app, client):
    response = post_login(client, "u02.staff", DEMO_PASSWORD)
    assert response.status_code == 302
    assert is_logged_in(client)
    page = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert "区发展改革局经办人" in page
    assert audit_actions(app, "u02.staff") == ["login"]


@pytest.mark.parametrize("username,password", [("u02.staff", "wrong-password1"), ("nobody", "whatever1")])
def test_login_failed_in_chinese(app, client, username, password):
    response = post_login(client, username, password)
    assert response.status_code == 401
    assert "用户名或密码错误。" in response.get_data(as_text=True)   # the same for unknown users
    assert not is_logged_in(client)
    assert audit_actions(app, username) == ["login_failed"]


def test_failures_are_counted_in_the_database_and_lock_the_account(app, client):
    app.config["LOGIN_MAX_FAILURES"] = 3
    for expected in (1, 2):
        assert post_login(client, "u03.leader", "bad-password1").status_code == 401
        assert get_user(app, "u03.leader").failed_logins == expected   # another worker would see it too
    assert get_user(app, "u03.leader").locked_until is None

    assert post_login(client, "u03.leader", "bad-password1").status_code == 401
    locked = get_user(app, "u03.leader")
    assert locked.locked_until is not None and locked.locked_until > utcnow() + timedelta(minutes=10)

    # While locked, even the right password gets nowhere.
    response = post_login(client, "u03.leader", DEMO_PASSWORD)
    assert response.status_code == 429
    assert "该账号因多次密码错误已被锁定" in response.get_data(as_text=True)
    assert not is_logged_in(client)
    # A fresh client (another browser) is refused just the same.
    other = app.test_client()
    assert post_login(other, "u03.leader", DEMO_PASSWORD).status_code == 429
    assert not is_logged_in(other)
    actions = audit_actions(app, "u03.leader")
    assert actions.count("account_locked") == 1 and actions.count("login_locked") == 2
    assert "login" not in actions

    # Once the lock has run out, the right password works and the count starts again.
    from models import User
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "u03.leader"))
        user.locked_until = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert post_login(client, "u03.leader", DEMO_PASSWORD).status_code == 302
    assert is_logged_in(client)
    assert get_user(app, "u03.leader").failed_logins == 0


def test_the_lock_does_not_touch_other_accounts(app, client):
    app.config["LOGIN_MAX_FAILURES"] = 2
    for _ in range(2):
        post_login(client, "u04.staff", "bad-password1")
    assert get_user(app, "u04.staff").locked_until is not None
    assert get_user(app, "u04.leader").locked_until is None
    assert post_login(client, "u04.leader", DEMO_PASSWORD).status_code == 302


# ---------------------------------------------------------------- sessions

def _session_cookie(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def _replay(app, value: str):
    thief = app.test_client()
    thief.set_cookie("session", value)
    return thief


def test_logout_kills_a_copied_cookie(app, client):
    login(client, "u05.staff")
    saved = _session_cookie(client)
    assert is_logged_in(_replay(app, saved))           # the copy works while the session lives

    token = csrf_token(client, "/plans/")
    response = client.post("/auth/logout", data={"csrf_token": token})
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    assert not is_logged_in(client)

    thief = _replay(app, saved)
    response = thief.get("/plans/")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    assert "logout" in audit_actions(app, "u05.staff")


def test_password_change_ends_other_sessions(app, client):
    other = app.test_client()
    login(client, "u06.staff")
    login(other, "u06.staff")
    old_hash = get_user(app, "u06.staff").password_hash

    token = csrf_token(client, "/auth/password")
    response = client.post("/auth/password", data={"csrf_token": token, "current": "wrong-one1",
                                                   "new": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 200 and "当前密码不正确。" in response.get_data(as_text=True)
    assert get_user(app, "u06.staff").password_hash == old_hash
    assert is_logged_in(other)

    response = client.post("/auth/password", data={"csrf_token": token, "current": DEMO_PASSWORD,
                                                   "new": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302
    assert not is_logged_in(other)                      # the other browser is out
    assert not is_logged_in(client)                     # and so is this one: log in again

    user = get_user(app, "u06.staff")
    assert user.password_hash.split("$")[0] == app.config.get("PASSWORD_HASH_METHOD", METHOD)
    assert user.password_hash.startswith("scrypt:")
    assert verify_password(user.password_hash, NEW_PASSWORD)
    assert post_login(app.test_client(), "u06.staff", DEMO_PASSWORD).status_code == 401
    assert post_login(app.test_client(), "u06.staff", NEW_PASSWORD).status_code == 302
    assert "password_changed" in audit_actions(app, "u06.staff")


def test_weak_new_password_is_refused_in_chinese(app, client):
    login(client, "u07.staff")
    token = csrf_token(client, "/auth/password")
    response = client.post("/auth/password", data={"csrf_token": token, "current": DEMO_PASSWORD,
                                                   "new": "12345678", "confirm": "12345678"})
    assert "密码需同时包含字母和数字。" in response.get_data(as_text=True)
    assert verify_password(get_user(app, "u07.staff").password_hash, DEMO_PASSWORD)


def test_passwords_are_scrypt(app, tmp_path):
    from workflow.app import create_app

    # The real work factor, outside any app and in an app configured as in production.
    hashed = hash_password("abc12345")
    assert hashed.startswith("scrypt:32768:8:1$")
    real = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.sqlite", "SECRET_KEY": "s"})
    with real.app_context():
        assert hash_password("abc12345").startswith("scrypt:32768:8:1$")
    assert hashed != hash_password("abc12345")          # salted
    assert verify_password(hashed, "abc12345") and not verify_password(hashed, "abc12346")

    # The test suite may lower the work factor, never the algorithm.
    from models import User
    with app.app_context():
        hashes = db.session.scalars(select(User.password_hash)).all()
    method = app.config.get("PASSWORD_HASH_METHOD", METHOD)
    assert method.startswith("scrypt:")
    assert hashes and all(h.startswith(method + "$") for h in hashes)


# ---------------------------------------------------------------- CSRF

def test_login_without_csrf_token_is_refused(app, client):
    from models import AuditEntry

    with app.app_context():
        entries = db.session.scalar(select(func.count(AuditEntry.id)))
    response = client.post("/auth/login", data={"username": "u08.staff", "password": DEMO_PASSWORD})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "请求无效" in page and "页面已过期或表单校验失败" in page
    assert not is_logged_in(client)
    with app.app_context():
        assert db.session.scalar(select(func.count(AuditEntry.id))) == entries


def test_logged_in_posts_without_csrf_token_change_nothing(app, client):
    login(client, "u08.staff")
    before = get_user(app, "u08.staff")
    response = client.post("/auth/password", data={"current": DEMO_PASSWORD, "new": NEW_PASSWORD,
                                                   "confirm": NEW_PASSWORD})
    assert response.status_code == 400 and "页面已过期" in response.get_data(as_text=True)
    response = client.post("/auth/logout", data={"csrf_token": "forged"})
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    after = get_user(app, "u08.staff")
    assert (after.password_hash, after.session_version) == (before.password_hash, before.session_version)
    assert is_logged_in(client)


# ---------------------------------------------------------------- configuration

@pytest.mark.parametrize("secret", [DEFAULT_SECRET_KEY, ""])
def test_production_refuses_the_default_secret(tmp_path, secret):
    from workflow.app import create_app

    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"LUOSHI_ENV": "production", "SECRET_KEY": secret,
                    "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.sqlite"})
    app = create_app({"LUOSHI_ENV": "production", "SECRET_KEY": "a-real-secret-from-the-environment",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.sqlite"})
    assert app.config["LUOSHI_ENV"] == "production"


def _run_factory(env: dict) -> subprocess.CompletedProcess:
    code = "from workflow.app import create_app; print(create_app().config['SQLALCHEMY_DATABASE_URI'])"
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY", "LUOSHI_ENV")}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


def test_production_refuses_to_start_from_the_environment(tmp_path):
    done = _run_factory({"LUOSHI_ENV": "production", "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite"})
    assert done.returncode != 0
    assert "生产环境必须设置 SECRET_KEY" in done.stderr


@pytest.mark.parametrize("given,expected", [
    ("postgres://luoshi:pw@db.example:5432/luoshi", "postgresql+psycopg://luoshi:pw@db.example:5432/luoshi"),
    ("postgresql://luoshi:pw@db.example/luoshi", "postgresql+psycopg://luoshi:pw@db.example/luoshi"),
    ("postgresql://luoshi@/luoshi?host=/tmp/sock", "postgresql+psycopg://luoshi@/luoshi?host=/tmp/sock"),
    ("postgresql+psycopg://luoshi@db/luoshi", "postgresql+psycopg://luoshi@db/luoshi"),
    ("sqlite:////srv/luoshi/luoshi.sqlite", "sqlite:////srv/luoshi/luoshi.sqlite"),
    ("", None),
    (None, None),
])
def test_database_url_normalisation(given, expected):
    assert normalise_database_url(given) == expected


def test_database_url_from_the_environment():
    done = _run_factory({"DATABASE_URL": "postgres://luoshi:pw@db.example/luoshi", "SECRET_KEY": "s"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "postgresql+psycopg://luoshi:pw@db.example/luoshi"


# ---------------------------------------------------------------- session lifetime and cookies

def test_sessions_expire(tmp_path):
    """The signed cookie carries its age; the server refuses it once the
    lifetime is over, whatever the browser does with Expires."""
    import time

    from tests.conftest import make_app

    app = make_app(f"sqlite:///{tmp_path / 'x.sqlite'}", tmp_path, PERMANENT_SESSION_LIFETIME=1)
    with app.app_context():
        from flask_migrate import upgrade

        from auth.passwords import hash_password
        from models import Role, Unit, UnitKind, User

        upgrade()
        unit = Unit(name="区指挥部办公室", kind=UnitKind.OFFICE)
        db.session.add(unit)
        db.session.flush()
        db.session.add(User(username="office", display_name="办公室", unit_id=unit.id, role=Role.OFFICE_ADMIN,
                            password_hash=hash_password("demo-2026")))
        db.session.commit()
    client = app.test_client()
    login(client, "office")
    assert client.get("/plans/").status_code == 200
    time.sleep(2.1)
    response = client.get("/plans/")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_production_cookies_are_secure(tmp_path):
    from tests.conftest import make_app

    app = make_app(f"sqlite:///{tmp_path / 'x.sqlite'}", tmp_path, LUOSHI_ENV="production",
                   SECRET_KEY="a-real-secret-from-the-environment")
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
