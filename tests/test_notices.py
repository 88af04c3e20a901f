"""Notices beyond the inbox (workflow/notices/): e-mail to a real SMTP server on
localhost (aiosmtpd) and 企业微信/钉钉 robot posts to a real local HTTP receiver,
sent from the outbox by the pump as a worker would (``background.drain``);
failures retried with backoff and logged, quiet hours, the users' choices."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from tests.helpers import csrf_token, find_seed_task
from workflow.timeutil import played_at

PUBLIC_URL = "https://luoshi.example.gov.cn"
# User text that must stay text in every channel: a tag, a markdown link, and
# line breaks (CR-LF, and U+2028, which the e-mail library also treats as one)
# that would start a header of their own if they reached one.
HOSTILE = ("<script>alert(1)</script> [点此](http://evil.example/) **加急**\r\n"
           "Bcc: evil@example.com\u2028Subject: 伪造")


@pytest.fixture
def db_template():
    return "seed"


@pytest.fixture
def mail_app(app, mail_sink):
    """The app with e-mail going to the MailSink (settings are read when sending)."""
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=mail_sink.port, PUBLIC_URL=PUBLIC_URL,
                      MAIL_FROM="luoshi@zhoucun.example.gov.cn", MAIL_TIMEOUT=5, ROBOT_TIMEOUT=5)
    return app


def set_user(app, username: str, **fields) -> int:
    from models import User
    from workflow.extensions import db

    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        for name, value in fields.items():
            setattr(user, name, value)
        db.session.commit()
        return user.id


def set_robot(app, unit_id: int, kind: str | None, url: str | None, secret: str | None = None) -> None:
    from models import Unit
    from workflow.extensions import db

    with app.app_context():
        unit = db.session.get(Unit, unit_id)
        unit.robot_kind, unit.robot_url, unit.robot_secret = kind, url, secret
        db.session.commit()


def urge(login, task_id: int, message: str, *, follow: bool = False):
    """催办 through the task page's form, as the office."""
    office = login("office")
    token = csrf_token(office, f"/tasks/{task_id}")
    return office.post(f"/tasks/{task_id}/urge", data={"csrf_token": token, "message": message},
                       follow_redirects=follow)


def deliveries(app, **where) -> list:
    """The delivery rows (detached, with plain attributes), by id."""
    from models import Delivery
    from workflow.extensions import db

    with app.app_context():
        query = select(Delivery).order_by(Delivery.id)
        for name, value in where.items():
            query = query.where(getattr(Delivery, name) == value)
        rows = db.session.scalars(query).all()
        db.session.expunge_all()
        return rows


def urged_inbox_count(app, task_id: int) -> int:
    from models import Notification
    from workflow.extensions import db

    with app.app_context():
        return db.session.scalar(select(func.count(Notification.id)).where(
            Notification.task_id == task_id, Notification.kind == "urged"))


def audit_urges(app, task_id: int) -> int:
    from models import AuditEntry
    from workflow.extensions import db

    with app.app_context():
        return db.session.scalar(select(func.count(AuditEntry.id)).where(
            AuditEntry.task_id == task_id, AuditEntry.action == "urge"))


def text_and_html(message) -> tuple[str, str]:
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None, message
    return plain.get_content(), html.get_content()


def utc_naive() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# ---------------------------------------------------------------- 1. the channels

