"""Read a table of tasks (a Word 责任分工表, an Excel 台账, Luoshi's own ledger) into a :class:`Draft`.

Offices publish task assignments as tables as often as in running text: one row per task,
columns such as 序号 / 重点任务 / 具体措施 / 牵头单位 / 配合单位 / 完成时限 / 备注, a category
merged over the rows it covers, several sheets. The table's skeleton is the same whoever
made it; only the words and the order of the columns change. So:

1. **header** – in each sheet, the row whose cells are most like column names
   (``TABLE_FIELDS``' synonyms) is the header; a row right above or below it that is also
   made of column names is a second header row (``责任分工`` over ``牵头单位 | 配合单位``).
   A title row above it (one merged cell) gives the draft's title.
2. **mapping** – each column is read as one field, chosen by its header (the lowest header
   row first: it is the most specific), then corrected by its values (a 类别 column holding
   工作任务/保障措施 is the task kind; an 事项 column holding words, not numbers, is a
   category). The office can override any column (``mapping``) and read again.
3. **rows** – every row below the header is a task, an item heading (a row of one merged
   cell across the table) or a blank; a row with content but no task text is reported,
   never dropped silently.

Structure (judgement calls the review shows, the office can correct by the mapping):

* levels, from the highest: the sheet (when several sheets hold tasks), a heading row, a
  章节 column, then the category columns and an 事项 column. The first level is the chapter,
  the last one the item; with one level only it is the item (a sheet or a 章节 column: the
  chapter, one item in it); with none, one item per sheet.
* consecutive rows of one item with the same (类别, 序) — Luoshi's ledger, one row per
  承办单位 — or, without a 序 column, with the same task text (a merged task cell) are one
  task; their units are joined.
* 承办单位/责任单位/配合单位 are the responsible units; without any 牵头 column they are
  the leads (a 责任单位 that stands alone is who does the task).
* a sheet without a task column but with 事项 and 政策原文/副标题/情况说明/联系人 columns
  describes the items (the ledger's "事项" sheet): it gives their chapter, subtitle, policy
  text, goal, explanation, owner units and contacts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import PurePath

from workflow.vocabulary import DocumentShape, TaskKind

from .draft import (UNNAMED_CHAPTER, DocumentError, Draft, DraftChapter, DraftColumn, DraftContact, DraftItem, DraftTask,
                    DraftWarning, StructureNotFound)
from .units import (canon, cn_number, parse_deadline, propose_deadline, split_list, split_unit_list, squash,
                    tidy_spaces)

# =========================================================================== fields

#: field → (Chinese label shown in the review, header synonyms). A header matches a field
#: when it *is* one of the synonyms, else when it contains one (the longest wins).
TABLE_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "number": ("序号", ("序号", "编号", "序列号", "任务编号")),
    "chapter": ("章节", ("章节", "篇章", "所属章节")),
    "item": ("事项", ("事项", "事项编号", "项目编号")),
    "category": ("类别（章节或事项）", ("类别", "领域", "板块", "重点任务", "任务类别", "工作类别", "重点领域",
                                    "分类", "重点事项", "工作事项", "主要任务", "工作重点", "任务类型")),
    "kind": ("任务类型（工作任务/保障措施）", ("任务性质",)),
    "seq": ("序（同一事项内的编号）", ("序",)),
    "text": ("任务内容", ("任务", "工作任务", "具体任务", "具体措施", "任务内容", "工作内容", "主要内容", "重点工作",
                        "内容", "工作措施", "具体内容", "主要措施", "工作举措", "推进举措", "具体举措", "任务举措",
                        "措施", "举措", "任务事项")),
    "lead": ("牵头单位", ("牵头单位", "牵头部门", "牵头责任单位", "主责单位", "牵头", "主办单位",
                        "牵头责任部门", "主责部门")),
    "resp": ("责任单位（配合、承办）", ("责任单位", "配合单位", "协同单位", "协办单位", "参与单位", "协同责任单位",
                                     "承办单位", "配合部门", "责任部门", "协同部门", "协办部门", "参与部门")),
    "section": ("责任科室", ("责任科室", "责任股室", "责任处室", "科室")),
    "leader": ("牵头领导", ("牵头领导", "责任领导", "牵头负责领导", "分管领导", "包抓领导", "联系领导")),
    "deadline": ("完成时限", ("完成时限", "完成时间", "时间节点", "时限要求", "原定时限", "完成期限", "时间安排",
                            "进度安排", "时限")),
    "note": ("备注", ("备注", "说明")),
    "goal": ("目标", ("目标", "预期目标", "工作目标", "目标任务", "落实目标")),
    "contact": ("联系人", ("联系人",)),
    "phone": ("联系电话", ("联系电话", "电话", "手机", "办公电话")),
    "subtitle": ("副标题", ("副标题", "事项名称")),
    "policy": ("政策原文", ("政策原文", "政策内容", "政策条款")),
    "explanation": ("情况说明", ("情况说明", "不适用说明")),
    "parent": ("上级事项", ("上级事项",)),
    "ignore": ("不读取", ()),
}
#: Headers of progress and bookkeeping columns (a ledger's 状态, 完成比例, 最新进展 …): read as
#: "ignore" even when they contain a field's word (调整后时限, 工作任务完成情况).
IGNORED_HEADER_WORDS = ("完成情况", "进展", "状态", "预警", "比例", "进度%", "日期", "调整后", "延期", "逾期",
                        "评价", "得分", "截至", "序时")
#: Values of a column that is the task kind (Luoshi's ledger writes TaskKind labels in 类别).
_KIND_VALUES = {k.label: k for k in TaskKind} | {"任务": TaskKind.TASK, "措施": TaskKind.MEASURE}
_ITEM_NUMBER_RE = re.compile(r"^\d{1,4}(?:-\d{1,3})?$")
#: A chapter written with its number: "1、培育壮大有效需求", "一、…", "第一部分 …".
_NUMBERED_TITLE_RE = re.compile(r"^(?:第(?P<n1>[\d一二三四五六七八九十百零〇两]+)(?:章|部分|篇)\s*"
                                r"|(?P<n2>[\d一二三四五六七八九十百零〇两]+)\s*[、.．]\s*"
                                r"|[（(](?P<n3>[\d一二三四五六七八九十百零〇两]+)[）)]\s*)(?P<title>.*)$")
#: Sheet names a workbook or .docx gives by default: not a chapter title.
_DEFAULT_SHEET_RE = re.compile(r"^(?:sheet\d*|表\d*|工作表\d*|table\d*)$", re.I)
NO_HEADER = "（无表头）"
_HEADER_SCAN = 20        # the header is looked for in a sheet's first rows
_HEADER_CELL_MAX = 16    # a column name is short
_TITLE_RE = re.compile(r"(方案|清单|台账|分工|分解|计划|要点|任务|意见|通知|表)")

_SYNONYMS = {syn: f for f, (_, syns) in TABLE_FIELDS.items() for syn in syns}
_BY_LENGTH = sorted(_SYNONYMS, key=len, reverse=True)


def field_label(name: str) -> str:
    return TABLE_FIELDS[name][0]


def _norm(value) -> str:
    """A header as it is matched: no spaces, no brackets' content (``完成时限（年月）``), canon marks."""
    text = squash(str(value)) if value is not None else ""
    return re.sub(r"（[^）]*）|\*", "", text)


