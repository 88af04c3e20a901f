"""Tables of tasks (workflow/importer/tables.py, sources.py): the header and its column mapping,
merged cells, categories as chapters and items, rows as tasks, the office's own mapping, and the
files that cannot be read, each refused in Chinese."""
from __future__ import annotations

import io
import re
import zipfile
from datetime import date, datetime
from pathlib import Path

import pytest

from workflow.importer import sources, tables
from workflow.importer.draft import DocumentError, StructureNotFound
from workflow.importer.parse import parse_bytes
from workflow.importer.tables import TABLE_FIELDS, header_field, parse_tables

SHAPES = Path(__file__).parent / "fixtures" / "shapes"

from tests.fidelity import SHAPES

HEADER = ["序号", "重点任务", "具体措施", "牵头单位", "配合单位", "完成时限"]


def _xlsx(sheets: dict[str, list[list]], merges: dict[str, list[str]] | None = None) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for r, row in enumerate(rows, 1):
            for c, value in enumerate(row, 1):
                if value is not None:
                    ws.cell(r, c, value)
        for rng in (merges or {}).get(name, []):
            ws.merge_cells(rng)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _texts(draft) -> list[str]:
    return [t.text for i in draft.items for t in i.tasks]


# =========================================================================== header and mapping

@pytest.mark.parametrize("header, field", [
    ("序号", "number"), ("类别", "category"), ("领域", "category"), ("板块", "category"), ("重点任务", "category"),
    ("任务", "text"), ("工作任务", "text"), ("具体任务", "text"), ("具体措施", "text"), ("任务内容", "text"),
    ("工作内容", "text"), ("主要内容", "text"), ("重点工作", "text"),
    ("牵头单位", "lead"), ("牵头部门", "lead"), ("牵头责任单位", "lead"), ("主责单位", "lead"),
    ("责任单位", "resp"), ("配合单位", "resp"), ("协同单位", "resp"), ("协办单位", "resp"), ("参与单位", "resp"),
    ("协同责任单位", "resp"), ("承办单位", "resp"), ("责任科室", "section"),
    ("牵头领导", "leader"), ("责任领导", "leader"),
    ("完成时限", "deadline"), ("完成时间", "deadline"), ("时间节点", "deadline"), ("时限要求", "deadline"),
    ("备注", "note"), ("目标", "goal"), ("预期目标", "goal"), ("工作目标", "goal"),
    ("联系人", "contact"), ("联系电话", "phone"),
    # Written with spaces, a unit in brackets, or inside a longer name.
    ("完 成 时 限", "deadline"), ("完成时限（年月）", "deadline"), ("牵头单位及责任人", "lead"),
    # Progress and bookkeeping columns of a ledger are not read, whatever word they contain.
    ("调整后时限", "ignore"), ("工作任务完成情况", "ignore"), ("最新进展日期", "ignore"), ("状态", "ignore"),
])
def test_a_header_is_read_as_its_field(header, field):
    assert header_field(header)[0] == field


def test_every_field_has_a_chinese_label():
    assert all(re.search(r"[\u4e00-\u9fff]", label) for label, _ in TABLE_FIELDS.values())
    assert "ignore" in TABLE_FIELDS


def test_the_office_can_change_the_mapping_and_read_again():
    data = (SHAPES / "table-ledger.xlsx").read_bytes()
    draft = parse_bytes(data, "台账.xlsx")
    leader = next(c for c in draft.columns if c.field == "leader")
    assert leader.sheet == "一、扩大有效投资" and leader.header == "责任领导" and leader.sample == "刘志强"
    assert draft.items[0].tasks[0].leaders == ["刘志强"]
    # 责任领导 read as nothing, 备注 as the item's goal: only on the sheet named.
    again = parse_bytes(data, "台账.xlsx", mapping={(leader.sheet, leader.index): "ignore",
                                                   (leader.sheet, 7): "goal"})
    assert again.items[0].tasks[0].leaders == [] and again.items[0].goal == "按月调度"
    assert again.items[0].tasks[0].note is None
    assert again.items[2].tasks[0].leaders == ["孙丽"]
    assert next(c for c in again.columns if (c.sheet, c.index) == (leader.sheet, leader.index)).field == "ignore"


