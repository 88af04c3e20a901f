"""From a parsed draft to rows: review first, then write in one transaction."""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select

from models import Chapter, Contact, Item, Plan, Section, Task, TaskPart, Unit, UnitAlias
from models.plan import item_owner_units, task_lead_units, task_responsible_units, task_sections
from workflow import audit
from workflow.extensions import db
from workflow.vocabulary import DocumentShape, NameDecision, TaskKind

from .draft import Draft, DraftWarning
from .names import merge_spellings
from .units import parse_deadline, unit_kind


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class NameChoice:
    """The office's decision on one name written in the document (the review's form)."""
    decision: str                 # NameDecision value
    #: ALIAS / SAME: an existing unit's name, or another name written in the document (either
    #: decision takes either: the office names a body, the importer finds where it is).
    target: str | None = None


@dataclass
class ImportChoices:
    """Everything the office decided on the review page; the review applies them and the
    confirmation writes exactly what the review with these choices showed."""
    #: By the name's field key (``name_field_key``): the form names fields so.
    names: dict[str, NameChoice] = field(default_factory=dict)
    #: A table's columns read as other fields: ``(sheet, index) -> field``.
    mapping: dict[tuple[str, int], str] | None = None
    #: Tasks (``task_key``) whose deadline found in the sentence the office takes.
    deadlines: set[str] = field(default_factory=set)


@dataclass
class NameQuestion:
    """A name the office decides on: one that is not yet a unit, or one merged into another."""
    name: str
    count: int
    proposal: str                 # NameDecision the importer proposes: new / alias / same
    proposal_target: str | None
    decision: str                 # the decision in force (the office's, else the proposal)
    target: str | None            # the unit it resolves to (None for text)

    @property
    def key(self) -> str:
        return name_field_key(self.name)


def name_field_key(name: str) -> str:
    """The form field of a name: names are free text, field names should not be."""
    return hashlib.sha1(name.encode("utf-8")).hexdigest()[:12]


@dataclass
class UnitPlan:
    """How each name written in the document maps to a unit row."""
    canonical: dict[str, str] = field(default_factory=dict)   # written name -> canonical name
    new_units: list[str] = field(default_factory=list)        # canonical names to create
    new_aliases: dict[str, str] = field(default_factory=dict)  # alias -> canonical, to create
    aliased: dict[str, str] = field(default_factory=dict)     # every written name resolved through an alias
    #: Names that are no unit (a saved decision or the office's now): kept as text on the task.
    text_names: set[str] = field(default_factory=set)
    new_text_aliases: list[str] = field(default_factory=list)  # to save as "not a unit"
    questions: list[NameQuestion] = field(default_factory=list)
    #: Choices that cannot be applied (a unit that does not exist…): the review refuses them.
    errors: list[str] = field(default_factory=list)


@dataclass
class Review:
    draft: Draft
    sha256: str
    filename: str
    counts: dict[str, int]
    warnings: list[DraftWarning]
    units: UnitPlan
    existing_plan_id: int | None = None
    #: What stops the import: each names its line. Not empty → nothing can be written.
    problems: list[DraftWarning] = field(default_factory=list)
    choices: ImportChoices = field(default_factory=ImportChoices)
    #: Deadlines found inside tasks' sentences (``apply_deadline_choices``).
    deadline_proposals: list[dict] = field(default_factory=list)

    @property
    def removed_counts(self) -> dict[str, int]:
        """Input lines removed before parsing, by reason (running header, page number …)."""
        return dict(Counter(self.draft.removed.values()))

    @property
    def already_imported(self) -> bool:
        return self.existing_plan_id is not None

    @property
    def accepted(self) -> bool:
        return not self.problems

    def problems_text(self, limit: int | None = None) -> str:
        shown = self.problems if limit is None else self.problems[:limit]
        text = "；".join(_where(p) + p.message for p in shown)
        if len(self.problems) > len(shown):
            text += f"；等共 {len(self.problems)} 处"
        return text

    def as_text(self) -> str:
        lines = [f"文件：{self.filename}（sha256 {self.sha256[:16]}…）"]
        if self.draft.title:
            lines.append(f"标题：{self.draft.title}")
        lines.append(f"读取方式：{DocumentShape.label_of(self.draft.shape)}")
        if self.removed_counts:
            lines.append("读取前已去除：" + "、".join(f"{REMOVED_LABELS.get(k, k)} {n} 行"
                                               for k, n in sorted(self.removed_counts.items())))
        for c in self.draft.columns:
            lines.append(f"  列 {c.sheet} 第{c.index + 1}列“{c.header}” → {c.field}")
        if self.already_imported:
            lines.append(f"该文件已导入（方案编号 {self.existing_plan_id}），不会重复导入。")
        if self.problems:
            lines.append(f"不能导入：有 {len(self.problems)} 处问题，请修改文件后重新导入：")
            for p in self.problems:
                lines.append(f"  [{PROBLEM_LABELS.get(p.code, p.code)}] {_where(p)}{p.message}")
        lines.append("统计：")
        for key, label in COUNT_LABELS.items():
            lines.append(f"  {label}：{self.counts.get(key, 0)}")
        if self.units.new_units:
            lines.append(f"将新建单位 {len(self.units.new_units)} 个：" + "、".join(self.units.new_units))
        merged = [q for q in self.units.questions if q.target and q.target != q.name]
        if merged:
            lines.append(f"归并的写法 {len(merged)} 个：" + "、".join(f"{q.name}→{q.target}" for q in merged))
        for p in self.deadline_proposals:
            lines.append(f"句中时限（{'已采用' if p['taken'] else '未采用'}）：第{p['item']}项 "
                         f"{TaskKind.label_of(p['kind'])}第{p['seq']}条“{p['text']}”")
        lines.append(f"提示 {len(self.warnings)} 条：")
        for w in self.warnings:
            lines.append(f"  [{WARNING_LABELS.get(w.code, w.code)}] {_where(w)}{w.message}")
        return "\n".join(lines)


