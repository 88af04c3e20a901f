"""Evidence files over HTTP and in storage: checked by content, size limits
(per file and per request), stored by sha256 outside the web root, Chinese
names kept, nothing left behind when a transaction fails."""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from tests.conftest import make_app
from tests.helpers import csrf_token, find_seed_task, log_in, unit_user, unit_username, user_named
from workflow import services, storage
from workflow.demo_activity import make_pdf, make_png
from workflow.extensions import db


@pytest.fixture
def db_template():
    return "seed"


# ---------------------------------------------------------------- real files of each kind

def docx_bytes() -> bytes:
    from docx import Document

    document = Document()
    document.add_heading("政策宣传活动总结", level=1)
    document.add_paragraph("已完成政策宣传3场，覆盖企业45家。")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def xlsx_bytes() -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "台账"
    sheet.append(["企业名称", "奖补金额（万元）"])
    sheet.append(["周村某纺织有限公司", 12.5])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"


# ---------------------------------------------------------------- setup

def started_part(app):
    """A one-part task whose part is in progress; returns (task_id, part_id, staff username)."""
    with app.app_context():
        part = find_seed_task(parts=1).parts[0]
        username = unit_username(part.unit_id, "staff")
        services.start_part(part, unit_user(part.unit_id, "staff"))
        db.session.commit()
        ids = (part.task_id, part.id, username)
        db.session.remove()
    return ids


def part_version(app, part_id: int) -> int:
    from models import TaskPart

    with app.app_context():
        version = db.session.get(TaskPart, part_id).version
        db.session.remove()
    return version


def upload(client, app, task_id, part_id, data: bytes, filename: str, description: str = "", follow=True):
    token = csrf_token(client, f"/tasks/{task_id}")
    return client.post(f"/tasks/{task_id}/parts/{part_id}/evidence",
                       data={"csrf_token": token, "version": str(part_version(app, part_id)),
                             "description": description, "text": "",
                             "file": (io.BytesIO(data), filename)},
                       content_type="multipart/form-data", follow_redirects=follow)


def evidence_rows(app):
    from models import Evidence

    with app.app_context():
        rows = [(e.id, e.kind, e.filename, e.content_sha256, e.size, e.mime, e.text)
                for e in db.session.scalars(select(Evidence).order_by(Evidence.id))]
        db.session.remove()
    return rows


def stored_files(app) -> list[Path]:
    root = Path(app.config["UPLOAD_FOLDER"])
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def part(app, client):
    task_id, part_id, username = started_part(app)
    log_in(client, username)
    return task_id, part_id


# ---------------------------------------------------------------- checked by content

@pytest.mark.parametrize("data,filename,message", [
    (HTML, "工作台账.pdf", "文件内容与扩展名“.pdf”不符"),
    (HTML, "活动照片.png", "文件内容与扩展名“.png”不符"),
    (make_png(3), "台账.xlsx", "文件内容与扩展名“.xlsx”不符"),
    (b"PK\x03\x04" + b"\x00" * 60, "总结.docx", "文件内容与扩展名“.docx”不符"),   # a zip header, not a document
    (HTML, "说明.html", "不支持的文件类型“.html”"),
    (b"MZ\x90\x00" + b"\x00" * 60, "工具.exe", "不支持的文件类型“.exe”"),
    (b"", "工作台账.pdf", "文件是空的"),
])
def test_refused_by_content(app, client, part, data, filename, message):
    task_id, part_id = part
    version = part_version(app, part_id)
    response = upload(client, app, task_id, part_id, data, filename)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert evidence_rows(app) == [] and stored_files(app) == []
    assert part_version(app, part_id) == version


