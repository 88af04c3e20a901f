"""The audit page in Chinese (every details key and value), the task filter by the number users see,
and the integrity page: the audit chain and uploaded report PDFs, over HTTP."""
from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from tests.helpers import csrf_token, log_in
from tests.test_audit import drop_append_only_guard
from workflow import audit, services
from workflow.extensions import db


@pytest.fixture
def db_template():
    return "seed"


def _details(html: str) -> list[tuple[str, str]]:
    """(label, value) of every details line on an audit page."""
    body = html[html.index("<tbody>"):html.index("</tbody>")]
    cells = re.findall(r'<td data-label="详情" class="details">(.*?)</td>', body, re.S)
    return [(label, value.strip()) for cell in cells
            for label, value in re.findall(r'<div><span class="muted">([^<]*)</span>([^<]*)</div>', cell)]


def _entry(action, details):
    return SimpleNamespace(action=action, details=details)


# ---------------------------------------------------------------- details in words

def test_describe_names_every_key_and_value_in_chinese(app):
    with app.app_context():
        d = audit.describe
        assert d(_entry("transition", {"unit": "区财政局", "event": "close", "submission": 2, "evidence": [3, 4],
                                       "statement": "已完成"})) == [
            ("单位", "区财政局"), ("操作", "办结"), ("提交次序", "第 2 次提交"), ("佐证材料", "#3、#4"),
            ("完成情况说明", "已完成")]
        assert d(_entry("task_state", {"derived": True})) == [("随承办单位状态变化", "是")]
        assert d(_entry("task_edited", {"deadline": {"old": "2022-12-31", "new": "2023-06-30"},
                                        "long_term": {"old": False, "new": True},
                                        "deadline_text": {"old": "年底前", "new": None}})) == [
            ("完成时限", "2022-12-31 → 2023-06-30"), ("长期任务", "否 → 是"), ("时限原文", "年底前 → （空）")]
        # An id beside the name it stands for shows as the name.
        assert d(_entry("user_created", {"user_id": 7, "username": "u02.staff", "display_name": "张三",
                                         "role": "unit_staff", "unit_id": 2, "unit": "区财政局", "active": True})) == [
            ("用户名", "u02.staff"), ("姓名", "张三"), ("角色", "单位经办人"), ("单位", "区财政局"), ("启用", "是")]
        assert d(_entry("user_updated", {"user_id": 7, "username": "u02.staff", "sessions_ended": True, "changes": {
            "role": {"old": "unit_staff", "new": "unit_leader"}, "unit_id": {"old": 2, "new": 3},
            "unit": {"old": "区财政局", "new": "区商务局"}, "active": {"old": True, "new": False},
            "password": "reset"}})) == [
            ("用户名", "u02.staff"), ("已使其重新登录", "是"),
            ("修改内容", "角色：单位经办人 → 单位负责人；单位：区财政局 → 区商务局；启用：是 → 否；密码：已重置")]
        assert d(_entry("unit_updated", {"unit_id": 5, "changes": {"kind": {"old": "bureau", "new": "town"}}})) == [
            ("单位编号", "#5"), ("修改内容", "类型：局/委/办 → 镇/街道")]
        assert d(_entry("unit_created", {"unit_id": 5, "name": "区新局", "kind": "bureau"}))[-1] == ("单位类型", "局/委/办")
        assert d(_entry("evidence_added", {"evidence": 9, "kind": "file", "filename": "a.pdf", "sha256": "ab",
                                           "size": 2048})) == [
            ("材料编号", "#9"), ("材料形式", "文件"), ("文件名", "a.pdf"), ("文件 sha256", "ab"), ("大小", "2.0 KB")]
        assert ("进度", "") not in d(_entry("progress", {"percent": 30, "note": "x"}))
        assert d(_entry("progress", {"percent": 30, "note": "x"})) == [("完成比例", "30%"), ("说明", "x")]
        report = d(_entry("report_generated", {"archive": 4, "kind": "item", "from_archive": True, "params": {
            "kind": "item", "plan": 1, "unit": None, "item": "19-1", "as_of": "2022-06-30", "near_days": 7}}))
        assert report == [("报告存档编号", "#4"), ("报告类型", "事项详情报告"), ("取自已有存档", "是"),
                          ("报告参数", "类型 事项详情报告，方案编号 1，事项编号 19-1，截至 2022-06-30，临期天数 7")]
        assert d(_entry("plan_imported", {"counts": {"tasks": 3, "measures": 2}, "warnings": 5})) == [
            ("导入统计", "工作任务 3，保障措施 2"), ("提示条数", "5")]
        restored = d(_entry("backup_restored", {"archive": "b.tar", "backend": "postgresql",
                                                "audit_head": {"seq": 12, "hash": "f" * 64}, "missing": 0}))
        assert restored == [("备份文件", "b.tar"), ("数据库类型", "PostgreSQL"),
                            ("备份时的审计链头", f"第 12 条（{'f' * 16}…）"), ("缺失文件数", "0")]
        assert d(_entry("login_alert", {"failures": 20, "window": "1 小时"})) == [("失败次数", "20"),
                                                                                ("时间范围", "1 小时")]
        # A key nobody labelled still shows, readably.
        assert d(_entry("transition", {"future_key": {"a": [1, 2]}, "flag": False})) == [
            ("future_key", "a：1、2"), ("flag", "否")]