# =========================================================================== the ledger kept by hand

def test_the_hand_kept_ledger_header_merges_and_dates():
    draft = parse_bytes((SHAPES / "table-ledger.xlsx").read_bytes(), "台账.xlsx")
    first = [c for c in draft.columns if c.sheet == "一、扩大有效投资"]
    # Two header rows under a title row: 责任分工 over 牵头部门 | 协同部门.
    assert [(c.header, c.field) for c in first][4:6] == [("责任分工/牵头部门", "lead"), ("责任分工/协同部门", "resp")]
    assert draft.title == "东港区2022年稳增长重点工作推进台账"
    # Each sheet a chapter, each merged 工作领域 an item, blank rows skipped.
    assert [c.title for c in draft.chapters] == ["扩大有效投资", "促进消费回升"]
    assert [(i.subtitle, len(i.tasks)) for i in draft.items] == [
        ("重大项目建设", 3), ("产业投资", 4), ("激发消费潜力", 3), ("文旅消费", 3), ("市场保供", 3)]
    tasks = [t for i in draft.items for t in i.tasks]
    by_text = {t.text[:6]: t for t in tasks}
    assert by_text["推进42个市"].deadline == date(2022, 12, 31)        # an Excel date
    assert by_text["谋划储备一批"].deadline == date(2022, 6, 30)         # 2022年6月底
    assert by_text["开展“招商引"].deadline == date(2022, 12, 31)        # 2022.12
    assert by_text["落实项目用地"].long_term and by_text["落实项目用地"].deadline is None
    assert by_text["推动工业企业"].note == "纳入年度考核"
    (warning,) = [w for w in draft.warnings if w.code == "unplaced_fragment"]
    assert "二、促进消费回升" in warning.message and "第14行" in warning.message and warning.line == 14
    assert "区统计局" in warning.message


def test_the_word_table_heading_rows_and_merged_categories():
    draft = parse_bytes((SHAPES / "table-word.docx").read_bytes(), "分工表.docx")
    assert draft.shape == "table" and draft.title == "南湖区2022年优化营商环境重点任务责任分工表"
    assert [c.title for c in draft.chapters] == ["提升政务服务效能", "降低企业经营成本", "优化市场法治环境"]
    assert [i.chapter for i in draft.items] == [1, 1, 2, 2, 3, 3]
    assert sum(len(i.tasks) for i in draft.items) == 16
    assert {c.field for c in draft.columns} == {"number", "category", "text", "lead", "resp", "deadline"}
    assert all(c.sample and not c.sample.startswith("一、") for c in draft.columns)


def test_a_docx_of_running_text_with_a_small_table_is_read_as_text():
    from docx import Document

    doc = Document()
    for line in ["关于印发某区2022年重点工作方案的通知", "一、总体要求"] + ["认真贯彻落实上级部署，推动各项工作落地见效。" * 3] * 12:
        doc.add_paragraph(line)
    table = doc.add_table(rows=2, cols=3)
    for i, h in enumerate(["序号", "工作任务", "牵头单位"]):
        table.cell(0, i).text = h
    for i, v in enumerate(["1", "做好宣传", "区委宣传部"]):
        table.cell(1, i).text = v
    out = io.BytesIO()
    doc.save(out)
    sheets, in_tables, in_text, _ = sources.docx_tables(sources.open_docx(out.getvalue()))
    assert len(sheets) == 1 and in_tables < in_text
    assert not tables.mainly_tables(sheets, in_tables, in_text)


# =========================================================================== structure