@pytest.mark.parametrize("kind,filename,mime", [
    ("pdf", "工作台账.pdf", "application/pdf"),
    ("png", "政策宣传活动照片.png", "image/png"),
    ("docx", "活动总结（定稿）.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("xlsx", "奖补资金拨付明细.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
])
def test_real_files_are_accepted_and_stored_by_hash(app, client, part, kind, filename, mime):
    data = {"pdf": make_pdf("ledger"), "png": make_png(7), "docx": docx_bytes(), "xlsx": xlsx_bytes()}[kind]
    task_id, part_id = part
    response = upload(client, app, task_id, part_id, data, filename, description="2022年第二季度")
    assert response.status_code == 200
    assert "文件已上传" in response.get_data(as_text=True)

    sha = hashlib.sha256(data).hexdigest()
    [(evidence_id, row_kind, name, row_sha, size, row_mime, text)] = evidence_rows(app)
    assert (row_kind, name, row_sha, size, row_mime, text) == ("file", filename, sha, len(data), mime, "2022年第二季度")

    # Stored under its sha256, outside the web root, byte for byte.
    [path] = stored_files(app)
    assert path == Path(app.config["UPLOAD_FOLDER"]) / sha[:2] / sha
    assert path.read_bytes() == data
    static = Path(app.static_folder).resolve()
    assert static not in path.resolve().parents
    assert client.get(f"/static/{sha}").status_code == 404

    # Downloaded with its Chinese name.
    response = client.get(f"/evidence/{evidence_id}/download")
    assert response.status_code == 200 and response.data == data
    assert response.mimetype == mime
    assert f"filename*=UTF-8''{quote(filename)}" in response.headers["Content-Disposition"]
    assert "no-store" in response.headers["Cache-Control"]


def test_a_path_in_the_name_is_dropped(app, client, part):
    task_id, part_id = part
    upload(client, app, task_id, part_id, make_png(1), "../../etc/活动照片.png")
    assert [row[2] for row in evidence_rows(app)] == ["活动照片.png"]
    assert all(p.parent.parent == Path(app.config["UPLOAD_FOLDER"]) for p in stored_files(app))
    # Old browsers send the whole Windows path.
    assert storage.clean_filename("C:\\Users\\张三\\桌面\\工作台账.pdf") == "工作台账.pdf"
    assert storage.clean_filename('a<b>:"|?*\x00.pdf') == "ab.pdf"


def test_default_upload_folder_is_outside_static(tmp_path):
    from workflow.app import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.sqlite", "UPLOAD_FOLDER": None,
                      "SECRET_KEY": "s"})
    upload_folder = Path(app.config["UPLOAD_FOLDER"]).resolve()
    static = Path(app.static_folder).resolve()
    assert static not in upload_folder.parents and upload_folder != static
    assert upload_folder.parent == Path(app.instance_path).resolve()


# ---------------------------------------------------------------- size limits

@pytest.fixture
def small_app(databases, tmp_path):
    """The app with MAX_UPLOAD_MB = 1, set through the app config."""
    url = databases.clone("seed", tmp_path)
    app = make_app(url, tmp_path, MAX_UPLOAD_MB=1)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    databases.drop(url)


def padded_pdf(megabytes: float) -> bytes:
    head = make_pdf("big")
    return head + b"%" + b"0" * int(megabytes * 1024 * 1024 - len(head) - 1)


def test_file_over_the_limit_is_refused(small_app):
    client = small_app.test_client()
    task_id, part_id, username = started_part(small_app)
    log_in(client, username)
    response = upload(client, small_app, task_id, part_id, padded_pdf(1.3), "工作台账.pdf")
    assert response.status_code == 200
    assert "文件超过 1 MB 的上限" in response.get_data(as_text=True)
    assert evidence_rows(small_app) == [] and stored_files(small_app) == []
    # Just under the limit is fine.
    response = upload(client, small_app, task_id, part_id, padded_pdf(0.9), "工作台账.pdf")
    assert "文件已上传" in response.get_data(as_text=True)
    assert len(evidence_rows(small_app)) == 1 and len(stored_files(small_app)) == 1


def test_request_over_the_limit_gets_a_chinese_413_page(small_app):
    client = small_app.test_client()
    task_id, part_id, username = started_part(small_app)
    log_in(client, username)
    response = upload(client, small_app, task_id, part_id, padded_pdf(3), "工作台账.pdf", follow=False)
    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert "文件过大" in page and "上传的文件超过 1 MB 的上限，未保存任何内容" in page
    assert evidence_rows(small_app) == [] and stored_files(small_app) == []


# ---------------------------------------------------------------- no orphans

def test_store_and_discard_unreferenced(app):
    with app.app_context():
        data = make_png(11)
        sha, created = storage.store(data)
        path = Path(storage.path_for(sha))
        assert created and sha == hashlib.sha256(data).hexdigest() and path.read_bytes() == data
        assert storage.store(data) == (sha, False)           # same content: stored once
        assert [p.name for p in path.parent.iterdir()] == [sha]   # no temporary file left
        storage.discard_unreferenced(sha)
        assert not path.exists()
        storage.discard_unreferenced(sha)                      # gone already: no error


def test_service_rollback_then_discard_leaves_nothing(app):
    from models import Evidence, TaskPart

    task_id, part_id, username = started_part(app)
    with app.app_context():
        part = db.session.get(TaskPart, part_id)
        worker = user_named(username)
        evidence = services.add_file_evidence(part, worker, make_pdf("rolled back"), "工作台账.pdf")
        sha = evidence.content_sha256
        assert os.path.exists(storage.path_for(sha))
        db.session.rollback()
        storage.discard_unreferenced(sha)
        assert db.session.scalar(select(func.count(Evidence.id))) == 0
    assert stored_files(app) == []


@pytest.fixture
def failing_commit():
    """Every commit fails as if another writer had got there first."""
    def fail(session):
        raise StaleDataError("simulated concurrent update")

    from sqlalchemy import event

    event.listen(Session, "before_commit", fail)
    yield
    event.remove(Session, "before_commit", fail)


def test_failed_commit_after_storing_leaves_no_orphan_file(app, client, part, failing_commit):
    task_id, part_id = part
    response = upload(client, app, task_id, part_id, make_pdf("orphan?"), "工作台账.pdf", follow=False)
    assert response.status_code == 302
    assert evidence_rows(app) == []
    assert stored_files(app) == []