def test_every_details_key_written_anywhere_has_a_label():
    """The keys are read from the code that writes entries, so a new one without a label fails here."""
    from pathlib import Path

    from workflow.services import EDITABLE_FIELDS

    root = Path(__file__).resolve().parent.parent
    keys = set()
    for path in list((root / "workflow").rglob("*.py")) + list((root / "auth").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        for call in re.finditer(r"\b(?:audit\.append|_audit)\(", source):
            depth, end = 1, call.end()
            while depth:                      # to the call's closing bracket
                depth += {"(": 1, ")": -1}.get(source[end], 0)
                end += 1
            keys |= set(re.findall(r'"([a-z_0-9]+)":', source[call.end():end]))
        # Keys added to a details dict before the call (services.transition_part) and keyword details (auth).
        keys |= set(re.findall(r'details\["([a-z_]+)"\]', source))
        keys |= {k for args in re.findall(r"details\.update\(([^)]*)\)", source) for k in re.findall(r"(\w+)=", args)}
        keys |= {k for args in re.findall(r'_audit\("[a-z_]+",([^)]*)\)', source)
                 for k in re.findall(r"(\w+)=", args)} - {"user", "username"}
    assert {"event", "derived", "sessions_ended", "from_archive", "archive_sha256"} <= keys
    unlabelled = keys - set(audit.DETAIL_LABELS) - set(EDITABLE_FIELDS) - {"old", "new"}
    assert unlabelled == set()


def test_the_audit_page_shows_no_database_keys(app, client):
    from models import Task, User

    with app.app_context():
        users = {u.username: u for u in db.session.scalars(select(User))}
        task = db.session.scalar(select(Task).where(Task.deadline.is_not(None)).order_by(Task.id))
        part = task.parts[0]
        worker = users[f"u{part.unit_id:02d}.staff"]
        services.start_part(part, worker)
        services.edit_task(task, users["office"], deadline_text="年底前（调整）", long_term=False)
        services.add_text_evidence(part, worker, "宣传材料")
        services.submit_part(part, worker, statement="已完成全部工作")
        db.session.commit()
        task_id = task.id
    log_in(client, "office")
    html = client.get(f"/audit?task={task_id}").get_data(as_text=True)
    details = _details(html)
    assert ("操作", "开始办理") in details and ("操作", "提交") in details
    assert ("随承办单位状态变化", "是") in details
    assert any(label == "时限原文" and "→ 年底前（调整）" in value for label, value in details)
    for label, value in details:
        assert re.search(r"[\u4e00-\u9fff]", label), label
        assert value not in ("True", "False", "None", "start", "submit", "close"), (label, value)
    for key in ("event", "derived", "deadline_text", "old=", "statement"):
        assert key not in "".join(label for label, _ in details)


# ---------------------------------------------------------------- the task filter

def test_task_filter_takes_the_number_users_see(app, client):
    from models import AuditEntry, Item, Task, User

    with app.app_context():
        users = {u.username: u for u in db.session.scalars(select(User))}
        measure = db.session.scalar(select(Task).where(Task.kind == "measure").order_by(Task.id))
        sub_task = db.session.scalar(select(Task).join(Task.item).where(Task.kind == "task",
                                                                        Item.parent_id.is_not(None)).order_by(Task.id))
        for task in (measure, sub_task):
            services.urge(task, users["office"], f"请推进{task.number_label}")
        db.session.commit()
        numbers = {measure.id: measure.number_label, sub_task.id: sub_task.number_label}
        assert re.fullmatch(r"\d+-保\d+", measure.number_label)
        assert re.fullmatch(r"\d+-\d+-任\d+", sub_task.number_label)
        expected = {tid: db.session.scalar(select(AuditEntry.id).where(AuditEntry.task_id == tid)) for tid in numbers}
    log_in(client, "office")
    for task_id, number in numbers.items():
        for typed in (number, str(task_id), number.replace("-", "—").replace("1", "１")):
            html = client.get("/audit", query_string={"task": typed}).get_data(as_text=True)
            assert f"请推进{number}" in html, typed
            other = [n for tid, n in numbers.items() if tid != task_id][0]
            assert f"请推进{other}" not in html, typed
        assert expected[task_id]
    for typed, message in (("99-保99", "没有编号为“99-保99”的任务"), ("第几项", "任务编号“第几项”无法识别")):
        response = client.get("/audit", query_string={"task": typed})
        html = response.get_data(as_text=True)
        assert response.status_code == 200 and message in html and "13-保1" in html
        assert f'value="{typed}"' in html      # what was typed stays in the box to correct


def test_the_unit_filter_lists_a_new_unit_and_the_total_follows_the_trail(app, client):
    """The unit choices and the total are kept until the trail moves: a unit created (an audited
    action) is listed on the next view, and the count is the head's seq, one more per entry."""
    from models import AuditEntry, User
    from workflow import admin_services

    log_in(client, "office")
    before = client.get("/audit").get_data(as_text=True)
    assert "新设测试局" not in before
    with app.app_context():
        office = db.session.scalar(select(User).where(User.username == "office"))
        admin_services.create_unit(office, name="新设测试局", kind="bureau")
        db.session.commit()
        entries = db.session.query(AuditEntry).count()
    after = client.get("/audit").get_data(as_text=True)
    assert re.search(r'<option value="\d+" >新设测试局</option>', after), "new unit not offered"
    assert f"共 {entries} 条" in after


def test_every_page_of_the_whole_trail_holds_the_entries_an_offset_would(app, client):
    """Unfiltered pages start at a seq computed from the head (no OFFSET): each shows exactly the
    entries newest-first paging gives, the last one the oldest, one past it none."""
    from models import AuditEntry, Task, User

    log_in(client, "office")              # an entry of its own: before the trail is read
    with app.app_context():
        office = db.session.scalar(select(User).where(User.username == "office"))
        for task in db.session.scalars(select(Task).order_by(Task.id).limit(8)):
            services.urge(task, office, "请加快进度")
        db.session.commit()
        seqs = db.session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())).all()
    per_page = app.config["PER_PAGE"] = 3
    pages = -(-len(seqs) // per_page)
    assert pages >= 3 and seqs[-1] == 1
    for number in (1, 2, pages):
        html = client.get("/audit", query_string={"page": number}).get_data(as_text=True)
        shown = [int(n) for n in re.findall(r'<td data-label="序号" class="num">(\d+)</td>', html)]
        assert shown == seqs[(number - 1) * per_page:number * per_page], number
        assert f"共 {len(seqs)} 条" in html and f"第 {number}/{pages} 页" in html
    beyond = client.get("/audit", query_string={"page": pages + 1}).get_data(as_text=True)
    assert "没有符合条件的记录" in beyond



def test_a_filtered_count_and_its_pages_stop_at_the_limit(app, client):
    """A filter's count stops at COUNT_LIMIT ("以上"): the trail only grows, and an action can match
    most of it. Its pages stop there too (each page deeper would walk every entry before it): a page
    asked beyond is answered with the deepest one and a message. A filter with fewer entries is
    counted exactly."""
    from models import AuditEntry

    log_in(client, "office")
    app.config["COUNT_LIMIT"], app.config["PER_PAGE"] = 2, 1
    html = client.get("/audit", query_string={"action": "login"}).get_data(as_text=True)
    assert "共 1 条" in html and "以上" not in html      # this sign-in, the seed's only one
    for _ in range(3):
        log_in(app.test_client(), "office")
    with app.app_context():
        logins = db.session.scalars(select(AuditEntry.seq).where(AuditEntry.action == "login")
                                    .order_by(AuditEntry.seq.desc())).all()
    assert len(logins) == 4

    def shown(html: str) -> list[int]:
        return [int(n) for n in re.findall(r'<td data-label="序号" class="num">(\d+)</td>', html)]

    first = client.get("/audit", query_string={"action": "login"}).get_data(as_text=True)
    assert "共 2 条以上，第 1/2 页" in first and "翻页只到第 2 页" in first and 'rel="next"' in first
    assert shown(first) == [logins[0]]
    second = client.get("/audit", query_string={"action": "login", "page": 2}).get_data(as_text=True)
    assert shown(second) == [logins[1]] and 'rel="next"' not in second
    beyond = client.get("/audit", query_string={"action": "login", "page": 4}).get_data(as_text=True)
    assert shown(beyond) == [logins[1]] and 'aria-current="page">2</span>' in beyond
    assert "列表只能翻到第 2 页，已显示该页" in beyond


def test_entries_within_dates_come_newest_first_by_time(app, client, monkeypatch):
    """Within dates the log is in time order (the `at` index walks them), newest first: an entry
    written early in the day but chained last (its transaction committed after the others) comes
    after them, where the whole trail's seq order puts it first."""
    from datetime import timedelta

    from models import AuditEntry, User
    from workflow import queries
    from workflow.timeutil import today_local

    log_in(client, "office")
    day = today_local()
    early = queries._utc_start_of_local_day(day) + timedelta(seconds=1)
    with app.app_context():
        office = db.session.scalar(select(User).where(User.username == "office"))
        monkeypatch.setattr(audit, "utcnow", lambda: early)
        audit.append("urge", user=office, reason="一早写下、最后入链")
        db.session.commit()
        monkeypatch.undo()
        expected = db.session.scalars(select(AuditEntry.seq).where(AuditEntry.at >= early)
                                      .order_by(AuditEntry.at.desc(), AuditEntry.seq.desc())).all()
        newest = db.session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1))
    html = client.get("/audit", query_string={"date_from": day.isoformat(),
                                              "date_to": day.isoformat()}).get_data(as_text=True)
    shown = [int(n) for n in re.findall(r'<td data-label="序号" class="num">(\d+)</td>', html)]
    assert len(expected) >= 2 and expected[-1] == newest
    assert shown == expected