def test_one_category_column_gives_items_in_one_chapter():
    rows = [["重点任务", "工作任务", "牵头部门", "时间节点"],
            ["抓好春耕生产", "落实粮食播种面积32万亩。", "区农业农村局", "2023年5月"],
            ["抓好春耕生产", "组织农资下乡，保障化肥种子供应。", "区供销社", "2023年4月底前"],
            ["改善人居环境", "完成农村户厕改造1500户。", "区农业农村局", "2023年10月"]]
    draft = parse_tables([("Sheet1", rows)], "春耕.xlsx")
    assert [(c.number, c.title) for c in draft.chapters] == [(1, "（未分章）")]
    assert [(i.number, i.subtitle, len(i.tasks)) for i in draft.items] == [("1", "抓好春耕生产", 2), ("2", "改善人居环境", 1)]
    assert draft.items[0].tasks[1].deadline == date(2023, 4, 30)


def test_two_category_columns_give_chapters_and_items():
    rows = [["板块", "类别", "具体任务", "牵头单位"],
            ["一、民生保障", "教育", "新建改扩建幼儿园3所。", "区教育和体育局"],
            ["一、民生保障", "医疗", "推进紧密型医共体建设。", "区卫生健康局"],
            ["二、城市建设", "交通", "打通断头路5条。", "区交通运输局"]]
    draft = parse_tables([("表1", rows)], "x.docx")
    assert [(c.number, c.title) for c in draft.chapters] == [(1, "民生保障"), (2, "城市建设")]
    assert [(i.chapter, i.subtitle) for i in draft.items] == [(1, "教育"), (1, "医疗"), (2, "交通")]


def test_no_category_gives_one_item_per_sheet_and_a_lone_responsible_column_leads():
    draft = parse_tables([
        ("就业", [["序号", "任务内容", "责任单位", "完成时限"],
                 [1, "城镇新增就业6000人。", "区人社局", "2023年12月"],
                 [2, "开展职业技能培训1万人次。", "区人社局、区总工会", "长期"]]),
        ("社保", [["序号", "任务内容", "责任单位", "完成时限"],
                 [1, "城乡居民医保参保率稳定在95%以上。", "区医保局", "2023年12月"]]),
    ], "民生.xlsx")
    assert [c.title for c in draft.chapters] == ["就业", "社保"]
    assert [(i.chapter, len(i.tasks)) for i in draft.items] == [(1, 2), (2, 1)]
    second = draft.items[0].tasks[1]
    assert second.lead_units == ["区人社局", "区总工会"] and second.responsible_units == []


def test_category_written_once_goes_on_below_and_a_merged_task_is_one_task():
    rows = [["领域", "工作任务", "牵头单位", "配合单位"],
            ["安全生产", "开展危化品企业专项整治。", "区应急管理局", "区公安分局"],
            [None, "开展危化品企业专项整治。", "区应急管理局", "区市场监管局"],
            [None, "排查燃气管网隐患。", "区住建局", "各镇、街道"]]
    draft = parse_tables([("Sheet1", rows)], "安全.xlsx")
    (item,) = draft.items
    assert item.subtitle == "安全生产" and len(item.tasks) == 2
    assert item.tasks[0].responsible_units == ["区公安分局", "区市场监管局"]
    assert item.tasks[0].source_lines == [2, 3]
    assert item.tasks[1].responsible_units == ["各镇、街道"]     # a collective, as written


def test_ledger_rows_of_one_task_are_its_parts():
    rows = [["章节", "事项", "类别", "序", "内容", "牵头单位", "承办单位", "原定时限", "状态"],
            ["1、稳定增长", "1", "工作任务", 1, "'=稳投资", "区发改局", "区发改局", datetime(2022, 6, 30), "已签收"],
            ["1、稳定增长", "1", "工作任务", 2, "扩消费", "区商务局", "甲镇", "长期", "推进中"],
            ["1、稳定增长", "1", "工作任务", 2, "扩消费", "区商务局", "乙街道", "长期", "推进中"],
            ["1、稳定增长", "1", "保障措施", 1, "强化督导", "区委督查室", "区委督查室", "未定", ""]]
    draft = parse_tables([("任务台账", rows)], "台账.xlsx")
    (item,) = draft.items
    assert [(str(t.kind), t.seq, t.text) for t in item.tasks] == [
        ("task", 1, "=稳投资"), ("task", 2, "扩消费"), ("measure", 1, "强化督导")]
    assert item.tasks[0].responsible_units == [] and item.tasks[0].deadline == date(2022, 6, 30)
    assert item.tasks[1].responsible_units == ["甲镇", "乙街道"] and item.tasks[1].long_term
    assert item.tasks[2].deadline is None and not item.tasks[2].long_term and not draft.warnings


