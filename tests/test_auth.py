"""Login, rate limits, sessions, read-only database, logout, password change, CSRF, production safety, database URLs."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from auth.passwords import METHOD, hash_password, verify_password
from tests.helpers import DEMO_PASSWORD, csrf_token, log_in, row_counts
from workflow.config import DEFAULT_SECRET_KEY, normalise_database_url
from workflow.extensions import db

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


def client_at(app, address: str, agent: str = "Mozilla/5.0 (test)"):
    """A browser at another client address (the TCP peer the server sees)."""
    client = app.test_client()
    client.environ_base.update(REMOTE_ADDR=address, HTTP_USER_AGENT=agent)
    return client


def flashed(response) -> list[str]:
    return re.findall(r'class="flash \w+" role="alert">([^<]*)<', response.get_data(as_text=True))


def counts(app) -> dict[str, int]:
    from models import AuditEntry, Notification, RateLimitCounter

    with app.app_context():
        return row_counts(db, AuditEntry, Notification, RateLimitCounter)


def expire_counters(app, window: str) -> None:
    """Let every counter of the given window (e.g. "15/minute") run out, as time would."""
    from models import RateLimitCounter

    with app.app_context():
        db.session.execute(RateLimitCounter.__table__.update().where(
            RateLimitCounter.key.like(f"%/{window}")).values(expires_at=time.time() - 1))
        db.session.commit()


def deactivate(app, username: str) -> None:
    from models import User

    with app.app_context():
        db.session.scalar(select(User).where(User.username == username)).active = False
        db.session.commit()


def _without_token(response) -> str:
    return re.sub(r'name="csrf_token"[^>]*value="[^"]+"', "", response.get_data(as_text=True))


def test_unknown_inactive_and_real_names_get_the_same_answer(app):
    deactivate(app, "u09.staff")
    answers = []
    for username, password in (("u09.leader", "wrong-password1"), ("nobody", "wrong-password1"),
                               ("u09.staff", DEMO_PASSWORD)):    # inactive, with its right password
        response = post_login(client_at(app, "10.0.0.1"), username, password)
        answers.append((response.status_code, flashed(response),
                        _without_token(response).replace(username, "NAME")))
    assert answers[0][:2] == (401, ["用户名或密码错误。"])
    assert answers[0] == answers[1] == answers[2]


def test_backoff_stops_the_guesser_not_the_account(app):
    """Five failures from one client for one name: that pair waits. The account
    stays open to everyone else, and an unknown name is answered alike."""
    attacker = client_at(app, "203.0.113.7")
    for _ in range(5):
        assert post_login(attacker, "office", "guess-123").status_code == 401
        assert post_login(attacker, "no.such.user", "guess-123").status_code == 401

    before = counts(app)
    real = post_login(attacker, "office", DEMO_PASSWORD)          # even the right password
    unknown = post_login(attacker, "no.such.user", "guess-123")
    assert real.status_code == unknown.status_code == 429
    assert flashed(real) == flashed(unknown)
    assert re.fullmatch(r"该用户名在本机登录失败次数过多，请 1[45] 分钟后再试；如忘记密码，请联系办公室管理员重置。",
                        flashed(real)[0])
    assert 0 < int(real.headers["Retry-After"]) <= 15 * 60
    assert counts(app) == before                                  # a refused attempt writes nothing
    assert not is_logged_in(attacker)

    # The office administrator signs in from their own browser as usual,
    assert post_login(client_at(app, "10.1.1.20"), "office", DEMO_PASSWORD).status_code == 302
    # and the attacker may still try other names (until the per-client cap).
    assert post_login(attacker, "u03.leader", DEMO_PASSWORD).status_code == 302


def test_backoff_grows(app):
    attacker = client_at(app, "203.0.113.8")
    for _ in range(5):
        assert post_login(attacker, "u03.leader", "guess-123").status_code == 401
    assert post_login(attacker, "u03.leader", "guess-123").status_code == 429
    expire_counters(app, "15/minute")                             # the quarter of an hour is over
    for _ in range(5):
        assert post_login(attacker, "u03.leader", "guess-123").status_code == 401
    expire_counters(app, "15/minute")
    response = post_login(attacker, "u03.leader", "guess-123")
    assert response.status_code == 429                            # now the hour counts (10 per hour)
    minutes = int(re.search(r"请 (\d+) 分钟后再试", flashed(response)[0]).group(1))
    assert 15 < minutes <= 60


def test_right_password_clears_the_backoff_of_that_browser(app):
    user = client_at(app, "10.2.0.5")
    for _ in range(4):
        assert post_login(user, "u03.staff", "typo-1234").status_code == 401
    assert post_login(user, "u03.staff", DEMO_PASSWORD).status_code == 302
    user.post("/auth/logout", data={"csrf_token": csrf_token(user, "/plans/")})
    for _ in range(5):                                            # five more before waiting, not one
        assert post_login(user, "u03.staff", "typo-1234").status_code == 401
    assert post_login(user, "u03.staff", "typo-1234").status_code == 429


def test_per_client_cap_on_login_posts(app):
    app.config["LOGIN_CLIENT_LIMIT"] = "4 per 10 minutes"
    sprayer = client_at(app, "198.51.100.9")
    for name in ("u01.staff", "u02.staff", "u03.staff", "u04.staff"):
        assert post_login(sprayer, name, "Summer2026").status_code == 401
    before = counts(app)
    response = post_login(sprayer, "u05.staff", DEMO_PASSWORD)
    assert response.status_code == 429
    page = response.get_data(as_text=True)
    assert "请求过于频繁" in page and re.search(r"本机（当前网络地址）登录尝试过于频繁，请 (10|9) 分钟后再试。", page)
    assert counts(app) == before
    assert post_login(client_at(app, "10.3.0.1"), "u05.staff", DEMO_PASSWORD).status_code == 302
    assert sprayer.get("/auth/login").status_code == 200          # the cap is on POSTs only


def test_posts_refused_by_the_back_off_count_towards_the_client_cap(app):
    """Hammering one name after its back-off started still uses up the client's
    allowance: the refused POSTs are counted, not rolled back with the request."""
    app.config.update(LOGIN_CLIENT_LIMIT="6 per 10 minutes", LOGIN_BACKOFF="2 per 15 minutes")
    hammer = client_at(app, "198.51.100.23")
    assert [post_login(hammer, "u02.staff", "Summer2026").status_code for _ in range(6)] == [401, 401] + [429] * 4
    response = post_login(hammer, "u03.staff", DEMO_PASSWORD)   # another name, the right password
    assert response.status_code == 429
    assert "本机（当前网络地址）登录尝试过于频繁" in response.get_data(as_text=True)


def test_many_clients_failing_on_one_account_alert_the_office(app):
    from models import Notification, Role, User

    app.config["LOGIN_ALERT"] = "8 per hour"
    for n in range(4):
        client = client_at(app, f"203.0.113.{n + 10}")
        for _ in range(2):
            assert post_login(client, "u04.leader", "guess-123").status_code == 401
        for _ in range(2):
            assert post_login(client, "ghost.user", "guess-123").status_code == 401
    post_login(client_at(app, "203.0.113.99"), "u04.leader", "guess-123")   # the 9th: no second alert
    with app.app_context():
        admins = set(db.session.scalars(select(User.id).where(User.role == Role.OFFICE_ADMIN)))
        notes = db.session.scalars(select(Notification).where(Notification.kind == "login_alert")).all()
        assert admins and {n.user_id for n in notes} == admins and len(notes) == len(admins)
        assert "u04.leader" in notes[0].message and "8 次" in notes[0].message and "未被锁定" in notes[0].message
    assert audit_actions(app, "u04.leader").count("login_alert") == 1
    assert "login_alert" not in audit_actions(app, "ghost.user")   # only real accounts are worth an alert
    # Not locked: the owner signs in, and the office sees the alert in its inbox.
    assert post_login(client_at(app, "10.4.0.1"), "u04.leader", DEMO_PASSWORD).status_code == 302
    office = client_at(app, "10.4.0.2")
    log_in(office, "office")
    assert "登录异常" in office.get("/inbox").get_data(as_text=True)


def test_anonymous_failures_write_a_bounded_clean_audit_trail(app):
    from models import AuditEntry

    app.config["LOGIN_AUDIT_LIMIT"] = "3 per hour"
    attacker = client_at(app, "203.0.113.50")
    names = ["evil\u202enimda\x07", "x1", "x2", "x3", "x4"]
    for name in names:
        assert post_login(attacker, name, "guess-123").status_code == 401
    too_long = post_login(attacker, "a" * 65, "guess-123")        # refused by the form: nothing written
    assert too_long.status_code == 200
    with app.app_context():
        entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "login_failed")
                                     .order_by(AuditEntry.seq)).all()
        assert [e.username for e in entries] == ["evilnimda", "x1", "x2"]
        assert all(e.ip == "203.0.113.50" for e in entries)
        assert entries[-1].details == {"note": "此后本时段内来自该地址的登录失败不再逐条记录"}
    # Another client's failures are still written.
    post_login(client_at(app, "10.5.0.1"), "u05.leader", "typo-1234")
    assert audit_actions(app, "u05.leader") == ["login_failed"]


def test_login_counters_are_shared_through_the_database(app):
    """Two app instances on one database (two gunicorn workers) see the same counts."""
    from tests.conftest import make_app

    other_worker = make_app(app.config["SQLALCHEMY_DATABASE_URI"], Path(app.instance_path).parent)
    attacker_1 = client_at(app, "203.0.113.60")
    attacker_2 = client_at(other_worker, "203.0.113.60")
    for client in (attacker_1, attacker_2, attacker_1, attacker_2, attacker_1):
        assert post_login(client, "u06.leader", "guess-123").status_code == 401
    assert post_login(attacker_2, "u06.leader", "guess-123").status_code == 429
    with other_worker.app_context():
        db.session.remove()
        db.engine.dispose()


def test_the_database_storage_keeps_fixed_windows(app):
    """The ``limits`` storage behind Flask-Limiter (auth/ratelimit.py), on this backend."""
    from auth.ratelimit import DatabaseStorage, limiter
    from models import RateLimitCounter

    storage = DatabaseStorage("luoshi-db://")
    assert isinstance(limiter.storage, DatabaseStorage)             # what the app was configured with
    with app.test_request_context():
        assert storage.get("k") == 0 and storage.check()
        assert [storage.incr("k", 60) for _ in range(3)] == [1, 2, 3]
        assert storage.incr("k", 60, amount=2) == 5 and storage.get("k") == 5
        assert time.time() + 55 < storage.get_expiry("k") <= time.time() + 60
        db.session.commit()
        # A window that ran out starts again from the hit, with a new expiry.
        db.session.execute(RateLimitCounter.__table__.update().values(expires_at=time.time() - 1))
        assert storage.get("k") == 0
        assert storage.incr("k", 60) == 1
        # Counters dead for over a day go when a new window starts; live ones stay.
        db.session.add(RateLimitCounter(key="old", count=9, expires_at=time.time() - 2 * 86400))
        db.session.flush()
        assert storage.incr("new", 60) == 1
        assert set(db.session.scalars(select(RateLimitCounter.key))) == {"k", "new"}
        storage.clear("k")
        assert storage.get("k") == 0
        db.session.commit()


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
    log_in(client, "u05.staff")
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
    log_in(client, "u06.staff")
    log_in(other, "u06.staff")
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


@pytest.mark.parametrize("weak", ["12345678", "abcdefgh", "abcdefg!", "1234567!", "!@#$%^&*"])
def test_weak_new_password_is_refused_in_chinese(app, client, weak):
    """The form promises letters and digits: a symbol is neither."""
    log_in(client, "u07.staff")
    token = csrf_token(client, "/auth/password")
    response = client.post("/auth/password", data={"csrf_token": token, "current": DEMO_PASSWORD,
                                                   "new": weak, "confirm": weak})
    assert "密码需同时包含字母和数字。" in response.get_data(as_text=True)
    assert verify_password(get_user(app, "u07.staff").password_hash, DEMO_PASSWORD)


def test_password_with_letters_and_digits_is_accepted():
    from auth.passwords import password_problem

    assert password_problem("zhoucun2026!") is None and password_problem("周村区政策落实2026") is None


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
    log_in(client, "u08.staff")
    before = get_user(app, "u08.staff")
    response = client.post("/auth/password", data={"current": DEMO_PASSWORD, "new": NEW_PASSWORD,
                                                   "confirm": NEW_PASSWORD})
    assert response.status_code == 400 and "页面已过期" in response.get_data(as_text=True)
    response = client.post("/auth/logout", data={"csrf_token": "forged"})
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    after = get_user(app, "u08.staff")
    assert (after.password_hash, after.session_version) == (before.password_hash, before.session_version)
    assert is_logged_in(client)


def _shift_session(client, **seconds_ago) -> None:
    """Move the session's own clock back (the cookie is re-signed by the app's key)."""
    from auth.session import LOGIN_AT, SEEN

    keys = {"login_at": LOGIN_AT, "seen": SEEN}
    with client.session_transaction() as sess:
        for name, ago in seconds_ago.items():
            sess[keys[name]] = int(time.time()) - ago


def _ended_with(client, message: str) -> None:
    response = client.get("/plans/", follow_redirects=True)
    assert response.request.path == "/auth/login"
    assert message in flashed(response), flashed(response)
    assert not is_logged_in(client)


def test_sessions_end_eight_hours_after_sign_in_however_busy(app):
    from auth.session import LOGIN_AT

    client = client_at(app, "10.6.0.1")
    log_in(client, "u07.staff")
    with client.session_transaction() as sess:
        signed_in_at = sess[LOGIN_AT]
    assert is_logged_in(client) and is_logged_in(client)
    with client.session_transaction() as sess:
        assert sess[LOGIN_AT] == signed_in_at                    # using it does not extend it
    _shift_session(client, login_at=8 * 3600 - 60, seen=10)
    assert is_logged_in(client)                                   # a minute left
    _shift_session(client, login_at=8 * 3600 + 1, seen=10)
    _ended_with(client, "登录已超过 8 小时，为安全起见请重新登录。")
    # The limit follows SESSION_HOURS.
    app.config["SESSION_HOURS"] = 2
    log_in(client, "u07.staff")
    _shift_session(client, login_at=2 * 3600 + 1, seen=10)
    _ended_with(client, "登录已超过 2 小时，为安全起见请重新登录。")


def test_idle_sessions_end(app):
    client = client_at(app, "10.6.0.2")
    log_in(client, "u07.leader")
    assert app.config["SESSION_IDLE_MINUTES"] == 120
    _shift_session(client, seen=119 * 60)
    assert is_logged_in(client)                                   # and that request counts as activity
    _shift_session(client, seen=119 * 60)
    assert is_logged_in(client)
    _shift_session(client, seen=120 * 60 + 1)
    _ended_with(client, "您已 120 分钟未操作，为安全起见已自动退出，请重新登录。")
    app.config["SESSION_IDLE_MINUTES"] = 0                        # 0: no idle limit
    log_in(client, "u07.leader")
    _shift_session(client, seen=5 * 3600)
    assert is_logged_in(client)


MOVED = "检测到该登录会话在另一浏览器或网络地址上使用，为安全起见已结束该会话，请重新登录。"


@pytest.mark.parametrize("address,agent,forwarded", [
    ("10.9.9.9", "Mozilla/5.0 (victim)", None),                 # another address
    ("10.7.0.1", "curl/8.0", None),                             # another browser
    ("10.9.9.9", "Mozilla/5.0 (victim)", "10.7.0.1"),           # claiming the victim's address
])
def test_a_copied_cookie_used_elsewhere_ends_that_session(app, address, agent, forwarded):
    victim = client_at(app, "10.7.0.1", "Mozilla/5.0 (victim)")
    log_in(victim, "u08.leader")
    thief = client_at(app, address, agent)
    if forwarded:
        thief.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded
    thief.set_cookie("session", _session_cookie(victim))
    _ended_with(thief, MOVED)
    assert is_logged_in(victim)                                   # the victim's own browser goes on


def test_binding_can_be_relaxed_to_the_browser(app):
    app.config["SESSION_BIND"] = "agent"
    user = client_at(app, "10.7.0.2", "Mozilla/5.0 (laptop)")
    log_in(user, "u08.staff")
    user.environ_base["REMOTE_ADDR"] = "10.7.0.3"                # same browser, new address (Wi-Fi → cable)
    assert is_logged_in(user)
    user.environ_base["HTTP_USER_AGENT"] = "curl/8.0"
    _ended_with(user, MOVED)


def test_behind_trusted_proxies_the_forwarded_address_counts(databases, tmp_path):
    from tests.conftest import make_app

    url = databases.clone("seed", tmp_path)
    app = make_app(url, tmp_path, TRUSTED_PROXIES=1)
    try:
        def via_proxy(client_address: str):
            client = client_at(app, "10.0.0.254")                  # every request comes from the proxy
            client.environ_base["HTTP_X_FORWARDED_FOR"] = client_address
            return client

        alice = via_proxy("172.16.0.5")
        log_in(alice, "u09.leader")
        with app.app_context():
            from models import AuditEntry
            ip = db.session.scalar(select(AuditEntry.ip).where(AuditEntry.action == "login"))
        assert ip == "172.16.0.5"
        thief = via_proxy("172.16.0.66")
        thief.set_cookie("session", _session_cookie(alice))
        _ended_with(thief, MOVED)
        # The back-off is per real client too: one guesser behind the proxy does not block the others.
        for _ in range(5):
            post_login(thief, "u09.staff", "guess-123")
        assert post_login(thief, "u09.staff", DEMO_PASSWORD).status_code == 429
        assert post_login(via_proxy("172.16.0.7"), "u09.staff", DEMO_PASSWORD).status_code == 302
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        databases.drop(url)


# ---------------------------------------------------------------- a database that refuses writes

@pytest.fixture
def read_only(app, databases):
    """Make the test's database refuse writes, as a read-only mount, a full disk
    or a read-only replica would: SQLite with PRAGMA query_only, PostgreSQL with
    default_transaction_read_only. Call it to switch; it switches back at the end."""
    from sqlalchemy import event, text
    from sqlalchemy.engine import make_url

    state = {}

    def _query_only(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA query_only = ON")

    def switch(on: bool = True):
        with app.app_context():
            engine = db.engine
            if engine.dialect.name == "sqlite":
                if on:
                    event.listen(engine, "connect", _query_only)
                elif event.contains(engine, "connect", _query_only):
                    event.remove(engine, "connect", _query_only)
            else:
                dbname = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).database
                with databases.admin.connect() as conn:
                    conn.execute(text(f'ALTER DATABASE "{dbname}" SET default_transaction_read_only = '
                                      + ("on" if on else "off")))
            db.session.remove()
            engine.dispose()                                      # new connections take the setting
        state["on"] = on

    yield switch
    if state.get("on"):
        switch(False)


def test_login_on_a_read_only_database_is_a_503_and_signs_nobody_in(app, client, read_only):
    from models import AuditEntry

    with app.app_context():
        entries = db.session.scalar(select(func.count(AuditEntry.id)))
    token = csrf_token(client, "/auth/login")
    read_only()
    response = client.post("/auth/login", data={"csrf_token": token, "username": "u10.staff",
                                                "password": DEMO_PASSWORD})
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "暂时无法保存" in page and "数据库暂时不能写入" in page and "系统错误" not in page
    with client.session_transaction() as sess:
        assert "_user_id" not in sess
    assert not is_logged_in(client)
    # A wrong password is refused the same way: nothing can be counted, so nothing is decided.
    assert post_login(client, "u10.staff", "wrong-password1").status_code == 503
    read_only(False)
    with app.app_context():
        assert db.session.scalar(select(func.count(AuditEntry.id))) == entries
    assert post_login(client, "u10.staff", DEMO_PASSWORD).status_code == 302
    assert audit_actions(app, "u10.staff") == ["login"]


def test_any_write_on_a_read_only_database_is_a_chinese_503(app, read_only):
    from models import Unit

    office = client_at(app, "10.8.0.1")
    log_in(office, "office")
    token = csrf_token(office, "/admin/units")
    read_only()
    assert office.get("/admin/units").status_code == 200          # reading still works
    response = office.post("/admin/units/new", data={"csrf_token": token, "name": "区档案馆", "kind": "center"})
    assert response.status_code == 503
    assert "数据库暂时不能写入" in response.get_data(as_text=True)
    read_only(False)
    with app.app_context():
        assert db.session.scalar(select(Unit).where(Unit.name == "区档案馆")) is None
    assert is_logged_in(office)


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
    log_in(client, "office")
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


# ---------------------------------------------------------------- the demo accounts hint

def _hint_names(html: str) -> list[str]:
    hint = re.search(r'<div class="muted demo-hint">(.*?)</div>', html, re.S)
    if hint is None:
        return []
    password = re.search(r"<code>([^<]+)</code>", hint.group(1)).group(1)
    return [password] + re.findall(r"<li><code>([^<]+)</code>", hint.group(1))


def test_login_hint_names_only_accounts_that_exist_and_each_signs_in(app, client):
    """The hint is read from the users `flask demo` created: every name it shows signs in with its password."""
    from models import User

    names = _hint_names(client.get("/auth/login").get_data(as_text=True))
    assert names[0] == DEMO_PASSWORD
    accounts = names[1:]
    with app.app_context():
        existing = set(db.session.scalars(select(User.username)))
    assert {"office", "office2", "leader"} <= set(accounts)
    assert len(accounts) == 5 and set(accounts) <= existing
    assert re.fullmatch(r"u\d\d\.leader", accounts[3]) and accounts[4] == accounts[3].replace("leader", "staff")
    for name in accounts:
        # log_in asserts the sign-in redirected (302) and the session is theirs.
        signed_in = log_in(app.test_client(), name)
        assert signed_in.get("/").status_code == 200, name


def test_login_hint_absent_without_demo_accounts_and_in_production(app, client, tmp_path):
    from tests.conftest import make_app

    with app.app_context():
        app.config["LUOSHI_ENV"] = "production"
    assert _hint_names(client.get("/auth/login").get_data(as_text=True)) == []
    assert "demo-2026" not in client.get("/auth/login").get_data(as_text=True)

    empty = make_app(f"sqlite:///{tmp_path / 'empty.sqlite'}", tmp_path, LUOSHI_ENV="demo")
    with empty.app_context():
        from flask_migrate import upgrade

        upgrade()
    page = empty.test_client().get("/auth/login").get_data(as_text=True)
    assert "demo-hint" not in page and "demo-2026" not in page
