"""The importer against the database: review, write, idempotence, export, CLI and upload UI."""
from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import func, select

from tests.helpers import csrf_token, log_in, row_counts
from workflow.extensions import db


@pytest.fixture
def db_template():
    return "empty"


def _all_models():
    from models import AuditEntry, Chapter, Contact, Item, Plan, Section, Task, TaskPart, Unit, UnitAlias

    return (Plan, Chapter, Item, Contact, Task, TaskPart, Unit, UnitAlias, Section, AuditEntry)


def _import(app, data: bytes, name: str = "seed.txt"):
    from workflow.importer import service

    with app.app_context():
        rv = service.review_upload(data, name)
        plan = service.confirm(rv)
        return plan.id, rv


def test_seed_import_writes_the_whole_compilation(app, seed_bytes):
    from models import Item, Plan, Task, TaskPart, Unit, UnitAlias

    plan_id, rv = _import(app, seed_bytes)
    with app.app_context():
        plan = db.session.get(Plan, plan_id)
        assert plan.issued_on.isoformat() == "2022-04-08"
        assert plan.issuer == "区委统筹疫情防控和经济运行工作领导小组（指挥部）办公室"
        assert len(plan.chapters) == 6
        assert [c.title for c in plan.chapters][:2] == ["培育壮大有效需求", "稳定经济运行"]
        numbers = [i.number for i in plan.items]
        assert numbers[:3] == ["1", "2", "3"]
        assert {"19", "19-1", "19-5", "36-1", "36-2", "56"} <= set(numbers)
        assert len(numbers) == len(set(numbers)) == rv.counts["items"]

        tasks = db.session.scalars(select(Task)).all()
        assert len(tasks) == rv.counts["tasks"] + rv.counts["measures"]

        # Item 1, task 1: lead 区发展改革局, co-responsible 区财政局 — the part is the co-unit's.
        item1 = db.session.scalar(select(Item).where(Item.number == "1"))
        t1 = [t for t in item1.tasks if t.kind == "task"][0]
        assert [u.name for u in t1.lead_units] == ["区发展改革局"]
        assert [u.name for u in t1.responsible_units] == ["区财政局"]
        assert [s.name for s in t1.sections] == ["商贸流通和社会事业科"]
        assert t1.deadline.isoformat() == "2022-12-31" and t1.deadline_text == "2022年12月"
        assert [p.unit.name for p in t1.parts] == ["区财政局"]
        assert all(p.state == "planned" for p in t1.parts) and t1.state == "planned"

        # A task with no co-units: its lead unit does the work.
        item3 = db.session.scalar(select(Item).where(Item.number == "3"))
        assert [p.unit.name for p in item3.tasks[0].parts] == ["区工业和信息化局"]

        # Not applicable: explanation, no tasks.
        item2 = db.session.scalar(select(Item).where(Item.number == "2"))
        assert not item2.applicable and "不涉及" in item2.explanation and item2.tasks == []

        # Sub-items hang under their parent.
        item19 = db.session.scalar(select(Item).where(Item.number == "19"))
        assert [c.number for c in item19.children] == ["19-1", "19-2", "19-3", "19-4", "19-5"]

        # Several lead units in one clause (36-1's measures).
        item36_1 = db.session.scalar(select(Item).where(Item.number == "36-1"))
        measure = [t for t in item36_1.tasks if t.kind == "measure"][0]
        assert [u.name for u in measure.lead_units] == ["区发展改革局", "区投资促进中心"]

        # 区发展改革委 (item 53) is the same body as 区发展改革局: one unit, one alias row.
        assert db.session.scalar(select(Unit).where(Unit.name == "区发展改革委")) is None
        alias = db.session.scalar(select(UnitAlias).where(UnitAlias.alias == "区发展改革委"))
        assert alias is not None and alias.unit.name == "区发展改革局"
        item53 = db.session.scalar(select(Item).where(Item.number == "53"))
        assert {u.name for t in item53.tasks for u in t.lead_units} == {"区发展改革局"}

        # Every task has at least one part, and units are rows, not strings.
        assert all(t.parts for t in tasks)
        assert db.session.scalar(select(TaskPart).where(TaskPart.unit_id.is_(None))) is None


def test_sections_belong_to_the_unit_written_before_them(app, seed_bytes):
    from models import Item, Plan

    plan_id, _ = _import(app, seed_bytes)
    with app.app_context():
        # The plan is the compilation, not its cover letter.
        assert db.session.get(Plan, plan_id).title == "周村区落实省2022年“稳中求进”高质量发展政策清单（第一批）实施方案汇编"
        item56 = db.session.scalar(select(Item).where(Item.number == "56"))
        task = [t for t in item56.tasks if t.kind == "task"][0]
        owners = {s.name: s.unit.name for s in task.sections}
        assert owners == {"社会救助服务中心": "区民政局", "慈善事业促进和社会工作科": "区民政局",
                          "社会保障科": "区财政局"}


