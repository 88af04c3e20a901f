"""PDF progress reports: rendering, fonts, archive, verify, hostile text, fetcher, web flow.

Rendering costs seconds, so one module-scoped database renders the three
kinds once (through the real CLI) and most tests read those files; the
other renders here are small item reports. Poppler (pdffonts, pdftotext)
inspects the PDFs as a reader would.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import make_app
from tests.helpers import csrf_token, log_in, unit_user
from workflow import demo
from workflow.vocabulary import ReportKind

# The seed plan with demo activity when the demo can play it.
DB_TEMPLATE = "activity" if hasattr(demo, "play_activity") else "seed"
AS_OF = "2022-06-30"
HOSTILE_REASON = '<img src="file:///etc/passwd">'
HOSTILE_EVIDENCE = '<link rel="stylesheet" href="http://127.0.0.1:9/evil.css">佐证'
HOSTILE_STATEMENT = '<style>@import url("file:///etc/passwd");</style>已完成'

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None or shutil.which("pdffonts") is None,
                                reason="poppler-utils (pdftotext, pdffonts) not installed: scripts/setup.sh --test")


@pytest.fixture
def db_template() -> str:
    return DB_TEMPLATE


def pdftotext(path: Path) -> str:
    return subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def flat(text: str) -> str:
    """pdftotext breaks lines where the page did: compare without whitespace."""
    return re.sub(r"\s+", "", text)


def embedded_fonts(path: Path) -> list[tuple[str, str]]:
    out = subprocess.run(["pdffonts", str(path)], check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines()[2:]:
        cols = line.split()
        # name type… encoding emb sub uni object ID: "emb" is the 5th column from the end
        rows.append((cols[0], cols[-5]))
    return rows


def play_hostile_return(app):
    """A unit hands in evidence and a statement carrying markup; the lead unit
    returns it with a reason that is an <img> pointing at /etc/passwd — all
    through the services, as a user would."""
    from models import TaskPart
    from workflow import services
    from workflow.sqlite import write_transactions
    from workflow.extensions import db

    with app.app_context():
        write_transactions(True)
        parts = db.session.scalars(select(TaskPart).order_by(TaskPart.id)).all()
        part = next(p for p in parts if p.state in ("planned", "in_progress"))
        staff = unit_user(part.unit_id, "staff")
        leader = unit_user(part.task.lead_units[0], "leader")
        if part.state == "planned":
            services.start_part(part, staff)
        services.add_text_evidence(part, staff, HOSTILE_EVIDENCE)
        services.submit_part(part, staff, statement=HOSTILE_STATEMENT)
        services.return_part(part, leader, reason=HOSTILE_REASON)
        db.session.commit()
        result = (part.unit_id, part.unit.name, part.task.item.number)
        db.session.remove()
        write_transactions(False)
        return result


@dataclass
class Env:
    app: object
    files: dict
    outputs: dict
    unit_id: int
    unit_name: str
    item_number: str
    renders: int
    fetches: list


@pytest.fixture(scope="module")
def env(databases, tmp_path_factory):
    from workflow.extensions import db
    from workflow.reports import render

    tmp = tmp_path_factory.mktemp("reports")
    url = databases.clone(DB_TEMPLATE, tmp)
    app = make_app(url, tmp)
    unit_id, unit_name, item_number = play_hostile_return(app)
    runner = app.test_cli_runner()
    render.FETCH_LOG.clear()
    before = render.STATS["renders"]
    files, outputs = {}, {}
    for kind, extra in (("overall", []), ("unit", ["--unit", str(unit_id)]), ("item", ["--item", item_number])):
        out = tmp / f"{kind}.pdf"
        result = runner.invoke(args=["report", "generate", "--kind", kind, "--as-of", AS_OF, "--out", str(out),
                                     "--user", "office", *extra])
        assert result.exit_code == 0, result.output
        files[kind] = out
        outputs[kind] = result.output
    yield Env(app, files, outputs, unit_id, unit_name, item_number, render.STATS["renders"] - before,
              list(render.FETCH_LOG))
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    databases.drop(url)


# ---------------------------------------------------------------- the three kinds

def test_each_kind_renders_once_with_embedded_cjk_font(env):
    assert env.renders == 3
    for kind, path in env.files.items():
        assert path.read_bytes().startswith(b"%PDF-")
        fonts = embedded_fonts(path)
        cjk = [(name, emb) for name, emb in fonts if "Noto-Sans-CJK-SC" in name]
        assert cjk, f"{kind}: no Noto Sans CJK SC in {fonts}"
        assert all(emb == "yes" for _, emb in cjk), f"{kind}: CJK font not embedded: {fonts}"


def test_chinese_text_comes_back_out(env):
    overall = pdftotext(env.files["overall"])
    flat_overall = flat(overall)
    for expected in ("总体进展报告", "各牵头单位完成情况", "逾期任务", "不涉及事项及情况说明", "区发展改革局",
                     "任务状态分布", "第1页/共", "截至2022-06-30"):
        assert expected in flat_overall, expected
    assert "第 1 页 / 共" in overall
    unit = flat(pdftotext(env.files["unit"]))
    for expected in ("单位报告", env.unit_name, "本单位承办的任务", "退回记录", "第1页/共"):
        assert expected in unit, expected
    item = flat(pdftotext(env.files["item"]))
    for expected in ("事项详情报告", f"第{env.item_number}项", "政策原文", "办理时间线", "第1页/共"):
        assert expected in item, expected


def test_overall_figures_match_the_database(env):
    """The summary printed equals what the database says, due status judged on the as-of date."""
    from datetime import date

    from models import Task
    from workflow.due import late_clause
    from workflow.extensions import db

    with env.app.app_context():
        total = db.session.scalar(select(func.count(Task.id)))
        late = db.session.scalar(select(func.count(Task.id)).where(late_clause(Task, date.fromisoformat(AS_OF))))
        db.session.remove()
    text = flat(pdftotext(env.files["overall"]))
    assert f"{total}条任务" in text
    assert f"逾期{late}条" in text


# ---------------------------------------------------------------- archive and audit

def test_archive_rows_files_and_audit_entries(env):
    from models import AuditEntry, ReportArchive, User
    from workflow.extensions import db
    from workflow.reports import archive

    with env.app.app_context():
        # The played demo brings its rounds' 调度通报; these are the three generated above.
        rows = db.session.scalars(select(ReportArchive).where(ReportArchive.kind != "round")
                                  .order_by(ReportArchive.id)).all()
        office = db.session.scalar(select(User).where(User.username == "office"))
        assert [r.kind for r in rows] == ["overall", "unit", "item"]
        for row, kind in zip(rows, ("overall", "unit", "item")):
            content = env.files[kind].read_bytes()
            assert row.status == "done" and row.error is None
            assert row.sha256 == hashlib.sha256(content).hexdigest() and row.size == len(content)
            stored = Path(archive.path_for(row.sha256))
            assert stored.read_bytes() == content
            assert str(stored).startswith(env.app.config["REPORT_FOLDER"])
            assert row.params["as_of"] == AS_OF and row.as_of.date().isoformat() == AS_OF
            assert row.created_by_id == office.id and row.finished_at is not None and row.pages >= 1
            # The head printed is a real entry of the chain, and is in the footer.
            head = db.session.scalar(select(AuditEntry).where(AuditEntry.seq == row.audit_seq))
            assert head.hash == row.audit_head
            assert row.audit_head in flat(pdftotext(env.files[kind]))
            assert "办公室管理员" in flat(pdftotext(env.files[kind]))
        entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "report_generated",
                                                              AuditEntry.details["kind"].as_string() != "round")
                                     .order_by(AuditEntry.seq)).all()
        assert [e.details["archive"] for e in entries[:3]] == [r.id for r in rows]
        assert entries[0].details["sha256"] == rows[0].sha256 and entries[0].user_id == office.id
        db.session.remove()


def test_same_inputs_served_from_archive_and_changed_data_rendered_again(env):
    from models import AuditEntry, ReportArchive, TaskPart
    from workflow import services
    from workflow.sqlite import write_transactions
    from workflow.extensions import db
    from workflow.reports import render

    runner = env.app.test_cli_runner()
    out = env.files["item"].parent / "item-again.pdf"
    before = render.STATS["renders"]
    args = ["report", "generate", "--kind", "item", "--item", env.item_number, "--as-of", AS_OF, "--out", str(out)]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "直接使用已有存档" in result.output
    assert render.STATS["renders"] == before  # nothing was rendered
    assert out.read_bytes() == env.files["item"].read_bytes()
    with env.app.app_context():
        assert db.session.scalar(select(func.count(ReportArchive.id)).where(ReportArchive.kind == "item")) == 1
        reuse = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "report_generated")
                                   .order_by(AuditEntry.seq.desc())).first()
        assert reuse.details["from_archive"] is True and reuse.username == "cli"

        # A change to the data (a progress note on this item) means a new report.
        write_transactions(True)
        part = next(p for p in db.session.scalars(select(TaskPart).order_by(TaskPart.id))
                    if p.task.item.number == env.item_number and p.state == "in_progress")
        staff = unit_user(part.unit_id, "staff")
        services.record_progress(part, staff, 60, "推进过半")
        db.session.commit()
        db.session.remove()
        write_transactions(False)
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "已生成并存档" in result.output
    assert render.STATS["renders"] == before + 1
    assert "推进过半" in flat(pdftotext(out))


def test_verify_accepts_the_archived_file_and_rejects_one_flipped_byte(env, tmp_path):
    from models import ReportArchive
    from workflow.extensions import db

    runner = env.app.test_cli_runner()
    result = runner.invoke(args=["report", "verify", str(env.files["unit"])])
    assert result.exit_code == 0, result.output
    with env.app.app_context():
        row = db.session.scalar(select(ReportArchive).where(ReportArchive.kind == "unit"))
        assert f"存档 #{row.id}" in result.output and row.sha256 in result.output
        db.session.remove()

    tampered = tmp_path / "tampered.pdf"
    content = bytearray(env.files["unit"].read_bytes())
    content[len(content) // 2] ^= 0x01
    tampered.write_bytes(bytes(content))
    result = runner.invoke(args=["report", "verify", str(tampered)])
    assert result.exit_code == 1
    assert "不是未经改动的存档报告" in result.output


# ---------------------------------------------------------------- hostile text and the fetcher

def test_hostile_user_text_prints_literally_and_loads_nothing(env):
    for kind in ("unit", "item"):
        text = flat(pdftotext(env.files[kind]))
        assert flat(HOSTILE_REASON) in text, kind
        assert flat(HOSTILE_EVIDENCE) in text, kind
        assert flat(HOSTILE_STATEMENT) in text, kind
        raw = env.files[kind].read_bytes()
        assert b"root:x:0:0" not in raw and "root:x:0:0" not in text
    asked = [url for url, _ in env.fetches]
    assert not any("passwd" in url or "evil.css" in url for url in asked), asked
    # The only thing the reports asked for is our own cover mark, and it was served.
    assert env.fetches and all(url == "luoshi-asset:mark.svg" and served for url, served in env.fetches)


def test_fetcher_serves_only_our_assets():
    from workflow.reports import render

    fetcher = render.safe_fetcher()
    for url in ("file:///etc/passwd", "FILE:///etc/passwd", "http://127.0.0.1:9/x.css", "https://example.com/a.png",
                "data:text/css,body{color:red}", "data:image/png;base64,iVBORw0KGgo=", "luoshi-asset:../../../etc/passwd",
                "luoshi-asset:/etc/passwd", "luoshi-asset:mark.svg?x=1", "x.css", "/etc/passwd", "ftp://x/y"):
        with pytest.raises(render.AssetRefused):
            fetcher(url)
    response = fetcher("luoshi-asset:mark.svg")
    assert response.content_type == "image/svg+xml" and b"<svg" in response.read()


def test_weasyprint_skips_refused_urls_and_still_renders(tmp_path):
    """Markup that does reach WeasyPrint (not user text: that is escaped) gets
    its file:, http: and data: URLs refused, logged and skipped."""
    from workflow.reports import render

    render.FETCH_LOG.clear()
    html = ('<html lang="zh-CN"><head><link rel="stylesheet" href="http://127.0.0.1:9/x.css">'
            '<style>@import url("file:///etc/hostname"); body { font-family: "Noto Sans CJK SC"; }</style></head>'
            '<body><p>正文</p><img src="file:///etc/passwd"><img src="data:image/svg+xml,%3Csvg%2F%3E">'
            '<img src="luoshi-asset:mark.svg"></body></html>')
    rendered = render.html_to_pdf(html)
    log = dict(render.FETCH_LOG)
    assert log["file:///etc/passwd"] is False
    assert log["http://127.0.0.1:9/x.css"] is False
    assert log["file:///etc/hostname"] is False
    assert any(url.startswith("data:") and served is False for url, served in log.items())
    assert log["luoshi-asset:mark.svg"] is True
    path = tmp_path / "t.pdf"
    path.write_bytes(rendered.pdf)
    text = pdftotext(path)
    assert "正文" in text and "root:" not in text


def test_harfbuzz_subset_is_there_and_used():
    from weasyprint.text import ffi

    from workflow.reports import render

    assert render.harfbuzz_subset_available(), render.HARFBUZZ_MISSING_MESSAGE
    assert ffi.harfbuzz_subset is not None  # WeasyPrint's own check: the fast path is taken


def test_same_inputs_give_identical_bytes(env):
    from workflow.extensions import db
    from workflow.reports import archive, render

    with env.app.app_context():
        params = archive.make_params("item", item_number=env.item_number, as_of=AS_OF)
        first = render.html_to_pdf(archive.build_html(params, "测试").html).pdf
        db.session.remove()
    with env.app.app_context():
        second = render.html_to_pdf(archive.build_html(params, "测试").html).pdf
        db.session.remove()
    assert first == second


# ---------------------------------------------------------------- web

def _new_report(client, **data):
    token = csrf_token(client, "/reports/new")
    return client.post("/reports/new", data={"csrf_token": token, **data})


def test_web_generate_status_notify_download(app, client):
    from models import AuditEntry, Notification, ReportArchive, User
    from workflow.extensions import db
    from workflow import background
    from workflow.reports import render

    log_in(client, "office2")
    page = client.get("/reports/new")
    assert page.status_code == 200 and "生成报告" in page.text
    before = render.STATS["renders"]
    response = _new_report(client, kind="item", plan="1", item="1", as_of=AS_OF)
    assert response.status_code == 302
    archive_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    assert background.drain(app) == 1
    assert render.STATS["renders"] == before + 1

    status = client.get(f"/reports/{archive_id}")
    assert status.status_code == 200 and "已完成" in status.text and "Refresh" not in status.headers
    download = client.get(f"/reports/{archive_id}/download")
    assert download.status_code == 200 and download.mimetype == "application/pdf"
    with app.app_context():
        row = db.session.get(ReportArchive, archive_id)
        user = db.session.scalar(select(User).where(User.username == "office2"))
        assert hashlib.sha256(download.data).hexdigest() == row.sha256
        assert row.created_by_id == user.id and row.status == "done"
        note = db.session.scalar(select(Notification).where(Notification.user_id == user.id,
                                                            Notification.kind == "report"))
        assert note is not None and f"#{archive_id}" in note.message
        assert db.session.scalar(select(func.count(AuditEntry.id)).where(
            AuditEntry.action == "report_generated", AuditEntry.details["archive"].as_integer() == archive_id)) == 1

    # The same request again is answered from the archive.
    again = _new_report(client, kind="item", plan="1", item="1", as_of=AS_OF)
    assert again.headers["Location"].endswith(f"/reports/{archive_id}")
    assert render.STATS["renders"] == before + 1
    listing = client.get("/reports/")
    assert listing.status_code == 200 and f"#{archive_id}" in listing.text and "下载" in listing.text


def test_web_bad_input_is_refused_in_chinese_and_changes_nothing(app, client):
    from models import ReportArchive
    from workflow.extensions import db

    with app.app_context():
        before = db.session.scalar(select(func.count(ReportArchive.id)))
        db.session.remove()
    log_in(client, "office")
    for data, message in ((dict(kind="item", plan="1", item="999", as_of=AS_OF), "没有第999项"),
                          (dict(kind="unit", plan="1", unit="", as_of=AS_OF), "需要选择单位"),
                          (dict(kind="overall", plan="1", as_of="2022-13-45"), "请使用 YYYY-MM-DD 格式")):
        response = _new_report(client, **data)
        assert response.status_code == 400
        assert message in response.text
    with app.app_context():
        assert db.session.scalar(select(func.count(ReportArchive.id))) == before


def test_web_permissions(app, client):
    from models import ReportArchive
    from workflow.extensions import db

    with app.app_context():
        before = db.session.scalar(select(func.count(ReportArchive.id)))
        db.session.remove()
    log_in(client, "leader")  # viewer: may look and download, may not generate
    assert client.get("/reports/").status_code == 200
    assert client.get("/reports/new").status_code == 403
    token = csrf_token(client, "/reports/")  # the logout form carries one
    posted = client.post("/reports/new", data={"csrf_token": token, "kind": "overall", "plan": "1", "as_of": AS_OF})
    assert posted.status_code == 403
    with app.app_context():
        assert db.session.scalar(select(func.count(ReportArchive.id))) == before
        db.session.remove()
    other = app.test_client()
    log_in(other, "u02.staff")  # a unit's staff: no reports at all
    assert other.get("/reports/").status_code == 403
    assert other.get("/reports/new").status_code == 403
    # A 调度通报 (round) is made by closing its round, a 督办通报 (bulletin) on the 督办 page: not here.
    assert ReportKind.values() == ("overall", "unit", "item", "round", "bulletin")


def test_status_page_refreshes_itself_while_pending(app, client):
    from workflow.sqlite import write_transactions
    from workflow.extensions import db
    from workflow.reports import archive

    with app.app_context():
        write_transactions(True)
        req = archive.request_report(archive.make_params("overall", as_of=AS_OF))
        archive_id = req.archive.id
        db.session.commit()
        db.session.remove()
        write_transactions(False)
    log_in(client, "leader")
    page = client.get(f"/reports/{archive_id}")
    assert page.status_code == 200
    assert page.headers["Refresh"] == "3"
    assert '<meta http-equiv="refresh" content="3">' in page.text
    assert "排队中" in page.text and "<script" not in page.text
    assert client.get(f"/reports/{archive_id}/download").status_code == 404


def test_failed_and_abandoned_jobs_are_reported(app):
    """A report that cannot be made fails with its reason; one whose worker died
    (its heartbeat stopped) is tried again, and after REPORT_ATTEMPTS tries is
    marked failed with a message and a notice."""
    from models import Notification, ReportArchive, User
    from workflow import background
    from workflow.sqlite import write_transactions
    from workflow.extensions import db
    from workflow.reports import archive, jobs
    from workflow.timeutil import utcnow

    with app.app_context():
        write_transactions(True)
        office = db.session.scalar(select(User).where(User.username == "office"))
        params = archive.make_params("item", item_number="1", as_of=AS_OF)
        broken = archive.request_report(archive.Params(**{**params.__dict__, "item": "不存在"}), user=office,
                                        queue=False).archive
        once = archive.request_report(archive.make_params("overall", as_of=AS_OF), user=office, queue=False).archive
        twice = archive.request_report(archive.make_params("unit", unit_id=office.unit_id, as_of=AS_OF),
                                       user=office, queue=False).archive
        long_ago = utcnow() - timedelta(seconds=app.config["JOB_STALE_SECONDS"] + 5)
        for row, attempts in ((once, 1), (twice, app.config["REPORT_ATTEMPTS"])):
            row.status, row.attempts, row.heartbeat_at, row.worker = "running", attempts, long_ago, "elsewhere:1"
        broken_id, once_id, twice_id = broken.id, once.id, twice.id
        db.session.commit()
        db.session.remove()
        write_transactions(False)
    jobs.run_now(app, broken_id)
    with app.app_context():
        write_transactions(True)
        assert jobs.watchdog() == {"retried": 1, "failed": 1, "requeued": 0}
        db.session.commit()
        write_transactions(False)
        broken = db.session.get(ReportArchive, broken_id)
        assert broken.status == "failed" and "没有第不存在项" in broken.error
        gave_up = db.session.get(ReportArchive, twice_id)
        assert gave_up.status == "failed" and "后台处理程序已停止" in gave_up.error
        assert db.session.get(ReportArchive, once_id).status == "pending"
        assert db.session.scalar(select(Notification).where(Notification.kind == "report",
                                                            Notification.message.contains("后台处理程序已停止")))
        db.session.remove()
    # The retry was queued by the watchdog's commit: a worker (here, this thread) renders it.
    assert background.drain(app) == 1
    with app.app_context():
        retried = db.session.get(ReportArchive, once_id)
        assert retried.status == "done" and retried.attempts == 2 and retried.progress == 100
        db.session.remove()


def _requested_by_office(app, make_params, **options) -> int:
    """The archive id of a report the office asks for (``make_params()`` read in the app context),
    committed as a request would be; the caller runs the job."""
    from models import User
    from workflow.extensions import db
    from workflow.reports import archive
    from workflow.sqlite import write_transactions

    with app.app_context():
        write_transactions(True)
        try:
            office = db.session.scalar(select(User).where(User.username == "office"))
            archive_id = archive.request_report(make_params(), user=office, **options).archive.id
            db.session.commit()
        finally:
            db.session.remove()
            write_transactions(False)
    return archive_id


def test_a_full_disk_fails_the_report_in_words(app, full_disk):
    from models import ReportArchive
    from workflow.extensions import db
    from workflow.reports import archive, jobs

    app.config["REPORT_FOLDER"] = str(full_disk)
    archive_id = _requested_by_office(app, lambda: archive.make_params("overall", as_of=AS_OF))
    jobs.run_now(app, archive_id)
    with app.app_context():
        row = db.session.get(ReportArchive, archive_id)
        assert row.status == "failed" and "服务器存储空间已满，报告未能存档" in row.error
        db.session.remove()
    assert [p for p in full_disk.rglob("*") if p.is_file()] == []


def test_a_pdf_a_clean_up_removed_before_its_entry_committed_is_put_back(app, monkeypatch):
    """The job stores its PDF, then commits its entry: a clean-up deciding in between (an old
    unreferenced file with the same bytes) may remove it; the commit, under the content's lock,
    finds it gone and puts it back."""
    from models import ReportArchive
    from workflow.extensions import db
    from workflow.filestore import report_store
    from workflow.reports import archive, jobs

    stored, cleaned = archive.store, []

    def store_then_cleaned(pdf):
        sha = stored(pdf)
        if not cleaned:
            cleaned.append(report_store().remove(archive.report_key(sha)))
        return sha

    monkeypatch.setattr(archive, "store", store_then_cleaned)
    archive_id = _requested_by_office(app, lambda: archive.make_params("item", item_number="1", as_of=AS_OF))
    jobs.run_now(app, archive_id)
    assert cleaned == [True]
    with app.app_context():
        row = db.session.get(ReportArchive, archive_id)
        assert row.status == "done" and archive.read_pdf(row).startswith(b"%PDF")
        db.session.remove()


# ---------------------------------------------------------------- size: sections and the statement before rendering

def _pages_text(path: Path) -> list[str]:
    """pdftotext page by page (it separates pages with a form feed)."""
    return pdftotext(path).split("\f")[:-1]


SMALL_SECTIONS = 10_000   # characters: the seed's unit report (about 12 pages) in several sections


def test_a_long_report_is_rendered_in_sections_and_reads_as_one_pdf(env, tmp_path):
    """A section size far below the report's forces sections: the joined file is
    one valid PDF whose page count is the sum of its sections', numbered
    第 1 页 / 共 M 页 … 第 M 页 / 共 M 页 without a gap, fonts embedded, the running
    header carried into every section, the same bytes twice, nothing fetched
    but our own asset."""
    from pypdf import PdfReader

    from workflow.extensions import db
    from workflow.reports import archive, render

    env.app.config["REPORT_SECTION_SIZE"] = SMALL_SECTIONS
    try:
        with env.app.app_context():
            params = archive.make_params("unit", unit_id=env.unit_id, as_of=AS_OF)
            built = archive.build_html(params, "测试")
            render.FETCH_LOG.clear()
            told = []
            rendered = archive.render_built(built, lambda done, of: told.append((done, of)))
            again = archive.render_built(archive.build_html(params, "测试"))
            db.session.remove()
    finally:
        env.app.config["REPORT_SECTION_SIZE"] = make_app_default_section_size()
    docs = render.sections(built.html, SMALL_SECTIONS)
    assert rendered.sections == len(docs) >= 3
    assert told == [(n, len(docs)) for n in range(1, len(docs) + 1)]     # the worker's progress, section by section
    assert again.pdf == rendered.pdf
    # Each section laid out on its own has the pages the joined file has in all.
    assert sum(render.html_to_pdf(doc).pages for doc in docs) == rendered.pages
    path = tmp_path / "sectioned.pdf"
    path.write_bytes(rendered.pdf)
    assert len(PdfReader(path).pages) == rendered.pages

    pages = _pages_text(path)
    total = rendered.pages
    assert len(pages) == total
    for n, text in enumerate(pages, 1):
        assert re.findall(r"第 \d+ 页 / 共 \d+ 页", text) == [f"第 {n} 页 / 共 {total} 页"], (n, text[-200:])
        assert "截至2022-06-30" in flat(text)               # the running footer, in every section
        if n > 1:
            assert flat(text).startswith(f"单位报告{env.unit_name}"), (n, text[:80])   # the header
    # The stamped number sits exactly where a single pass puts it (right-aligned, same baseline).
    assert _page_number_box(path) == pytest.approx(_page_number_box(env.files["unit"]), abs=0.01)
    fonts = embedded_fonts(path)
    assert any("Noto-Sans-CJK-SC" in name for name, _ in fonts)
    assert fonts and all(emb == "yes" for _, emb in fonts), fonts
    text = flat(pdftotext(path))
    for expected in ("单位报告", env.unit_name, "本单位承办的任务", "退回记录", flat(HOSTILE_REASON)):
        assert expected in text, expected
    assert render.FETCH_LOG and all(url == "luoshi-asset:mark.svg" and ok for url, ok in render.FETCH_LOG)


def _page_number_box(path: Path) -> tuple[float, float]:
    """Right edge and bottom of the last word of page 1's 第 1 页 / 共 M 页 (pdftotext -bbox)."""
    out = subprocess.run(["pdftotext", "-f", "1", "-l", "1", "-bbox", str(path), "-"], check=True,
                         capture_output=True, text=True).stdout
    words = re.findall(r'xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', out)
    at = max(i for i, (_, _, w) in enumerate(words) if w == "共")
    x, y, word = words[at + 2]
    assert word == "页"
    return float(x), float(y)