# ---------------------------------------------------------------- the integrity page: the chain

def test_integrity_page_says_the_chain_is_intact_then_where_it_breaks(app, client):
    from models import AuditEntry

    log_in(client, "office")
    html = client.get("/audit/integrity").get_data(as_text=True)
    with app.app_context():
        count = db.session.query(AuditEntry).count()
        last = db.session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1))
    assert count > 1 and "审计记录完整" in html and f"共 {count} 条" in html and f"至第 {last} 条" in html
    assert 'href="/audit/integrity"' in client.get("/audit").get_data(as_text=True)   # the nav link

    with app.app_context():
        drop_append_only_guard()
        db.session.execute(db.text("UPDATE audit_entry SET reason = '改过' WHERE seq = :s"), {"s": 2})
        db.session.commit()
    html = client.get("/audit/integrity").get_data(as_text=True)
    assert "审计记录已被改动" in html and "审计记录完整" not in html
    assert "第 2 条记录的内容与其哈希不符" in html and "第 1 条完好，问题自第 2 条起" in html


def test_integrity_page_is_for_the_office_only(app, login):
    for username in ("leader", "u02.staff", "u02.leader"):
        other = login(username)
        assert other.get("/audit/integrity").status_code == 403
        assert other.post("/audit/integrity", data={}).status_code in (400, 403)
        assert "完整性校验" not in other.get("/").get_data(as_text=True)
    assert login("office2").get("/audit/integrity").status_code == 200