def test_long_term_tasks_have_no_date(app, seed_bytes):
    from models import Task

    _import(app, seed_bytes)
    with app.app_context():
        long_term = db.session.scalars(select(Task).where(Task.long_term.is_(True))).all()
        assert long_term, "the seed has 长期 deadlines"
        assert all(t.deadline is None and "长期" in t.deadline_text for t in long_term)


def test_reimport_is_idempotent(app, runner, seed_bytes, tmp_path):
    path = tmp_path / "seed.txt"
    path.write_bytes(seed_bytes)
    first = runner.invoke(args=["plan", "import", str(path)])
    assert first.exit_code == 0, first.output
    with app.app_context():
        before = row_counts(db, *_all_models())
    second = runner.invoke(args=["plan", "import", str(path)])
    assert second.exit_code == 0
    assert "已导入" in second.output
    with app.app_context():
        assert row_counts(db, *_all_models()) == before


def test_dry_run_writes_nothing(app, runner, seed_bytes, tmp_path):
    path = tmp_path / "seed.txt"
    path.write_bytes(seed_bytes)
    with app.app_context():
        before = row_counts(db, *_all_models())
    result = runner.invoke(args=["plan", "import", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "试运行" in result.output and "工作任务" in result.output and "提示" in result.output
    with app.app_context():
        assert row_counts(db, *_all_models()) == before


@pytest.mark.parametrize("content", [b"", b"\x00\x01\x02\xff" * 500, "会议通知\n请各单位于明天上午九点参加会议。\n".encode()])
def test_malformed_document_fails_and_writes_nothing(app, runner, tmp_path, content):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with app.app_context():
        before = row_counts(db, *_all_models())
    result = runner.invoke(args=["plan", "import", str(path)])
    assert result.exit_code != 0
    assert "导入失败" in result.output
    with app.app_context():
        assert row_counts(db, *_all_models()) == before


def test_truncated_document_is_reported(app, runner, seed_bytes, tmp_path):
    text = seed_bytes.decode("utf-8")
    cut = text.index("（三）工作任务", text.index("第 21 项"))
    path = tmp_path / "cut.txt"
    path.write_text(text[:cut + len("（三）工作任务") + 1] + "组织开展专项行动，", encoding="utf-8")
    result = runner.invoke(args=["plan", "import", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "不完整" in result.output
    assert "第21项" in result.output or "第 21 项" in result.output


def test_export_json_is_faithful_to_the_document(app, runner, seed_bytes):
    from workflow.importer.parse import parse_bytes

    plan_id, _ = _import(app, seed_bytes)
    result = runner.invoke(args=["plan", "export", str(plan_id)])
    assert result.exit_code == 0
    data = json.loads(result.output)["plan"]
    draft = parse_bytes(seed_bytes, "seed.txt")
    assert [c["number"] for c in data["chapters"]] == [c.number for c in draft.chapters]
    assert [i["number"] for i in data["items"]] == [i.number for i in draft.items]
    for exported, parsed in zip(data["items"], draft.items):
        assert exported["applicable"] == parsed.applicable
        assert exported["goal"] == parsed.goal
        assert exported["explanation"] == parsed.explanation
        assert [c["name"] for c in exported["contacts"]] == [c.name for c in parsed.contacts]
        assert [(t["kind"], t["seq"], t["text"]) for t in exported["tasks"]] == \
            [(t.kind, t.seq, t.text) for t in parsed.tasks]
        for et, pt in zip(exported["tasks"], parsed.tasks):
            assert et["deadline"] == (pt.deadline.isoformat() if pt.deadline else None)
            assert et["long_term"] == pt.long_term
            assert et["state"] == "planned"
    item_19_1 = next(i for i in data["items"] if i["number"] == "19-1")
    assert item_19_1["parent"] == "19" and item_19_1["chapter"] == 2
    assert item_19_1["owner_units"] == ["区税务局"]
    assert item_19_1["contacts"] == [{"name": "庄琦", "phone": "6431121"}]
    # Canonical unit names only.
    names = {u for i in data["items"] for t in i["tasks"] for u in t["lead_units"] + t["responsible_units"]}
    assert "区发展改革委" not in names and "区住房和城乡建设局" not in names


def test_export_xlsx_ledger(app, runner, seed_bytes, tmp_path):
    from openpyxl import load_workbook

    plan_id, rv = _import(app, seed_bytes)
    out = tmp_path / "ledger.xlsx"
    result = runner.invoke(args=["plan", "export", str(plan_id), "--format", "xlsx", "--out", str(out)])
    assert result.exit_code == 0, result.output
    ws = load_workbook(out).active
    rows = list(ws.iter_rows(values_only=True))
    assert rows[1][:6] == ("序号", "章节", "事项", "类别", "序", "内容")
    body = rows[2:]
    # One row per part (承办); the ledger's own columns are checked in tests/test_ledger.py.
    with app.app_context():
        from models import Task, TaskPart
        from workflow.extensions import db

        parts = db.session.scalar(select(func.count(TaskPart.id)))
        partless = db.session.scalar(select(func.count(Task.id)).where(~Task.parts.any()))
    assert len(body) == parts + partless >= rv.counts["tasks"] + rv.counts["measures"]
    first = body[0]
    assert first[2] == "1" and first[3] == "工作任务" and first[6] == "区发展改革局" and first[7] == "区财政局"
    assert first[9] == "计划"


def test_docx_import_matches_text_import(app, seed_bytes, tmp_path):
    import docx

    from workflow.export import plan_as_dict

    document = docx.Document()
    for line in seed_bytes.decode("utf-8").splitlines():
        document.add_paragraph(line)
    buffer = io.BytesIO()
    document.save(buffer)
    text_plan, _ = _import(app, seed_bytes, "seed.txt")
    docx_plan, rv = _import(app, buffer.getvalue(), "seed.docx")
    assert text_plan != docx_plan
    # Another file of the same compilation is imported, but the review said so first.
    assert [w.code for w in rv.warnings][0] == "possible_duplicate_plan"
    with app.app_context():
        a, b = plan_as_dict(text_plan)["plan"], plan_as_dict(docx_plan)["plan"]
    assert a["items"] == b["items"] and a["chapters"] == b["chapters"]


# ------------------------------------------------------------------ the upload UI

def test_upload_review_confirm(app, office_client, seed_bytes):
    from models import Plan, Task

    token = csrf_token(office_client, "/plans/import")
    response = office_client.post("/plans/import", data={
        "csrf_token": token, "document": (io.BytesIO(seed_bytes), "实施方案汇编.txt")},
        content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "导入审核" in html and "确认导入" in html and "重复内容" in html
    with app.app_context():
        assert row_counts(db, Plan)["Plan"] == 0    # nothing written before confirmation
    sha = __import__("re").search(r'name="sha256"[^>]*value="([0-9a-f]{64})"', html).group(1)
    confirm_token = __import__("re").search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    response = office_client.post("/plans/import/confirm", data={
        "csrf_token": confirm_token, "sha256": sha, "filename": "forged-name.txt"})
    assert response.status_code == 302
    with app.app_context():
        plan = db.session.scalar(select(Plan))
        # The name recorded is the one reviewed, whatever the confirm form says.
        assert plan.source_filename == "实施方案汇编.txt"
        assert row_counts(db, Task)["Task"] > 150
    page = office_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "培育壮大有效需求" in page


def test_upload_refuses_bad_documents(app, office_client):
    from models import Plan

    for payload, name, message in [
        (b"%PDF-1.4 not a compilation", "汇编.pdf", "不支持直接导入 PDF"),
        (b"MZ\x90\x00 a program", "汇编.exe", "只支持"),
        (b"\x00\xff\xfe\x00" * 100, "汇编.txt", ""),
        ("各位同事：明天下午开会。".encode(), "通知.txt", ""),
    ]:
        token = csrf_token(office_client, "/plans/import")
        response = office_client.post("/plans/import", data={
            "csrf_token": token, "document": (io.BytesIO(payload), name)}, content_type="multipart/form-data")
        assert response.status_code == 400
        assert message in response.get_data(as_text=True)
    with app.app_context():
        assert row_counts(db, Plan)["Plan"] == 0


def test_upload_is_office_only(app, client, office_client, seed_bytes):
    office_client.post("/auth/logout", data={"csrf_token": csrf_token(office_client, "/plans/")})
    log_in(client, "viewer")
    assert client.get("/plans/import").status_code == 403
    token = csrf_token(client, "/plans/")
    response = client.post("/plans/import", data={"csrf_token": token,
                                                  "document": (io.BytesIO(seed_bytes), "a.txt")},
                           content_type="multipart/form-data")
    assert response.status_code == 403


def test_upload_without_csrf_is_refused(app, office_client, seed_bytes):
    response = office_client.post("/plans/import", data={"document": (io.BytesIO(seed_bytes), "a.txt")},
                                  content_type="multipart/form-data")
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)


def test_confirm_with_stale_review_asks_to_upload_again(app, office_client):
    token = csrf_token(office_client, "/plans/import")
    response = office_client.post("/plans/import/confirm", data={
        "csrf_token": token, "sha256": "a" * 64, "filename": "x.txt"})
    assert response.status_code == 302
    page = office_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "审核结果已过期" in page


def test_upload_on_a_full_disk_is_refused_in_words(app, office_client, seed_bytes, full_disk):
    from models import Plan

    app.instance_path = str(full_disk)          # the staging folder lives in the instance folder
    (full_disk / "filler").write_bytes(b"\0" * (200 * 1024))
    token = csrf_token(office_client, "/plans/import")
    response = office_client.post("/plans/import", data={
        "csrf_token": token, "document": (io.BytesIO(seed_bytes), "实施方案汇编.txt")},
        content_type="multipart/form-data")
    assert response.status_code == 507
    assert "服务器存储空间已满，文件未能暂存待审核" in response.get_data(as_text=True)
    assert not any(p.name.startswith(".partial-") for p in full_disk.rglob("*"))
    with app.app_context():
        assert row_counts(db, Plan)["Plan"] == 0


def test_review_shows_every_warning_kind_in_chinese(app, office_client, seed_bytes):
    import re

    # A wrong sub-item number on a header line (number_mismatch) alongside the seed's own warnings.
    text = seed_bytes.decode("utf-8")
    assert "第19项政策19—1" in text
    data = text.replace("第19项政策19—1", "第19项政策18—1", 1).encode("utf-8")
    response = office_client.post("/plans/import", data={
        "csrf_token": csrf_token(office_client, "/plans/import"), "document": (io.BytesIO(data), "a.txt")},
        content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    badges = re.findall(r'<span class="badge[^"]*">([^<]*)</span>', html)
    assert "未写明完成时限" in badges and "重复内容" in badges
    assert [b for b in badges if re.search(r"[A-Za-z_]", b)] == []
    assert "missing_deadline" not in html and "number_mismatch" not in html


def test_an_import_tells_each_unit_it_was_given_once_with_the_count(app, seed_bytes):
    from models import Notification, Task, TaskPart, Unit, User
    from workflow.importer import service

    with app.app_context():
        office = Unit(name="区指挥部办公室", kind="office")
        finance = Unit(name="区财政局", kind="bureau")
        db.session.add_all([office, finance])
        db.session.flush()
        db.session.add_all([User(username="f.staff", display_name="财政局经办人", unit_id=finance.id,
                                 role="unit_staff", password_hash="x"),
                            User(username="f.old", display_name="已停用", unit_id=finance.id,
                                 role="unit_staff", password_hash="x", active=False)])
        db.session.commit()
        service.confirm(service.review_upload(seed_bytes, "seed.txt"))
        parts = db.session.scalar(select(func.count(TaskPart.id)).where(TaskPart.unit_id == finance.id))
        notes = db.session.scalars(select(Notification).where(Notification.kind == "assigned")).all()
        assert len(notes) == 1                     # the active user of the one unit with users
        assert notes[0].user.username == "f.staff"
        assert f"区财政局承办其中 {parts} 项任务" in notes[0].message and "签收" in notes[0].message
        assert parts > 0 and db.session.scalar(select(func.count(Task.id))) > 0


@pytest.mark.parametrize("app_config", [{"MAX_IMPORT_MB": 1}])
def test_a_document_over_the_import_limit_is_refused_before_parsing(app, office_client, seed_bytes, monkeypatch):
    """MAX_IMPORT_MB: the page says the limit, nothing is parsed, nothing is written."""
    from models import Plan
    from workflow.importer import service

    parsed = []
    monkeypatch.setattr(service, "parse_bytes", lambda *a, **k: parsed.append(1))
    big = seed_bytes * (1024 * 1024 // len(seed_bytes) + 1)      # just over 1 MB of a real compilation
    token = csrf_token(office_client, "/plans/import")
    response = office_client.post("/plans/import", data={
        "csrf_token": token, "document": (io.BytesIO(big), "汇编.txt")}, content_type="multipart/form-data")
    assert response.status_code == 400
    assert "文件过大（超过 1 MB），未读取" in response.get_data(as_text=True)
    assert parsed == []
    with app.app_context():
        assert row_counts(db, Plan)["Plan"] == 0
