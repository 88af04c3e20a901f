"""Parse a 实施方案汇编 (implementation-plan compilation) into a :class:`Draft`.

The documents of this genre share one skeleton, whichever office wrote them::

    front matter (issuer, 关于印发《…》的通知, date, 目录 …)
    一、chapter title
    第N项                         (or 第N项政策N-1 / N-1 subtitle for a sub-item)
    （一）政策原文  …text…（牵头单位：省…）
    （二）情况说明  …                       ← the item does not apply, or:
    （二）落实目标  …
    （三）工作任务  1. …（牵头单位：…，责任科室：…；责任单位：…；完成时限：…）
    （四）保障措施  1. …（…clause…）
    （X牵头，联系人：…，联系电话：…）       ← the contact line closes the item

but they are extracted from PDFs and Word files by hand, so the text is noisy:
paragraphs broken across blank lines and page breaks, half- and full-width marks
mixed, spaces inside words, stray fragments, clauses standing on their own line.

The parser works in three passes, each simple on its own:

1. **line classifier** – every physical line is normalised (``tidy_spaces`` then
   ``canon``) and classified by the grammar tables below (item header, section
   heading, numbered entry, contact line, page number, TOC line, plain text …);
2. **block builder** – lines are glued into logical paragraphs: a line continues
   the previous paragraph when that one is still *open* (no sentence-final mark or
   an unclosed bracket) and the line does not itself start a new structure;
3. **assembler** – a small state machine (front matter → chapter → item →
   section) that places every block into a field of the draft, or, when it cannot,
   into a warning.  Nothing is dropped silently: every non-blank input line ends up
   in the preamble, in a chapter title, inside an item's line range, or in a warning.

Judgement calls (documented here because the loader and the review rely on them):

* ``policy_text`` is the 政策原文 *without* its trailing provincial clause; the lead
  units of that clause go to ``policy_leads``.
* A sub-item that starts at （二） (``36—1 内资企业部分``) has an empty
  ``policy_text``: its parent item carries the policy.  The parent (``19``, ``36``) is
  an item of its own, with its policy text and no tasks.
* A clause that names only 责任单位 means the item's owner leads and the named units
  share the work: ``lead_units`` = owner, ``responsible_units`` = the 责任单位 minus
  the lead units.
* A clause closes every entry of the same section that has no clause yet; those
  entries get ``clause_source="shared"`` (also the entry that carries the clause
  when the clause stands on its own line).  Entries never closed take the item
  owner (``"owner"``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from workflow.text import clean_text, display_changing
from workflow.vocabulary import ClauseSource, TaskKind

from .furniture import page_start, strip_furniture
from .draft import (UNNAMED_CHAPTER, Draft, DraftChapter, DraftContact, DraftItem, DraftTask, DraftWarning,
                    DocumentError)
from . import sources
# Decoding lives in sources.py; these names are imported from here by callers.
from .sources import (DOCX_MAX_RATIO, DOCX_MAX_UNPACKED, InvalidBytesError, InvalidPlace,  # noqa: F401
                      _decode, _docx_text, _looks_binary, _utf8_with_errors)
from .units import (canon, cn_number, is_not_a_unit, keep_space, looks_like_deadline,
                    looks_like_person, looks_like_section, looks_like_unit, parse_deadline,
                    no_deadline_message, propose_deadline, split_list, split_unit_list, squash,
                    tidy_spaces, unit_kind)

# =========================================================================== grammar tables
# Label synonyms seen in the genre.  Matching is done on ``canon`` text, so only the
# Chinese spelling of brackets and colons needs to be listed.

SECTION_LABELS: dict[str, tuple[str, ...]] = {
    "policy": ("政策原文", "政策内容", "政策条款", "原文"),
    "explanation": ("情况说明", "不适用说明", "有关说明", "说明"),
    "goal": ("落实目标", "工作目标", "主要目标", "目标任务"),
    "tasks": ("工作任务", "主要任务", "重点任务", "具体任务", "重点工作", "工作举措"),
    "measures": ("保障措施", "保障举措", "保障机制", "工作保障", "推进措施"),
}
#: How each section is named in warnings shown to the office.
SECTION_NAMES = {"policy": "政策原文", "explanation": "情况说明", "goal": "落实目标",
                 "tasks": "工作任务", "measures": "保障措施"}
#: Sections whose paragraphs are task entries, and the DraftTask.kind they produce.
ENTRY_SECTIONS = {"tasks": TaskKind.TASK, "measures": TaskKind.MEASURE}

CLAUSE_LABELS: dict[str, tuple[str, ...]] = {
    "lead": ("牵头单位", "牵头部门", "牵头责任单位", "牵头责任部门", "主责单位", "主责部门", "主办单位", "牵头"),
    "resp": ("责任单位", "责任部门", "配合单位", "配合部门", "协办单位", "协同单位", "协同部门", "协同责任单位",
             "参与单位"),
    "section": ("责任科室", "责任股室", "责任处室", "具体科室", "科室"),
    "deadline": ("完成时限", "完成时间", "时间节点", "完成期限", "时限要求", "时限"),
    # A person, not a unit: kept as the task's responsible leader(s).
    "leader": ("牵头领导", "牵头负责领导", "责任领导", "分管领导", "包抓领导"),
}
CONTACT_NAME_LABELS = ("联系人",)
CONTACT_PHONE_LABELS = ("联系电话", "办公电话", "手机号码", "手机", "电话")
#: Words after the owner's name in a contact line (``区商务局牵头``).
OWNER_SUFFIXES = ("共同牵头", "牵头负责", "分别牵头", "各司其责", "各负其责", "牵头", "负责")


def _alt(words) -> str:
    """Regex alternation, longest first so that 责任科室 wins over 科室."""
    return "|".join(sorted({re.escape(w) for w in words}, key=len, reverse=True))


_LABEL_SECTION = {label: key for key, labels in SECTION_LABELS.items() for label in labels}
_LABEL_ROLE = {label: role for role, labels in CLAUSE_LABELS.items() for label in labels}

_CN = "[一二三四五六七八九十百零〇两]+"
_NUM = rf"(?:\d+|{_CN})"

#: 第1项 / 第 1 项 / 第一项 / 第19项政策19—1 / 第19-1项 (+ optional title or text).
ITEM_RE = re.compile(rf"^第(?P<n>{_NUM})(?:-(?P<s>\d+))?项(?:政策)?(?:(?P<n2>\d+)-(?P<s2>\d+))?"
                     r"[：:、.\s]*(?P<rest>.*)$")
#: （二）落实目标 / (二) 落实目标 / 二、落实目标 / 落实目标： (+ optional text on the same line).
SECTION_RE = re.compile(rf"^(?P<prefix>（?{_CN}[）、.]|（\d{{1,2}}）|\d{{1,2}}[.、）])?\s*"
                        rf"(?P<label>{_alt(_LABEL_SECTION)})\s*(?P<colon>：)?\s*(?P<rest>.*)$")
#: 36—1 内资企业部分 (a sub-item header standing alone; accepted under the item N it numbers).
SUBITEM_RE = re.compile(r"^(?P<n>\d+)-(?P<s>\d+)(?![\d.%])\s*(?P<rest>[^。，；、（）]{0,30})$")
#: 一、培育壮大有效需求 / 第一章 … / 第一部分 … (accepted only when an item follows).
CHAPTER_RE = re.compile(rf"^(?:第(?P<n1>{_NUM})(?:章|部分|篇)|(?P<n2>{_CN})、)\s*(?P<title>[^。；]{{1,40}})$")
#: 1. / 1、 / 1） / （1） / ① / 一、 / （一） at the start of a task entry.
ENTRY_RE = re.compile(rf"^(?:(?P<num>\d{{1,2}})(?:[、）]|\.(?!\d))|（(?P<pnum>\d{{1,2}})）|[①-⑳]"
                      rf"|{_CN}、|（{_CN}）)\s*")
#: An entry number followed by whitespace and a digit ("1.\t2022 年…").
_SPACED_MARKER = re.compile(r"^\s*(\d{1,2}[.．])\s+(?=[\d０-９])")
#: Page numbers left by the PDF extraction: "4", "- 4 -", "第4页".
PAGE_RE = re.compile(r"^(?:-?\d{1,3}-?|第\d{1,3}页(?:共\d{1,3}页)?|\d{1,3}/\d{1,3})$")
#: A table-of-contents line: a short title, a tab or dot leader, a page number.
TOC_RE = re.compile(r"^(?P<title>[^。]{1,60}?)(?:\t|\s{2,}|[.…·．]{2,}|…)\s*\d{1,4}\s*$")

CLAUSE_LABEL_RE = re.compile(rf"(?P<label>{_alt(_LABEL_ROLE)})\s*：")
_UNIT_LABEL_RE = re.compile(rf"(?:{_alt(CLAUSE_LABELS['lead'] + CLAUSE_LABELS['resp'])})\s*：")
_CONTACT_RE = re.compile(rf"{_alt(CONTACT_NAME_LABELS)}|{_alt(CONTACT_PHONE_LABELS)}\s*：")
#: "联系电话：6195196" / "区发展改革局联系人：丛湘波" (text before the label is ignored).
_PHONE_RE = re.compile(rf"^.*?(?:{_alt(CONTACT_PHONE_LABELS)})：?(?P<value>.*)$")
_NAME_RE = re.compile(rf"^.*?(?:{_alt(CONTACT_NAME_LABELS)})：?(?P<value>.*)$")

#: Marks that end a paragraph: a line ending otherwise continues on the next line.
_TERMINAL = "。！？!?）…"
_CLOSING_QUOTES = "”’」』"

# Line/block kinds.
BLANK, PAGE, TOC, ITEM, SECTION, SUBITEM, CHAPTER, ENTRY, CONTACT, TEXT, CLAUSE, FRAGMENT = (
    "blank", "page", "toc", "item", "section", "subitem", "chapter", "entry", "contact", "text",
    "clause", "fragment")
#: Kinds that always start a new block, even when the previous paragraph is still open.
_HARD_STARTS = {TOC, ITEM, SECTION, CHAPTER, ENTRY, CONTACT}
#: Blocks that carry content (a fragment after one of these is a stray).
_CONTENT = {TEXT, ENTRY, CLAUSE}
#: A stray fragment is at most this many characters (``展。``, ``月）``).
_FRAGMENT_MAX = 3


# =========================================================================== entry points

def parse_text(text: str, notes: list[DraftWarning] | None = None) -> Draft:
    """Parse the text of a document; raises :class:`DocumentError` when it is not one.

    Every line goes through :func:`workflow.text.clean_text` first: bidi overrides,
    zero-width and control characters are not part of any document's text (a page
    break or vertical tab becomes a space).  ``notes`` are warnings from the
    decoding (bytes replaced) that join the draft's."""
    if not text or not text.strip():
        raise DocumentError("文件内容为空，没有可导入的内容。")
    lines, notes = [], list(notes or [])
    unreported = 0
    page_starts = set()
    for no, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        # A form feed is a page break in extracted text, not damage.
        if "\f" in raw:
            page_starts.add(page_start(no, raw))
        raw = raw.replace("\f", " ").replace("\v", " ")
        lines.append(clean_text(raw))
        if removed := display_changing(raw):
            # Zero-width spaces and stray BOMs are Word's noise; bidi overrides and
            # control characters change what the text shows: the office should know.
            if sum(w.code == "invisible_chars" for w in notes) >= _INVISIBLE_NOTES:
                unreported += 1
                continue
            codes = "、".join(dict.fromkeys(f"U+{ord(c):04X}" for c in removed))
            notes.append(DraftWarning("invisible_chars", f"删除了 {len(removed)} 个控制字符或"
                                      f"文字方向控制符（{codes}）", no))
    if unreported:
        notes.append(DraftWarning("invisible_chars", f"另有 {unreported} 行删除了控制字符或文字方向控制符",
                                  notes[-1].line))
    if not any(line.strip() for line in lines):
        raise DocumentError("文件内容为空，没有可导入的内容。")
    # Page numbers and running headers go before paragraphs are joined (furniture.py).
    lines, removed = strip_furniture(lines, page_starts)
    classified = _classify(lines)
    items = sum(1 for line in classified if line.kind == ITEM)
    draft = None
    if items:
        try:
            draft = _Assembler(_build_blocks(classified), len(lines)).run()
        except _NotACompilation:
            draft = None
    if draft is None:
        # No compilation: a task list in running text, or StructureNotFound saying what it holds.
        from .tasklist import parse_task_list   # here: tasklist.py imports this module
        draft = parse_task_list(classified, len(lines))
    draft.removed = removed
    if notes:
        draft.warnings = sorted(notes + draft.warnings, key=lambda w: (w.line or 0))
    return draft