def test_an_urge_reaches_each_user_by_email_with_chinese_subject_link_and_escaped_text(mail_app, login, mail_sink,
                                                                                      one_part_task):
    from workflow import background

    app = mail_app
    staff = set_user(app, one_part_task.part_staff, email="staff@unit.example.gov.cn")
    leader = set_user(app, one_part_task.part_leader, email="leader@unit.example.gov.cn")

    response = urge(login, one_part_task.task_id, HOSTILE)
    assert response.status_code == 302
    rows = deliveries(app)
    assert sorted((d.channel, d.user_id, d.status) for d in rows) == sorted([
        ("email", staff, "pending"), ("email", leader, "pending")])
    assert mail_sink.received.mails == []      # nothing leaves inside the request

    assert background.drain(app) == 1          # one pump for the notice's deliveries
    mails = mail_sink.received.mails
    assert sorted(m["To"] for m in mails) == ["leader@unit.example.gov.cn", "staff@unit.example.gov.cn"]
    with app.app_context():
        from models import Task
        from workflow.extensions import db

        label = db.session.get(Task, one_part_task.task_id).label
    link = f"{PUBLIC_URL}/tasks/{one_part_task.task_id}"
    ids = set()
    for mail in mails:
        subject = mail["Subject"]
        assert subject.startswith(f"【落实】催办：办公室催办{label}：<script>"), subject
        assert "\n" not in subject and "\r" not in subject and "\u2028" not in subject
        # The user's "Bcc:" and "Subject:" stayed inside the one subject, never headers.
        assert mail.get_all("Subject") == [subject] and mail["Bcc"] is None
        assert set(k.lower() for k in mail.keys()) == {
            "subject", "from", "to", "message-id", "date", "auto-submitted", "mime-version", "content-type"}
        assert "落实督办系统" in mail["From"] and "luoshi@zhoucun.example.gov.cn" in mail["From"]
        assert re.fullmatch(r"<luoshi\.\d+\.[0-9a-f]{12}@zhoucun\.example\.gov\.cn>", mail["Message-ID"])
        ids.add(mail["Message-ID"])
        plain, html = text_and_html(mail)
        # Text: the user's words as they were written, and the task's address.
        assert "<script>alert(1)</script> [点此](http://evil.example/) **加急**" in plain
        assert link in plain and "需登录" in plain
        # HTML: escaped, and the only link is the task's.
        assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert re.findall(r'href="([^"]*)"', html) == [link]
        assert "[点此](http://evil.example/)" in html
        # Any SMTP server takes it: every part is 7-bit (base64 or quoted-printable).
        for part in mail.walk():
            if not part.is_multipart():
                assert part["Content-Transfer-Encoding"] in ("base64", "quoted-printable"), part
    assert len(ids) == 2
    sent = deliveries(app)
    assert [(d.status, d.attempts, d.last_error) for d in sent] == [("sent", 1, None)] * 2
    assert all(d.response.startswith(f"127.0.0.1:{mail_sink.port} 250") and d.sent_at for d in sent)


def test_a_wecom_robot_gets_one_markdown_post_per_notice_and_unit(mail_app, login, robot_sink):
    from models import Task
    from workflow import background
    from workflow.extensions import db

    app = mail_app
    with app.app_context():
        task = find_seed_task(parts=2)
        task_id, units = task.id, [p.unit_id for p in task.parts]
    for unit_id in units:
        set_robot(app, unit_id, "wecom", robot_sink.url(f"/cgi-bin/webhook/send?key=unit{unit_id}"))

    assert urge(login, task_id, HOSTILE).status_code == 302
    # Two users in each unit, one robot post per unit.
    assert urged_inbox_count(app, task_id) == 4
    assert sorted(d.unit_id for d in deliveries(app, channel="robot")) == sorted(units)
    assert background.drain(app) == 1
    posts = robot_sink.received.posts
    assert sorted(p["query"]["key"][0] for p in posts) == sorted(f"unit{u}" for u in units)
    with app.app_context():
        label = db.session.get(Task, task_id).label
    for post in posts:
        assert post["path"] == "/cgi-bin/webhook/send"
        body = post["body"]
        assert body["msgtype"] == "markdown" and set(body["markdown"]) == {"content"}
        content = body["markdown"]["content"]
        assert content.startswith("**【落实】催办**")
        # User text is escaped: no tag, emphasis or link of its own; the one link is the task's.
        assert "<script" not in content and "&lt;script&gt;" in content
        assert "**加急**" not in content and r"\*\*加急\*\*" in content
        assert re.findall(r"\]\(([^)]*)\)", content) == [f"{PUBLIC_URL}/tasks/{task_id}"]
        assert label.replace("-", r"\-") in content
    assert [(d.status, d.attempts) for d in deliveries(app, channel="robot")] == [("sent", 1)] * 2
    assert all(d.response == "HTTP 200 errcode 0" for d in deliveries(app, channel="robot"))