def make_app_default_section_size() -> int:
    from workflow.config import Config

    return Config.REPORT_SECTION_SIZE


def test_sections_are_cut_only_at_seams_and_a_short_report_is_one_pass():
    from workflow.reports import render

    top = "<html><head><style>x</style></head><body><div id=footer>F</div>"
    bottom = "</body></html>"

    def seam(close, reopen):
        return f"{render.SEAM}{close}{render.SEAM_OPEN}{reopen}{render.SEAM_END}"

    rows = "".join(f"<tr><td>{n}</td></tr>" + (seam("</tbody></table>", "<table><tbody>") if n % 2 else "")
                   for n in range(1, 7))
    html = top + render.BODY + "<p>封面</p><table><tbody>" + rows + "</tbody></table>" + render.BODY_END + bottom
    whole = render.sections(html, 10_000)
    assert whole == [top + "<p>封面</p><table><tbody>" + "".join(f"<tr><td>{n}</td></tr>" for n in range(1, 7))
                     + "</tbody></table>" + bottom]
    assert render.sections(html) == whole
    docs = render.sections(html, 60)
    assert len(docs) > 1
    sectioned_top = top.replace("</head>", render.SECTION_STYLE + "</head>")
    for doc in docs:
        assert "luoshi-" not in doc                                       # no seam or marker left
        assert doc.startswith(sectioned_top) and doc.endswith(bottom)     # each a whole document
        body = doc[len(sectioned_top):-len(bottom)]
        assert body.count("<table>") == body.count("</table>") == 1     # every table closed where it was cut
    cells = [re.findall(r"<td>(\d)</td>", doc) for doc in docs]
    assert [c for doc in cells for c in doc] == list("123456")          # every row once, in order
    assert "封面" in docs[0] and not any("封面" in doc for doc in docs[1:])