class _NotACompilation(DocumentError):
    """The 第N项 lines hold no item: the task-list grammar has its turn, and its StructureNotFound
    says what the document holds."""


_INVISIBLE_NOTES = 100


def parse_bytes(data: bytes, filename: str = "", replace_invalid: bool = False,
                mapping: dict | None = None) -> Draft:
    """Parse an uploaded file: UTF-8 (with or without BOM), UTF-16 with BOM or GB18030
    text, a Word .docx (running text, or a table of tasks when tables are most of its
    body), an old Word .doc or WPS .wps (through LibreOffice, ``sources.convert_old_word``), an
    Excel .xlsx/.xlsm/.xls workbook.  Raises :class:`DocumentError` with a
    Chinese message (:class:`InvalidBytesError` for a UTF-8 text with a few invalid
    bytes, unless ``replace_invalid``: then they are read as U+FFFD and reported as
    warnings).  ``mapping`` overrides the field of a table column, ``{(sheet, index):
    field}`` (see ``tables.parse_tables``); it is ignored for running text."""
    if not data or not data.strip():
        raise DocumentError("文件为空，没有可导入的内容。")
    kind = sources.file_kind(data, filename)
    if kind == sources.OLD_WORD:
        data, kind = sources.convert_old_word(data), sources.DOCX
    if kind in (sources.XLSX, sources.XLS):
        # Here: tables.py is loaded by the first table, not by every process.
        from .tables import parse_tables
        sheets = sources.xlsx_sheets(data) if kind == sources.XLSX else sources.xls_sheets(data)
        return parse_tables([(s.name, s.rows) for s in sheets], filename, mapping)
    if kind == sources.DOCX:
        from .tables import mainly_tables, parse_tables
        document = sources.open_docx(data)
        sheets, in_tables, in_text, paragraphs = sources.docx_tables(document)
        if mainly_tables(sheets, in_tables, in_text):
            return parse_tables([(s.name, s.rows) for s in sheets], filename, mapping,
                                paragraphs=sheets[0].paragraphs_before, preamble=paragraphs)
        return parse_text(_docx_text(document))
    text, notes = _decode(data, filename, replace_invalid)
    return parse_text(text, notes)


def parse_file(path, replace_invalid: bool = False) -> Draft:
    path = Path(path)
    return parse_bytes(path.read_bytes(), path.name, replace_invalid)


