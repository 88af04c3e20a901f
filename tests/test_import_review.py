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