def test_css_strings_cannot_close_the_style_element():
    from workflow.reports import render

    assert render.css_string('四、"章"\\</style><img src=x>') == '"四、\\"章\\"\\\\\\3c /style\\3e \\3c img src=x\\3e "'
    assert "</" not in render.css_string("</style>")


def test_the_command_line_states_the_size_before_rendering(env):
    from models import Task, TaskPart
    from workflow.extensions import db

    with env.app.app_context():
        tasks = db.session.scalar(select(func.count(Task.id)))
        parts = db.session.scalar(select(func.count(TaskPart.id)))
        db.session.remove()
    output = env.outputs["overall"]
    statement = f"规模：本报告涵盖 {tasks:,} 条任务、{parts:,} 个承办部分，预计约"
    assert statement in output
    assert output.index(statement) < output.index("已生成并存档")
    assert "规模：本报告涵盖本单位承办的" in env.outputs["unit"]
    assert "规模：本报告涵盖该事项（含子项）的" in env.outputs["item"]


def test_the_estimate_counts_what_the_report_covers_in_its_plan_only(app):
    """Counts filter by the plan, the unit and the item: another plan's rows do not count."""
    from models import Item, Task, TaskPart, task_lead_units
    from workflow.extensions import db
    from workflow.reports import archive, data

    with app.app_context():
        plan_id = db.session.scalar(select(func.max(Item.plan_id)))
        unit_id = db.session.scalar(select(TaskPart.unit_id).order_by(TaskPart.id).limit(1))
        parts = db.session.scalars(select(TaskPart).join(Task).join(Item).where(Item.plan_id == plan_id)).all()
        led = db.session.scalar(select(func.count()).select_from(task_lead_units)
                                .where(task_lead_units.c.unit_id == unit_id))
        assert data.scope("unit", plan_id, unit_id=unit_id) == {
            "tasks": sum(p.unit_id == unit_id for p in parts) + led,
            "parts": sum(p.unit_id == unit_id for p in parts), "led": led}
        assert data.scope("unit", plan_id + 1, unit_id=unit_id) == {"tasks": 0, "parts": 0, "led": 0}
        item = db.session.scalar(select(Item).where(Item.plan_id == plan_id, Item.number == "19"))
        ids = {item.id} | {c.id for c in item.children}
        covered = [p for p in parts if p.task.item_id in ids]
        assert data.scope("item", plan_id, item_id=item.id)["parts"] == len(covered)
        size = archive.estimate(archive.make_params("overall", as_of=AS_OF))
        assert size.parts == len(parts) and size.tasks == len({p.task_id for p in parts}) and size.pages > 1
        db.session.remove()