# =========================================================================== pass 1: lines

@dataclass
class _Line:
    no: int             # 1-based line number in the input
    raw: str            # the line as written
    text: str           # tidy_spaces(raw)
    norm: str           # canon(text): same length as text, used for matching
    kind: str
    match: re.Match | None = None


def _classify(raw_lines: list[str]) -> list[_Line]:
    out = []
    for no, raw in enumerate(raw_lines, 1):
        text = tidy_spaces(raw)
        marker = _SPACED_MARKER.match(raw)
        if marker:
            # "1.\t2022 年…": the space is what separates the number of the entry from the
            # number that starts its text; tidying would glue them into "1.2022年".
            text = f"{marker[1]} {tidy_spaces(raw[marker.end():])}"
        norm = canon(text)
        out.append(_Line(no, raw, text, norm, *_classify_line(raw, norm)))
    return out


def _classify_line(raw: str, norm: str) -> tuple[str, re.Match | None]:
    if not norm:
        return BLANK, None
    if PAGE_RE.match(re.sub(r"\s", "", norm)):
        return PAGE, None
    # The TOC test needs the raw line: tidying glues the page number to the title.
    if squash(norm) == "目录" or TOC_RE.match(canon(raw.strip())):
        return TOC, None
    for kind, regex in ((ITEM, ITEM_RE), (SECTION, SECTION_RE), (SUBITEM, SUBITEM_RE),
                        (CHAPTER, CHAPTER_RE), (ENTRY, ENTRY_RE)):
        m = regex.match(norm)
        # A section label followed by text is a heading only with a colon
        # ("情况说明：此项…"); "1.重点任务清单化管理…" is an entry that starts with a label word.
        if m and (kind != SECTION or m["colon"] or not m["rest"]):
            return kind, m
    if norm.startswith("（") and _CONTACT_RE.search(norm) and _is_contact_line(norm):
        return CONTACT, None
    return TEXT, None


def _is_contact_line(norm: str) -> bool:
    """A bracketed line naming people: the item's contact line, unless it is a task's clause —
    one with a unit label other than the lead (``牵头单位：X；联系人：Y`` is still the contact line)."""
    if not _UNIT_LABEL_RE.search(norm):
        return True
    return "联系人" in norm and all(_LABEL_ROLE[m["label"]] == "lead" for m in CLAUSE_LABEL_RE.finditer(norm))


# =========================================================================== pass 2: blocks

@dataclass
class _Block:
    lines: list[_Line]
    kind: str
    match: re.Match | None = None
    text: str = ""      # the paragraph, lines joined and tidied
    norm: str = ""

    @property
    def first(self) -> int:
        return self.lines[0].no

    @property
    def line_nos(self) -> list[int]:
        return [line.no for line in self.lines]

    def finish(self) -> None:
        """Join the (already tidied) lines; only the seams need a decision."""
        text = self.lines[0].text
        for line in self.lines[1:]:
            text += (" " if text and keep_space(text[-1], line.text[0]) else "") + line.text
        self.text = text
        self.norm = canon(text)


def _is_open(text: str, unclosed: int | None = None) -> bool:
    """A paragraph is open (continues on the next line) when a bracket is unclosed or it
    does not end with a sentence-final mark. ``unclosed`` is the paragraph's count of （ minus
    ）, when the caller keeps it (the block builder does, so that a paragraph of many lines is
    not counted again on each)."""
    if (text.count("（") - text.count("）") if unclosed is None else unclosed) > 0:
        return True
    if not text:
        return False
    last = text[-1]
    if last in _CLOSING_QUOTES and len(text) > 1:
        last = text[-2]
    return last not in _TERMINAL


def _unclosed(norm: str) -> int:
    return norm.count("（") - norm.count("）")


def _tail(block: _Block) -> str:
    """The end of a growing paragraph: enough of it for ``_is_open`` to see its last mark
    (a closing quote on a line of its own looks at the line before)."""
    return "".join(line.norm for line in block.lines[-2:])


def _build_blocks(lines: list[_Line]) -> list[_Block]:
    blocks: list[_Block] = []
    current: _Block | None = None
    unclosed = 0                     # （ minus ） in the current paragraph
    last_item: int | None = None     # number of the last 第N项, to recognise "N-1 subtitle"
    for line in lines:
        if line.kind == BLANK:
            continue
        if line.kind == PAGE:
            # A page number does not interrupt the paragraph it falls into.
            blocks.append(_Block([line], PAGE))
            continue
        hard = line.kind in _HARD_STARTS or (
            line.kind == SUBITEM and last_item is not None and int(line.match["n"]) == last_item)
        # The paragraph's open brackets are counted as it grows; only its end is looked at
        # (a paragraph of many lines is not joined again for every line: linear, not quadratic).
        if current is not None and not hard and current.kind in (TEXT, ENTRY, CONTACT) \
                and _is_open(_tail(current), unclosed):
            current.lines.append(line)
            unclosed += _unclosed(line.norm)
            continue
        kind = line.kind if hard else TEXT
        if kind == TEXT and current is not None and current.kind in _CONTENT \
                and len(squash(line.norm)) <= _FRAGMENT_MAX:
            kind = FRAGMENT          # "展。" after a finished sentence: an extraction leftover
        current = _Block([line], kind, line.match if hard else None)
        unclosed = _unclosed(line.norm)
        blocks.append(current)
        if kind == ITEM:
            last_item = cn_number(line.match["n"])
    for block in blocks:
        block.finish()
        if block.kind == TEXT and _clause_start(block.norm) == 0:
            block.kind = CLAUSE
    return blocks


# =========================================================================== clauses

def _clause_start(norm: str, body_start: int = 0) -> int | None:
    """Index where a trailing responsibility clause begins in ``norm``, or None.

    The clause is the last bracketed group of the paragraph when it names a clause
    label (``（牵头单位：…）``), possibly followed by a stray full stop; some offices
    write it without brackets after the last sentence (``…。牵头部门：县工信局``)."""
    end = len(norm)
    while end > body_start and norm[end - 1] in "。.；":
        end -= 1
    if end > body_start and norm[end - 1] == "）":
        depth = 0
        for i in range(end - 1, body_start - 1, -1):
            if norm[i] == "）":
                depth += 1
            elif norm[i] == "（":
                depth -= 1
                if depth == 0:
                    return i if CLAUSE_LABEL_RE.search(norm, i, end) else None
        return None
    # Unbracketed: a lead/responsible label at the start or right after a sentence end.
    starts = [m.start() for m in _UNIT_LABEL_RE.finditer(norm, body_start)
              if m.start() == body_start or norm[m.start() - 1] in "。；"]
    if starts and "。" not in norm[starts[0]:end]:
        return starts[0]
    return None


@dataclass
class _Clause:
    lines: list[int]
    text: str                              # as written (tidied), for messages
    leads: list[str] = field(default_factory=list)
    resp: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    section_units: dict[str, str] = field(default_factory=dict)   # section -> the unit named before it
    deadline_text: str | None = None
    leaders: list[str] = field(default_factory=list)     # people named as 牵头领导
    addressees: list[str] = field(default_factory=list)  # generic addressees (各有关单位), as written
    rejected: list[str] = field(default_factory=list)    # phrases that are not units
    repeated: list[str] = field(default_factory=list)    # labels written twice in a row
    unplaced: list[str] = field(default_factory=list)    # pieces it could not read


def _add(target: list[str], value: str) -> None:
    if value and value not in target:
        target.append(value)