def test_a_dingtalk_robot_with_a_secret_gets_a_signature_that_verifies(mail_app, login, robot_sink, one_part_task):
    from workflow import background

    app = mail_app
    secret = "SEC0123456789abcdef+/=签名"
    set_robot(app, one_part_task.part_unit_id, "dingtalk", robot_sink.url("/robot/send?access_token=tok"), secret)
    before = int(time.time() * 1000)
    assert urge(login, one_part_task.task_id, "请于本周内提交").status_code == 302
    assert background.drain(app) == 1
    after = int(time.time() * 1000)
    [post] = robot_sink.received.posts
    assert post["path"] == "/robot/send" and post["query"]["access_token"] == ["tok"]
    [timestamp], [sign] = post["query"]["timestamp"], post["query"]["sign"]
    assert before <= int(timestamp) <= after
    # 钉钉's own check: HmacSHA256 over "timestamp\nsecret" with the secret as key, base64.
    expected = base64.b64encode(hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert sign == expected
    body = post["body"]
    assert body["msgtype"] == "markdown" and body["markdown"]["title"] == "【落实】催办"
    assert "请于本周内提交" in body["markdown"]["text"]
    assert f"]({PUBLIC_URL}/tasks/{one_part_task.task_id})" in body["markdown"]["text"]
    [row] = deliveries(app)
    assert row.status == "sent" and "tok" not in row.address and "（钉钉）" in row.address


# ---------------------------------------------------------------- 2. failures, retries, the log

def _dead_port() -> int:
    from tests.conftest import _free_port

    return _free_port()     # bound and released: nobody listens there


def test_a_refusing_mail_server_never_fails_the_action_and_is_retried_with_backoff_then_failed(
        app, login, runner, one_part_task):
    from workflow import background
    from workflow.notices import delivery

    port = _dead_port()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port, NOTICE_ATTEMPTS=3, PUBLIC_URL=PUBLIC_URL)
    set_user(app, one_part_task.part_staff, email="staff@unit.example.gov.cn")

    response = urge(login, one_part_task.task_id, "请抓紧", follow=True)
    assert response.status_code == 200 and "已催办，相关单位将收到通知。" in response.text
    assert audit_urges(app, one_part_task.task_id) == 1 and urged_inbox_count(app, one_part_task.task_id) == 2

    waits = []
    for attempt in (1, 2, 3):
        before = utc_naive()
        [row] = deliveries(app)
        # Each try as a worker would make it once the backoff has passed.
        until = None if attempt == 1 else row.next_attempt_at + timedelta(seconds=1)
        assert background.drain(app, until=until) == 1
        [row] = deliveries(app)
        assert row.attempts == attempt and row.last_error.startswith(f"无法连接邮件服务器 127.0.0.1:{port}：连接被拒绝")
        if attempt < 3:
            with app.app_context():
                wait = delivery.backoff_seconds(attempt)
            start = until or before
            assert row.status == "pending"
            assert start + timedelta(seconds=wait) <= row.next_attempt_at <= (until or utc_naive()) + timedelta(
                seconds=wait)
            waits.append(wait)
            # Not before its time: a drain now sends nothing.
            assert background.drain(app, until=row.next_attempt_at - timedelta(seconds=2)) == 0
        else:
            assert row.status == "failed"
    assert waits == [30, 120]      # delivery.BACKOFF
    # Nothing is left to run for it.
    assert background.drain(app, until=utc_naive() + timedelta(days=1)) == 0

    result = runner.invoke(args=["notices", "log"])
    assert result.exit_code == 0, result.output
    line = next(l for l in result.output.splitlines() if l.startswith(f"#{row.id} "))
    assert "电子邮件" in line and "staff@unit.example.gov.cn" in line and "发送失败" in line and "3 次" in line
    assert "连接被拒绝" in line and "催办" in line
    assert "发送失败 1" in result.output


def test_a_mail_server_that_comes_up_gets_the_retry(app, login, runner, one_part_task):
    from workflow import background
    from workflow.notices.sink import MailSink

    port = _dead_port()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port, PUBLIC_URL=PUBLIC_URL)
    set_user(app, one_part_task.part_staff, email="staff@unit.example.gov.cn")
    assert urge(login, one_part_task.task_id, "请抓紧").status_code == 302
    assert background.drain(app) == 1
    [row] = deliveries(app)
    assert row.status == "pending" and row.attempts == 1 and "连接被拒绝" in row.last_error

    sink = MailSink(port)
    try:
        assert background.drain(app, until=row.next_attempt_at + timedelta(seconds=1)) == 1
        [mail] = sink.received.mails
    finally:
        sink.stop()
    [row] = deliveries(app)
    assert row.status == "sent" and row.attempts == 2 and row.last_error is None
    assert mail["To"] == "staff@unit.example.gov.cn"
    result = runner.invoke(args=["notices", "log", "--status", "sent"])
    assert f"#{row.id} " in result.output and "已发送" in result.output and "2 次" in result.output
    assert f"127.0.0.1:{port} 250" in result.output