def test_generic_addressees_and_people_are_not_units():
    rows = [["具体措施", "牵头单位", "配合单位", "牵头领导"],
            ["建立联席会议制度。", "区民政局", "各有关单位", "张伟、李娜"]]
    task = parse_tables([("Sheet1", rows)], "a.xlsx").items[0].tasks[0]
    assert task.responsible_units == [] and task.addressees == ["各有关单位"]
    assert task.leaders == ["张伟", "李娜"] and task.lead_units == ["区民政局"]


def test_an_unreadable_deadline_is_kept_as_written_and_warned():
    rows = [["工作任务", "牵头单位", "完成时限"], ["修订管理办法。", "区司法局", "视上级要求"]]
    draft = parse_tables([("Sheet1", rows)], "a.xlsx")
    task = draft.items[0].tasks[0]
    assert task.deadline is None and task.deadline_text == "视上级要求"
    assert [w.code for w in draft.warnings] == ["bad_deadline"] and "第2行" in draft.warnings[0].message


def test_a_table_without_a_task_column_says_what_it_found():
    rows = [["姓名", "单位", "电话"], ["王强", "区财政局", "6123456"]]
    with pytest.raises(StructureNotFound) as error:
        parse_tables([("通讯录", rows), ("Sheet2", [["", None]])], "通讯录.xlsx")
    assert "任务列" in error.value.message
    found = "\n".join(error.value.found)
    assert "通讯录" in found and "Sheet2" in found and "表头" in found


def test_a_sheet_without_tasks_beside_one_with_tasks_is_reported():
    draft = parse_tables([("任务", [["工作任务", "牵头单位"], ["做好统计。", "区统计局"]]),
                          ("说明", [["填表说明：请于每月5日前报送。"]])], "a.xlsx")
    assert len(_texts(draft)) == 1
    assert any("说明" in w.message and "未读取" in w.message for w in draft.warnings)


# =========================================================================== files

def test_a_sheet_beyond_the_limits_is_refused(monkeypatch):
    monkeypatch.setattr(sources, "MAX_ROWS", 5)
    rows = [["工作任务", "牵头单位"]] + [[f"任务{i}", "区财政局"] for i in range(10)]
    with pytest.raises(DocumentError) as error:
        parse_bytes(_xlsx({"Sheet1": rows}), "大表.xlsx")
    assert "上限" in error.value.message and "Sheet1" in error.value.message


def test_merged_cells_are_carried_in_a_workbook():
    rows = [["2023年重点工作清单"], ["类别", "工作任务", "牵头单位"],
            ["营商环境", "压缩开办时间。", "区行政审批局"], [None, "推行证照联办。", None]]
    data = _xlsx({"Sheet1": rows}, {"Sheet1": ["A1:C1", "A3:A4", "C3:C4"]})
    draft = parse_bytes(data, "清单.xlsx")
    assert draft.title == "2023年重点工作清单"
    assert [t.lead_units for t in draft.items[0].tasks] == [["区行政审批局"], ["区行政审批局"]]


def test_an_old_word_file_imports_through_libreoffice():
    """A .doc (Word 97) is converted to .docx and read like one; a WPS 文字 .wps is the same binary
    format and imports the same way."""
    doc = (SHAPES / "table-word-doc.doc").read_bytes()
    assert doc.startswith(sources._OLE2)
    from_doc = parse_bytes(doc, "分工表.doc")
    from_docx = parse_bytes((SHAPES / "table-word.docx").read_bytes(), "分工表.docx")
    assert from_doc.shape == from_docx.shape == "table"
    assert [(t.text, t.lead_units, t.deadline) for i in from_doc.items for t in i.tasks] == \
        [(t.text, t.lead_units, t.deadline) for i in from_docx.items for t in i.tasks]
    from_wps = parse_bytes(doc, "分工表.wps")
    assert [t.text for i in from_wps.items for t in i.tasks] == [t.text for i in from_doc.items for t in i.tasks]