def _parse_clause(norm: str, text: str, lines: list[int]) -> _Clause:
    """Read ``（牵头单位：A，责任科室：x；责任单位：B、C；完成时限：2022年12月）``.

    Each label opens a value that runs to the next label.  Values are lists; a piece of
    a list is re-routed when its shape contradicts its label, because the documents
    often leave the label out: ``责任科室：工商贸易科；区住房和城乡建设局`` names a
    second responsible *unit*, ``责任单位：区财政局，经济建设科`` its *section*, and
    ``责任科室：动能转换推进科，2022年12月`` a deadline without its label."""
    clause = _Clause(lines=lines, text=text)
    inner = norm.strip().strip("。；")
    if inner.startswith("（"):
        inner = inner[1:]
    if inner.endswith("）"):
        inner = inner[:-1]
    matches = list(CLAUSE_LABEL_RE.finditer(inner))
    segments: list[tuple[str | None, str]] = []
    prefix = inner[:matches[0].start()] if matches else inner
    if prefix.strip("，；、 "):
        segments.append((None, prefix))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(inner)
        role = _LABEL_ROLE[m["label"]]
        value = inner[m.end():end]
        if not value.strip("，；、 "):
            if i + 1 < len(matches) and _LABEL_ROLE[matches[i + 1]["label"]] == role:
                clause.repeated.append(m["label"])      # 完成时限：完成时限：2022年12月
                continue
            if role == "deadline" and clause.deadline_text is None:
                clause.deadline_text = ""
            continue
        segments.append((role, value))

    unit_role = "lead"          # where a unit found under 责任科室 belongs
    last_unit: str | None = None   # a 责任科室 belongs to the unit written before it
    for role, value in segments:
        if role == "leader":
            for person in split_list(value):
                _add(clause.leaders, person)
            continue
        if role == "deadline":
            written = squash(value).strip("，；、。")
            if not clause.deadline_text:
                clause.deadline_text = written
            else:
                clause.unplaced.append(written)
            continue
        if role is None:
            # Text before the first label: "区商务局牵头，…" names the lead unit.
            value = squash(value).strip("，；、")
            stripped = _strip_owner_suffix(value)
            role = "lead" if stripped != value else None
            value = stripped
        for piece in split_list(value):
            if looks_like_deadline(piece):
                if not clause.deadline_text:
                    clause.deadline_text = piece
                else:
                    clause.unplaced.append(piece)
            elif is_not_a_unit(piece):
                # 各有关单位 / 有关部门按职责分工负责: addressed, but nobody in particular.
                if len(piece) > 1:
                    _add(clause.addressees, piece)
                else:
                    clause.rejected.append(piece)
            elif role in ("lead", "resp"):
                unit_role = role
                if looks_like_section(piece):
                    _add_section(clause, piece, last_unit)
                else:
                    _add(clause.leads if role == "lead" else clause.resp, piece)
                    last_unit = piece
            elif role == "section":
                if looks_like_unit(piece):
                    _add(clause.leads if unit_role == "lead" else clause.resp, piece)
                    last_unit = piece
                else:
                    _add_section(clause, piece, last_unit)
            elif looks_like_unit(piece) or not looks_like_section(piece) and _looks_like_org(piece):
                _add(clause.leads, piece)
                last_unit = piece
            else:
                clause.unplaced.append(piece)
    return clause


#: "一是" / "二是" … at the start of a paragraph or right after a sentence: an enumeration that
#: writes several tasks or measures in one paragraph.
_ENUM_MARK = re.compile(r"(?:^|(?<=[。；;!！?？]))\s*([一二三四五六七八九十]{1,3})是")


def _enumerated(text: str) -> list[str] | None:
    """``"一是A。二是B。三是C。"`` → ``["A。", "B。", "C。"]``; None unless the paragraph starts with a
    marker and each later marker counts on by one (a "一是" inside a sentence is prose)."""
    marks = []
    expected = None
    for m in _ENUM_MARK.finditer(text):
        number = cn_number(m[1])
        if number is None:
            continue
        if not marks:
            if m.start() != 0 or text[:m.start(1)].strip():
                return None
        elif number != expected:
            continue
        marks.append(m)
        expected = number + 1
    if not marks:
        return None
    pieces = [text[m.end():(marks[k + 1].start() if k + 1 < len(marks) else len(text))].strip()
              for k, m in enumerate(marks)]
    return [p for p in pieces if p] or None


def _add_section(clause: _Clause, section: str, unit: str | None) -> None:
    _add(clause.sections, section)
    if unit is not None:
        clause.section_units.setdefault(section, unit)


def _looks_like_org(piece: str) -> bool:
    return bool(re.search(r"(局|委|办|中心|院|所|会|公司|行|队|站|部|厅)$", piece))


def _strip_owner_suffix(value: str) -> str:
    changed = True
    while changed:
        changed = False
        for suffix in OWNER_SUFFIXES:
            if value.endswith(suffix) and len(value) > len(suffix):
                value = value[: -len(suffix)].rstrip("，、")
                changed = True
    return value


def read_deadline_and_report(task: DraftTask, clause: _Clause, where: str, line: int, item: str, warn,
                             default_year: int | None, reported: set[int]) -> None:
    """A task's deadline from its clause, with the warnings of the clause (once per clause, however
    many tasks share it) — for both running-text grammars (compilation and task list)."""
    task.deadline_text = clause.deadline_text
    task.deadline, task.long_term, ok = parse_deadline(clause.deadline_text, default_year)
    if not ok and clause.deadline_text:
        warn("bad_deadline", f"{where}：无法识别完成时限“{clause.deadline_text}”", line, item)
    elif not ok:
        # Not written is not unreadable: the office asks the unit, rather than re-reads the text.
        task.deadline_proposal = propose_deadline(task.text, default_year)
        warn("missing_deadline", no_deadline_message(where, task.deadline_proposal), line, item)
    if id(clause) not in reported:
        reported.add(id(clause))
        for label in clause.repeated:
            warn("repeated_label", f"{where}：标签“{label}”重复书写", line, item)
        for phrase in clause.rejected:
            warn("not_a_unit", f"{where}：“{phrase}”不是单位名称，已忽略", line, item)
        for piece in clause.unplaced:
            warn("unplaced_fragment", f"{where}：责任分工中无法识别“{piece}”", line, item)


# =========================================================================== contact line

#: A person's name, a phone number: anything longer is not one.
_NAME_MAX = 20
_PHONE_MAX = 30
#: A phone number as offices write it: 6195196, 0533-6195196, (0533)6195196, 6195196-8012,
#: 13805331234. Used to find a number written beside a name (``王迎新 6195196``, ``王迎新（6195196）``).
_PHONE_NUMBER = re.compile(r"(?:（?0\d{2,3}）?-?)?\d{7,8}(?:(?:-|转)\d{1,5})?|1[3-9]\d{9}")
#: 联系人及电话：王迎新 6195196 — a name label whose value carries the phone too.
_CONTACT_BOTH_LABELS = ("联系人及联系电话", "联系人及电话", "联系人和电话", "联系人电话", "联系方式")
_PERSON_LABEL_RE = re.compile(rf"^(?P<before>.*?)(?:{_alt(_CONTACT_BOTH_LABELS + CONTACT_NAME_LABELS)})"
                              r"：?(?P<value>.*)$")
_LEAD_LABEL_RE = re.compile(rf"^(?:{_alt(CLAUSE_LABELS['lead'])})：(?P<value>.*)$")


