"""Real concurrent requests against a real server on the test database
(SQLite or PostgreSQL): of two conflicting actions exactly one takes effect,
the other is told "已被他人更新", and the audit chain stays whole."""
from __future__ import annotations

import http.client
import re
import hashlib
import os
import threading
import uuid
from contextlib import contextmanager
from http.cookies import SimpleCookie
from urllib.parse import quote, urlencode, urlsplit

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from auth.passwords import hash_password
from tests.helpers import CSRF_RE, DEMO_PASSWORD, one_part_task_in, unit_username
from workflow import audit, services
from workflow.extensions import db
from workflow.vocabulary import IN_PROGRESS, SUBMITTED, VERIFIED

ROUNDS = 4
STALE = "已被他人更新"
SECOND_LEADER_PASSWORD = "second-leader-2026"


@pytest.fixture
def db_template():
    return "seed"


# ---------------------------------------------------------------- a real server and a small browser

@pytest.fixture
def server(app):
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv.server_port
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(10)


class Browser:
    """http.client with a cookie jar of one site (python-requests is not installed)."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}

    def connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.connect()
        return conn

    def request(self, method: str, path: str, form: dict | None = None,
                conn: http.client.HTTPConnection | None = None,
                files: dict[str, tuple[str, bytes]] | None = None) -> tuple[int, str, str]:
        conn = conn or self.connect()
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if files:
            body, headers["Content-Type"] = multipart(form or {}, files)
        elif form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8")
            for header in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    if morsel.value and morsel["expires"] != "Thu, 01 Jan 1970 00:00:00 GMT":
                        self.cookies[name] = morsel.value
                    else:
                        self.cookies.pop(name, None)
            return response.status, response.headers.get("Location", ""), text
        finally:
            conn.close()

    def get(self, path: str) -> str:
        status, location, text = self.request("GET", path)
        if status == 302:
            return self.get(urlsplit(location).path)
        assert status == 200, (path, status, text[:300])
        return text

    def csrf(self, path: str) -> str:
        match = CSRF_RE.search(self.get(path))
        assert match, path
        return match.group(1)

    def login(self, username: str, password: str = DEMO_PASSWORD) -> None:
        token = self.csrf("/auth/login")
        status, location, _ = self.request("POST", "/auth/login",
                                           {"csrf_token": token, "username": username, "password": password})
        assert status == 302 and "/auth/login" not in location, (username, status)


def multipart(form: dict, files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    chunks = []
    for name, value in form.items():
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                      f"filename*=UTF-8''{quote(filename)}\r\n"
                      f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def flash_of(page: str) -> str:
    return " ".join(re.findall(r'<div class="flash [^"]*" role="alert">(.*?)</div>', page, re.S))


def race(*calls):
    """Run each call on its own thread, released together by a barrier
    (connections are opened before it, so only the requests race)."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)
    errors: list = []

    def run(i, call):
        try:
            results[i] = call(barrier)
        except BaseException as exc:   # reported on the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return results


def post_when_released(browser: Browser, path: str, form: dict, files: dict | None = None):
    def call(barrier):
        conn = browser.connect()
        barrier.wait(30)
        status, location, _ = browser.request("POST", path, form, conn=conn, files=files)
        assert status == 302, (path, status)
        # The outcome is flashed on the page the redirect leads to.
        return flash_of(browser.get(urlsplit(location).path))
    return call


# ---------------------------------------------------------------- the scene

class Scene:
    """A one-part task, its unit's staff, and two leaders of its lead unit."""

    def __init__(self, app):
        from models import Role, Unit, User

        self.app = app
        found = one_part_task_in(app, lead_owns_part=False)
        with app.app_context():
            lead = db.session.get(Unit, found.lead_unit_id)
            second = User(username=found.lead_leader + "2", display_name=f"{lead.name}副职负责人",
                          unit_id=lead.id, role=Role.UNIT_LEADER, password_hash=hash_password(SECOND_LEADER_PASSWORD))
            db.session.add(second)
            db.session.commit()
            self.task_id, self.part_id = found.task_id, found.part_id
            self.staff = found.part_staff
            self.leader1, self.leader2 = found.lead_leader, second.username
            db.session.remove()

    @contextmanager
    def session(self):
        from models import TaskPart, User

        with self.app.app_context():
            users = {u.username: u for u in db.session.scalars(select(User).where(
                User.username.in_((self.staff, self.leader1, self.leader2, "office"))))}
            yield db.session.get(TaskPart, self.part_id), users
            db.session.commit()
            db.session.remove()

    def submit(self, note: str) -> int:
        """The unit hands in (through the services); returns the part's version."""
        with self.session() as (part, users):
            if part.state == "planned":
                services.start_part(part, users[self.staff])
            services.add_text_evidence(part, users[self.staff], note)
            services.submit_part(part, users[self.staff], statement=f"已完成：{note}")
        return self.version()

    def version(self) -> int:
        with self.session() as (part, _):
            return part.version

    def part_path(self, event: str) -> str:
        return f"/tasks/{self.task_id}/parts/{self.part_id}/{event}"

    def entries(self, to_state: str) -> list:
        from models import AuditEntry

        with self.app.app_context():
            rows = db.session.scalars(select(AuditEntry).where(
                AuditEntry.part_id == self.part_id, AuditEntry.action == "transition",
                AuditEntry.to_state == to_state)).all()
            found = [(e.user_id, e.from_state, e.reason) for e in rows]
            db.session.remove()
        return found

    def chain_is_whole(self) -> bool:
        with self.app.app_context():
            problems = audit.verify()
            db.session.remove()
        return problems == []