def test_without_libreoffice_an_old_word_file_is_refused_with_what_to_do(monkeypatch):
    monkeypatch.setattr(sources, "converter", lambda: None)
    monkeypatch.setattr(sources, "_CONVERTED", {})
    with pytest.raises(DocumentError) as error:
        parse_bytes((SHAPES / "table-word-doc.doc").read_bytes(), "分工表.doc")
    assert "另存为” .docx" in error.value.message


def _encrypted() -> bytes:
    return sources._OLE2 + b"\x00" * 500 + "EncryptedPackage".encode("utf-16-le") + b"\x00" * 500


@pytest.mark.parametrize("data, name, words", [
    (b"PK\x03\x04" + b"\x00" * 200, "台账.xlsx", "Excel"),
    (b"not a zip at all, but named as one", "台账.xlsx", "Excel"),
    (sources._OLE2 + b"\x00" * 1000, "方案.doc", ".docx"),
    (sources._OLE2 + b"\x00" * 1000, "方案.wps", ".docx"),
    (sources._OLE2 + b"\x00" * 1000, "台账.et", ".xlsx"),
    (sources._OLE2 + b"\x00" * 1000, "台账.xls", ".xls"),
    (_encrypted(), "台账.xlsx", "密码"),
    (b"%PDF-1.7 ...", "方案.pdf", "PDF"),
])
def test_files_that_cannot_be_read_are_refused_in_chinese(data, name, words):
    with pytest.raises(DocumentError) as error:
        parse_bytes(data, name)
    assert words in error.value.message and re.search(r"[\u4e00-\u9fff]", error.value.message)


def test_a_zip_that_is_neither_word_nor_excel_is_refused():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(DocumentError) as error:
        parse_bytes(out.getvalue(), "a.zip")
    assert "不是 Word" in error.value.message


def test_a_workbook_that_unpacks_too_large_is_refused(monkeypatch):
    monkeypatch.setattr(sources, "DOCX_MAX_UNPACKED", 1000)
    data = _xlsx({"Sheet1": [["工作任务", "牵头单位"], ["x" * 5000, "区财政局"]]})
    with pytest.raises(DocumentError) as error:
        parse_bytes(data, "a.xlsx")
    assert "解压后过大" in error.value.message


def test_decoding_names_still_import_from_parse():
    from workflow.importer.parse import InvalidBytesError, _decode  # noqa: F401

    assert issubclass(InvalidBytesError, DocumentError)


def test_formatted_empty_rows_do_not_count_against_the_limit(monkeypatch):
    from openpyxl import Workbook
    from openpyxl.styles import Font

    monkeypatch.setattr(sources, "MAX_ROWS", 50)
    wb = Workbook()
    ws = wb.active
    ws.append(["工作任务", "牵头单位"])
    ws.append(["做好统计。", "区统计局"])
    for r in range(3, 200):
        ws.cell(r, 1).font = Font(bold=True)      # styled, empty
    out = io.BytesIO()
    wb.save(out)
    assert _texts(parse_bytes(out.getvalue(), "a.xlsx")) == ["做好统计。"]


def test_a_cell_of_numbered_measures_is_one_task_each():
    rows = [["重点任务", "具体措施", "牵头单位", "完成时限"],
            ["稳岗扩就业", "1.发放一次性扩岗补助。\n2．开展“春风行动”招聘会20场。\n（3）落实创业担保贷款1.5亿元。",
             "区人社局", "2023年6月底前"],
            ["稳岗扩就业", "加强困难群体兜底帮扶，\n确保零就业家庭动态清零。", "区人社局", "长期"]]
    draft = parse_tables([("Sheet1", rows)], "a.xlsx")
    (item,) = draft.items
    assert [(t.seq, t.text) for t in item.tasks] == [
        (1, "发放一次性扩岗补助。"), (2, "开展“春风行动”招聘会20场。"), (3, "落实创业担保贷款1.5亿元。"),
        (4, "加强困难群体兜底帮扶，确保零就业家庭动态清零。")]
    assert all(t.lead_units == ["区人社局"] for t in item.tasks)
    assert [t.deadline for t in item.tasks[:3]] == [date(2023, 6, 30)] * 3 and item.tasks[3].long_term