def test_item_report_queries_do_not_grow_with_the_item(app, count_queries):
    from workflow.extensions import db
    from workflow.reports import archive

    counts = {}
    with app.app_context():
        for number in ("19", "1"):
            params = archive.make_params("item", item_number=number, as_of=AS_OF)
            with count_queries() as statements:
                archive.build_html(params, "测试")
            counts[number] = len(statements)
            db.session.rollback()
        db.session.remove()
    assert counts["19"] == counts["1"] <= 20, counts


def test_web_states_the_size_before_anything_is_queued(app, client, monkeypatch):
    from models import ReportArchive
    from workflow.extensions import db
    from workflow.reports import archive

    def archived() -> int:
        with app.app_context():
            n = db.session.scalar(select(func.count(ReportArchive.id)))
            db.session.remove()
            return n

    before = archived()
    log_in(client, "office")
    asked = _new_report(client, kind="overall", plan="1", as_of=AS_OF, action="estimate")
    assert asked.status_code == 200
    assert "报告规模：" in asked.text and "本报告涵盖" in asked.text and "预计约" in asked.text
    assert archived() == before

    # A large report (here: anything from one page) waits for 确认生成 of these parameters.
    monkeypatch.setattr(archive, "LARGE_PAGES", 1)
    first = _new_report(client, kind="overall", plan="1", as_of=AS_OF, action="generate")
    assert first.status_code == 200 and "这是一份大报告" in first.text and "确认生成" in first.text
    assert archived() == before
    key = re.search(r'name="confirm" value="([0-9a-f]{64})"', first.text).group(1)
    other_day = _new_report(client, kind="overall", plan="1", as_of="2022-07-01", action="generate", confirm=key)
    assert other_day.status_code == 200 and archived() == before      # confirmed another report, not this one
    confirmed = _new_report(client, kind="overall", plan="1", as_of=AS_OF, action="generate", confirm=key)
    assert confirmed.status_code == 302 and archived() == before + 1
    status = client.get(confirmed.headers["Location"])
    assert "排队中" in status.text and "本报告涵盖" in status.text and "这是一份大报告" in status.text