def _where(w: DraftWarning) -> str:
    return f"第{w.line}行 " if w.line else ""


COUNT_LABELS = {
    "chapters": "章节", "items": "政策事项（含子项）", "sub_items": "其中子项",
    "not_applicable": "不涉及事项（情况说明）", "tasks": "工作任务", "measures": "保障措施",
    "units": "涉及单位", "parts": "承办分工", "dated": "有明确时限", "long_term": "长期",
    "no_deadline": "无明确时限", "incomplete_items": "不完整事项",
}

#: Every warning kind the importer writes (parse.py, load.py), in Chinese: the review shows these, never a code.
WARNING_LABELS = {
    "unknown_unit": "新单位", "aliased_unit": "单位别名", "bad_deadline": "时限无法识别",
    "missing_deadline": "未写明完成时限",
    "duplicate_text": "重复内容", "unplaced_fragment": "无法归位的片段", "truncated": "文档不完整",
    "repeated_label": "标签重复", "not_a_unit": "非单位表述", "page_number": "页码",
    "number_sequence": "编号不连续", "incomplete_item": "事项不完整", "missing_lead": "缺少牵头单位",
    "missing_owner": "缺少牵头联系行", "empty_task": "空条目", "possible_duplicate_plan": "可能重复导入",
    "number_mismatch": "编号不一致", "before_first_chapter": "未分章事项", "replaced_bytes": "替换字符",
    "invisible_chars": "控制字符", "repeated_header": "标题重复",
}

#: Problems that stop an import (``Review.problems``).
PROBLEM_LABELS = {
    "duplicate_item": "事项编号重复", "duplicate_chapter": "章节编号重复", "too_long": "内容过长",
    "bad_number": "编号无效", "bad_reference": "结构错误", "bad_deadline_value": "时限矛盾",
    "bad_choice": "审核选择无效",
}

#: Why an input line was removed before parsing (``Draft.removed``).
REMOVED_LABELS = {"running_header": "页眉", "running_footer": "页脚", "page_number": "页码"}


def written_unit_names(draft: Draft) -> list[str]:
    """Every unit name the draft writes, in document order, repeats included (what merges count)."""
    names: list[str] = []
    for item in draft.items:
        names += item.owner_units
        for task in item.tasks:
            names += task.lead_units + task.responsible_units
    return names