def test_paragraphs_outside_the_word_table_are_kept_in_the_preamble():
    draft = parse_bytes((SHAPES / "table-word.docx").read_bytes(), "分工表.docx")
    assert draft.preamble == ["附件", "南湖区2022年优化营商环境重点任务责任分工表"]


# =========================================================================== through the review

@pytest.mark.parametrize("name", ["table-word.docx", "table-ledger.xlsx", "table-ledger-xls.xls"])
def test_a_table_goes_through_the_review_and_is_written(app_context, name):
    from sqlalchemy import func, select

    from models import Task
    from workflow.extensions import db
    from workflow.importer import service

    rv = service.review_upload((SHAPES / name).read_bytes(), name)
    assert not rv.problems, rv.problems_text()
    assert rv.counts["tasks"] == 16 and rv.counts["measures"] == 0
    plan = service.confirm(rv)
    assert plan.title == rv.draft.title
    assert db.session.scalar(select(func.count(Task.id))) == 16


def test_the_title_is_the_row_above_the_header_or_the_file_name():
    head = [["工作任务", "牵头单位"], ["做好统计。", "区统计局"]]
    assert parse_tables([("S", [["二〇二三年民生实事"]] + head)], "x.xlsx").title == "二〇二三年民生实事"
    assert parse_tables([("S", [["关于重点工作的分解方案", "截至6月"]] + head)], "x.xlsx").title == "关于重点工作的分解方案"
    assert parse_tables([("S", head)], "区重点工作.xlsx").title == "区重点工作"


@pytest.mark.parametrize("name", ["table-word.docx", "table-ledger.xlsx", "table-ledger-xls.xls"])
def test_damaged_table_files_give_a_chinese_error_or_a_draft(name, capsys):
    """Seeded mutations (truncation, flipped bits, zeroed runs): never a traceback, nothing printed."""
    import random

    from workflow.importer.draft import Draft

    data = (SHAPES / name).read_bytes()
    rng = random.Random(name)
    outcomes = set()
    for k in range(60):
        b = bytearray(data)
        if k % 3 == 0:
            b = b[:rng.randrange(len(b))]
        elif k % 3 == 1:
            for _ in range(rng.randint(1, 20)):
                i = rng.randrange(len(b))
                b[i] ^= 1 << rng.randrange(8)
        else:
            i = rng.randrange(len(b))
            j = min(len(b), i + rng.randint(1, 2000))
            b[i:j] = bytes(j - i)
        try:
            outcomes.add(type(parse_bytes(bytes(b), name)).__name__)
        except DocumentError as error:
            assert re.search(r"[\u4e00-\u9fff]", error.message)
            outcomes.add("DocumentError")
    assert "DocumentError" in outcomes and outcomes <= {"DocumentError", Draft.__name__}
    assert capsys.readouterr().out == ""


def test_heading_rows_written_with_a_numeral_in_the_number_column():
    rows = [["序号", "工作任务", "责任单位", "完成时限"],
            ["一", "稳住经济大盘", None, None],
            [1, "落实组合式税费支持政策。", "区税务局", "2022年12月"],
            ["二", None, "三、守牢安全底线", None],
            [2, "开展安全生产大检查。", "区应急局", "2022年9月"],
            [None, None, "区统计局", None]]
    draft = parse_tables([("Sheet1", rows)], "a.xlsx")
    assert [(c.number, c.title) for c in draft.chapters] == [(1, "稳住经济大盘"), (3, "守牢安全底线")]
    assert _texts(draft) == ["落实组合式税费支持政策。", "开展安全生产大检查。"]
    # A lone unit is not a heading: it is reported.
    assert [(w.code, w.line) for w in draft.warnings] == [("unplaced_fragment", 6)]


