"""Whatever the review accepts must import; whatever cannot be imported is named
in the review with its line.  On both databases (the ``app`` fixture).

The documents are mutations of the seed compilation and of the other office's
fixture, made by rules of the genre (an item numbered like another, the
document pasted twice, the first chapter heading lost …), never by editing a
particular line of one file by hand.
"""
from __future__ import annotations

import importlib.util
import io
import re
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.helpers import csrf, csrf_token, row_counts
from workflow.extensions import db

ROOT = Path(__file__).resolve().parent.parent
OTHER = ROOT / "tests" / "fixtures" / "other_office.txt"
ITEM_HEAD = re.compile(r"^[ \t\u3000]*第[ \t]*(\d+)[ \t]*项", re.M)
CHAPTER_HEAD = re.compile(r"^[一二三四五六七八九十]+、\S", re.M)


@pytest.fixture
def db_template():
    return "empty"


def _fuzz():
    spec = importlib.util.spec_from_file_location("import_fuzz", ROOT / "bench" / "import_fuzz.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("import_fuzz", module)   # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def _models():
    from models import AuditEntry, Chapter, Contact, Item, Plan, Section, Task, TaskPart, Unit, UnitAlias

    return (Plan, Chapter, Item, Contact, Task, TaskPart, Unit, UnitAlias, Section, AuditEntry)


def line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def item_heads(text: str) -> list[re.Match]:
    return list(ITEM_HEAD.finditer(text))


def with_second_item_renumbered(text: str) -> tuple[str, int, int]:
    """The second item header given the number of the first (第 2 项 → 第 1 项);
    returns the text and the lines of the two headers."""
    first, second = item_heads(text)[:2]
    changed = text[:second.start(1)] + first.group(1) + text[second.end(1):]
    return changed, line_of(text, first.start()), line_of(text, second.start())


def first_chapter_heading_removed(text: str) -> tuple[str, int]:
    """The first chapter heading that opens items (not the table of contents line)
    deleted; returns the text and the line of the first item."""
    first_item = item_heads(text)[0].start()
    heading = [m for m in CHAPTER_HEAD.finditer(text) if m.start() < first_item][-1]
    end = text.index("\n", heading.start()) + 1
    changed = text[:heading.start()] + text[end:]
    return changed, line_of(changed, item_heads(changed)[0].start())


def review(app, data: bytes, name: str = "doc.txt", **kw):
    from workflow.importer import service

    return service.review_upload(data, name, **kw)


# =========================================================================== the three crashes

def test_an_item_number_written_twice_is_a_problem_named_with_its_lines(app, seed_bytes):
    from workflow.importer import service

    text, first_line, second_line = with_second_item_renumbered(seed_bytes.decode("utf-8"))
    with app.app_context():
        before = row_counts(db, *_models())
        rv = review(app, text.encode("utf-8"))
        assert not rv.accepted
        [problem] = [p for p in rv.problems if p.code == "duplicate_item"]
        assert problem.line == second_line
        assert f"第{first_line}行" in problem.message and f"第{second_line}行" in problem.message
        assert f"第{second_line}行" in rv.as_text() and "不能导入" in rv.as_text()
        with pytest.raises(service.ImportRefused) as refused:
            service.confirm(rv)
        assert "事项编号重复" in refused.value.message
        assert row_counts(db, *_models()) == before


def test_items_before_the_first_chapter_go_into_an_unnamed_chapter(app, seed_bytes):
    from models import Chapter, Item, Plan
    from workflow.importer import service

    text, first_item_line = first_chapter_heading_removed(seed_bytes.decode("utf-8"))
    with app.app_context():
        rv = review(app, text.encode("utf-8"))
        assert rv.accepted, rv.problems
        [warning] = [w for w in rv.warnings if w.code == "before_first_chapter"]
        assert warning.line == first_item_line and "（未分章）" in warning.message
        plan = service.confirm(rv)
        chapters = db.session.scalars(select(Chapter).where(Chapter.plan_id == plan.id)
                                      .order_by(Chapter.number)).all()
        unnamed = chapters[0]
        assert unnamed.title == "（未分章）" and len(chapters) == len(rv.draft.chapters)
        first = db.session.scalar(select(Item).where(Item.plan_id == plan.id, Item.position == 0))
        assert first.chapter_id == unnamed.id
        # Every item is written, and the unnamed chapter holds exactly those before the
        # next heading.
        assert len(db.session.get(Plan, plan.id).items) == rv.counts["items"]
        assert [i.number for i in unnamed.items] == \
            [d.number for d in rv.draft.items if d.chapter == unnamed.number]


def test_the_document_pasted_twice_is_refused_in_the_review(app, seed_bytes):
    from workflow.importer import service

    text = seed_bytes.decode("utf-8")
    twice = text + "\n" + text
    offset = text.count("\n") + 1          # line numbers of the second copy
    with app.app_context():
        before = row_counts(db, *_models())
        rv = review(app, twice.encode("utf-8"))
        codes = {p.code for p in rv.problems}
        assert {"duplicate_chapter", "duplicate_item"} <= codes
        chapter = next(p for p in rv.problems if p.code == "duplicate_chapter")
        assert chapter.line > offset and "章节编号重复" in chapter.message
        first_item = next(p for p in rv.problems if p.code == "duplicate_item")
        assert first_item.line == offset + line_of(text, item_heads(text)[0].start())
        with pytest.raises(service.ImportRefused):
            service.confirm(rv)
        assert row_counts(db, *_models()) == before


def test_values_longer_than_their_columns_are_problems_with_their_lines(app, seed_bytes):
    """PostgreSQL refuses them in the write (SQLite keeps them): the review names them."""
    text = seed_bytes.decode("utf-8")
    clause = re.search(r"牵头单位：(区[^，；）]+?局)", text)
    long_name = "区" + "经济发展" * 40 + "局"
    changed = text[:clause.start(1)] + long_name + text[clause.end(1):]
    number = item_heads(text)[3]
    changed = changed.replace(number.group(0), number.group(0).replace(number.group(1), "9" * 30), 1)
    with app.app_context():
        rv = review(app, changed.encode("utf-8"))
        assert not rv.accepted
        unit_line = line_of(changed, changed.index(long_name))
        number_line = line_of(changed, changed.index("9" * 30))
        assert any("单位名称过长" in p.message and p.line == unit_line for p in rv.problems), rv.problems
        assert any(p.message.startswith("事项编号过长") and p.line == number_line for p in rv.problems)


def test_confirm_turns_a_failing_write_into_a_message_and_writes_nothing(app, runner, seed_bytes,
                                                                         monkeypatch, tmp_path):
    """The last resort: should the write fail although the review accepted."""
    from sqlalchemy.exc import IntegrityError

    from workflow.importer import load, service

    real_write = load.write

    def failing_write(rv, user=None):
        real_write(rv, user=user)
        raise IntegrityError("INSERT …", {}, Exception("simulated"))

    monkeypatch.setattr(load, "write", failing_write)
    with app.app_context():
        before = row_counts(db, *_models())
        rv = review(app, seed_bytes)
        with pytest.raises(service.DocumentError) as failed:
            service.confirm(rv)
        assert "没有写入任何数据" in failed.value.message
        assert row_counts(db, *_models()) == before
    path = tmp_path / "seed.txt"
    path.write_bytes(seed_bytes)
    result = runner.invoke(args=["plan", "import", str(path)])
    assert result.exit_code == 2
    assert "导入失败" in result.output and "没有写入任何数据" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    with app.app_context():
        assert row_counts(db, *_models()) == before


def test_cli_refuses_a_duplicated_item_with_its_line(app, runner, seed_bytes, tmp_path):
    text, _, second_line = with_second_item_renumbered(seed_bytes.decode("utf-8"))
    path = tmp_path / "dup.txt"
    path.write_text(text, encoding="utf-8")
    with app.app_context():
        before = row_counts(db, *_models())
    for args in (["plan", "import", str(path)], ["plan", "import", str(path), "--dry-run"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)
        assert "事项编号重复" in result.output and f"第{second_line}行" in result.output
        assert "导入失败" in result.output
    with app.app_context():
        assert row_counts(db, *_models()) == before


# =========================================================================== mutation fuzz

def test_mutated_documents_are_imported_or_refused_never_a_traceback(app):
    """A deterministic subset of bench/import_fuzz.py: review, and when accepted,
    write (rolled back) on this test's database."""
    fuzz = _fuzz()
    with app.app_context():
        outcomes = []
        for case in fuzz.cases(40, seed=20260):
            outcome = fuzz.run_case(case)
            if outcome.result == "refused" and "替换字符" in outcome.message:
                outcomes.append(fuzz.run_case(case, replace_invalid=True))
            outcomes.append(outcome)
        tracebacks = [f"{o.case.name}: {o.stage}: {o.message}\n{o.detail}" for o in outcomes
                      if o.result == "traceback"]
        assert not tracebacks, "\n\n".join(tracebacks)
        results = {o.result for o in outcomes}
        assert results == {"imported", "refused"}, results   # the subset exercises both
        assert all(o.message for o in outcomes if o.result == "refused")
        from models import Plan
        assert row_counts(db, Plan)["Plan"] == 0              # every write was rolled back


# =========================================================================== invalid bytes

def _with_bad_byte(text: str) -> tuple[bytes, int, int]:
    """One invalid byte inserted after the first item header's line: (bytes, line, column)."""
    data = text.encode("utf-8")
    head = item_heads(text)[5]
    line_end = text.index("\n", head.end())
    cut = len(text[:line_end].encode("utf-8"))
    line = line_of(text, head.start())
    column = line_end - (text.rfind("\n", 0, line_end) + 1) + 1
    return data[:cut] + b"\xff" + data[cut:], line, column


def test_one_invalid_byte_is_located_and_can_be_read_with_replacement(app, seed_bytes):
    from workflow.importer import service

    data, line, column = _with_bad_byte(seed_bytes.decode("utf-8"))
    with app.app_context():
        with pytest.raises(service.InvalidBytesError) as refused:
            review(app, data)
        [place] = refused.value.places
        assert (place.line, place.column, place.offset) == (line, column, data.index(b"\xff"))
        assert f"第{line}行第{column}列" in refused.value.message and "0xFF" in refused.value.message
        assert place.before and place.before in refused.value.message      # the text around it
        rv = review(app, data, replace_invalid=True)
        assert rv.accepted
        [warning] = [w for w in rv.warnings if w.code == "replaced_bytes"]
        assert warning.line == line and "\ufffd" in warning.message
        assert rv.counts["items"] == review(app, seed_bytes).counts["items"]


def test_gb18030_documents_are_still_read_as_gb18030(app, seed_bytes):
    text = seed_bytes.decode("utf-8")
    with app.app_context():
        gb = review(app, text.encode("gb18030"))
        utf8 = review(app, seed_bytes)
        assert not any(w.code == "replaced_bytes" for w in gb.warnings)
        assert gb.draft.title == utf8.draft.title and gb.counts == utf8.counts
        # A GBK file with a damaged byte is not mistaken for UTF-8 either.
        damaged = text.encode("gb18030") + b"\x80"
        from workflow.importer import service
        try:
            review(app, damaged)
        except service.InvalidBytesError:  # pragma: no cover - the failure this guards against
            pytest.fail("a GB18030 file was taken for UTF-8 with errors")
        except service.DocumentError:
            pass


def test_cli_names_the_invalid_byte_and_reads_it_with_replace_invalid(app, runner, seed_bytes, tmp_path):
    from models import Plan

    data, line, column = _with_bad_byte(seed_bytes.decode("utf-8"))
    path = tmp_path / "bad.txt"
    path.write_bytes(data)
    result = runner.invoke(args=["plan", "import", str(path)])
    assert result.exit_code == 2
    assert f"第{line}行第{column}列" in result.output and "--replace-invalid" in result.output
    with app.app_context():
        assert row_counts(db, Plan)["Plan"] == 0
    result = runner.invoke(args=["plan", "import", str(path), "--replace-invalid"])
    assert result.exit_code == 0, result.output
    assert "替换字符" in result.output and f"第{line}行" in result.output
    with app.app_context():
        assert row_counts(db, Plan)["Plan"] == 1


# =========================================================================== bidi and controls

def test_bidi_overrides_and_controls_do_not_reach_the_database(app, seed_bytes):
    from models import Contact, Item, Task, Unit
    from workflow.importer import service

    text = seed_bytes.decode("utf-8")
    clause = re.search(r"牵头单位：(区[^，；）]+?局)", text)
    name = clause.group(1)
    spoofed = name[:2] + "\u202e" + name[2:] + "\u200b"
    changed = text[:clause.start(1)] + spoofed + text[clause.end(1):]
    changed = changed.replace("联系人：", "联系人：\u202e\x07", 1)
    with app.app_context():
        rv = review(app, changed.encode("utf-8"))
        assert rv.accepted, rv.problems
        # The office is told where text was changed.
        warned = {w.line for w in rv.warnings if w.code == "invisible_chars"}
        assert line_of(changed, changed.index(spoofed)) in warned
        assert line_of(changed, changed.index("\x07")) in warned
        service.confirm(rv)
        names = [u.name for u in db.session.scalars(select(Unit))]
        assert name in names
        stored = names + [c.name for c in db.session.scalars(select(Contact))] + \
            [t.text for t in db.session.scalars(select(Task))] + \
            [i.policy_text for i in db.session.scalars(select(Item))]
        assert not [s for s in stored if re.search("[\u202a-\u202e\u2066-\u2069\u200b\x00-\x08]", s)]


# =========================================================================== the web flow

def _upload(client, data: bytes, name: str = "汇编.txt"):
    token = csrf_token(client, "/plans/import")
    return client.post("/plans/import", data={"csrf_token": token, "document": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def test_web_review_names_a_duplicated_item_and_refuses_a_forged_confirm(app, office_client, seed_bytes):
    from models import Plan
    from workflow.importer.load import sha256_of

    text, _, second_line = with_second_item_renumbered(seed_bytes.decode("utf-8"))
    data = text.encode("utf-8")
    response = _upload(office_client, data)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "不能导入" in html and "事项编号重复" in html and f"第 {second_line} 行" in html
    assert "确认导入" not in html and 'action="/plans/import/confirm"' not in html
    # A confirm forged for those bytes: re-reviewed, refused, nothing written, no 500.
    response = office_client.post("/plans/import/confirm", data={
        "csrf_token": csrf(html), "sha256": sha256_of(data)})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "不能导入" in page and "事项编号重复" in page and "系统错误" not in page
    with app.app_context():
        assert row_counts(db, *_models())["Plan"] == 0
        assert db.session.scalar(select(Plan)) is None


def test_web_confirm_of_a_failing_write_is_a_message_not_a_500(app, office_client, seed_bytes, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from workflow.importer import load

    response = _upload(office_client, seed_bytes)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "确认导入" in html
    sha = re.search(r'name="sha256"[^>]*value="([0-9a-f]{64})"', html).group(1)

    def failing_write(rv, user=None):
        raise OperationalError("INSERT …", {}, Exception("database is locked"))

    monkeypatch.setattr(load, "write", failing_write)
    response = office_client.post("/plans/import/confirm", data={"csrf_token": csrf(html), "sha256": sha})
    assert response.status_code == 302
    page = office_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "没有写入任何数据" in page
    with app.app_context():
        assert row_counts(db, *_models())["Plan"] == 0


def test_web_offers_to_read_invalid_bytes_with_replacement(app, office_client, seed_bytes):
    from models import Plan

    data, line, column = _with_bad_byte(seed_bytes.decode("utf-8"))
    response = _upload(office_client, data)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert f"第 {line} 行第 {column} 列" in html and "0xFF" in html
    assert "以替换字符读取" in html and "确认导入" not in html
    sha = re.search(r'name="sha256"[^>]*value="([0-9a-f]{64})"', html).group(1)
    response = office_client.post("/plans/import/reread", data={"csrf_token": csrf(html), "sha256": sha})
    review_html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "替换字符" in review_html and f"第 {line} 行" in review_html and "\ufffd" in review_html
    assert "确认导入" in review_html
    assert re.search(r'name="replace_invalid"[^>]*value="1"', review_html)
    response = office_client.post("/plans/import/confirm", data={
        "csrf_token": csrf(review_html), "sha256": sha, "replace_invalid": "1"})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    with app.app_context():
        assert row_counts(db, Plan)["Plan"] == 1
    # Without the choice, a confirm of the same bytes is refused with the message.
    response = _upload(office_client, data + b"\n")
    html = response.get_data(as_text=True)
    sha2 = re.search(r'name="sha256"[^>]*value="([0-9a-f]{64})"', html).group(1)
    response = office_client.post("/plans/import/confirm", data={"csrf_token": csrf(html), "sha256": sha2})
    assert response.status_code == 302
    assert "无法识别的字节" in office_client.get(response.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        assert row_counts(db, Plan)["Plan"] == 1


def test_an_item_header_repeated_with_nothing_between_is_one_item(app, seed_bytes):
    """The obvious reading of a header written twice in a row: one item, with a warning."""
    from models import Item
    from workflow.importer import service

    text = seed_bytes.decode("utf-8")
    head = item_heads(text)[4]
    line_end = text.index("\n", head.start())
    header = text[head.start():line_end]
    changed = text[:line_end] + "\n\n" + header + text[line_end:]
    repeated_line = line_of(text, head.start()) + 2
    with app.app_context():
        rv = review(app, changed.encode("utf-8"))
        assert rv.accepted, rv.problems
        [warning] = [w for w in rv.warnings if w.code == "repeated_header"]
        assert warning.line == repeated_line
        assert rv.counts == review(app, seed_bytes).counts
        plan = service.confirm(rv)
        assert db.session.scalar(select(Item).where(Item.plan_id == plan.id, Item.number == head.group(1))
                                 ).policy_text


def test_the_unnamed_chapter_is_shown_by_its_title_alone(app):
    from models import Chapter
    from models.plan import chapter_heading
    from workflow.importer.draft import UNNAMED_CHAPTER
    from workflow.reports.data import chinese_number

    assert chapter_heading(0, UNNAMED_CHAPTER) == UNNAMED_CHAPTER
    assert Chapter(number=3, title="培育壮大有效需求").heading(chinese_number) == "三、培育壮大有效需求"