def test_the_worker_archives_a_sectioned_report_with_its_hash_and_pages(app, tmp_path):
    """Through the worker's path (claim, read, render in sections with progress, store):
    the archive row's sha256, size and page count are the joined file's, and verify knows it."""
    from pypdf import PdfReader

    from models import ReportArchive, TaskPart
    from workflow.extensions import db
    from workflow.reports import archive, jobs, render

    app.config["REPORT_SECTION_SIZE"] = SMALL_SECTIONS

    def busiest_unit():
        busiest = db.session.scalar(select(TaskPart.unit_id).group_by(TaskPart.unit_id)
                                    .order_by(func.count().desc(), TaskPart.unit_id).limit(1))
        return archive.make_params("unit", unit_id=busiest, as_of=AS_OF)

    archive_id = _requested_by_office(app, busiest_unit, queue=False)
    with app.app_context():
        params = archive.params_from_archive(db.session.get(ReportArchive, archive_id))
    jobs.run_now(app, archive_id)
    with app.app_context():
        row = db.session.get(ReportArchive, archive_id)
        assert (row.status, row.progress) == ("done", 100), row.error
        content = archive.read_pdf(row)
        assert row.sha256 == hashlib.sha256(content).hexdigest() and row.size == len(content)
        path = tmp_path / "archived.pdf"
        path.write_bytes(content)
        assert row.pages == len(PdfReader(path).pages) == len(_pages_text(path))
        assert len(render.sections(archive.build_html(params, "测试").html, SMALL_SECTIONS)) > 1   # it was cut
        assert [r.id for r in archive.verify_bytes(content)] == [archive_id]
        db.session.remove()