# ---------------------------------------------------------------- the integrity page: a report PDF

def _upload(client, data: bytes, name: str, token: str | None = None):
    token = token if token is not None else csrf_token(client, "/audit/integrity")
    return client.post("/audit/integrity", data={"csrf_token": token, "report": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def test_an_uploaded_report_is_named_and_a_tampered_copy_is_not(app, client, tmp_path):
    from models import Item, ReportArchive

    with app.app_context():
        item = db.session.scalar(select(Item).order_by(Item.id))
        number = item.number
    out = tmp_path / "item.pdf"
    result = app.test_cli_runner().invoke(args=["report", "generate", "--kind", "item", "--item", number,
                                                "--as-of", "2022-06-30", "--out", str(out), "--user", "office"])
    assert result.exit_code == 0, result.output
    pdf = out.read_bytes()
    with app.app_context():
        row = db.session.scalar(select(ReportArchive).where(ReportArchive.status == "done"))
        archive_id, pages = row.id, row.pages
    log_in(client, "office")
    response = _upload(client, pdf, "收到的报告.pdf")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "“收到的报告.pdf”是本系统存档的报告，内容未经改动" in html
    assert f"存档 #{archive_id}：事项详情报告" in html and "生成人 办公室管理员（office）" in html
    assert f"共 {pages} 页" in html and f"事项 第{number}项" in html and "截至 2022-06-30" in html

    tampered = bytearray(pdf)
    tampered[len(tampered) // 2] ^= 0x01
    html = _upload(client, bytes(tampered), "改过的.pdf").get_data(as_text=True)
    assert "与任何存档报告都不一致" in html and "是本系统存档的报告" not in html


def test_report_upload_refuses_what_is_not_a_pdf_in_chinese(app, client):
    log_in(client, "office")
    # Named .pdf or not, what is not a PDF inside is refused.
    for data, name in ((b"just text", "report.pdf"), (b"PK\x03\x04", "a.docx")):
        response = _upload(client, data, name)
        assert response.status_code == 400 and "只能核对 PDF 文件" in response.get_data(as_text=True)
    response = _upload(client, b"", "empty.pdf")
    assert response.status_code == 400
    assert re.search("请选择要核对的 PDF 文件|上传的文件是空的", response.get_data(as_text=True))
    response = _upload(client, b"%PDF-1.4 x", "a.pdf", token="")
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    app.config["MAX_UPLOAD_MB"] = 0
    response = _upload(client, b"%PDF-1.4 x", "a.pdf")
    assert response.status_code == 400 and "文件超过 0 MB" in response.get_data(as_text=True)