def test_a_robot_answering_500_or_an_errcode_is_retried_and_logged(app, login, runner, robot_sink, one_part_task):
    from workflow import background

    app.config.update(PUBLIC_URL=PUBLIC_URL)
    set_robot(app, one_part_task.part_unit_id, "wecom", robot_sink.url())
    robot_sink.fail_with = 500
    response = urge(login, one_part_task.task_id, "请抓紧")
    assert response.status_code == 302 and audit_urges(app, one_part_task.task_id) == 1
    assert background.drain(app) == 1
    [row] = deliveries(app)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "机器人接口返回 HTTP 500")

    robot_sink.fail_with = {"errcode": 93000, "errmsg": "invalid webhook url"}
    assert background.drain(app, until=row.next_attempt_at + timedelta(seconds=1)) == 1
    [row] = deliveries(app)
    assert (row.status, row.attempts) == ("pending", 2)
    assert row.last_error == "机器人接口拒绝：errcode 93000 invalid webhook url"
    assert robot_sink.received.posts == []

    robot_sink.fail_with = None
    assert background.drain(app, until=row.next_attempt_at + timedelta(seconds=1)) == 1
    [row] = deliveries(app)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)
    assert len(robot_sink.received.posts) == 1
    result = runner.invoke(args=["notices", "log", "--channel", "robot"])
    assert "单位工作群机器人" in result.output and "已发送" in result.output and "3 次" in result.output


def test_an_unreachable_queue_does_not_fail_the_action_and_the_watchdog_sends_later(app, login, mail_sink,
                                                                                   one_part_task):
    """The queue is down when the action commits: the action succeeds, the
    delivery waits in the database, and the watchdog's tick pumps it."""
    from workflow import background
    from workflow.extensions import db
    from workflow.notices import delivery

    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=mail_sink.port)
    real_queue = app.config["QUEUE_URL"]
    app.config["QUEUE_URL"] = f"redis://127.0.0.1:{_dead_port()}/0"
    app.extensions.pop("luoshi.huey", None)
    set_user(app, one_part_task.part_staff, email="staff@unit.example.gov.cn")
    assert urge(login, one_part_task.task_id, "请抓紧").status_code == 302
    assert audit_urges(app, one_part_task.task_id) == 1
    [row] = deliveries(app)
    assert row.status == "pending" and mail_sink.received.mails == []

    app.config["QUEUE_URL"] = real_queue
    app.extensions.pop("luoshi.huey", None)
    assert background.drain(app) == 0        # the message was lost
    with app.app_context(), played_at(row.next_attempt_at + timedelta(seconds=61)):
        assert delivery.watchdog() == {"released": 0, "late": 1}
        db.session.commit()
    assert background.drain(app) == 1
    assert len(mail_sink.received.mails) == 1 and deliveries(app)[0].status == "sent"


# ---------------------------------------------------------------- 3. quiet hours

CST = timezone(timedelta(hours=8))


