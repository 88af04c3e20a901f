"""The import review over HTTP for a table: the columns it read, the office's mapping applied on
"按所选重新审核" and written by "确认导入" exactly as the last review showed it."""
from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import select

from tests.fidelity import SHAPES
from tests.helpers import csrf, csrf_token, row_counts
from workflow.extensions import db

LEDGER = SHAPES / "table-ledger.xlsx"


@pytest.fixture
def db_template():
    return "empty"


def _upload(client, data: bytes, name: str):
    token = csrf_token(client, "/plans/import")
    return client.post("/plans/import", data={"csrf_token": token, "document": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def _mapping_fields(html: str) -> dict[str, str]:
    """The column fields as the review page sends them (hidden sheet/index, the selected field)."""
    fields = {"columns": re.search(r'name="columns" value="(\d+)"', html)[1]}
    for name, value in re.findall(r'name="(col(?:sheet|index)-\d+)" value="([^"]*)"', html):
        fields[name] = value
    for n, select_html in re.findall(r'<select name="colfield-(\d+)"[^>]*>(.*?)</select>', html, re.S):
        fields[f"colfield-{n}"] = re.search(r'<option value="([^"]+)" selected>', select_html)[1]
    return fields


def test_a_table_review_shows_its_columns_and_takes_a_new_mapping(app, office_client):
    from models import Plan, Task
    from workflow.importer.load import sha256_of

    data = LEDGER.read_bytes()
    response = _upload(office_client, data, LEDGER.name)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "任务表格" in html and 'id="columns"' in html and "责任分工/牵头部门" in html
    fields = {"csrf_token": csrf(html), "sha256": sha256_of(data), **_mapping_fields(html)}
    notes = [k for k, v in fields.items() if k.startswith("colfield-") and v == "note"]
    assert notes, "the 备注 column is read as the task's note"
    for key in notes:
        fields[key] = "ignore"
    again = office_client.post("/plans/import/review", data=fields)
    page = again.get_data(as_text=True)
    assert again.status_code == 200
    assert _mapping_fields(page)[notes[0]] == "ignore"
    with app.app_context():
        assert row_counts(db, Plan)["Plan"] == 0
    done = office_client.post("/plans/import/confirm", data=fields)
    assert done.status_code == 302
    with app.app_context():
        plan = db.session.scalar(select(Plan))
        assert plan.shape == "table"
        tasks = db.session.scalars(select(Task)).all()
        assert len(tasks) == 16 and all(t.note is None for t in tasks)
        assert any(t.leaders for t in tasks)


def test_a_mapping_to_a_field_that_does_not_exist_is_refused_in_chinese(app, office_client):
    from models import Plan
    from workflow.importer.load import sha256_of

    data = LEDGER.read_bytes()
    html = _upload(office_client, data, LEDGER.name).get_data(as_text=True)
    fields = {"csrf_token": csrf(html), "sha256": sha256_of(data), **_mapping_fields(html)}
    fields["colfield-0"] = "<script>x</script>"
    response = office_client.post("/plans/import/confirm", data=fields, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "列的读取方式" in page and "不存在" in page
    with app.app_context():
        assert row_counts(db, Plan)["Plan"] == 0


def _many_of_a_kind(tasks: int) -> bytes:
    """A one-item compilation whose work tasks name no deadline: one hint of the same kind each."""
    lines = "\n".join(f"{n}. 推进第{n}批重点项目建设。（牵头单位：县发展改革局）" for n in range(1, tasks + 1))
    return ("某县实施方案汇编\n\n一、扩大投资\n\n第1项\n（一）政策原文\n支持项目。\n（二）落实目标\n开工十个。\n"
            f"（三）工作任务\n{lines}\n（四）保障措施\n1. 加强调度。（牵头单位：县发展改革局；完成时限：长期）\n"
            "（县发展改革局牵头，联系人：王明，联系电话：1234567）\n").encode("utf-8")


def test_a_review_lists_the_first_hints_of_a_kind_and_counts_the_rest(app, office_client, monkeypatch):
    """A kind of hint with more entries than the page lists shows its first ones and says how many it
    has: a large document's review stays a page, not megabytes. Below the limit, every one is listed."""
    from workflow.views import plans

    html = _upload(office_client, _many_of_a_kind(4), "four.txt").get_data(as_text=True)
    assert html.count("未写明完成时限</span>") == 4 and 'id="warnings-cut"' not in html
    monkeypatch.setattr(plans, "LISTED_PER_KIND", 2)
    response = _upload(office_client, _many_of_a_kind(5), "five.txt")
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html[:2000]
    assert html.count("未写明完成时限</span>") == 2
    cut = re.search(r'<p class="muted" id="warnings-cut">(.*?)</p>', html, re.S)[1]
    assert "每类只列出前 2 处" in cut and "未写明完成时限共 5 处，未列出 3 处" in cut
    total = int(re.search(r"<h2>提示（(\d+)）</h2>", html)[1])
    assert total == html.count('<li><span class="badge">') + 3


def test_listed_keeps_the_order_and_counts_each_kind_cut_short():
    from types import SimpleNamespace

    from workflow.views.plans import listed

    entries = [SimpleNamespace(code=c, n=i) for i, c in enumerate("aabacaa")]
    shown, cut = listed(entries, per_kind=2)
    assert [(e.code, e.n) for e in shown] == [("a", 0), ("a", 1), ("b", 2), ("c", 4)]
    assert cut == {"a": 5}
