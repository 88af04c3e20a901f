"""Unit names in an import: the office's unit table is the only canon, spellings of one body in
one document are merged (and listed), and the office decides every new or merged name in the
review — new unit, alias of an existing unit, or not a unit — decisions that the next import
follows."""
from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import select

from tests.helpers import csrf, csrf_token, row_counts
from workflow.extensions import db


@pytest.fixture
def db_template():
    return "empty"


def compilation(*clauses: str, owner: str = "县住房和城乡建设局") -> bytes:
    """A small compilation in the seed's shape whose tasks carry ``clauses``, one task each."""
    tasks = "\n".join(f"{n}. 第{n}项工作要按期完成并报送进展。（{clause}）" for n, clause in enumerate(clauses, 1))
    return f"""某某县落实稳经济政策清单实施方案汇编

2023年2月1日

一、扩大有效投资

第1项

（一）政策原文
支持重点项目建设。（牵头单位：省发展改革委）

（二）落实目标
全年开工项目十个以上。

（三）工作任务
{tasks}

（四）保障措施
1. 加强调度，定期通报。（牵头单位：{owner}；完成时限：长期）

（{owner}牵头，联系人：王明，联系电话：1234567）
""".encode("utf-8")


def _review(data: bytes, choices=None):
    from workflow.importer import service

    return service.review_upload(data, "汇编.txt", choices=choices)


def _question(rv, name):
    return next(q for q in rv.units.questions if q.name == name)


def _add_unit(name: str):
    from models import Unit
    from workflow.importer.units import unit_kind

    unit = Unit(name=name, kind=unit_kind(name))
    db.session.add(unit)
    db.session.commit()
    return unit


def test_a_name_is_kept_as_the_document_writes_it(app_context):
    """No built-in list renames a district's body to another district's spelling."""
    from workflow.importer import service

    rv = _review(compilation("牵头单位：县住房和城乡建设局；完成时限：2023年6月底",
                             "牵头单位：县人力资源和社会保障局；完成时限：2023年6月底"))
    assert rv.units.canonical["县住房和城乡建设局"] == "县住房和城乡建设局"
    assert rv.units.canonical["县人力资源和社会保障局"] == "县人力资源和社会保障局"
    assert not rv.units.aliased
    plan = service.confirm(rv)
    from models import Unit
    names = set(db.session.scalars(select(Unit.name)))
    assert {"县住房和城乡建设局", "县人力资源和社会保障局"} <= names
    assert plan.shape == "compilation"


def test_spellings_of_one_body_merge_to_the_one_the_document_uses_most(app_context):
    rv = _review(compilation("牵头单位：县发展改革局；完成时限：2023年3月",
                             "牵头单位：县发展改革局；完成时限：2023年4月",
                             "牵头单位：县发展改革委；完成时限：2023年5月"))
    assert rv.units.canonical["县发展改革委"] == "县发展改革局"
    q = _question(rv, "县发展改革委")
    assert (q.proposal, q.proposal_target, q.decision) == ("same", "县发展改革局", "same")
    assert any(w.code == "aliased_unit" and "县发展改革委" in w.message for w in rv.warnings)
    # A name is never rewritten to one that neither the document nor the unit table holds.
    assert set(rv.units.canonical.values()) <= set(rv.units.canonical)


def test_a_spelling_of_an_existing_unit_is_proposed_as_its_alias_and_the_office_may_refuse(app_context):
    from models import Unit
    from workflow.importer import service
    from workflow.importer.load import ImportChoices, NameChoice, name_field_key

    _add_unit("县住房城乡建设局")
    data = compilation("牵头单位：县住房和城乡建设局；完成时限：2023年6月底")
    rv = _review(data)
    q = _question(rv, "县住房和城乡建设局")
    assert (q.proposal, q.proposal_target) == ("alias", "县住房城乡建设局")
    assert rv.units.canonical["县住房和城乡建设局"] == "县住房城乡建设局"
    # The office says it is another body: a unit of its own, under the name the document uses.
    rv = _review(data, ImportChoices(names={name_field_key("县住房和城乡建设局"): NameChoice("new")}))
    assert rv.units.canonical["县住房和城乡建设局"] == "县住房和城乡建设局"
    assert "县住房和城乡建设局" in rv.units.new_units and not rv.units.new_aliases
    service.confirm(rv)
    assert set(db.session.scalars(select(Unit.name))) >= {"县住房城乡建设局", "县住房和城乡建设局"}