def plan_units(draft: Draft, choices: dict[str, NameChoice] | None = None) -> tuple[UnitPlan, list[DraftWarning]]:
    """Resolve every unit name in the draft, without writing anything.

    A name that is a unit, or an alias the office saved, resolves to it. Every other name is a
    question (``UnitPlan.questions``): the importer proposes to merge it with another spelling of
    the same body in this document or with an existing unit (workflow/importer/names.py), else a
    new unit; the office's ``choices`` override the proposal (a new unit, an existing unit, another
    spelling, or no unit at all)."""
    choices = choices or {}
    existing = {u.name for u in db.session.scalars(select(Unit))}
    saved = {a.alias: (a.unit.name if a.unit is not None else None) for a in db.session.scalars(select(UnitAlias))}
    written = written_unit_names(draft)
    frequency = Counter(written)
    plan = UnitPlan()
    warnings: list[DraftWarning] = []

    pending = [n for n in written if n not in existing and n not in saved]
    proposals = merge_spellings(pending, existing)
    resolved: dict[str, str | None] = {}        # name -> unit name, None = not a unit

    def resolve(name: str, depth: int = 0) -> str | None:
        if name in resolved:
            return resolved[name]
        if name in existing:
            return name
        if name in saved:
            return saved[name]
        if depth > len(proposals):
            plan.errors.append(f"“{name}”的归并关系形成了循环")
            return name
        choice = choices.get(name_field_key(name))
        proposal = proposals.get(name, name)
        if choice is None:
            target = name if proposal == name else resolve(proposal, depth + 1)
        elif choice.decision == NameDecision.NEW:
            target = name
        elif choice.decision == NameDecision.TEXT:
            target = None
        elif choice.decision in (NameDecision.ALIAS, NameDecision.SAME) and choice.target in existing:
            target = choice.target
        elif choice.decision in (NameDecision.ALIAS, NameDecision.SAME) and choice.target in frequency \
                and choice.target != name:
            target = resolve(choice.target, depth + 1)
        else:
            plan.errors.append(f"“{name}”：所选的单位“{choice.target or ''}”既不是已有单位，也不是本文件中的写法")
            target = name if proposal == name else resolve(proposal, depth + 1)
        resolved[name] = target
        return target

    for name in dict.fromkeys(written):
        target = resolve(name)
        if name not in saved and name not in existing:
            proposal = proposals.get(name, name)
            proposed = (NameDecision.NEW if proposal == name else
                        NameDecision.ALIAS if proposal in existing else NameDecision.SAME)
            decided = (NameDecision.TEXT if target is None else NameDecision.NEW if target == name
                       else NameDecision.ALIAS if target in existing else NameDecision.SAME)
            plan.questions.append(NameQuestion(
                name=name, count=frequency[name], proposal=proposed.value,
                proposal_target=None if proposal == name else proposal,
                decision=decided.value, target=target))
        if target is None:
            plan.text_names.add(name)
            if name not in saved and len(name) <= (_limit(UnitAlias, "alias") or len(name)):
                plan.new_text_aliases.append(name)
            continue
        plan.canonical[name] = target
        if target not in existing and target not in plan.new_units:
            plan.new_units.append(target)
        if target != name:
            plan.aliased[name] = target
            if name not in saved:
                plan.new_aliases[name] = target
            how = "按已保存的别名" if name in saved else "按同一单位的不同写法"
            warnings.append(DraftWarning("aliased_unit", f"“{name}”{how}归入“{target}”（{frequency[name]} 处）"))
    for name in sorted(plan.text_names):
        if name not in saved:
            warnings.append(DraftWarning("not_a_unit", f"“{name}”按审核决定不作为单位，作为文字保留在任务中"))
    if existing:
        for name in plan.new_units:
            warnings.append(DraftWarning("unknown_unit", f"“{name}”不在单位库中，将新建"))
    return plan, warnings


def apply_text_names(draft: Draft, text_names: set[str]) -> None:
    """Names that are no unit leave the unit lists for the task's addressees; a task left
    without a lead is led by its item's owner, as a task without a clause is."""
    if not text_names:
        return
    for item in draft.items:
        item.owner_units = [n for n in item.owner_units if n not in text_names]
        for task in item.tasks:
            moved = [n for n in task.lead_units + task.responsible_units if n in text_names]
            if not moved:
                continue
            task.addressees = list(dict.fromkeys(task.addressees + moved))
            task.lead_units = [n for n in task.lead_units if n not in text_names] or list(item.owner_units)
            task.responsible_units = [n for n in task.responsible_units if n not in text_names]


def task_key(item_number: str, kind: str, seq: int) -> str:
    return f"{item_number}/{kind}/{seq}"