@pytest.fixture
def scene(app, server):
    s = Scene(app)
    browsers = {name: Browser(server) for name in ("staff", "leader1", "leader2")}
    browsers["staff"].login(s.staff)
    browsers["leader1"].login(s.leader1)
    browsers["leader2"].login(s.leader2, SECOND_LEADER_PASSWORD)
    s.browsers = browsers
    return s


# ---------------------------------------------------------------- the races

def test_two_leaders_verify_at_once(scene):
    l1, l2 = scene.browsers["leader1"], scene.browsers["leader2"]
    tokens = {b: b.csrf(f"/tasks/{scene.task_id}") for b in (l1, l2)}
    for round_ in range(ROUNDS):
        version = scene.submit(f"第{round_ + 1}轮：已完成政策宣传3场，覆盖企业45家")
        before = len(scene.entries(VERIFIED))
        flashes = race(*(post_when_released(b, scene.part_path("verify"),
                                            {"csrf_token": tokens[b], "version": version}) for b in (l1, l2)))

        won = [f for f in flashes if "已核验通过" in f]
        lost = [f for f in flashes if STALE in f]
        assert len(won) == 1 and len(lost) == 1, flashes
        with scene.session() as (part, users):
            assert part.state == VERIFIED
            latest = part.submissions[-1]
            assert latest.outcome == "verified"
            assert latest.decided_by_id in (users[scene.leader1].id, users[scene.leader2].id)
        entries = scene.entries(VERIFIED)
        assert len(entries) == before + 1                  # one audit entry for the one verification
        assert scene.chain_is_whole()

        # The office reopens it, so that the next round starts from a fresh submission.
        with scene.session() as (part, users):
            services.reopen_task(part.task, users["office"], reason=f"第{round_ + 1}轮复核")


def test_a_stale_return_races_a_resubmission(scene):
    """Leader 2's page still shows the earlier submission; leader 1 has
    returned it and the unit is handing in again. The stale return must never
    land on the new submission it has not seen."""
    staff, l2 = scene.browsers["staff"], scene.browsers["leader2"]
    staff_token, l2_token = staff.csrf(f"/tasks/{scene.task_id}"), l2.csrf(f"/tasks/{scene.task_id}")
    reason = "佐证材料不完整，请补充活动照片"
    for round_ in range(ROUNDS):
        if round_ == 0:
            seen_by_leader2 = scene.submit("已摸排符合条件的企业36家")
        with scene.session() as (part, users):
            services.return_part(part, users[scene.leader1], reason=f"{reason}（第{round_ + 1}次）")
        with scene.session() as (part, users):
            services.add_text_evidence(part, users[scene.staff], f"补充活动照片{round_ + 3}张")
        current = scene.version()
        returns_before = len(scene.entries(IN_PROGRESS))

        resubmit = post_when_released(staff, scene.part_path("submit"), {
            "csrf_token": staff_token, "version": current, "statement": f"已按退回意见补充材料（第{round_ + 1}次）。"})
        stale_return = post_when_released(l2, scene.part_path("return"), {
            "csrf_token": l2_token, "version": seen_by_leader2, "reason": "数据口径不一致"})
        staff_flash, leader_flash = race(resubmit, stale_return)

        assert "已提交" in staff_flash, staff_flash
        assert STALE in leader_flash, leader_flash
        with scene.session() as (part, _):
            assert part.state == SUBMITTED
            *earlier, latest = part.submissions
            assert latest.number == round_ + 2 and latest.outcome == "pending"
            assert [s.outcome for s in earlier] == ["returned"] * (round_ + 1)
            assert earlier[-1].decision_reason == f"{reason}（第{round_ + 1}次）"
            assert [e.text for e in latest.evidence] == [f"补充活动照片{round_ + 3}张"]
            seen_by_leader2 = part.version            # leader 2 reloads the page
        assert len(scene.entries(IN_PROGRESS)) == returns_before     # the stale return left no trace
        assert "数据口径不一致" not in [r for _, _, r in scene.entries(IN_PROGRESS)]
        assert scene.chain_is_whole()