def _unit_and_person(text: str) -> tuple[str | None, str] | None:
    """``王迎新`` → (None, 王迎新); ``区发展改革局王迎新`` → (区发展改革局, 王迎新) — the unit a
    contact belongs to, written before the name; None when ``text`` names no person."""
    if looks_like_person(text):
        return None, text
    for size in (3, 2, 4):          # Chinese names are mostly three characters, then two
        unit, person = text[:-size], text[-size:]
        if len(unit) >= 3 and unit_kind(unit) != "other" and looks_like_person(person):
            return unit, person
    return None


def _people(value: str) -> list[tuple[str | None, str, str | None]] | None:
    """``王迎新、李雪`` / ``王迎新6195196；…`` / ``区财政局李雪（6195197）`` → [(unit, name, phone)];
    None when a piece is no person."""
    found = []
    for piece in re.split(r"[、/]", value):
        if not piece:
            continue
        phones = _PHONE_NUMBER.findall(piece)
        rest = _PHONE_NUMBER.sub("", piece).strip("（）：:-")
        read = _unit_and_person(rest) if rest else None
        if read is None:
            return None
        found.append((read[0], read[1], "、".join(phones) or None))
    return found


def _parse_contact(norm: str) -> tuple[list[str], list[DraftContact], list[str], list[str]]:
    """``（区发展改革局牵头，联系人：王迎新，联系电话：6195196）`` →
    (owner units, contacts, rejected non-units, unread pieces).

    Variants handled: several contacts (``联系人：A、B，联系电话：1、2``, ``…；B，联系电话：2``,
    ``A 1；B 2``, ``A（1）、B（2）``), a name without its label (``区商务局牵头，李雪，联系电话：…``),
    a number beside the name or a second number after the first, ``电话`` for ``联系电话`` and
    ``联系人及电话``, an owner without 牵头 (``区人防办，联系人：…``) or labelled (``牵头单位：…``),
    shared ownership (``区发展改革局、区商务局各司其责，…``), and the owner written only before its
    contact (``联系人：区发展改革局王迎新``): a contact's unit is an owner when the line names none."""
    inner = norm.strip().strip("。")
    inner = inner[1:] if inner.startswith("（") else inner
    inner = inner[:-1] if inner.endswith("）") else inner
    owners: list[str] = []
    contact_units: list[str] = []         # units written before a contact's name
    rejected: list[str] = []
    contacts: list[DraftContact] = []
    waiting: list[DraftContact] = []      # contacts named but not yet given a phone
    unread: list[str] = []
    first = True

    def add_people(people):
        for unit, name, phone in people:
            if unit and unit not in contact_units:
                contact_units.append(unit)
            contacts.append(DraftContact(name, phone))
            if phone is None:
                waiting.append(contacts[-1])

    def add_owners(text):
        units, bad = split_unit_list(text)
        owners.extend(u for u in units if u not in owners)
        rejected.extend(bad)

    for segment in re.split(r"[，；,;]", inner):
        segment = squash(segment)
        if not segment:
            continue
        person_m, phone_m = _PERSON_LABEL_RE.match(segment), _PHONE_RE.match(segment)
        lead_m = _LEAD_LABEL_RE.match(segment)
        if lead_m:
            add_owners(_strip_owner_suffix(lead_m["value"]))
        elif person_m:
            before = _strip_owner_suffix(person_m["before"].rstrip("的"))
            if before and not owners and unit_kind(before) != "other":
                add_owners(before)      # 区发展改革局联系人：丛湘波
            people = _people(person_m["value"]) if person_m["value"] else []
            if people is None:
                for name in re.split(r"[、/]", person_m["value"]):
                    if len(name) > _NAME_MAX:
                        unread.append(name)       # a sentence, not a person's name
                    elif name:
                        contacts.append(DraftContact(name))
                        waiting.append(contacts[-1])
            else:
                add_people(people)
        elif phone_m and any(label in segment for label in CONTACT_PHONE_LABELS):
            phones = [p for p in re.split(r"[、/]", phone_m["value"]) if p]
            unread.extend(p for p in phones if len(p) > _PHONE_MAX)
            phones = [p for p in phones if len(p) <= _PHONE_MAX]
            for phone in phones:
                if waiting:
                    waiting.pop(0).phone = phone
                elif contacts and contacts[-1].phone is None:
                    contacts[-1].phone = phone
                else:
                    unread.append(phone)
            # one phone written for several people: they share it
            for contact in waiting:
                contact.phone = phones[-1] if phones else None
            waiting.clear()
        elif _PHONE_NUMBER.fullmatch(segment) and contacts:
            # a second number for the last person (``联系电话：0533-6195196，13805331234``)
            last = contacts[-1]
            last.phone = f"{last.phone}、{segment}" if last.phone else segment
            if last in waiting:
                waiting.remove(last)
        elif _strip_owner_suffix(segment) != segment:
            add_owners(_strip_owner_suffix(segment))
        elif (people := _people(segment)) and (not first or any(unit for unit, _, _ in people)):
            add_people(people)          # 李雪 / 王迎新 6195196 / first: 区发展改革局王迎新
        elif first:
            add_owners(segment)
        else:
            unread.append(segment)
        first = False
    if not owners:
        owners = contact_units
    return owners, contacts, rejected, unread


# =========================================================================== pass 3: assembler

@dataclass
class _Entry:
    section: str                   # "tasks" | "measures"
    parts: list[str]
    lines: list[int]
    clause: _Clause | None = None
    clause_source: str = ClauseSource.OWN


@dataclass
class _ItemBuilder:
    number: str
    parent: str | None
    chapter: int
    first_line: int
    subtitle: str | None = None
    last_line: int = 0
    section: str | None = None
    seen: set[str] = field(default_factory=set)
    policy: list[str] = field(default_factory=list)
    policy_leads: list[str] = field(default_factory=list)
    goal: list[str] = field(default_factory=list)
    explanation: list[str] = field(default_factory=list)
    entries: dict[str, list[_Entry]] = field(default_factory=lambda: {"tasks": [], "measures": []})
    numbered: dict[str, bool] = field(default_factory=lambda: {"tasks": False, "measures": False})
    contact_seen: bool = False
    owner_units: list[str] = field(default_factory=list)
    contacts: list[DraftContact] = field(default_factory=list)
    has_children: bool = False

    @property
    def label(self) -> str:
        return f"第{self.number}项"

    @property
    def top(self) -> str:
        return self.parent or self.number


#: A title or an issuer is a line or three, never a page: longer lines are text.
_TITLE_MAX = 150
_ISSUER_MAX = 100

#: The words a title of the genre ends with.
_TITLE_END_RE = re.compile(r"(通知|意见|方案|函|决定)$")
_TITLE_WORD_RE = re.compile(r"(方案|汇编|清单|意见)")
#: What may follow a title on a line of its own (a cover page sets the title over several lines, often
#: with blank lines between): the batch, "（第一批）" / "第二批", and the genre's closing words, "实施方案汇编".
_TITLE_TAIL_RE = re.compile(r"[（(]?第[一二三四五六七八九十\d]{1,4}批[）)]?|(?:实施|工作)?(?:方案|汇编|清单)+")
#: A line that is never part of a title: a sentence, a date, a document number (周政办发〔2022〕1号).
_NOT_TITLE_RE = re.compile(r"[。：:，；]|^\d{4}年\d{1,2}月(\d{1,2}日)?$|〔\d{4}〕")
#: Markdown emphasis left by a PDF-to-text conversion ("**周村区落实省…**").
_MARK_RE = re.compile(r"^[*#_\s]+|[*_\s]+$")


def _unmark(text: str) -> str:
    return _MARK_RE.sub("", text)