def apply_deadline_choices(draft: Draft, accepted: set[str]) -> list[dict]:
    """The deadlines found inside tasks' sentences: each proposed, and those the office takes
    set on the task. Returns the proposals for the review."""
    year = draft.issued_on.year if draft.issued_on else None
    proposals = []
    for item in draft.items:
        for task in item.tasks:
            if not task.deadline_proposal or task.deadline or task.long_term:
                continue
            key = task_key(item.number, task.kind, task.seq)
            when, long_term, ok = parse_deadline(task.deadline_proposal, year)
            taken = ok and key in accepted
            if taken:
                task.deadline, task.long_term, task.deadline_text = when, long_term, task.deadline_proposal
            proposals.append({"key": key, "item": item.number, "kind": task.kind, "seq": task.seq,
                              "text": task.deadline_proposal, "date": when, "long_term": long_term,
                              "readable": ok, "taken": taken, "task_text": task.text})
    return proposals


def _working_units(lead: list[str], responsible: list[str]) -> list[str]:
    return responsible or lead


def review(draft: Draft, data: bytes, filename: str, choices: ImportChoices | None = None) -> Review:
    """What the import would write, with the office's ``choices`` applied; writes nothing."""
    choices = choices or ImportChoices()
    sha = sha256_of(data)
    existing_id = db.session.scalar(select(Plan.id).where(Plan.source_sha256 == sha))
    units, unit_warnings = plan_units(draft, choices.names)
    apply_text_names(draft, units.text_names)
    proposals = apply_deadline_choices(draft, choices.deadlines)
    plan_warnings: list[DraftWarning] = []
    if existing_id is None and draft.title:
        # The same compilation in another file (a .docx of the .txt, a re-export)
        # has another hash: say so rather than silently load it twice.
        twin = db.session.scalar(select(Plan).where(Plan.title == draft.title, Plan.issued_on == draft.issued_on))
        if twin is not None:
            plan_warnings.append(DraftWarning(
                "possible_duplicate_plan",
                f"已有同名、同日期的方案（编号 {twin.id}，文件 {twin.source_filename}），请确认不是同一份汇编的另一个文件"))
    tasks = [t for item in draft.items for t in item.tasks]
    counts = {
        "chapters": len(draft.chapters),
        "items": len(draft.items),
        "sub_items": sum(1 for i in draft.items if i.parent),
        "not_applicable": sum(1 for i in draft.items if not i.applicable),
        "tasks": sum(1 for t in tasks if t.kind == TaskKind.TASK),
        "measures": sum(1 for t in tasks if t.kind == TaskKind.MEASURE),
        "units": len(set(units.canonical.values())),
        "parts": sum(len(set(units.canonical[n] for n in _working_units(t.lead_units, t.responsible_units)))
                     for t in tasks),
        "dated": sum(1 for t in tasks if t.deadline),
        "long_term": sum(1 for t in tasks if t.long_term),
        "no_deadline": sum(1 for t in tasks if not t.deadline and not t.long_term),
        "incomplete_items": sum(1 for i in draft.items if not i.complete),
    }
    problems = [] if existing_id else writability_problems(draft, units, filename)
    problems += choice_problems(units)
    return Review(draft=draft, sha256=sha, filename=filename, counts=counts,
                  warnings=plan_warnings + list(draft.warnings) + unit_warnings, units=units,
                  existing_plan_id=existing_id, choices=choices, deadline_proposals=proposals,
                  # A file already imported is not written again: nothing to check.
                  problems=problems)


def choice_problems(units: UnitPlan) -> list[DraftWarning]:
    """The office's choices that cannot be applied: the review refuses them, by name."""
    problems: list[DraftWarning] = []

    def problem(code: str, message: str) -> None:
        problems.append(DraftWarning(code, message))

    for error in units.errors:
        problem("bad_choice", error)
    return problems


# ------------------------------------------------------------------ what the write relies on

#: PostgreSQL's INTEGER (chapter numbers are stored as one).
_INT_MAX = 2 ** 31 - 1


def _limit(model, column: str) -> int | None:
    return getattr(model.__table__.c[column].type, "length", None)