def test_failed_commit_keeps_a_file_other_evidence_uses(app, client, part):
    from sqlalchemy import event

    task_id, part_id = part
    data = make_pdf("shared")
    upload(client, app, task_id, part_id, data, "工作台账.pdf")
    assert len(stored_files(app)) == 1

    def fail(session):
        raise StaleDataError("simulated concurrent update")

    event.listen(Session, "before_commit", fail)
    try:
        upload(client, app, task_id, part_id, data, "工作台账（副本）.pdf", follow=False)
    finally:
        event.remove(Session, "before_commit", fail)
    assert [row[2] for row in evidence_rows(app)] == ["工作台账.pdf"]
    [path] = stored_files(app)
    assert path.read_bytes() == data


# ---------------------------------------------------------------- withdrawn files, lost files, long names

def submit(client, task_id, part_id, app, statement="已完成。"):
    token = csrf_token(client, f"/tasks/{task_id}")
    return client.post(f"/tasks/{task_id}/parts/{part_id}/submit",
                       data={"csrf_token": token, "version": str(part_version(app, part_id)),
                             "statement": statement}, follow_redirects=True)


def withdraw(client, task_id, evidence_id):
    token = csrf_token(client, f"/tasks/{task_id}")
    return client.post(f"/tasks/{task_id}/evidence/{evidence_id}/delete", data={"csrf_token": token},
                       follow_redirects=True)


def test_withdrawn_evidence_takes_its_file_only_when_nothing_else_uses_it(app, client, part):
    task_id, part_id = part
    shared, own = make_pdf("shared by two"), make_pdf("only one")
    upload(client, app, task_id, part_id, shared, "台账.pdf")
    upload(client, app, task_id, part_id, shared, "台账（副本）.pdf")
    upload(client, app, task_id, part_id, own, "签到表.pdf")
    first, second, third = (row[0] for row in evidence_rows(app))
    assert "材料已撤回" in withdraw(client, task_id, third).get_data(as_text=True)
    assert hashlib.sha256(own).hexdigest() not in [p.name for p in stored_files(app)]
    withdraw(client, task_id, first)
    [remaining] = stored_files(app)              # the copy still uses the shared file
    assert remaining.read_bytes() == shared and [r[0] for r in evidence_rows(app)] == [second]


def test_a_file_lost_on_disk_cannot_be_submitted(app, client, part):
    from models import TaskPart

    task_id, part_id = part
    upload(client, app, task_id, part_id, make_pdf("lost"), "验收报告.pdf")
    [path] = stored_files(app)
    path.unlink()                                # a failed disk, a hand-made clean-up
    page = submit(client, task_id, part_id, app).get_data(as_text=True)
    assert "以下材料的文件在服务器上已丢失" in page and "“验收报告.pdf”" in page
    with app.app_context():
        part = db.session.get(TaskPart, part_id)
        assert part.state == "in_progress" and part.submissions == []
        db.session.remove()


def test_a_long_name_keeps_its_extension(app, client, part):
    task_id, part_id = part
    long_name = "关于" + "周村区惠企政策兑现情况" * 30 + "的报告.pdf"
    assert len(long_name) > 300
    page = upload(client, app, task_id, part_id, make_pdf("long"), long_name).get_data(as_text=True)
    assert "文件已上传" in page
    [(_, _, filename, *_)] = evidence_rows(app)
    assert filename.endswith(".pdf") and len(filename) == storage.MAX_FILENAME
    assert filename.startswith("关于周村区惠企政策兑现情况")


def test_bidi_and_control_characters_leave_the_name(app, client, part):
    task_id, part_id = part
    upload(client, app, task_id, part_id, make_pdf("bidi"), "\u202e区财政局\x07台账\u2066.pdf")
    [(_, _, filename, *_)] = evidence_rows(app)
    assert filename == "区财政局台账.pdf"


def test_a_full_disk_gets_a_chinese_message_and_changes_nothing(app, client, part, full_disk):
    from models import AuditEntry

    task_id, part_id = part
    app.config["UPLOAD_FOLDER"] = str(full_disk)
    with app.app_context():
        audit_before = db.session.scalar(select(func.count(AuditEntry.id)))
        db.session.remove()
    version_before = part_version(app, part_id)
    big = make_pdf("x") + os.urandom(400 * 1024)     # a valid PDF header, larger than the disk
    response = upload(client, app, task_id, part_id, big, "现场照片汇编.pdf")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "服务器存储空间已满，文件未保存" in page
    assert evidence_rows(app) == []
    assert [p for p in full_disk.rglob("*") if p.is_file()] == []      # no .partial- file left
    assert part_version(app, part_id) == version_before
    with app.app_context():
        assert db.session.scalar(select(func.count(AuditEntry.id))) == audit_before
        db.session.remove()
    # The same form still works once there is room again.
    app.config["UPLOAD_FOLDER"] = str(full_disk.parent / "uploads")
    assert "文件已上传" in upload(client, app, task_id, part_id, make_pdf("ok"), "现场照片.pdf").get_data(as_text=True)