def _cst(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of 2026-03-<day> in China Standard Time, as naive UTC."""
    return datetime(2026, 3, day, hour, minute, tzinfo=CST).astimezone(timezone.utc).replace(tzinfo=None)


def test_notices_in_quiet_hours_wait_for_the_end_of_the_window(app, login, mail_sink, one_part_task):
    from workflow import background

    now_local = datetime.now(CST)
    start, end = now_local - timedelta(hours=1), now_local + timedelta(hours=1)
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=mail_sink.port,
                      QUIET_HOURS=f"{start:%H:%M}-{end:%H:%M}")
    set_user(app, one_part_task.part_staff, email="staff@unit.example.gov.cn")
    assert urge(login, one_part_task.task_id, "请抓紧").status_code == 302
    [row] = deliveries(app)
    window_end = end.replace(second=0, microsecond=0).astimezone(timezone.utc).replace(tzinfo=None)
    assert row.status == "pending" and row.next_attempt_at == window_end
    # The inbox has it at once; the e-mail waits.
    assert urged_inbox_count(app, one_part_task.task_id) == 2
    assert background.drain(app) == 0
    assert background.drain(app, until=window_end - timedelta(seconds=5)) == 0
    assert mail_sink.received.mails == [] and deliveries(app)[0].attempts == 0
    # The pump was queued for the window's end: a worker then sends it.
    assert background.drain(app, until=window_end + timedelta(seconds=1)) == 1
    assert len(mail_sink.received.mails) == 1
    assert deliveries(app)[0].status == "sent"


@pytest.mark.parametrize("moment, expected", [
    (_cst(10, 23, 0), _cst(11, 7, 30)),      # after the start: the next morning
    (_cst(10, 22, 0), _cst(11, 7, 30)),      # the start itself is quiet
    (_cst(11, 3, 15), _cst(11, 7, 30)),      # after midnight: the same morning
    (_cst(11, 7, 30), _cst(11, 7, 30)),      # the end is not quiet
    (_cst(11, 7, 29), _cst(11, 7, 30)),
    (_cst(10, 21, 59), _cst(10, 21, 59)),    # before the start: at once
    (_cst(10, 12, 0), _cst(10, 12, 0)),
])
def test_release_time_across_midnight(moment, expected):
    from datetime import time as clock

    from workflow.notices.quiet import release_time

    assert release_time(moment, (clock(22, 0), clock(7, 30))) == expected


@pytest.mark.parametrize("moment, expected", [
    (_cst(10, 12, 0), _cst(10, 14, 0)),
    (_cst(10, 13, 59), _cst(10, 14, 0)),
    (_cst(10, 14, 0), _cst(10, 14, 0)),
    (_cst(10, 11, 59), _cst(10, 11, 59)),
    (_cst(10, 23, 0), _cst(10, 23, 0)),
])
def test_release_time_within_a_day(moment, expected):
    from datetime import time as clock

    from workflow.notices.quiet import release_time

    assert release_time(moment, (clock(12, 0), clock(14, 0))) == expected


def test_release_time_without_quiet_hours_is_now():
    from workflow.notices.quiet import release_time

    assert release_time(_cst(10, 23, 0), None) == _cst(10, 23, 0)


@pytest.mark.parametrize("value, message", [
    ("22:00", "格式应为 HH:MM-HH:MM"),
    ("夜间", "格式应为 HH:MM-HH:MM"),
    ("22:00-7:3", "格式应为 HH:MM-HH:MM"),
    ("24:00-07:30", "时间无效"),
    ("22:00-07:60", "时间无效"),
    ("08:00-08:00", "开始与结束相同"),
])
def test_malformed_quiet_hours_are_refused_in_chinese(value, message):
    from workflow.notices.quiet import parse

    with pytest.raises(ValueError, match=message):
        parse(value)


def test_quiet_hours_parse():
    from datetime import time as clock

    from workflow.notices.quiet import parse

    assert parse(" 22:00 - 7:30 ") == (clock(22, 0), clock(7, 30))
    assert parse("") is None and parse(None) is None and parse("  ") is None


def test_create_app_refuses_malformed_quiet_hours(tmp_path):
    from tests.conftest import make_app

    with pytest.raises(RuntimeError, match="QUIET_HOURS “23:00-夜里” 格式应为 HH:MM-HH:MM（北京时间）"):
        make_app(f"sqlite:///{tmp_path / 'never.sqlite'}", tmp_path, QUIET_HOURS="23:00-夜里")
    assert not (tmp_path / "never.sqlite").exists()


# ---------------------------------------------------------------- 4. the users' choices

def test_only_the_channels_each_user_chose_get_a_delivery(app, login, mail_sink, robot_sink):
    from models import Notification
    from workflow.extensions import db

    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=mail_sink.port)
    with app.app_context():
        task = find_seed_task(parts=2)
        task_id = task.id
        (unit_a, unit_b) = [p.unit_id for p in task.parts]
    from tests.helpers import unit_username

    wants = set_user(app, unit_username(unit_a, "staff"), email="a.staff@example.gov.cn", notify_robot=False)
    opted_out = set_user(app, unit_username(unit_a, "leader"), email="a.leader@example.gov.cn", notify_email=False,
                         notify_robot=False)
    set_user(app, unit_username(unit_b, "staff"), email=None)
    set_user(app, unit_username(unit_b, "leader"), email="", notify_robot=True)
    # Both units have robots; nobody in unit A wants robot posts, unit B's leader does.
    set_robot(app, unit_a, "wecom", robot_sink.url("/a"))
    set_robot(app, unit_b, "wecom", robot_sink.url("/b"))
    assert urge(login, task_id, "请抓紧").status_code == 302
    rows = deliveries(app)
    assert sorted((d.channel, d.user_id or d.unit_id) for d in rows) == sorted([("email", wants), ("robot", unit_b)])
    with app.app_context():
        assert db.session.scalar(select(func.count(Notification.id)).where(Notification.task_id == task_id)) == 4
        assert opted_out in db.session.scalars(select(Notification.user_id)).all()


def test_without_mail_server_no_email_rows(app, login, one_part_task):
    set_user(app, one_part_task.part_staff, email="staff@unit.example.gov.cn")
    assert app.config["MAIL_SERVER"] is None
    assert urge(login, one_part_task.task_id, "请抓紧").status_code == 302
    assert deliveries(app) == [] and urged_inbox_count(app, one_part_task.task_id) == 2


def test_a_unit_without_a_complete_robot_setting_gets_no_post(app, login, one_part_task):
    set_robot(app, one_part_task.part_unit_id, "wecom", None)
    assert urge(login, one_part_task.task_id, "请抓紧").status_code == 302
    set_robot(app, one_part_task.part_unit_id, None, "http://127.0.0.1:9/x")
    assert urge(login, one_part_task.task_id, "再次催办").status_code == 302
    assert deliveries(app) == [] and urged_inbox_count(app, one_part_task.task_id) == 4


def test_the_demo_history_sends_to_the_inbox_only(app, mail_sink, one_part_task):
    from models import Notification, User
    from workflow import notices
    from workflow.extensions import db

    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=mail_sink.port)
    set_user(app, one_part_task.part_staff, email="staff@unit.example.gov.cn")
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == one_part_task.part_staff))
        with notices.inbox_only():
            notices.send([user], "urged", "历史通知")
        db.session.commit()
        assert db.session.scalar(select(func.count(Notification.id)).where(Notification.message == "历史通知")) == 1
    assert deliveries(app) == []


# ---------------------------------------------------------------- the pump's claims

def test_a_pump_does_not_send_what_another_pump_took_after_its_lease_ran_out(app, mail_sink, one_part_task):
    from models import Delivery, User
    from workflow import notices
    from workflow.extensions import db
    from workflow.notices import delivery

    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=mail_sink.port)
    set_user(app, one_part_task.part_staff, email="staff@unit.example.gov.cn")
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == one_part_task.part_staff))
        notices.send([user], "urged", "请抓紧")
        db.session.commit()
        token, [delivery_id] = delivery.claim(10)
        # The watchdog released it (lease run out) and another pump claimed it.
        row = db.session.get(Delivery, delivery_id)
        row.worker = "elsewhere:1:other"
        db.session.commit()
        assert delivery.deliver(delivery_id, token) is None
        db.session.remove()
        row = db.session.get(Delivery, delivery_id)
        assert (row.status, row.attempts, row.worker) == ("sending", 0, "elsewhere:1:other")
        assert mail_sink.received.mails == []
        # Its holder sends it.
        assert delivery.deliver(delivery_id, "elsewhere:1:other") is None
        assert db.session.get(Delivery, delivery_id, populate_existing=True).status == "sent"
    assert len(mail_sink.received.mails) == 1


def test_a_claim_takes_only_due_pending_deliveries_once(app, mail_sink, one_part_task):
    from models import Delivery, User
    from workflow import notices
    from workflow.extensions import db
    from workflow.notices import delivery
    from workflow.timeutil import utcnow

    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=mail_sink.port)
    set_user(app, one_part_task.part_staff, email="staff@unit.example.gov.cn")
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == one_part_task.part_staff))
        for i in range(3):
            notices.send([user], "urged", f"第 {i} 条")
        db.session.commit()
        rows = db.session.scalars(select(Delivery).order_by(Delivery.id)).all()
        rows[2].next_attempt_at = utcnow() + timedelta(minutes=5)
        db.session.commit()
        first_token, first = delivery.claim(1)
        second_token, second = delivery.claim(10)
        assert first == [rows[0].id] and second == [rows[1].id] and first_token != second_token
        assert delivery.claim(10)[1] == []


@pytest.mark.parametrize("kind", ["wecom", "dingtalk"])
def test_a_long_notice_fits_the_robots_size_limit_with_its_link(app, kind):
    from workflow.notices import channels

    content = channels.Content(kind_label="逾期提醒", message="逾期任务<b>[名单]</b>" * 600, task_label="任务" * 300,
                               task_text=None, link=f"{PUBLIC_URL}/tasks/7", created="2026-03-10 09:00",
                               recipient="区财政局")
    payload = channels.robot_payload(kind, content, 42)
    text = payload["markdown"]["content" if kind == "wecom" else "text"]
    assert len(text.encode("utf-8")) <= 4000
    assert text.count(f"]({PUBLIC_URL}/tasks/7)") == 1 and "全文请登录查看" in text and "通知编号 42" in text
    assert "<b>" not in text and not re.search(r"(?<!\\)\[名单", text)
    # A short one is whole.
    short = channels.robot_payload(kind, channels.Content(
        kind_label="催办", message="请抓紧", task_label=None, task_text=None, link=f"{PUBLIC_URL}/inbox/",
        created="", recipient=""), 1)
    assert "请抓紧\n" in short["markdown"]["content" if kind == "wecom" else "text"]


def test_an_address_that_is_not_one_plain_address_is_refused_not_sent(app, mail_sink, one_part_task):
    from models import Delivery, User
    from workflow import notices
    from workflow.extensions import db
    from workflow.notices import delivery

    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=mail_sink.port, NOTICE_ATTEMPTS=1)
    set_user(app, one_part_task.part_staff, email="staff@unit.example.gov.cn\r\nBcc: evil@example.com")
    set_user(app, one_part_task.part_leader, email="leader@unit.example.gov.cn, evil@example.com")
    with app.app_context():
        users = db.session.scalars(select(User).where(User.username.in_(
            [one_part_task.part_staff, one_part_task.part_leader]))).all()
        notices.send(users, "urged", "请抓紧")
        db.session.commit()
        assert delivery.pump() == 2
        rows = db.session.scalars(select(Delivery).order_by(Delivery.id)).all()
        assert [r.status for r in rows] == ["failed", "failed"]
        assert all(r.last_error.startswith("收件地址无效：") and "\n" not in r.last_error for r in rows)
    assert mail_sink.received.mails == []


def test_the_task_link_in_a_notice_asks_for_login(app, one_part_task):
    response = app.test_client().get(f"/tasks/{one_part_task.task_id}")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_flask_notices_test_sends_through_the_users_channels_or_says_why_not(app, runner, mail_sink, robot_sink,
                                                                            one_part_task):
    result = runner.invoke(args=["notices", "test", one_part_task.part_staff])
    assert result.exit_code == 0, result.output
    assert "已写入" in result.output
    assert "没有站内消息以外的渠道：未配置邮件服务器（MAIL_SERVER）；所在单位未配置工作群机器人。" in result.output

    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=mail_sink.port)
    set_user(app, one_part_task.part_staff, email="staff@unit.example.gov.cn")
    set_robot(app, one_part_task.part_unit_id, "wecom", robot_sink.url())
    result = runner.invoke(args=["notices", "test", one_part_task.part_staff])
    assert result.exit_code == 0, result.output
    assert "电子邮件 staff@unit.example.gov.cn：已发送" in result.output
    assert "单位工作群机器人" in result.output and "已发送 HTTP 200 errcode 0" in result.output
    assert len(mail_sink.received.mails) == 1 and len(robot_sink.received.posts) == 1

    result = runner.invoke(args=["notices", "test", "nobody"])
    assert result.exit_code != 0 and "用户 nobody 不存在。" in result.output


def test_the_app_refuses_to_start_on_an_unreadable_queue_url(tmp_path):
    from tests.conftest import make_app

    with pytest.raises(RuntimeError, match="QUEUE_URL 无法识别：amqp://127.0.0.1/"):
        make_app(f"sqlite:///{tmp_path / 'x.sqlite'}", tmp_path, QUEUE_URL="amqp://127.0.0.1/")


def test_flask_worker_refuses_an_unreadable_queue_url_in_chinese(app, runner):
    app.config["QUEUE_URL"] = "amqp://127.0.0.1/"
    app.extensions.pop("luoshi.huey", None)
    result = runner.invoke(args=["worker"])
    assert result.exit_code == 1 and "QUEUE_URL 无法识别：amqp://127.0.0.1/" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(args=["worker", "--threads", "0"])
    assert result.exit_code == 2