def test_a_mapping_to_a_field_that_does_not_exist_is_refused():
    rows = [["工作任务", "牵头单位"], ["做好统计。", "区统计局"]]
    with pytest.raises(DocumentError) as error:
        parse_tables([("S", rows)], "a.xlsx", mapping={("S", 1): "boss"})
    assert "boss" in error.value.message


def test_a_column_without_a_header_is_listed_for_the_office_to_map():
    rows = [["工作任务", "牵头单位", None], ["做好统计。", "区统计局", "王强"]]
    draft = parse_tables([("S", rows)], "a.xlsx")
    assert [(c.index, c.header, c.field, c.sample) for c in draft.columns][-1] == (2, tables.NO_HEADER, "ignore", "王强")
    again = parse_tables([("S", rows)], "a.xlsx", mapping={("S", 2): "leader"})
    assert again.items[0].tasks[0].leaders == ["王强"]


def test_goal_note_and_contact_columns_go_to_the_item_and_task():
    rows = [["类别", "工作任务", "牵头单位", "工作目标", "联系人", "联系电话", "备注"],
            ["污染防治", "开展扬尘污染专项整治。", "区生态环境分局", "PM2.5浓度下降5%", "周敏", 13800000001, "按周报送"],
            ["污染防治", "推进河长制巡河常态化。", "区水利局", None, "吴刚", None, None],
            ["污染防治", "整治城区黑臭水体3处。", "区水利局", None, "吴刚", None, "按周报送"]]
    (item,) = parse_tables([("S", rows)], "a.xlsx").items
    assert item.goal == "PM2.5浓度下降5%"
    assert [(c.name, c.phone) for c in item.contacts] == [("周敏", "13800000001"), ("吴刚", None)]
    assert [t.note for t in item.tasks] == ["按周报送", None, "按周报送"]


def test_several_word_tables_are_chapters_named_by_the_heading_above_each():
    from docx import Document

    doc = Document()
    doc.add_paragraph("某区2023年为民办实事项目责任分工")
    for heading, tasks in [("一、教育民生", ["新建中学1所。", "改造校舍10处。"]),
                           ("二、医疗卫生", ["建成胸痛中心。"]),
                           ("附件2", ["完成“一老一小”服务设施建设。"])]:
        doc.add_paragraph(heading)
        table = doc.add_table(rows=1 + len(tasks), cols=3)
        for i, h in enumerate(["序号", "项目内容", "责任单位"]):
            table.cell(0, i).text = h
        for r, text in enumerate(tasks, 1):
            for i, v in enumerate([str(r), text, "区教体局"]):
                table.cell(r, i).text = v
    out = io.BytesIO()
    doc.save(out)
    draft = parse_bytes(out.getvalue(), "实事.docx")
    assert draft.title == "某区2023年为民办实事项目责任分工"
    assert [(c.number, c.title) for c in draft.chapters] == [(1, "教育民生"), (2, "医疗卫生"), (3, "表3")]
    assert [len(i.tasks) for i in draft.items] == [2, 1, 1]
    assert draft.items[0].tasks[0].lead_units == ["区教体局"]


def test_a_deadline_only_in_the_sentence_is_proposed_not_taken():
    rows = [["工作任务", "牵头单位", "完成时限"],
            ["2023年10月底前完成老旧小区改造20个。", "区住建局", None],
            ["三季度末前建成智慧停车平台。", "区城管局", None],
            ["9月底前完成秋粮收储。", "区发改局", "2023年11月"],
            ["持续开展文明城市创建。", "区文明办", None]]
    tasks = parse_tables([("S", rows)], "2023年重点工作.xlsx").items[0].tasks
    assert [(t.deadline, t.deadline_proposal) for t in tasks] == [
        (None, "2023年10月底前"), (None, "三季度末前"), (date(2023, 11, 30), None), (None, None)]