def test_not_a_unit_is_kept_as_text_and_the_next_import_remembers(app_context):
    from models import Task, UnitAlias
    from workflow.importer import service
    from workflow.importer.load import ImportChoices, NameChoice, name_field_key

    data = compilation("牵头单位：县财政局；责任单位：专班成员单位；完成时限：2023年6月底")
    rv = _review(data)
    assert "专班成员单位" in rv.units.new_units
    choices = ImportChoices(names={name_field_key("专班成员单位"): NameChoice("text")})
    rv = _review(data, choices)
    assert "专班成员单位" not in rv.units.canonical and "专班成员单位" in rv.units.text_names
    assert _question(rv, "专班成员单位").decision == "text"
    service.confirm(rv)
    task = db.session.scalar(select(Task).where(Task.kind == "task"))
    assert task.addressees == ["专班成员单位"]
    assert [u.name for u in task.lead_units] == ["县财政局"] and task.responsible_units == []
    saved = db.session.scalar(select(UnitAlias).where(UnitAlias.alias == "专班成员单位"))
    assert saved is not None and saved.not_a_unit

    # Another document naming it: no question, kept as text at once.
    other = compilation("牵头单位：县商务局；责任单位：专班成员单位；完成时限：2023年9月底")
    rv = _review(other)
    assert "专班成员单位" in rv.units.text_names
    assert not [q for q in rv.units.questions if q.name == "专班成员单位"]


def test_an_alias_chosen_in_the_review_is_saved_for_the_next_import(app_context):
    from models import UnitAlias
    from workflow.importer import service
    from workflow.importer.load import ImportChoices, NameChoice, name_field_key

    _add_unit("县融媒体中心")
    data = compilation("牵头单位：县融媒中心；完成时限：2023年6月底")
    choices = ImportChoices(names={name_field_key("县融媒中心"): NameChoice("alias", "县融媒体中心")})
    rv = _review(data, choices)
    assert rv.units.canonical["县融媒中心"] == "县融媒体中心"
    service.confirm(rv)
    alias = db.session.scalar(select(UnitAlias).where(UnitAlias.alias == "县融媒中心"))
    assert alias.unit.name == "县融媒体中心"
    rv = _review(compilation("牵头单位：县融媒中心；完成时限：2023年8月底"))
    assert rv.units.canonical["县融媒中心"] == "县融媒体中心"
    assert not [q for q in rv.units.questions if q.name == "县融媒中心"]


def test_a_choice_naming_no_unit_is_refused_and_nothing_is_written(app_context):
    from models import Plan, Unit
    from workflow.importer import service
    from workflow.importer.load import ImportChoices, NameChoice, name_field_key

    data = compilation("牵头单位：县财政局；完成时限：2023年6月底")
    rv = _review(data, ImportChoices(names={name_field_key("县财政局"): NameChoice("alias", "并不存在的局")}))
    assert [p.code for p in rv.problems] == ["bad_choice"]
    assert "并不存在的局" in rv.problems[0].message
    with pytest.raises(service.ImportRefused):
        service.confirm(rv)
    assert row_counts(db, Plan, Unit) == {"Plan": 0, "Unit": 0}


def test_a_deadline_in_the_sentence_is_proposed_and_taken_only_when_the_office_ticks_it(app_context):
    from workflow.importer import load
    from workflow.importer.draft import Draft, DraftChapter, DraftItem, DraftTask

    def draft():
        task = DraftTask(kind="task", seq=1, text="力争2023年10月底前完成改造。", lead_units=["县财政局"],
                         deadline_proposal="2023年10月底前")
        return Draft(title="试", issued_on=None, chapters=[DraftChapter(1, "一")],
                     items=[DraftItem(number="1", parent=None, chapter=1, tasks=[task])])

    rv = load.review(draft(), b"x", "x.txt")
    [proposal] = rv.deadline_proposals
    assert proposal["readable"] and not proposal["taken"] and proposal["date"].isoformat() == "2023-10-31"
    assert rv.draft.items[0].tasks[0].deadline is None
    rv = load.review(draft(), b"x", "x.txt", load.ImportChoices(deadlines={proposal["key"]}))
    task = rv.draft.items[0].tasks[0]
    assert rv.deadline_proposals[0]["taken"]
    assert task.deadline.isoformat() == "2023-10-31" and task.deadline_text == "2023年10月底前"