def _join_lines(texts: list[str]) -> str:
    out = ""
    for text in texts:
        text = _unmark(text)
        out += (" " if out and text and keep_space(out[-1], text[0]) else "") + text
    return out


def _title_span(squashed: list[str], block_of: list[int]) -> tuple[int, int] | None:
    """The lines [start, end) of the plan's title in the front matter, or None.

    A title may be set over several lines: the cover letter's "关于印发《…清单" /
    "（第一批）实施方案汇编》的通知" in one paragraph, or a cover page's
    "周村区落实省…" / "高质量发展政策清单" / "（第一批）" / "实施方案汇编". Every
    line of it belongs, above all the batch: without it two batches of one
    compilation read the same."""
    n = len(squashed)
    for i, s in enumerate(squashed):
        if not s.startswith("关于"):
            continue
        j, joined = i + 1, s
        while not _TITLE_END_RE.search(joined) and j < n and block_of[j] == block_of[i] \
                and len(joined) <= _TITLE_MAX:
            joined += squashed[j]
            j += 1
        if len(joined) <= _TITLE_MAX and _TITLE_END_RE.search(joined):
            return i, j
    at = next((i for i, s in enumerate(squashed) if len(s) <= _TITLE_MAX and _TITLE_WORD_RE.search(s)
               and "。" not in s), None)
    if at is None:
        return None
    start, end, length = at, at + 1, len(squashed[at])

    def fits(k: int) -> bool:
        return bool(squashed[k]) and not _NOT_TITLE_RE.search(squashed[k]) \
            and length + len(squashed[k]) <= _TITLE_MAX

    # The lines of its paragraph above it ("周村区落实省“稳中求进”" over "高质量发展政策清单").
    while start > 0 and block_of[start - 1] == block_of[at] and fits(start - 1):
        start -= 1
        length += len(squashed[start])
    # Below it: the rest of its paragraph while the title is unfinished, then the batch and the
    # closing words, in its paragraph or in paragraphs of their own.
    while end < n and fits(end):
        same = block_of[end] == block_of[end - 1]
        unfinished = not _TITLE_WORD_RE.search(squashed[end - 1][-2:])
        if not (_TITLE_TAIL_RE.fullmatch(squashed[end]) or (same and unfinished)):
            break
        length += len(squashed[end])
        end += 1
    return start, end


#: The chapter of items met before any chapter heading (see ``_finish``).
_NO_CHAPTER_YET = -(2 ** 63)


