"""Parse a task list in running text (分工方案, 任务分解, 重点工作责任分工, 实施意见) into a :class:`Draft`.

The documents of this shape have no ``第N项``; their skeleton is::

    front matter (issuer, 关于印发《…》的通知, addressees line, date, the plan's title, a preamble)
    一、总体要求 / 指导思想 / 工作目标      ← prose chapters: structure, never tasks
    二、重点任务
    （一）group title。introductory sentence(s)        ← structure, never a task
    1. task …（牵头单位：…；责任单位：…；完成时限：…）       (a) the clause inline
    （1）task …                                         (b) the clause as label lines:
    牵头单位：…                                              one line per label
    完成时限：…
    （1）… （2）… （牵头单位：…）                          (c) one clause after several tasks
    三、保障措施                                       ← its tasks are measures

The lines come already classified by ``parse._classify`` (the same normalisation as the
compilation grammar); this module glues them into paragraphs with its own small rule (a label
line starts a paragraph of its own, a heading never swallows the next line) and places every
paragraph into the draft.  Clauses are read by ``parse._parse_clause``.

Judgement calls (the loader and the review rely on them):

* A chapter with no task in it (总体要求, 指导思想, 工作目标, a 保障措施 written as prose) is not a
  chapter of the plan: its heading and text go to ``Draft.preamble``, as does the introduction of a
  task chapter (text between its heading and its first group or task).
* Each group ``（一）`` is one item (number = a running counter over the document, subtitle = the
  group's title, policy_text = its introduction); a chapter's tasks outside any group form one item
  titled like the chapter.  A group without a task and without a clause stays an item with its text.
* The first numbering style met in an item is its task style (``1.`` / ``1、`` / ``（1）`` / ``1）``
  / ``①``); an entry in another style inside a task is a detail of that task, kept in its text.
* A clause standing on its own (bracketed, or label lines) closes every task of the item still
  without one: ``clause_source`` "own" when it closes one task, "shared" when several.  An inline
  clause belongs to its own task only: the task before it, if it has none, is missing its clause
  (``missing_lead``), it does not borrow the next one's.
* A document with neither a numbered task nor a clause naming a unit is not a task list:
  :class:`StructureNotFound` says what was found.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from workflow.vocabulary import ClauseSource, TaskKind

from .draft import (UNNAMED_CHAPTER, Draft, DraftChapter, DraftContact, DraftItem, DraftTask,
                    DraftWarning, StructureNotFound)
from .parse import (CLAUSE_LABELS, CONTACT, PAGE, SECTION_LABELS, TOC, _alt, _Assembler,
                    _Block, _clause_start, _Line, _parse_clause, _parse_contact, read_deadline_and_report)
from .units import canon, cn_number, no_deadline_message, propose_deadline, squash

# =========================================================================== grammar

_CN = "[一二三四五六七八九十百零〇两]+"

#: ``（一）`` starts a group (with its title, maybe its introduction on the same line).
GROUP_RE = re.compile(rf"^（(?P<n>{_CN})）\s*(?P<rest>.*)$")
#: ``一、`` / ``第一部分`` starts a chapter (its title, maybe an introduction after the first 。).
HEADING_RE = re.compile(rf"^(?:第(?P<n1>{_CN}|\d+)(?:章|部分|篇)|(?P<n2>{_CN})、)\s*(?P<rest>.+)$")
#: A task's number, and the numbering style it is written in.
TASK_RE = re.compile(r"^(?:(?P<dot>\d{1,3})\.(?!\d)|(?P<comma>\d{1,3})、|（(?P<paren>\d{1,3})）"
                     r"|(?P<half>\d{1,3})）|(?P<circle>[①-⑳]))\s*")
#: A heading's title is its first sentence, when short; longer, it is a sentence, not a title.
_TITLE_MAX = 40

#: Chapters (or groups) whose tasks are measures.
MEASURE_TITLES = SECTION_LABELS["measures"] + ("组织保障", "保障举措", "保障机制", "工作保障")
_MEASURE_RE = re.compile(_alt(MEASURE_TITLES))

#: Every label word of the clause grammar (parse.py's CLAUSE_LABELS, the leaders' included).
_ALL_LABELS = {word for words in CLAUSE_LABELS.values() for word in words}
_LABEL_RE = re.compile(rf"(?P<label>{_alt(_ALL_LABELS)})\s*：")
#: A line that starts with a clause label (``牵头单位：区发改局``) is a clause line of its own.
_LABEL_LINE_RE = re.compile(rf"^(?:{_alt(_ALL_LABELS)})\s*：")
#: Labels naming units: a clause with one of them makes the document a task list.
_UNIT_LABELS = set(CLAUSE_LABELS["lead"] + CLAUSE_LABELS["resp"])

#: The document's own convention that the first unit of a list leads (``排在第一位的为牵头单位``):
#: a clause naming only 责任单位 then has its first unit as the lead.
_FIRST_LEADS_RE = re.compile(r"(?:排在|排|列在|列|位列)(?:第一位|首位)的?(?:单位|部门)?(?:为|是)牵头(?:单位|部门)")

# Paragraph roles.
HEADING, GROUP, TASK, LABEL, CLAUSE, CONTACT_ROLE, TEXT, PAGE_ROLE, TOC_ROLE = (
    "heading", "group", "task", "label", "clause", "contact", "text", "page", "toc")
_TERMINAL = "。！？!?）…"
_CLOSING_QUOTES = "”’」』"


# =========================================================================== pass 2: paragraphs

def _role(line: _Line) -> str:
    norm = line.norm
    if line.kind == PAGE:
        return PAGE_ROLE
    if line.kind == TOC:
        return TOC_ROLE
    if line.kind == CONTACT or norm.startswith("联系人"):
        return CONTACT_ROLE
    if _LABEL_LINE_RE.match(norm):
        return LABEL
    if TASK_RE.match(norm):
        return TASK
    if GROUP_RE.match(norm):
        return GROUP
    if HEADING_RE.match(norm) and _heading_parts(HEADING_RE.match(norm)["rest"])[0]:
        return HEADING
    if _clause_at(norm, 0)[0] == 0:
        return CLAUSE          # （牵头单位：…）standing on its own line
    return TEXT


@dataclass
class _Para:
    block: _Block
    role: str
    depth: int = 0          # unclosed （ so far, counted as the paragraph grows (linear)

    def open(self) -> bool:
        """Whether the next plain line continues this paragraph."""
        if self.role == GROUP and self.depth > 0:
            return True         # "（一）…（牵头单位：…；" wrapped: the clause goes on
        if self.role in (HEADING, GROUP, CLAUSE, CONTACT_ROLE, PAGE_ROLE, TOC_ROLE):
            return False        # a heading never swallows the sentence under it
        if self.depth > 0:
            return True
        last = self.block.lines[-1].norm.rstrip()
        if len(last) > 1 and last[-1] in _CLOSING_QUOTES:
            last = last[:-1]
        if self.role == LABEL:
            return last[-1:] in ("、", "，", "；")      # a list of units wrapped onto the next line
        return bool(last) and last[-1] not in _TERMINAL


def _paragraphs(lines: list[_Line]) -> list[_Para]:
    paras: list[_Para] = []
    current: _Para | None = None
    for line in lines:
        if not line.norm:
            continue
        role = _role(line)
        if role == PAGE_ROLE:
            # A page number does not interrupt the paragraph it falls into.
            paras.append(_Para(_Block([line], PAGE), PAGE_ROLE))
            continue
        # An unclosed bracket goes on whatever the next line starts with (a clause wrapped after
        # its first label: "…（牵头单位：县工信局；" / "责任单位：…）").
        if current is not None and current.open() and (role == TEXT or role == LABEL and current.depth > 0):
            current.block.lines.append(line)
            current.depth += line.norm.count("（") - line.norm.count("）")
            continue
        current = _Para(_Block([line], role), role, line.norm.count("（") - line.norm.count("）"))
        paras.append(current)
    for para in paras:
        para.block.finish()
    return _merge_labels(paras)


def _merge_labels(paras: list[_Para]) -> list[_Para]:
    """Consecutive label lines (牵头单位：… / 责任单位：… / 完成时限：…) are one clause."""
    out: list[_Para] = []
    texts: list[str] = []           # the texts of the run of label lines being merged into out[-1]
    for para in paras + [None]:
        if para is not None and para.role == LABEL and out and out[-1].role == LABEL:
            if not texts[-1].endswith(("；", "，", "、", ";", ",")):
                texts.append("；")
            texts.append(para.block.text)
            out[-1].block.lines.extend(para.block.lines)
            continue
        if len(texts) > 1:          # joined once per run: linear however long the run
            out[-1].block.text = "".join(texts)
            out[-1].block.norm = canon(out[-1].block.text)
        if para is not None:
            out.append(para)
            texts = [para.block.text]
    return out


def _heading_parts(rest: str) -> tuple[str, str]:
    """``提升政务服务效能。围绕…`` → (title, introduction); a title is short, no title → ("", rest)."""
    rest = rest.strip()
    cut = rest.find("。")
    title, intro = (rest[:cut], rest[cut + 1:].strip()) if cut >= 0 else (rest, "")
    title = title.strip().rstrip("：:；")
    if not title or len(title) > _TITLE_MAX or "；" in title:
        return "", rest
    return title, intro


# =========================================================================== clauses

@dataclass
class _Read:
    """A clause read for a task list: parse._Clause plus the people and generic addressees."""
    clause: object
    leaders: list[str]
    addressees: list[str]


def _read_clause(norm: str, text: str, lines: list[int]) -> _Read:
    """A clause as parse.py's grammar reads it, with the people it names (``牵头领导``) and the
    addressees that name no unit (``区直各有关单位``) kept apart from its units."""
    clause = _parse_clause(norm, text, lines)
    return _Read(clause, list(clause.leaders), list(clause.addressees))


#: ``（县发展改革局牵头，县财政局、县自然资源局配合）``: a clause written without labels.
_PLAIN = r"(?:[^（）：。]|（[^（）：。]*）)"     # a character, or a bracket inside a name: 各乡镇（街道）
_UNLABELLED_RE = re.compile(rf"^（(?P<lead>{_PLAIN}{{2,120}}?)(?:共同牵头|牵头负责|牵头)(?:[，、；](?P<rest>{_PLAIN}*))?）$")
_HELPERS_RE = re.compile(r"(?:配合|参与|协同|协助|协办)$")
_ORG_END_RE = re.compile(r"(?:局|委|办|中心|院|所|会|公司|行|队|站|部|厅|政府|镇|街道|乡|室|处)$")


def _clause_at(norm: str, body: int) -> tuple[int | None, str]:
    """Where a paragraph's trailing clause starts and the clause to read, or (None, "").

    parse.py's ``_clause_start`` finds a labelled clause; a bracket written without labels
    (``（A牵头，B、C配合）``) is read as ``（牵头单位：A；责任单位：B、C）`` when every lead it names
    ends like a body: ``（由政府牵头）`` or a sentence in brackets is no clause."""
    start = _clause_start(norm, body)
    if start is not None:
        return start, norm[start:]
    end = len(norm.rstrip("。；"))
    if not norm[:end].endswith("）"):
        return None, ""
    depth, i = 0, end - 1
    while i >= body:
        depth += {"）": 1, "（": -1}.get(norm[i], 0)
        if depth == 0:
            break
        i -= 1
    m = _UNLABELLED_RE.match(norm[i:end]) if i >= body else None
    leads = [re.sub(r"（[^（）]*）$", "", p) for p in re.split(r"[、，]", squash(m["lead"]))] if m else []
    if m is None or not all(_ORG_END_RE.search(p) for p in leads if p):
        return None, ""
    rest = squash(m["rest"] or "")
    return i, f"（牵头单位：{m['lead']}；责任单位：{_HELPERS_RE.sub('', rest)}）" if rest else \
        f"（牵头单位：{m['lead']}）"


# =========================================================================== pass 3: assembler

@dataclass
class _Task:
    kind: str
    style: str
    parts: list[str]
    lines: list[int]
    read: _Read | None = None
    source: str = ClauseSource.OWN
    raw: list[str] = field(default_factory=list)        # its lines as written (for a prose chapter)


@dataclass
class _Group:
    title: str | None
    first_line: int
    kind: str
    last_line: int = 0
    intro: list[str] = field(default_factory=list)
    tasks: list[_Task] = field(default_factory=list)
    style: str | None = None
    owner_units: list[str] = field(default_factory=list)
    contacts: list[DraftContact] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)        # heading and introduction lines as written
    heading: str = ""            # the heading after its number, as written (title + what follows)
    inline_intro: bool = False   # whether intro[0] is written on the heading line
    intro_lines: list[int] = field(default_factory=list)


@dataclass
class _Chapter:
    number: int | None
    title: str
    line: int | None
    kind: str
    raw: list[str] = field(default_factory=list)        # heading and introduction lines as written
    intro: list[str] = field(default_factory=list)      # the introduction's paragraphs
    groups: list[_Group] = field(default_factory=list)


def _style(m: re.Match) -> str:
    return next(name for name, value in m.groupdict().items() if value is not None)


#: A line naming an issuer (``中共某市委办公室`` / ``某县人民政府``): a heading line of its own, never
#: the first line of a title set over several lines.
_ISSUER_LINE_RE = re.compile(r"^[^。，：；、《》“”]{2,30}(?:办公室|办公厅|人民政府|委员会|政府)(?:文件)?$")


def _split_issuers(blocks: list[_Block]) -> list[_Block]:
    """Front-matter paragraphs cut after each issuer line, so that parse.py's title reader does not
    take the issuers stacked above a title for the title's first lines."""
    out: list[_Block] = []
    for block in blocks:
        current: list[_Line] = []
        for line in block.lines:
            current.append(line)
            if _ISSUER_LINE_RE.match(squash(line.norm)):
                out.append(_Block(current, block.kind))
                current = []
        if current:
            out.append(_Block(current, block.kind))
    for piece in out:
        piece.finish()
    return out


