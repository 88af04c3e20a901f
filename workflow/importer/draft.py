"""The plain structure the parser produces and the loader consumes.

No database here: a draft can be reviewed, printed and tested on its own, and
only becomes rows once the office confirms it (see ``load.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from workflow.vocabulary import ClauseSource, TaskKind

#: The chapter that holds items written before any chapter heading (shown without a number).
UNNAMED_CHAPTER = "（未分章）"


@dataclass
class DraftWarning:
    code: str            # stable machine code, e.g. "unplaced_fragment", "bad_deadline"
    message: str         # Chinese, shown to the office in the review
    line: int | None = None      # 1-based source line, where there is one
    item: str | None = None      # item number ("19-1") it concerns, where there is one


@dataclass
class DraftContact:
    name: str
    phone: str | None = None


@dataclass
class DraftTask:
    kind: TaskKind
    seq: int                     # 1-based order within (item, kind)
    text: str
    lead_units: list[str] = field(default_factory=list)         # names as written
    responsible_units: list[str] = field(default_factory=list)  # co-responsible units as written
    sections: list[str] = field(default_factory=list)           # 责任科室
    section_units: dict[str, str] = field(default_factory=dict) # section -> unit it belongs to, as written
    deadline: date | None = None
    deadline_text: str | None = None    # as written, e.g. "2022年12月", "长期"
    long_term: bool = False
    clause_source: str = ClauseSource.OWN   # see workflow/vocabulary.py ClauseSource
    source_lines: list[int] = field(default_factory=list)
    #: People named as 牵头领导 / 责任领导: a person leads, not a unit.
    leaders: list[str] = field(default_factory=list)
    #: Addressees that name nobody in particular (各有关单位, 有关部门按职责分工负责), kept as written.
    addressees: list[str] = field(default_factory=list)
    #: A deadline found only inside the task's sentence ("2022年10月底前完成…"): proposed in the
    #: review, never taken without the office (``deadline`` stays None).
    deadline_proposal: str | None = None
    note: str | None = None             # a table's 备注


@dataclass
class DraftItem:
    number: str                 # "1", "19", "19-1", "36-2"
    parent: str | None          # "19" for "19-1", else None
    chapter: int                # 1-based chapter number
    policy_text: str = ""       # 政策原文
    policy_leads: list[str] = field(default_factory=list)   # provincial 牵头单位 named in the policy text
    goal: str | None = None     # 落实目标
    explanation: str | None = None   # 情况说明 (item does not apply)
    subtitle: str | None = None      # e.g. "内资企业部分" for 36-1
    owner_units: list[str] = field(default_factory=list)     # from the contact line "（X牵头，…）"
    contacts: list[DraftContact] = field(default_factory=list)
    tasks: list[DraftTask] = field(default_factory=list)
    source_lines: list[int] = field(default_factory=list)    # first and last line of the item
    complete: bool = True       # False when the document ends before the item does

    @property
    def applicable(self) -> bool:
        return self.explanation is None


@dataclass
class DraftChapter:
    number: int
    title: str
    source_line: int | None = None   # 1-based line of the heading (for line coverage)


@dataclass
class DraftColumn:
    """A table column and the field the importer reads it as (``TABLE_FIELDS`` keys, or "ignore")."""
    sheet: str              # sheet name (.xlsx) or "表N" (.docx)
    index: int              # 0-based column index in its sheet/table
    header: str             # the header as written (merged header rows joined with "/")
    field: str              # what it is read as
    sample: str = ""        # the first non-empty value under it, for the review


@dataclass
class Draft:
    #: Which shape of the family was read (workflow.vocabulary.DocumentShape).
    shape: str = "compilation"
    title: str | None = None
    issuer: str | None = None
    issued_on: date | None = None
    batch: str | None = None
    chapters: list[DraftChapter] = field(default_factory=list)
    items: list[DraftItem] = field(default_factory=list)
    warnings: list[DraftWarning] = field(default_factory=list)
    preamble: list[str] = field(default_factory=list)   # front matter lines kept verbatim
    line_count: int = 0
    #: Input lines removed before parsing (running headers/footers, page numbers): line -> reason code.
    removed: dict[int, str] = field(default_factory=dict)
    #: For tables: every column read and the field chosen for it (the review lets the office change it).
    columns: list[DraftColumn] = field(default_factory=list)


class DocumentError(Exception):
    """A fatal problem with the document: nothing is written. ``message`` is Chinese."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class StructureNotFound(DocumentError):
    """The document was read but no shape of the family fits it. ``found`` says, in Chinese,
    what was found (lines, headings, clauses, tables and their columns) for the review."""

    def __init__(self, message: str, found: list[str] | None = None):
        super().__init__(message)
        self.found = list(found or [])