def header_field(header) -> tuple[str | None, bool]:
    """``(field, exact)`` for one header cell; ``(None, False)`` when it names no field."""
    text = _norm(header)
    if not text or len(text) > _HEADER_CELL_MAX or isinstance(header, (date, int, float)):
        return None, False
    if text in _SYNONYMS:
        return _SYNONYMS[text], True
    if any(word in text for word in IGNORED_HEADER_WORDS):
        return "ignore", False
    for syn in _BY_LENGTH:
        if len(syn) > 1 and syn in text:
            return _SYNONYMS[syn], False
    return None, False


# =========================================================================== header

@dataclass
class _Layout:
    sheet: str
    header_rows: list[int]          # 0-based rows of the header
    columns: list[DraftColumn]
    title: str | None = None        # a title row above the header

    def fields(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for c in self.columns:
            out.setdefault(c.field, []).append(c.index)
        return out

    @property
    def first_data_row(self) -> int:
        return self.header_rows[-1] + 1


def _row_score(row: list) -> float:
    score, seen = 0.0, set()
    for cell in row:
        name, exact = header_field(cell)
        if name and name != "ignore" and (name, cell) not in seen:
            seen.add((name, cell))
            score += 1 if exact else 0.5
    return score


def _header_like(row: list) -> bool:
    """A row made of column names: short text cells, at least one of them a field's exact name,
    and more than one distinct value (a title row is one merged cell)."""
    values = [c for c in row if c is not None]
    if len(set(values)) < 2:
        return False
    if any(not isinstance(c, str) or len(_norm(c)) > _HEADER_CELL_MAX for c in values):
        return False
    return any(header_field(c)[1] for c in values)


def _find_header(rows: list[list]) -> list[int] | None:
    best, best_score = None, 1.5
    for r, row in enumerate(rows[:_HEADER_SCAN]):
        score = _row_score(row)
        if score > best_score:
            best, best_score = r, score
    if best is None:
        return None
    header = [best]
    if best > 0 and _header_like(rows[best - 1]) and rows[best - 1] != rows[best]:
        header.insert(0, best - 1)
    if best + 1 < len(rows) and _header_like(rows[best + 1]) and rows[best + 1] != rows[best]:
        header.append(best + 1)
    return header


def _column_values(rows: list[list], start: int, index: int) -> list:
    """The values under a column, heading rows (one value across the table) left out."""
    return [row[index] for row in rows[start:] if index < len(row) and row[index] is not None
            and len({c for c in row if c is not None}) > 1]


def _layout(sheet: str, rows: list[list], mapping: dict | None) -> _Layout | None:
    header = _find_header(rows)
    if header is None:
        return None
    width = max(len(row) for row in rows)
    start = header[-1] + 1
    columns: list[DraftColumn] = []
    for index in range(width):
        cells = [rows[r][index] if index < len(rows[r]) else None for r in header]
        written = "/".join(dict.fromkeys(str(c) for c in cells if c is not None))
        name = None
        for cell in reversed(cells):      # the lowest header row is the most specific
            name = header_field(cell)[0]
            if name:
                break
        if not written:
            if not _column_values(rows, start, index):
                continue
            # Values under no header: listed (as read as nothing) so that the office can map them.
            written = NO_HEADER
        columns.append(DraftColumn(sheet, index, written, name or "ignore"))
    _correct_by_values(columns, rows, start)
    _settle_text_column(columns)
    for column in columns:
        if mapping and (sheet, column.index) in mapping:
            column.field = mapping[(sheet, column.index)]
        sample = next(iter(_column_values(rows, start, column.index)), "")
        column.sample = str(sample)[:60]
    return _Layout(sheet, header, columns, _title_row(rows[:header[0]]))


def _title_row(rows: list[list]) -> str | None:
    """The title above a header: a row of one value (a cell merged across the table), else the
    first cell that reads like a document's name (``…台账``, ``…方案``) beside a date or a note."""
    for row in rows:
        values = {c for c in row if c is not None}
        if len(values) == 1 and isinstance(text := next(iter(values)), str) and len(text) >= 4:
            return text
    for row in rows:
        text = next((c for c in row if isinstance(c, str)), None)
        if text and _TITLE_RE.search(text):
            return text
    return None


def _correct_by_values(columns: list[DraftColumn], rows: list[list], start: int) -> None:
    """A 类别 column holding 工作任务/保障措施 is the task kind; an 事项 column holding words is
    a category (``工作事项``), not the ledger's item numbers."""
    for column in columns:
        if column.field in ("text", "lead", "resp", "deadline"):
            continue
        values = {str(v) for v in _column_values(rows, start, column.index)}
        if values and values <= set(_KIND_VALUES):
            column.field = "kind"
        elif column.field in ("item", "parent") and values and not all(
                _ITEM_NUMBER_RE.match(squash(v)) for v in values):
            column.field = "category"


def _settle_text_column(columns: list[DraftColumn]) -> None:
    """One column is the task text: without one, the last category column is (``重点任务`` as
    the only task column); with several, the earlier ones are categories (``重点任务 | 工作任务``)."""
    texts = [c for c in columns if c.field == "text"]
    if not texts:
        categories = [c for c in columns if c.field == "category"]
        if categories:
            categories[-1].field = "text"
        return
    for column in texts[:-1]:
        column.field = "category"


# =========================================================================== cells

def _text(value) -> str | None:
    """A cell as text: a formula escape of Luoshi's own ledger (``'=``) undone, spaces trimmed."""
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.date()
    text = value.isoformat() if isinstance(value, date) else str(value)
    if len(text) > 1 and text[0] == "'" and text[1] in "=+-@":
        text = text[1:]
    return text.strip() or None


def _title_number(text: str) -> tuple[int | None, str]:
    """``"1、培育壮大有效需求"`` → ``(1, "培育壮大有效需求")``; the title as written, without its number."""
    text = text.strip()
    m = _NUMBERED_TITLE_RE.match(canon(text))
    if not m or not m["title"].strip():
        return None, text
    return cn_number(m["n1"] or m["n2"] or m["n3"]), text[m.start("title"):].strip()


# =========================================================================== rows

@dataclass
class _RowTask:
    sheet: str
    row: int                    # 1-based row number in its sheet
    chapter: str
    item_path: tuple
    kind: TaskKind
    seq: str | None
    text: str
    cells: dict[str, list]      # field -> the row's values of that field's columns


@dataclass
class _Reader:
    draft: Draft = field(default_factory=lambda: Draft(shape=DocumentShape.TABLE.value))
    chapters: dict[str, DraftChapter] = field(default_factory=dict)
    items: dict[tuple, DraftItem] = field(default_factory=dict)
    by_number: dict[str, DraftItem] = field(default_factory=dict)
    default_year: int | None = None
    seqs: dict[tuple, int] = field(default_factory=dict)   # (item, kind) -> last seq given

    # ------------------------------------------------------------------ chapters and items
    def chapter(self, title: str) -> DraftChapter:
        if title in self.chapters:
            return self.chapters[title]
        number, shown = _title_number(title) if title != UNNAMED_CHAPTER else (None, title)
        taken = {c.number for c in self.draft.chapters}
        if number is None or number in taken:
            number = max(taken, default=0) + 1
        chapter = DraftChapter(number, shown)
        self.chapters[title] = chapter
        self.draft.chapters.append(chapter)
        return chapter

    def item(self, chapter: DraftChapter, path: tuple, number: str | None, subtitle: str | None,
             row: int) -> DraftItem:
        if number and number in self.by_number:
            return self.by_number[number]
        key = (chapter.number, path)
        if not number and key in self.items:
            return self.items[key]
        if not number:
            counted = len(self.draft.items) + 1
            while str(counted) in self.by_number:   # a counted number never takes a written one
                counted += 1
            number = str(counted)
        parent = number.split("-")[0] if "-" in number and number.split("-")[0] in self.by_number else None
        item = DraftItem(number=number, parent=parent, chapter=chapter.number, subtitle=subtitle,
                         source_lines=[row, row])
        self.items[key] = item
        self.by_number[number] = item
        self.draft.items.append(item)
        return item

    def warn(self, sheet: str, row: int, message: str, code: str = "unplaced_fragment") -> None:
        self.draft.warnings.append(DraftWarning(code, f"工作表“{sheet}”第{row}行：{message}", row))


def _values(row: list, indexes: list[int]) -> list[str]:
    out = []
    for i in indexes:
        if i < len(row) and (text := _text(row[i])) is not None and text not in out:
            out.append(text)
    return out


def _level_values(fields: dict[str, list[int]], row: list) -> tuple[list, list]:
    """(chapter-like, item-like) level values of a row, in column order."""
    chapter_cols = fields.get("chapter", [])
    item_cols = sorted(fields.get("category", []))
    chap = [(_text(row[i]) if i < len(row) else None) or "" for i in chapter_cols]
    items = [(_text(row[i]) if i < len(row) else None) or "" for i in item_cols]
    return chap, items


_CN_NUMERAL_RE = re.compile(r"^[（(]?[一二三四五六七八九十]{1,3}[）)、.]?$")


def _is_heading_row(row: list, fields: dict[str, list[int]]) -> str | None:
    """A part's heading inside the rows (``一、优化营商环境``): one cell merged across the table,
    or one value with nothing else on the row but a Chinese numeral in 序号 (``一 | 优化营商环境``)
    or a number of its own. A row that names units or a deadline is never a heading."""
    values = [c for c in row if c is not None]
    if len(values) >= 2 and len(set(values)) == 1 and isinstance(values[0], str):
        return values[0]
    numbers = {i for i in fields.get("number", [])}
    rest = {c for i, c in enumerate(row) if c is not None and i not in numbers}
    if len(rest) != 1 or not isinstance(title := next(iter(rest)), str):
        return None
    numeral = next((str(row[i]) for i in numbers if i < len(row) and row[i] is not None), None)
    if numeral is not None and _CN_NUMERAL_RE.match(squash(numeral)):
        return title if _NUMBERED_TITLE_RE.match(canon(title)) else f"{numeral.strip('、.（）()')}、{title}"
    if numeral is None and _NUMBERED_TITLE_RE.match(canon(title)) and row.index(title) not in fields.get("text", []):
        return title
    return None


def parse_tables(tables: list[tuple[str, list[list]]], filename: str, mapping: dict | None = None,
                 paragraphs: list[str] = (), preamble: list[str] = ()) -> Draft:
    """Read sheets (``(name, rows)``, merged cells already carried to every cell they cover) as a
    plan. ``mapping`` overrides the field of a column: ``{(sheet, index): field}`` with a key of
    ``TABLE_FIELDS``. ``paragraphs``: a .docx's text above its first table (the title);
    ``preamble``: every paragraph outside the tables, kept verbatim (nothing is dropped silently).

    Raises StructureNotFound when no sheet has a task column, DocumentError for a mapping that
    names a field that does not exist."""
    for where, name in (mapping or {}).items():
        if name not in TABLE_FIELDS:
            raise DocumentError(f"列的读取方式“{name}”不存在（{where}），请在审核页重新选择。")
    reader = _Reader()
    layouts: list[tuple[str, list[list], _Layout | None]] = []
    for name, rows in tables:
        layouts.append((name, rows, _layout(name, rows, mapping)))
    task_sheets = [(n, r, lay) for n, r, lay in layouts if lay and "text" in lay.fields()]
    item_sheets = [(n, r, lay) for n, r, lay in layouts if lay and "text" not in lay.fields()
                   and "item" in lay.fields() and {"policy", "subtitle", "explanation", "contact"} & set(lay.fields())]
    if not task_sheets:
        raise StructureNotFound("未在表格中找到任务列（如“具体措施”“工作任务”“任务内容”），无法按任务表格导入。"
                                "请确认表头写有任务、牵头单位、完成时限等列名，或在审核页指定各列的含义。",
                                _found(layouts))
    draft = reader.draft
    draft.preamble = list(preamble)
    draft.title = _title(paragraphs, [lay for _, _, lay in task_sheets], filename)
    year = re.search(r"(20\d{2})", draft.title or "")
    reader.default_year = int(year.group(1)) if year else None
    for name, rows, lay in layouts:
        draft.columns += lay.columns if lay else []
    for name, rows, lay in item_sheets:
        _read_items(reader, name, rows, lay)
    several = len(task_sheets) > 1
    for name, rows, lay in task_sheets:
        _read_tasks(reader, name, rows, lay, several)
    for name, rows, lay in layouts:
        if lay is None and any(any(c is not None for c in row) for row in rows):
            draft.warnings.append(DraftWarning("unplaced_fragment", f"工作表“{name}”没有可识别的表头，未读取"))
        elif lay and (name, rows, lay) not in task_sheets and (name, rows, lay) not in item_sheets:
            draft.warnings.append(DraftWarning(
                "unplaced_fragment", f"工作表“{name}”没有任务列（表头：{_headers(lay)}），未读取"))
    draft.line_count = sum(len(rows) for _, rows in tables)
    if not any(i.tasks for i in draft.items):
        raise StructureNotFound("表格有任务列，但其下没有任何任务行。", _found(layouts))
    return draft


def _headers(lay: _Layout) -> str:
    return "、".join(f"{c.header}→{field_label(c.field)}" for c in lay.columns)


def _found(layouts) -> list[str]:
    found = [f"共 {len(layouts)} 个表格/工作表"]
    for name, rows, lay in layouts:
        if lay is None:
            found.append(f"“{name}”：{len(rows)} 行，前 {_HEADER_SCAN} 行中没有可识别的表头")
        else:
            rows_shown = "、".join(str(r + 1) for r in lay.header_rows)
            found.append(f"“{name}”：{len(rows)} 行，表头在第 {rows_shown} 行，各列：{_headers(lay)}")
    return found


def _title(paragraphs, layouts: list[_Layout], filename: str) -> str:
    for text in paragraphs:
        if not re.fullmatch(r"附件\s*\d*[：:]?", text) and len(text) >= 6 and _TITLE_RE.search(text):
            return text
    for lay in layouts:
        if lay.title:
            return lay.title
    return PurePath(filename or "任务表").stem


def _read_items(reader: _Reader, sheet: str, rows: list[list], lay: _Layout) -> None:
    """The ledger's "事项" sheet: one row per item, its chapter, subtitle, texts, owners, contacts."""
    fields = lay.fields()
    for r in range(lay.first_data_row, len(rows)):
        row = rows[r]
        get = lambda name: (_values(row, fields.get(name, [])) or [None])[0]  # noqa: E731
        number = get("item")
        if not number:
            if any(c is not None for c in row):
                reader.warn(sheet, r + 1, "没有事项编号，未读取")
            continue
        chapter = reader.chapter(get("chapter") or UNNAMED_CHAPTER)
        item = reader.item(chapter, (number,), number, get("subtitle"), r + 1)
        item.parent = get("parent")
        item.policy_text = get("policy") or ""
        item.goal, item.explanation = get("goal"), get("explanation")
        item.owner_units = split_unit_list(" 、".join(_values(row, fields.get("lead", []))))[0]
        names = (get("contact") or "").split("；")
        phones = (get("phone") or "").split("；")
        item.contacts = [DraftContact(n, (phones[i] if i < len(phones) else "") or None)
                         for i, n in enumerate(names) if n]


def _read_tasks(reader: _Reader, sheet: str, rows: list[list], lay: _Layout, several: bool) -> None:
    fields = lay.fields()
    header_values = [rows[r] for r in lay.header_rows]
    heading: str | None = None
    carried: tuple | None = None
    previous: tuple | None = None
    tasks: list[DraftTask] = []
    for r in range(lay.first_data_row, len(rows)):
        row = rows[r]
        if all(c is None for c in row) or row in header_values:
            continue        # blank rows and a header repeated on the next page
        if (title := _is_heading_row(row, fields)) is not None:
            heading, previous, carried = title, None, None
            continue
        measures = _measures(_values(row, fields["text"]))
        if not measures:
            shown = "；".join(_values(row, list(range(len(row)))))[:60]
            reader.warn(sheet, r + 1, f"没有任务内容，未读取（{shown}）")
            previous = None
            continue
        chap_values, item_values = _level_values(fields, row)
        # A category written once and left blank below (not merged) goes on for the rows under it.
        chap_values = [v or (carried[0][i] if carried else "") for i, v in enumerate(chap_values)]
        item_values = [v or (carried[1][i] if carried else "") for i, v in enumerate(item_values)]
        carried = (chap_values, item_values)
        chapter_levels = ([sheet] if several else []) + ([heading] if heading else []) + chap_values
        if not chapter_levels and len(item_values) >= 2:
            chapter_levels, item_values = item_values[:1], item_values[1:]
        chapter_title = " ".join(v for v in chapter_levels if v) or _sheet_chapter(sheet)
        chapter = reader.chapter(chapter_title)
        number = (_values(row, fields.get("item", [])) or [None])[0]
        subtitle = next((v for v in reversed(item_values) if v), None)
        if subtitle:
            subtitle = _title_number(subtitle)[1]
        item = reader.item(chapter, tuple(item_values), number, subtitle, r + 1)
        kind = _KIND_VALUES.get((_values(row, fields.get("kind", [])) or [""])[0], TaskKind.TASK)
        seq = (_values(row, fields.get("seq", [])) or [None])[0] if "seq" in fields else None
        key = (id(item), kind, seq if "seq" in fields else tuple(measures))
        if key != previous or not tasks:
            tasks = []
            for text in measures:
                count = reader.seqs.get((id(item), kind), 0) + 1
                reader.seqs[(id(item), kind)] = count
                task = DraftTask(kind=kind, seq=count, text=text, source_lines=[r + 1])
                item.tasks.append(task)
                tasks.append(task)
                _deadline(reader, task, row, fields, sheet, r + 1)
                if task.deadline_text is None and not task.long_term:
                    task.deadline_proposal = propose_deadline(task.text, reader.default_year)
        else:
            for task in tasks:
                task.source_lines.append(r + 1)
        item.source_lines[-1] = r + 1
        previous = key
        for task in tasks:
            _fill(reader, item, task, row, fields, sheet, r + 1)


#: A measure's number at the start of a line inside a cell: 1. / 1、 / 1） / （1） / ①.
_MEASURE_MARK = re.compile(r"^(?:\d{1,2}(?:[、）)]|[.．](?!\d))|[（(]\d{1,2}[）)]|[①-⑳])\s*")


def _measures(cells: list[str]) -> list[str]:
    """The task texts of a row's task cell(s). A cell whose lines each start with a number
    (``1.…`` ``2.…``) holds several measures under the row's units and deadline: one task
    each, without the number. Otherwise the cell's lines are one text (a line break inside a
    sentence is the cell's width, not a new task)."""
    lines = [tidy_spaces(line) for cell in cells for line in cell.split("\n")]
    lines = [line for line in lines if line]
    if len(lines) >= 2 and all(_MEASURE_MARK.match(canon(line)) for line in lines):
        return [line[_MEASURE_MARK.match(canon(line)).end():].strip() for line in lines]
    text = "".join(lines)
    return [text] if text else []


def _sheet_chapter(sheet: str) -> str:
    return UNNAMED_CHAPTER if _DEFAULT_SHEET_RE.match(squash(sheet)) else sheet


def _add(target: list[str], values) -> None:
    for v in values:
        if v not in target:
            target.append(v)


def _fill(reader: _Reader, item: DraftItem, task: DraftTask, row: list, fields: dict, sheet: str,
          line: int) -> None:
    """The row's units, sections, leaders, note and contacts, joined into its task and item."""
    # Without any 牵头 column, the 责任/承办单位 are who does the task: they lead it.
    resp_target = task.responsible_units if "lead" in fields else task.lead_units
    for name, target in (("lead", task.lead_units), ("resp", resp_target)):
        for cell in _values(row, fields.get(name, [])):
            units, rejected = split_unit_list(cell)
            _add(target, units)
            _add(task.addressees, rejected)
    task.responsible_units[:] = [u for u in task.responsible_units if u not in task.lead_units]
    for cell in _values(row, fields.get("section", [])):
        _add(task.sections, split_list(cell))
    for cell in _values(row, fields.get("leader", [])):
        _add(task.leaders, split_list(cell))
    notes = _values(row, fields.get("note", []))
    if notes:
        task.note = "；".join(dict.fromkeys(([task.note] if task.note else []) + notes))
    if item.goal is None and (goal := _values(row, fields.get("goal", []))):
        item.goal = goal[0]
    names, phones = _values(row, fields.get("contact", [])), _values(row, fields.get("phone", []))
    for i, name in enumerate(names):
        phone = phones[i] if i < len(phones) else None
        if all(c.name != name for c in item.contacts):
            item.contacts.append(DraftContact(name, phone))


def _deadline(reader: _Reader, task: DraftTask, row: list, fields: dict, sheet: str, line: int) -> None:
    for i in fields.get("deadline", []):
        value = row[i] if i < len(row) else None
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.date()
        if isinstance(value, date):
            task.deadline, task.deadline_text = value, value.isoformat()
            return
        text = _text(value)
        if text in (None, "未定"):
            continue
        task.deadline_text = text
        found, long_term, ok = parse_deadline(text, reader.default_year)
        if ok:
            task.deadline, task.long_term = found, long_term
        else:
            reader.warn(sheet, line, f"完成时限“{text}”无法识别为日期，请在审核中确认", "bad_deadline")
        return


def mainly_tables(sheets, in_tables: int, in_text: int) -> bool:
    """Whether a .docx is read as a table of tasks: a table with a task column holds at least as
    much text as the paragraphs around it (a 责任分工表 with a title and a few lines above)."""
    if not sheets or in_tables < in_text:
        return False
    return any((lay := _layout(s.name, s.rows, None)) is not None and "text" in lay.fields() for s in sheets)