def writability_problems(draft: Draft, units: UnitPlan, filename: str) -> list[DraftWarning]:
    """Every constraint ``write`` relies on, checked on the draft: a document these
    accept cannot fail in the database, and each problem names its line.

    Unique chapter and item numbers per plan, items in a chapter of the plan,
    numbers that fit their columns, every stored string within its column's
    length (PostgreSQL refuses longer ones; SQLite would keep them), a dated task
    never long-term."""
    problems: list[DraftWarning] = []

    def problem(code: str, message: str, line: int | None = None, item: str | None = None):
        problems.append(DraftWarning(code, message, line, item))

    reported: set[str] = set()      # a value too long is named once, at its first place

    def too_long(model, column: str, value: str | None, what: str, line: int | None = None,
                 item: str | None = None) -> bool:
        limit = _limit(model, column)
        if value is not None and limit is not None and len(value) > limit:
            if value not in reported:
                reported.add(value)
                shown = value if len(value) <= 40 else value[:40] + "…"
                problem("too_long", f"{what}过长（{len(value)} 字，最多 {limit} 字）：“{shown}”", line, item)
            return True
        return False

    # The plan row.
    too_long(Plan, "title", draft.title or filename, "方案标题")
    too_long(Plan, "issuer", draft.issuer, "印发单位")
    too_long(Plan, "batch", draft.batch, "批次")
    too_long(Plan, "source_filename", filename, "文件名")

    # Chapters: numbers unique within the plan and within INTEGER.
    seen_chapters: dict[int, object] = {}
    for ch in draft.chapters:
        if not -_INT_MAX <= ch.number <= _INT_MAX:
            problem("bad_number", f"章节编号过大：“{ch.title}”", ch.source_line)
        elif ch.number in seen_chapters:
            first = seen_chapters[ch.number]
            at = f"第{first.source_line}行" if first.source_line else "前文"
            problem("duplicate_chapter",
                    f"章节编号重复：第 {ch.number} 章“{ch.title}”在{at}已有（“{first.title}”），"
                    "同一方案中章节编号不能重复", ch.source_line)
        else:
            seen_chapters[ch.number] = ch
        too_long(Chapter, "title", ch.title, "章节标题", ch.source_line)

    # Items: numbers unique within the plan, each in a chapter of the plan.
    seen_items: dict[str, object] = {}
    for d in draft.items:
        line = d.source_lines[0] if d.source_lines else None
        if too_long(Item, "number", d.number, "事项编号", line, d.number):
            pass
        elif d.number in seen_items:
            first = seen_items[d.number]
            problem("duplicate_item",
                    f"事项编号重复：第{d.number}项在第{first.source_lines[0]}行已有，第{line}行又出现一次；"
                    "同一方案中事项编号不能重复，请核对编号（或是否把文件重复粘贴）", line, d.number)
        else:
            seen_items[d.number] = d
        if d.chapter not in seen_chapters:
            problem("bad_reference", f"第{d.number}项不属于任何章节", line, d.number)
        too_long(Item, "subtitle", d.subtitle, f"第{d.number}项的小标题", line, d.number)
        last = d.source_lines[-1] if d.source_lines else line
        for c in d.contacts:
            too_long(Contact, "name", c.name, f"第{d.number}项的联系人", last, d.number)
            too_long(Contact, "phone", c.phone, f"第{d.number}项的联系电话", last, d.number)
        for name in d.owner_units:
            too_long(UnitAlias, "alias", name, f"第{d.number}项的牵头单位名称", last, d.number)
            too_long(Unit, "name", units.canonical.get(name, name), f"第{d.number}项的牵头单位名称", last, d.number)
        for t in d.tasks:
            where = f"第{d.number}项 {TaskKind.label_of(t.kind)}第{t.seq}条"
            tline = t.source_lines[-1] if t.source_lines else line
            too_long(Task, "deadline_text", t.deadline_text, f"{where}的完成时限", tline, d.number)
            if t.long_term and t.deadline is not None:
                problem("bad_deadline_value", f"{where}：完成时限既是长期又有日期", tline, d.number)
            for name in t.lead_units + t.responsible_units:
                if name not in units.canonical:
                    problem("bad_reference", f"{where}：单位“{name}”未能识别", tline, d.number)
                else:       # the name as written (kept as an alias) and the unit it names
                    too_long(UnitAlias, "alias", name, f"{where}的单位名称", tline, d.number)
                    too_long(Unit, "name", units.canonical[name], f"{where}的单位名称", tline, d.number)
            for section in t.sections:
                too_long(Section, "name", section, f"{where}的责任科室名称", tline, d.number)
    for alias in units.new_aliases:
        too_long(UnitAlias, "alias", alias, "单位别名")
    return sorted(problems, key=lambda p: (p.line or 0))