def _raw(block: _Block) -> list[str]:
    return [line.raw.strip() for line in block.lines]


class _TaskListAssembler:
    def __init__(self, paras: list[_Para], line_count: int, item_lines: int = 0):
        # 第N项 lines whose items the compilation grammar found empty: counted for StructureNotFound.
        self.item_lines = item_lines
        self.paras = paras
        self.draft = Draft(shape="task_list", line_count=line_count)
        self.chapters: list[_Chapter] = []
        self.chapter: _Chapter | None = None
        self.group: _Group | None = None
        self.default_year: int | None = None
        self.counts = {"headings": 0, "groups": 0, "entries": 0, "clauses": 0, "unit_clauses": 0}
        self.first_leads = any(_FIRST_LEADS_RE.search(squash(p.block.norm)) for p in paras)

    def warn(self, code: str, message: str, line: int | None = None, item: str | None = None) -> None:
        self.draft.warnings.append(DraftWarning(code, message, line, item))

    def unplaced(self, block: _Block, why: str) -> None:
        for line in block.lines:
            self.warn("unplaced_fragment", f"第{line.no}行：{why}“{line.text}”", line.no)

    # ----------------------------------------------------------------- main loop
    def run(self) -> Draft:
        start = next((i for i, p in enumerate(self.paras) if p.role in (HEADING, GROUP, TASK)),
                     len(self.paras))
        self._read_front_matter([p.block for p in self.paras[:start] if p.role != PAGE_ROLE])
        for para in self.paras[:start]:
            if para.role == PAGE_ROLE:
                self._page(para.block)
        for para in self.paras[start:]:
            self._dispatch(para)
        return self._finish()

    def _read_front_matter(self, blocks: list[_Block]) -> None:
        """parse.py's front-matter reader (title, issuer, date, batch, preamble), on our paragraphs."""
        reader = _Assembler([], self.draft.line_count)
        reader.front = _split_issuers(blocks)
        reader._read_front_matter()
        for name in ("title", "issuer", "issued_on", "batch", "preamble"):
            setattr(self.draft, name, getattr(reader.draft, name))
        self.default_year = reader.default_year

    def _date_at_the_end(self) -> None:
        """A document signed at its end (issuer, then the date, after the plan): the date is the
        last date-only line of the preamble when the front matter has none."""
        if self.draft.issued_on is not None:
            return
        for line in reversed(self.draft.preamble):
            m = re.fullmatch(r"(\d{4})年(\d{1,2})月(\d{1,2})日", squash(line))
            if m:
                try:
                    self.draft.issued_on = date(int(m[1]), int(m[2]), int(m[3]))
                except ValueError:
                    continue
                return

    def _page(self, block: _Block) -> None:
        self.warn("page_number", f"第{block.first}行：疑似页码“{block.text}”，已忽略", block.first)

    def _dispatch(self, para: _Para) -> None:
        block, role = para.block, para.role
        if role == PAGE_ROLE:
            self._page(block)
            return
        if role == HEADING:
            self._open_chapter(block)
            return
        if role == GROUP:
            self._open_group(block)
            return
        if self.group is not None:
            self.group.last_line = max(self.group.last_line, block.lines[-1].no)
        if role == TASK:
            self._task(block)
        elif role in (LABEL, CLAUSE):
            self._clause(block)
        elif role == CONTACT_ROLE:
            self._contact(block)
        elif role == TOC_ROLE:
            self.unplaced(block, "疑似目录行")
        else:
            self._text(block)

    # ----------------------------------------------------------------- structure
    def _open_chapter(self, block: _Block) -> None:
        m = HEADING_RE.match(block.norm)
        title, intro = _heading_parts(block.text[m.start("rest"):])
        self.counts["headings"] += 1
        self.group = None
        kind = TaskKind.MEASURE if _MEASURE_RE.search(squash(title)) else TaskKind.TASK
        self.chapter = _Chapter(cn_number(m["n1"] or m["n2"]), title, block.first, kind, _raw(block),
                                [intro] if intro else [])
        self.chapters.append(self.chapter)

    def _ensure_chapter(self, line: int) -> _Chapter:
        if self.chapter is None:
            # Groups or tasks before any chapter heading: an unnamed chapter holds them.
            self.chapter = _Chapter(None, UNNAMED_CHAPTER, None, TaskKind.TASK)
            self.chapters.append(self.chapter)
        return self.chapter

    def _open_group(self, block: _Block) -> None:
        chapter = self._ensure_chapter(block.first)
        m = GROUP_RE.match(block.norm)
        body = m.start("rest")
        start, clause_norm = _clause_at(block.norm, body)
        heading = block.text[body:start].strip()
        title, intro = _heading_parts(heading)
        self.counts["groups"] += 1
        kind = TaskKind.MEASURE if title and _MEASURE_RE.search(squash(title)) else chapter.kind
        self.group = group = _Group(title or None, block.first, kind, block.lines[-1].no, raw=_raw(block),
                                    heading=heading)
        chapter.groups.append(group)
        if start is not None:
            # "（一）实施技改项目50个。（牵头单位：…）": a group written as one task, with its clause.
            self.counts["entries"] += 1
            task = _Task(kind, "", [heading], block.line_nos)
            task.read = self._read(clause_norm, block.text[start:], [])
            group.tasks.append(task)
            return
        if not title:
            intro = heading
        if intro:
            group.intro.append(intro)
            group.inline_intro = True

    def _current_group(self, block: _Block) -> _Group:
        """The open group, or the chapter's own item for tasks written outside any group."""
        if self.group is None:
            chapter = self._ensure_chapter(block.first)
            self.group = _Group(None, block.first, chapter.kind, block.lines[-1].no)
            chapter.groups.append(self.group)
        return self.group

    # ----------------------------------------------------------------- content
    def _task(self, block: _Block) -> None:
        m = TASK_RE.match(block.norm)
        style = _style(m)
        self.counts["entries"] += 1
        group = self.group
        start, clause_norm = _clause_at(block.norm, m.end())
        if group is not None and group.tasks and group.style and style != group.style \
                and group.tasks[-1].read is None:
            # "（1）…" under "1. …": a detail of the task, kept in its text as written.
            task = group.tasks[-1]
            task.parts.append(block.text[:start].strip() if start is not None else block.text)
            task.lines.extend(block.line_nos)
            task.raw += _raw(block)
        else:
            group = self._current_group(block)
            group.style = group.style or style
            text = block.text[m.end():start].strip()
            task = _Task(group.kind, style, [text] if text else [], block.line_nos, raw=_raw(block))
            group.tasks.append(task)
        if start is not None:
            task.read = self._read(clause_norm, block.text[start:], [])
            task.source = ClauseSource.OWN

    def _read(self, norm: str, text: str, lines: list[int]) -> _Read:
        read = _read_clause(norm, text, lines)
        self.counts["clauses"] += 1
        if _LABEL_RE.search(norm) and any(label in norm for label in _UNIT_LABELS):
            self.counts["unit_clauses"] += 1
        return read

    def _clause(self, block: _Block) -> None:
        """A clause on its own (bracketed, or label lines) closes every task still without one."""
        group = self.group
        waiting = [t for t in group.tasks if t.read is None] if group else []
        if group is not None and not group.tasks and group.intro:
            # A group written as one paragraph and its clause: the paragraph, as written from its
            # heading on, is the task.
            parts = [group.heading] + group.intro[1 if group.inline_intro else 0:]
            waiting = [_Task(group.kind, "", parts, [group.first_line] + group.intro_lines)]
            group.tasks, group.intro = waiting, []
        if not waiting:
            self._read(block.norm, block.text, block.line_nos)
            self.unplaced(block, "责任分工没有对应的任务条目")
            return
        read = self._read(block.norm, block.text, block.line_nos)
        for task in waiting:
            task.read = read
            task.source = ClauseSource.OWN if len(waiting) == 1 else ClauseSource.SHARED

    def _contact(self, block: _Block) -> None:
        if self.group is None:
            self.unplaced(block, "联系人行不属于任何任务组")
            return
        owners, contacts, rejected, unread = _parse_contact(block.norm)
        group = self.group
        group.owner_units = group.owner_units or owners
        group.contacts += contacts
        for piece in rejected + unread:
            self.warn("unplaced_fragment", f"第{block.first}行：联系人行中无法识别“{piece}”", block.first)

    def _text(self, block: _Block) -> None:
        group = self.group
        if group is None:
            if self.chapter is None:
                self.unplaced(block, "未归入任何章节的文字")
            else:
                self.chapter.raw += _raw(block)       # a chapter's introduction
                self.chapter.intro.append(block.text)
            return
        if not group.tasks:
            group.intro.append(block.text)            # a group's introduction
            group.intro_lines += block.line_nos
            group.raw += _raw(block)
        elif group.tasks[-1].read is None:
            group.tasks[-1].parts.append(block.text)  # the open task goes on
            group.tasks[-1].lines.extend(block.line_nos)
            group.tasks[-1].raw += _raw(block)
        else:
            self.unplaced(block, "未归入任何任务的文字")

    # ----------------------------------------------------------------- whole document
    def _finish(self) -> Draft:
        draft = self.draft
        if not self.counts["entries"] and not any(g.tasks for c in self.chapters for g in c.groups) \
                or not self.counts["unit_clauses"]:
            raise self._not_found()
        numbers: set[int] = set()
        counter = 0
        for chapter in self.chapters:
            if not any(t.read for g in chapter.groups for t in g.tasks) \
                    and not any(g.owner_units for g in chapter.groups):
                # A prose chapter (总体要求, 工作目标, 基本原则 with its numbered principles …): no task
                # in it names a unit, so its entries are structure; its text is kept in the preamble.
                draft.preamble += chapter.raw + [line for g in chapter.groups
                                                 for line in g.raw + [r for t in g.tasks for r in t.raw]]
                continue
            number = chapter.number
            if number is None or number in numbers:
                number = max(numbers, default=0) + 1
            numbers.add(number)
            draft.preamble += chapter.intro       # a task chapter's introduction: structure, not a task
            draft.chapters.append(DraftChapter(number, chapter.title, chapter.line))
            for group in chapter.groups:
                counter += 1
                draft.items.append(self._item(str(counter), number, chapter, group))
        if not draft.items:
            raise self._not_found()
        self._date_at_the_end()
        draft.warnings.sort(key=lambda w: (w.line or 0))
        return draft

    def _item(self, number: str, chapter_no: int, chapter: _Chapter, group: _Group) -> DraftItem:
        item = DraftItem(number=number, parent=None, chapter=chapter_no,
                         policy_text="\n".join(group.intro),
                         subtitle=group.title if group.title is not None else chapter.title,
                         owner_units=list(group.owner_units), contacts=list(group.contacts),
                         source_lines=[group.first_line, max(group.last_line, group.first_line)])
        seqs = {TaskKind.TASK: 0, TaskKind.MEASURE: 0}
        reported: set[int] = set()
        for task in group.tasks:
            seqs[task.kind] += 1
            item.tasks.append(self._draft_task(item, task, seqs[task.kind], reported))
        return item

    def _draft_task(self, item: DraftItem, t: _Task, seq: int, reported: set[int]) -> DraftTask:
        where = f"第{item.number}组“{item.subtitle}”第{seq}条"
        task = DraftTask(kind=t.kind, seq=seq, text="\n".join(t.parts), source_lines=sorted(set(t.lines)))
        line = t.lines[0]
        if not task.text:
            self.warn("empty_task", f"{where}：没有任务内容", line, item.number)
        if t.read is None:
            task.clause_source = ClauseSource.OWNER
            task.lead_units = list(item.owner_units)
            task.deadline_proposal = propose_deadline(task.text, self.default_year)
            self.warn("missing_deadline", no_deadline_message(where, task.deadline_proposal,
                                                              "未写明责任分工和完成时限"), line, item.number)
        else:
            clause = t.read.clause
            task.clause_source = t.source
            task.source_lines = sorted(set(t.lines) | set(clause.lines))
            task.lead_units = list(clause.leads or item.owner_units)
            if not task.lead_units and clause.resp and self.first_leads:
                task.lead_units = clause.resp[:1]      # "排在第一位的为牵头单位", the document says
            task.responsible_units = [u for u in clause.resp if u not in task.lead_units]
            task.sections, task.section_units = list(clause.sections), dict(clause.section_units)
            task.leaders, task.addressees = list(t.read.leaders), list(t.read.addressees)
            read_deadline_and_report(task, clause, where, (clause.lines or t.lines)[-1], item.number,
                                     self.warn, self.default_year, reported)
        if not task.lead_units:
            self.warn("missing_lead", f"{where}：无法确定牵头单位", line, item.number)
        return task

    def _not_found(self) -> StructureNotFound:
        c, lines = self.counts, self.draft.line_count
        found = [f"共 {lines} 行", f"一级标题（一、）{c['headings']} 个", f"二级标题（（一））{c['groups']} 个",
                 f"编号条目（1. / （1） / 1、）{c['entries']} 条",
                 f"带“牵头单位”“责任单位”等标签的责任分工 {c['unit_clauses']} 处",
                 f"以“第N项”开头的行 {self.item_lines} 行"
                 + ("，但其下没有可识别的政策原文、落实目标或工作任务" if self.item_lines else "")]
        titles = [ch.title for ch in self.chapters if ch.title != UNNAMED_CHAPTER][:6]
        if titles:
            found.append("一级标题：" + "、".join(titles))
        message = (f"未识别到任务结构：共 {lines} 行，其中一级标题（一、）{c['headings']} 个、"
                   f"二级标题（（一））{c['groups']} 个、带“牵头单位”的分工 {c['unit_clauses']} 处、"
                   f"编号条目 {c['entries']} 条。如果这是表格，请上传 Word 或 Excel 原件；如果是实施方案汇编，"
                   "请确认每个事项以“第N项”开头；如果是任务分工方案，请确认每条任务编号（如“1.”“（1）”）"
                   "并写明牵头单位（如“（牵头单位：…）”）。")
        return StructureNotFound(message, found)


# =========================================================================== entry point

def parse_task_list(lines: list[_Line], line_count: int) -> Draft:
    """Read classified lines (``parse._classify``) as a task list; raises StructureNotFound
    when they are not one (what was found is in its ``found``)."""
    items = sum(1 for line in lines if line.kind == "item")
    return _TaskListAssembler(_paragraphs(lines), line_count, items).run()