class _Assembler:
    def __init__(self, blocks: list[_Block], line_count: int):
        self.blocks = blocks
        self.draft = Draft(line_count=line_count)
        self.front: list[_Block] = []
        self.in_front = True
        self.chapter = _NO_CHAPTER_YET
        self.item: _ItemBuilder | None = None
        self.default_year: int | None = None
        self.last_top = 0           # last top-level item number, for the sequence check
        self.last_sub = 0

    # ----------------------------------------------------------------- helpers
    def warn(self, code: str, message: str, line: int | None = None, item: str | None = None):
        self.draft.warnings.append(DraftWarning(code, message, line, item))

    def unplaced(self, block: _Block, why: str) -> None:
        where = f"{self.item.label} " if self.item else ""
        for line in block.lines:
            self.warn("unplaced_fragment", f"{where}第{line.no}行：{why}“{line.text}”",
                      line.no, self.item.number if self.item else None)

    def _next_is_item(self, index: int) -> bool:
        for block in self.blocks[index + 1:]:
            if block.kind != PAGE:
                return block.kind == ITEM
        return False

    # ----------------------------------------------------------------- main loop
    def run(self) -> Draft:
        for index, block in enumerate(self.blocks):
            if self.in_front:
                if block.kind == ITEM or (block.kind == CHAPTER and self._next_is_item(index)):
                    self.in_front = False
                    self._read_front_matter()
                else:
                    self.front.append(block)
                    continue
            self._dispatch(index, block)
        self._close_item(at_end=True)
        self._finish()
        return self.draft

    def _dispatch(self, index: int, block: _Block) -> None:
        kind = block.kind
        if kind == PAGE:
            self.warn("page_number", f"第{block.first}行：疑似页码“{block.text}”，已忽略",
                      block.first, self.item.number if self.item else None)
            return
        if kind == CHAPTER and self._next_is_item(index):
            self._close_item()
            m = block.match
            number = cn_number(m["n1"] or m["n2"])
            if number is None:
                number = max((c.number for c in self.draft.chapters), default=0) + 1
            self.chapter = number
            self.draft.chapters.append(
                DraftChapter(self.chapter, tidy_spaces(block.text[m.start("title"):]).strip("：:"),
                             source_line=block.first))
            return
        if kind == ITEM:
            self._open_item(block)
            return
        if kind == SUBITEM and self.item and block.match["n"] == self.item.top:
            self._open_subitem(block)
            return
        if self.item is None:
            self.unplaced(block, "未归入任何条目的文字")
            return
        self.item.last_line = max(self.item.last_line, block.lines[-1].no)
        if kind == FRAGMENT:
            self.unplaced(block, "孤立的残片（可能是提取时断开的文字）")
        elif kind == TOC:
            self.unplaced(block, "疑似目录行")
        elif self.item.contact_seen:
            self.unplaced(block, "联系人行之后的多余文字")
        elif kind == SECTION:
            self.item.section = _LABEL_SECTION[block.match["label"]]
            self.item.seen.add(self.item.section)
            rest = block.match["rest"]
            if rest:        # "（二）情况说明：此项不涉及我区。" – text on the heading line
                start = block.match.start("rest")
                self._content(_Block(block.lines, TEXT, None, block.text[start:], block.norm[start:]))
        elif kind == CONTACT:
            self._contact(block)
        else:
            self._content(block)

    # ----------------------------------------------------------------- items
    def _open_item(self, block: _Block) -> None:
        m = block.match
        n = cn_number(m["n"])
        sub = m["s"] or m["s2"]
        number = f"{n}-{sub}" if sub else str(n)
        current = self.item
        if current is not None and current.number == number and current.chapter == self.chapter \
                and not current.seen and not current.policy and current.subtitle is None:
            # The same header twice with nothing between (a page break repeated it):
            # one item, not two.
            self.warn("repeated_header", f"第{number}项的标题在第{current.first_line}行和第{block.first}行"
                      "重复书写，按同一项读取", block.first, number)
            current.last_line = max(current.last_line, block.lines[-1].no)
            self._take_rest(block, m)
            return
        # "第19项政策19—1" right after "第19项": the item being closed is a parent.
        self._close_item(parent_of_next=bool(sub) and self.item is not None
                         and self.item.number == str(n))
        if m["n2"] and int(m["n2"]) != n:
            self.warn("number_mismatch", f"第{block.first}行：条目编号不一致“{block.text}”",
                      block.first, str(n))
        self.item = _ItemBuilder(number, str(n) if sub else None,
                                 self.chapter, block.first, last_line=block.lines[-1].no)
        self._check_sequence(self.item)
        self._take_rest(block, m)

    def _check_sequence(self, item: _ItemBuilder) -> None:
        """Items are numbered 1, 2, 3 … and sub-items N-1, N-2 …: a gap usually means a
        page was lost in the extraction, so the office should look."""
        if item.parent is None:
            expected = str(self.last_top + 1)
            if self.last_top and item.number != expected:
                self.warn("number_sequence", f"{item.label}：编号不连续，上一项是第{self.last_top}项",
                          item.first_line, item.number)
            self.last_top = int(item.number)
            self.last_sub = 0
            return
        sub = int(item.number.split("-")[1])
        if item.parent != str(self.last_top):
            self.warn("number_sequence", f"{item.label}：没有找到上级条目第{item.parent}项",
                      item.first_line, item.number)
            self.last_top = int(item.parent)
        elif sub != self.last_sub + 1:
            self.warn("number_sequence", f"{item.label}：子项编号不连续", item.first_line, item.number)
        self.last_sub = sub

    def _open_subitem(self, block: _Block) -> None:
        parent = self.item.top
        self._close_item(parent_of_next=self.item.number == parent)
        m = block.match
        self.item = _ItemBuilder(f"{parent}-{m['s']}", parent, self.chapter, block.first,
                                 last_line=block.lines[-1].no)
        self._check_sequence(self.item)
        self._take_rest(block, m)

    def _take_rest(self, block: _Block, m: re.Match) -> None:
        """Text after the number on a header line: a short title is the subtitle, a
        sentence is the first paragraph of the policy text (some offices write
        ``第一项：2022年，…。``)."""
        rest, start = m["rest"].strip(), m.start("rest")
        if not rest:
            return
        if len(rest) <= 30 and "。" not in rest:
            self.item.subtitle = block.text[start:].strip()
        else:
            self._content(_Block(block.lines, TEXT, None, block.text[start:], block.norm[start:]))

    def _close_item(self, at_end: bool = False, parent_of_next: bool = False) -> None:
        builder, self.item = self.item, None
        if builder is None:
            return
        builder.has_children = parent_of_next
        self.draft.items.append(self._finalise(builder, at_end))

    # ----------------------------------------------------------------- content
    def _content(self, block: _Block) -> None:
        item = self.item
        section = item.section or "policy"    # text right after the header is the policy
        if section == "policy":
            start = 0 if block.kind == CLAUSE else _clause_start(block.norm)
            if start is not None:
                clause = _parse_clause(block.norm[start:], block.text[start:], block.line_nos)
                for unit in clause.leads or clause.resp:
                    _add(item.policy_leads, unit)
            text = block.text[:start].strip() if start is not None else block.text
            if text:
                item.policy.append(text)
        elif section in ENTRY_SECTIONS:
            self._entry(block, section)
        elif section == "goal":
            item.goal.append(block.text)
        elif section == "explanation":
            item.explanation.append(block.text)

    def _entry(self, block: _Block, section: str) -> None:
        item = self.item
        entries = item.entries[section]
        if block.kind == CLAUSE:
            # A clause on its own line closes every entry above it that is still open.
            clause = _parse_clause(block.norm, block.text, block.line_nos)
            waiting = [e for e in entries if e.clause is None]
            if not waiting:
                self.unplaced(block, "责任分工没有对应的任务条目")
                return
            for entry in waiting:
                entry.clause, entry.clause_source = clause, ClauseSource.SHARED
            return
        m = ENTRY_RE.match(block.norm)
        body = m.end() if m else 0
        start = _clause_start(block.norm, body)
        text = block.text[body:start].strip()
        if m is None and entries and item.numbered[section] and entries[-1].clause is None:
            # An unnumbered paragraph inside a numbered list continues the open entry.
            entry = entries[-1]
            if text:
                entry.parts.append(text)
            entry.lines.extend(block.line_nos)
        else:
            pieces = _enumerated(text) or [text]
            # "一是…。二是…。三是…。" in one paragraph: each is its own entry; a clause after the
            # last closes them all (below).
            for piece in pieces[:-1]:
                entries.append(_Entry(section, [piece], block.line_nos))
            entry = _Entry(section, [pieces[-1]] if pieces[-1] else [], block.line_nos)
            entries.append(entry)
            item.numbered[section] |= m is not None
        if start is not None:
            clause = _parse_clause(block.norm[start:], block.text[start:], [])
            for other in entries:
                if other.clause is None and other is not entry:
                    other.clause, other.clause_source = clause, ClauseSource.SHARED
            entry.clause, entry.clause_source = clause, ClauseSource.OWN

    def _contact(self, block: _Block) -> None:
        item = self.item
        owners, contacts, rejected, unread = _parse_contact(block.norm)
        item.contact_seen = True
        item.owner_units, item.contacts = owners, contacts
        for phrase in rejected:
            self.warn("not_a_unit", f"{item.label} 联系人行：“{phrase}”不是单位名称，已忽略",
                      block.first, item.number)
        for piece in unread:
            self.warn("unplaced_fragment", f"{item.label} 联系人行：无法识别“{piece}”",
                      block.first, item.number)
        if not owners:
            self.warn("missing_owner", f"{item.label} 联系人行未写明牵头单位“{block.text}”",
                      block.first, item.number)

    # ----------------------------------------------------------------- finalise an item
    def _finalise(self, b: _ItemBuilder, at_end: bool) -> DraftItem:
        item = DraftItem(
            number=b.number, parent=b.parent, chapter=b.chapter,
            policy_text="\n".join(b.policy), policy_leads=b.policy_leads,
            goal="\n".join(b.goal) if "goal" in b.seen or b.goal else None,
            explanation="\n".join(b.explanation) if "explanation" in b.seen else None,
            subtitle=b.subtitle, owner_units=b.owner_units, contacts=b.contacts,
            source_lines=[b.first_line, max(b.last_line, b.first_line)])
        reported: set[int] = set()       # clauses already checked (a shared one warns once)
        for section, kind in ENTRY_SECTIONS.items():
            for seq, entry in enumerate(b.entries[section], 1):
                item.tasks.append(self._task(b, entry, kind, seq, reported))
        problems = self._missing_parts(b, item)
        if problems:
            reason = "、".join(problems)
            if at_end:
                item.complete = False
                self.warn("truncated", f"文档在{b.label}中途结束（{reason}），该项不完整",
                          item.source_lines[1], b.number)
            else:
                self.warn("incomplete_item", f"{b.label}不完整：{reason}",
                          item.source_lines[0], b.number)
        return item

    def _task(self, b: _ItemBuilder, entry: _Entry, kind: str, seq: int,
              reported: set[int]) -> DraftTask:
        where = f"{b.label} {SECTION_NAMES[entry.section]}第{seq}条"
        task = DraftTask(kind=kind, seq=seq, text="\n".join(entry.parts),
                         source_lines=sorted(set(entry.lines)))
        clause = entry.clause
        if not task.text:
            self.warn("empty_task", f"{where}：没有任务内容", entry.lines[0], b.number)
        if clause is None:
            task.clause_source = ClauseSource.OWNER
            task.lead_units = list(b.owner_units)
            task.deadline_proposal = propose_deadline(task.text, self.default_year)
            self.warn("missing_deadline", no_deadline_message(
                where, task.deadline_proposal, "未写明责任分工和完成时限，牵头单位按本项牵头单位处理"),
                entry.lines[0], b.number)
        else:
            task.clause_source = entry.clause_source
            task.source_lines = sorted(set(entry.lines) | set(clause.lines))
            task.lead_units = list(clause.leads or b.owner_units)
            task.responsible_units = [u for u in clause.resp if u not in task.lead_units]
            task.sections = list(clause.sections)
            task.section_units = dict(clause.section_units)
            task.leaders = list(clause.leaders)
            task.addressees = list(clause.addressees)
            read_deadline_and_report(task, clause, where, (clause.lines or entry.lines)[-1], b.number,
                                     self.warn, self.default_year, reported)
        if not task.lead_units:
            self.warn("missing_lead", f"{where}：无法确定牵头单位", entry.lines[0], b.number)
        return task

    @staticmethod
    def _missing_parts(b: _ItemBuilder, item: DraftItem) -> list[str]:
        """What an item of the genre should have and this one lacks."""
        if b.has_children:
            return []           # the parent of 19-1…: its policy text is all it has
        if "explanation" in b.seen:
            return [] if item.explanation else ["情况说明为空"]
        problems = []
        if not b.seen & {"goal", "tasks", "measures"}:
            problems.append("只有政策原文，缺少落实目标或情况说明")
            return problems
        for section in ("tasks", "measures"):
            if section not in b.seen:
                problems.append(f"缺少{SECTION_NAMES[section]}")
            elif not b.entries[section]:
                problems.append(f"{SECTION_NAMES[section]}没有条目")
        if not b.contact_seen:
            problems.append("缺少联系人行")
        return problems

    # ----------------------------------------------------------------- front matter
    def _read_front_matter(self) -> None:
        """Title, issuer, date and batch from the lines before the first chapter/item;
        every one of those lines is kept verbatim in ``preamble``."""
        draft = self.draft
        lines = [line for block in self.front for line in block.lines]
        draft.preamble = [line.raw.strip() for line in lines]
        squashed = [_unmark(squash(line.norm)) for line in lines]
        block_of = [bi for bi, block in enumerate(self.front) for _ in block.lines]
        span = _title_span(squashed, block_of)
        if span is not None:
            start, end = span
            # Half-width brackets are a typing variant ("(第一批)"): one title, one spelling.
            draft.title = _join_lines([line.text for line in lines[start:end]]).replace("(", "（").replace(")", "）")
            # "关于印发《X》的通知" is the cover letter; the plan is X.
            if (m := re.search(r"印发《(.+)》", squash(draft.title))):
                draft.title = m.group(1)
            head = [line.text for line in lines[:start]]
            if 0 < len(head) <= 3 and not any(re.search(r"[。：:，]", h) for h in head) \
                    and len("".join(head)) <= _ISSUER_MAX:
                draft.issuer = "".join(head)
        for s in squashed:
            m = re.fullmatch(r"(\d{4})年(\d{1,2})月(\d{1,2})日", s)
            if m:
                try:
                    draft.issued_on = date(int(m[1]), int(m[2]), int(m[3]))
                    break
                except ValueError:
                    continue
        for s in ([squash(draft.title)] if draft.title else []) + squashed:
            m = re.search(r"第[一二三四五六七八九十\d]{1,4}批", s)
            if m:
                draft.batch = m.group(0)
                break
        if draft.issued_on:
            self.default_year = draft.issued_on.year
        elif draft.title and (m := re.search(r"(20\d\d)年", squash(draft.title))):
            self.default_year = int(m[1])

    # ----------------------------------------------------------------- whole document
    def _finish(self) -> None:
        draft = self.draft
        if self.in_front or not draft.items:
            raise _NotACompilation("未识别到任何政策条目（“第N项”）")
        if not any(item.goal is not None or item.explanation is not None or item.tasks
                   or item.policy_text for item in draft.items):
            raise _NotACompilation("“第N项”下没有可识别的政策原文、落实目标或工作任务")
        if not draft.chapters:
            draft.chapters.append(DraftChapter(1, UNNAMED_CHAPTER))
            for item in draft.items:
                item.chapter = 1
        elif (before := [item for item in draft.items if item.chapter == _NO_CHAPTER_YET]):
            # Items before the first chapter heading: the heading was lost or never
            # written.  They form an unnamed chapter of their own, ahead of the others.
            numbers = {c.number for c in draft.chapters}
            number = 0 if 0 not in numbers else min(numbers) - 1
            draft.chapters.insert(0, DraftChapter(number, UNNAMED_CHAPTER))
            for item in before:
                item.chapter = number
            self.warn("before_first_chapter",
                      f"第{before[0].source_lines[0]}行起的 {len(before)} 个事项（第{before[0].number}项"
                      f"{'—第' + before[-1].number + '项' if len(before) > 1 else ''}）位于第一个章节标题之前，"
                      f"已归入“{UNNAMED_CHAPTER}”", before[0].source_lines[0], before[0].number)
        _warn_duplicates(draft)
        draft.warnings.sort(key=lambda w: (w.line or 0))