def test_return_and_verify_race_on_the_same_submission(scene):
    l1, l2 = scene.browsers["leader1"], scene.browsers["leader2"]
    tokens = {b: b.csrf(f"/tasks/{scene.task_id}") for b in (l1, l2)}

    def returns():   # a reopen also leads to in_progress: count the returns only
        return [e for e in scene.entries(IN_PROGRESS) if e[1] == SUBMITTED]

    for round_ in range(ROUNDS):
        version = scene.submit(f"第{round_ + 1}轮：已兑现奖补资金48.6万元")
        verified_before, returned_before = len(scene.entries(VERIFIED)), len(returns())
        # Alternate the leaders, so that neither is always first in line.
        verifier, returner = (l1, l2) if round_ % 2 == 0 else (l2, l1)
        verify_flash, return_flash = race(
            post_when_released(verifier, scene.part_path("verify"), {"csrf_token": tokens[verifier], "version": version}),
            post_when_released(returner, scene.part_path("return"),
                               {"csrf_token": tokens[returner], "version": version, "reason": "请补充盖章版材料"}))

        verify_won, return_won = "已核验通过" in verify_flash, "已退回" in return_flash
        assert verify_won != return_won, (verify_flash, return_flash)
        assert STALE in (return_flash if verify_won else verify_flash)
        assert len(scene.entries(VERIFIED)) == verified_before + verify_won
        assert len(returns()) == returned_before + return_won
        with scene.session() as (part, users):
            latest = part.submissions[-1]
            if verify_won:
                assert (part.state, latest.outcome) == (VERIFIED, "verified")
                services.reopen_task(part.task, users["office"], reason="复核")
            else:
                assert (part.state, latest.outcome, latest.decision_reason) == (
                    IN_PROGRESS, "returned", "请补充盖章版材料")
        assert scene.chain_is_whole()


def test_the_same_new_file_uploaded_twice_at_once(scene, server):
    """A double click, or two people of one unit: the same new file posted
    from two sessions at once. One upload wins; the other is told the page was
    stale — and its clean-up must not remove the file the winner committed."""
    from models import Evidence
    from workflow import storage
    from workflow.demo_activity import make_pdf

    with scene.session() as (part, users):
        services.start_part(part, users[scene.staff])
        unit_leader = unit_username(part.unit_id, "leader")
    staff, leader = scene.browsers["staff"], Browser(server)
    leader.login(unit_leader)
    tokens = {b: b.csrf(f"/tasks/{scene.task_id}") for b in (staff, leader)}
    for round_ in range(ROUNDS + 2):
        data = make_pdf(f"sign-in sheet, round {round_ + 1}")
        sha = hashlib.sha256(data).hexdigest()
        version = scene.version()
        flashes = race(*(post_when_released(b, scene.part_path("evidence"),
                                            {"csrf_token": tokens[b], "version": version, "description": "签到表"},
                                            files={"file": (f"签到表{round_ + 1}.pdf", data)})
                         for b in (staff, leader)))
        assert sum("文件已上传" in f for f in flashes) == 1 and sum(STALE in f for f in flashes) == 1, flashes
        with scene.app.app_context():
            rows = db.session.scalars(select(Evidence).where(Evidence.content_sha256 == sha)).all()
            assert len(rows) == 1
            path = storage.path_for(sha)
            assert os.path.isfile(path), f"round {round_ + 1}: the winner's file was removed"
            evidence_id = rows[0].id
            db.session.remove()
        conn = staff.connect()
        conn.request("GET", f"/evidence/{evidence_id}/download",
                     headers={"Cookie": "; ".join(f"{k}={v}" for k, v in staff.cookies.items())})
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, data)
        conn.close()
    status, location, _ = staff.request("POST", scene.part_path("submit"), {
        "csrf_token": tokens[staff], "version": scene.version(), "statement": "已完成宣传活动，签到表附后。"})
    assert status == 302 and "已提交" in flash_of(staff.get(urlsplit(location).path))