def write(rv: Review, user=None):
    """Write the reviewed draft. Flushes, never commits: the caller commits, so
    that a failure anywhere leaves nothing behind. Returns the Plan."""
    if rv.already_imported:
        return db.session.get(Plan, rv.existing_plan_id)
    draft = rv.draft

    units: dict[str, Unit] = {u.name: u for u in db.session.scalars(select(Unit))}
    for name in rv.units.new_units:
        units[name] = Unit(name=name, kind=unit_kind(name))
        db.session.add(units[name])
    db.session.flush()
    for alias, target in rv.units.new_aliases.items():
        db.session.add(UnitAlias(alias=alias, unit_id=units[target].id))
    for phrase in rv.units.new_text_aliases:
        db.session.add(UnitAlias(alias=phrase, unit_id=None))

    def unit(name: str) -> Unit:
        return units[rv.units.canonical[name]]

    sections: dict[tuple[int, str], Section] = {
        (s.unit_id, s.name): s for s in db.session.scalars(select(Section))}

    def section(owner: Unit, name: str) -> Section:
        key = (owner.id, name)
        if key not in sections:
            sections[key] = Section(unit_id=owner.id, name=name)
            db.session.add(sections[key])
        return sections[key]

    plan = Plan(title=draft.title or rv.filename, issuer=draft.issuer, issued_on=draft.issued_on,
                batch=draft.batch, source_filename=rv.filename, source_sha256=rv.sha256,
                preamble="\n".join(draft.preamble), shape=draft.shape,
                imported_by_id=user.id if user else None)
    db.session.add(plan)
    db.session.flush()
    chapters = {}
    for ch in draft.chapters:
        chapters[ch.number] = Chapter(plan_id=plan.id, number=ch.number, title=ch.title)
        db.session.add(chapters[ch.number])
    db.session.flush()

    items: dict[str, Item] = {}
    owner_rows, lead_rows, resp_rows, section_rows = [], [], [], []
    for position, d in enumerate(draft.items):
        item = Item(plan_id=plan.id, chapter_id=chapters[d.chapter].id, number=d.number, position=position,
                    parent_id=items[d.parent].id if d.parent in items else None, subtitle=d.subtitle,
                    policy_text=d.policy_text, goal=d.goal, explanation=d.explanation,
                    applicable=d.applicable, complete=d.complete)
        db.session.add(item)
        db.session.flush()
        items[d.number] = item
        for i, name in enumerate(dict.fromkeys(unit(n).name for n in d.owner_units)):
            owner_rows.append({"item_id": item.id, "unit_id": units[name].id, "position": i})
        for i, c in enumerate(d.contacts):
            db.session.add(Contact(item_id=item.id, position=i, name=c.name, phone=c.phone))
        for dt in d.tasks:
            task = Task(item_id=item.id, kind=dt.kind, seq=dt.seq, text=dt.text, deadline=dt.deadline,
                        deadline_original=dt.deadline, deadline_text=dt.deadline_text, long_term=dt.long_term,
                        clause_source=dt.clause_source, source_lines=list(dt.source_lines),
                        leaders=list(dt.leaders), addressees=list(dt.addressees), note=dt.note)
            db.session.add(task)
            db.session.flush()
            leads = list(dict.fromkeys(unit(n) for n in dt.lead_units))
            responsible = [u for u in dict.fromkeys(unit(n) for n in dt.responsible_units) if u not in leads]
            lead_rows += [{"task_id": task.id, "unit_id": u.id, "position": i} for i, u in enumerate(leads)]
            resp_rows += [{"task_id": task.id, "unit_id": u.id, "position": i} for i, u in enumerate(responsible)]
            # A section belongs to the unit written before it in the clause
            # (责任单位：区财政局，责任科室：社会保障科), else to the first lead unit.
            seen = set()
            for i, name in enumerate(dt.sections):
                written_owner = dt.section_units.get(name)
                owner = unit(written_owner) if written_owner else (leads[0] if leads else None)
                if owner is None:
                    continue
                s = section(owner, name)
                db.session.flush()
                if s.id not in seen:
                    seen.add(s.id)
                    section_rows.append({"task_id": task.id, "section_id": s.id, "position": i})
            for i, u in enumerate(responsible or leads):
                db.session.add(TaskPart(task_id=task.id, unit_id=u.id, position=i))
    for table, rows in ((item_owner_units, owner_rows), (task_lead_units, lead_rows),
                        (task_responsible_units, resp_rows), (task_sections, section_rows)):
        if rows:
            db.session.execute(table.insert(), rows)
    db.session.flush()
    audit.append("plan_imported", user=user, plan=plan,
                 details={"filename": rv.filename, "sha256": rv.sha256, "shape": draft.shape,
                          "counts": rv.counts, "warnings": len(rv.warnings),
                          "names_decided": {q.name: q.decision for q in rv.units.questions
                                            if q.key in rv.choices.names},
                          "deadlines_taken": sorted(p["key"] for p in rv.deadline_proposals if p["taken"])})
    return plan