# =========================================================================== duplicates

#: Paragraphs shorter than this are too generic to call copies (``培育高价值专利。``).
_DUP_MIN_CHARS = 20
#: Paragraphs this similar (Jaccard index of their character 4-grams) are near-copies.
_DUP_SIMILARITY = 0.7


#: A 4-gram met in more paragraphs than this is common wording, not evidence of a copy: it is no
#: longer indexed, so that each paragraph is compared with a bounded number of others (the check
#: stays linear in the document's size; verbatim copies are found by their key whatever their number).
_DUP_POSTINGS = 24


def _near_copy(j: int, item, paragraphs, grams, index) -> tuple[int, float] | None:
    """The first earlier paragraph of another item that shares most of paragraph ``j``'s 4-grams."""
    shared: dict[int, int] = {}
    for gram in grams[j]:
        postings = index.setdefault(gram, [])
        if len(postings) >= _DUP_POSTINGS:
            continue
        for i in postings:
            shared[i] = shared.get(i, 0) + 1
        postings.append(j)
    for i, count in sorted(shared.items()):
        if paragraphs[i][0] is item:
            continue
        similarity = count / (len(grams[i]) + len(grams[j]) - count)
        if similarity >= _DUP_SIMILARITY:
            return i, similarity
    return None


def _warn_duplicates(draft: Draft) -> None:
    """Report a paragraph that repeats one of *another* item, verbatim or nearly.

    Copies between items are a common mistake of compilations (an office pastes the
    plan of a similar item and forgets to adapt it); the office decides in review.
    Candidates are found through an index of character 4-grams, so only paragraphs
    that share a good part of their text are compared."""
    paragraphs: list[tuple[DraftItem, str, int | None]] = []
    keys: list[str] = []
    for item in draft.items:
        texts = [(label, text, item.source_lines[0]) for label, text in
                 (("政策原文", item.policy_text), ("落实目标", item.goal), ("情况说明", item.explanation))
                 if text]
        texts += [(f"{SECTION_NAMES['tasks' if t.kind == 'task' else 'measures']}第{t.seq}条", t.text,
                   t.source_lines[0] if t.source_lines else None) for t in item.tasks]
        for label, text, line in texts:
            key = re.sub(r"[\W_]+", "", canon(text))
            if len(key) >= _DUP_MIN_CHARS:
                paragraphs.append((item, label, line))
                keys.append(key)
    grams = [{key[i:i + 4] for i in range(len(key) - 3)} for key in keys]
    index: dict[str, list[int]] = {}
    verbatim: dict[str, list[int]] = {}      # key -> its first paragraphs, one per item (two at most)
    for j, (item, label, line) in enumerate(paragraphs):
        best = None
        firsts = verbatim.setdefault(keys[j], [])
        other = next((i for i in firsts if paragraphs[i][0] is not item), None)
        if other is not None:
            best = (other, 1.0)
        if len(firsts) < 2 and all(paragraphs[i][0] is not item for i in firsts):
            firsts.append(j)
        if best is None:
            best = _near_copy(j, item, paragraphs, grams, index)
        if best is None:
            continue
        i, similarity = best
        other, other_label, _ = paragraphs[i]
        how = "完全相同" if keys[i] == keys[j] else f"高度相似（相似度{similarity:.0%}）"
        draft.warnings.append(DraftWarning(
            "duplicate_text",
            f"第{item.number}项 {label}与第{other.number}项 {other_label}{how}，请核实是否误复制",
            line, item.number))