# --------------------------------------------------------------------------- the review page

def _upload(client, data: bytes, name: str = "汇编.txt"):
    token = csrf_token(client, "/plans/import")
    return client.post("/plans/import", data={"csrf_token": token, "document": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def test_the_review_page_takes_decisions_shows_them_and_confirms_them(app, office_client):
    from models import Task, Unit, UnitAlias
    from workflow.importer.load import name_field_key, sha256_of

    data = compilation("牵头单位：县财政局；责任单位：专班成员单位；完成时限：2023年6月底",
                       "牵头单位：县发展改革局；完成时限：2023年3月", "牵头单位：县发展改革委；完成时限：2023年4月")
    html = _upload(office_client, data).get_data(as_text=True)
    assert 'id="names"' in html and "专班成员单位" in html and "归入“县发展改革局”" in html
    key = name_field_key("专班成员单位")
    fields = {"csrf_token": csrf(html), "sha256": sha256_of(data), f"name-{key}": "text"}
    again = office_client.post("/plans/import/review", data=fields)
    page = again.get_data(as_text=True)
    assert again.status_code == 200
    assert re.search(r'<option value="text" selected>', page)
    with app.app_context():
        assert row_counts(db, Task)["Task"] == 0       # a second review writes nothing
    done = office_client.post("/plans/import/confirm", data=fields)
    assert done.status_code == 302
    with app.app_context():
        assert "专班成员单位" not in set(db.session.scalars(select(Unit.name)))
        assert db.session.scalar(select(UnitAlias).where(UnitAlias.alias == "专班成员单位")).not_a_unit
        assert db.session.scalar(select(UnitAlias).where(UnitAlias.alias == "县发展改革委")).unit.name == "县发展改革局"
        assert ["专班成员单位"] in [t.addressees for t in db.session.scalars(select(Task))]


def test_a_forged_decision_gets_a_message_and_writes_nothing(app, office_client):
    from models import Plan
    from workflow.importer.load import name_field_key, sha256_of

    data = compilation("牵头单位：县财政局；完成时限：2023年6月底")
    html = _upload(office_client, data).get_data(as_text=True)
    fields = {"csrf_token": csrf(html), "sha256": sha256_of(data),
              f"name-{name_field_key('县财政局')}": "alias", f"target-{name_field_key('县财政局')}": "<b>假</b>",
              "name-0000": "new", "deadline": "nonsense", "columns": "x"}
    response = office_client.post("/plans/import/confirm", data=fields)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "审核选择无效" in page and "&lt;b&gt;假&lt;/b&gt;" in page and "<b>假</b>" not in page
    with app.app_context():
        assert row_counts(db, Plan)["Plan"] == 0


def test_only_the_office_reviews_again(app, office_client):
    from tests.helpers import log_in
    from workflow.importer.load import sha256_of

    data = compilation("牵头单位：县财政局；完成时限：2023年6月底")
    html = _upload(office_client, data).get_data(as_text=True)
    viewer = log_in(app.test_client(), "viewer")
    token = csrf_token(viewer, "/plans/")
    response = viewer.post("/plans/import/review", data={"csrf_token": token, "sha256": sha256_of(data)})
    assert response.status_code == 403
    assert csrf(html)      # the office's own review page carries its token


def test_the_audit_log_says_what_the_review_decided(app_context):
    from models import AuditEntry
    from workflow import audit
    from workflow.importer import service
    from workflow.importer.load import ImportChoices, NameChoice, name_field_key

    data = compilation("牵头单位：县财政局；责任单位：专班成员单位；完成时限：2023年6月底")
    service.confirm(_review(data, ImportChoices(names={name_field_key("专班成员单位"): NameChoice("text")})))
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "plan_imported"))
    shown = dict(audit.describe(entry))
    assert shown["读取方式"] == "实施方案汇编（第N项）"
    assert shown["审核中决定的单位名称"] == "“专班成员单位”不是单位（作为文字保留）"
