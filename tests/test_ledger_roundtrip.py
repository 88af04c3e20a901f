"""The ledger Luoshi exports (workflow/export.py plan_as_xlsx) re-imports as the same plan:
chapters, items (with their texts, owners and contacts from the "事项" sheet), and every task's
kind, order, text, units, sections and deadline (workflow/importer/tables.py)."""
from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from workflow.extensions import db


@pytest.fixture
def db_template() -> str:
    return "seed"


def _plan():
    from models import Plan

    return db.session.scalar(select(Plan))


def _plan_record(plan) -> dict:
    return {
        "chapters": [(c.number, c.title) for c in plan.chapters],
        "items": [{
            "number": i.number, "chapter": i.chapter.number, "parent": i.parent.number if i.parent else None,
            "subtitle": i.subtitle, "policy_text": i.policy_text or "", "goal": i.goal,
            "explanation": i.explanation, "owner_units": [u.name for u in i.owner_units],
            "contacts": [(c.name, c.phone) for c in i.contacts],
            "tasks": [{
                "kind": t.kind, "seq": t.seq, "text": t.text, "lead_units": [u.name for u in t.lead_units],
                "responsible_units": [u.name for u in t.responsible_units],
                "sections": [s.name for s in t.sections],
                "deadline": t.deadline_original or t.deadline, "long_term": t.long_term,
            } for t in i.tasks],
        } for i in plan.items],
    }


def _draft_record(draft) -> dict:
    return {
        "chapters": [(c.number, c.title) for c in draft.chapters],
        "items": [{
            "number": i.number, "chapter": i.chapter, "parent": i.parent, "subtitle": i.subtitle,
            "policy_text": i.policy_text, "goal": i.goal, "explanation": i.explanation,
            "owner_units": i.owner_units, "contacts": [(c.name, c.phone) for c in i.contacts],
            "tasks": [{
                "kind": str(t.kind), "seq": t.seq, "text": t.text, "lead_units": t.lead_units,
                "responsible_units": t.responsible_units, "sections": t.sections,
                "deadline": t.deadline, "long_term": t.long_term,
            } for t in i.tasks],
        } for i in draft.items],
    }


def test_the_exported_ledger_reimports_as_the_plan(app_context):
    from workflow.export import plan_as_xlsx
    from workflow.importer.parse import parse_bytes

    plan = _plan()
    want = _plan_record(plan)
    draft = parse_bytes(plan_as_xlsx(plan.id), "任务台账.xlsx")
    got = _draft_record(draft)
    assert draft.shape == "table" and draft.title == plan.title
    assert got["chapters"] == want["chapters"]
    assert [i["number"] for i in got["items"]] == [i["number"] for i in want["items"]]
    for have, expected in zip(got["items"], want["items"]):
        assert have == expected, expected["number"]
    # The seed is a real case: every task came back, with several parts where it has them.
    tasks = [t for i in want["items"] for t in i["tasks"]]
    assert len(tasks) > 150 and any(len(t["responsible_units"]) > 1 for t in tasks)
    assert any(t["long_term"] for t in tasks) and any(t["deadline"] for t in tasks)
    assert not [w for w in draft.warnings if w.code == "unplaced_fragment"], draft.warnings[:5]


def test_progress_columns_are_read_as_nothing(app_context):
    from workflow.export import LEDGER_HEADERS, plan_as_xlsx
    from workflow.importer.parse import parse_bytes

    draft = parse_bytes(plan_as_xlsx(_plan().id), "任务台账.xlsx")
    fields = {c.header: c.field for c in draft.columns if c.sheet == "任务台账"}
    assert set(fields) == set(LEDGER_HEADERS)
    read = {h: f for h, f in fields.items() if f != "ignore"}
    assert read == {"序号": "number", "章节": "chapter", "事项": "item", "类别": "kind", "序": "seq",
                    "内容": "text", "牵头单位": "lead", "承办单位": "resp", "责任科室": "section",
                    "原定时限": "deadline"}


def test_a_ledger_without_its_item_sheet_still_gives_the_tasks(app_context):
    """An office that kept only the first sheet: the items come from the task rows' 事项 column."""
    from openpyxl import load_workbook

    from workflow.export import ITEM_SHEET, plan_as_xlsx
    from workflow.importer.parse import parse_bytes

    plan = _plan()
    book = load_workbook(io.BytesIO(plan_as_xlsx(plan.id)))
    del book[ITEM_SHEET]
    out = io.BytesIO()
    book.save(out)
    draft = parse_bytes(out.getvalue(), "台账.xlsx")
    want = _plan_record(plan)
    with_tasks = [i for i in want["items"] if i["tasks"]]
    got = _draft_record(draft)
    assert [i["number"] for i in got["items"]] == [i["number"] for i in with_tasks]
    assert [i["tasks"] for i in got["items"]] == [i["tasks"] for i in with_tasks]
