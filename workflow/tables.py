"""What each list page shows, as columns defined once for its CSV and xlsx exports.

A list's export is the rows of its filter (all of them, not the page) in the
page's order, with the page's columns: each ``Column`` reads one row and gives
text, a number, a date or a datetime. A row is ``(obj, assessment)``: the
assessment is the row's 红黄蓝 from ``workflow.pace`` (None on lists without
colours). Cells a spreadsheet would read as a formula are neutralised.
"""
from __future__ import annotations

import csv
import io
from urllib.parse import quote
from dataclasses import dataclass
from datetime import date, datetime
from typing import Callable

from flask import flash, request, send_file

from workflow.audit import ACTION_LABELS, describe
from workflow.due import DUE_LABELS, deadline_shown
from workflow.machine import EVENT_LABELS
from workflow.timeutil import to_local
from workflow.vocabulary import IN_PROGRESS, PLANNED, SubmissionOutcome, TaskState

FORMATS = ("csv", "xlsx")
FORMAT_ERROR = "导出格式无效（应为 csv 或 xlsx），已显示列表。"

# A spreadsheet runs a cell that begins with one of these as a formula (OWASP
# "CSV injection"); tab and carriage return can hide such a start.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def requested_format() -> str | None:
    """``?format=csv|xlsx``: the list's export instead of its page; anything else is named and ignored."""
    fmt = (request.args.get("format") or "").strip()
    if not fmt:
        return None
    if fmt in FORMATS:
        return fmt
    flash(FORMAT_ERROR, "warning")
    return None


def neutralise(value):
    """Text that a spreadsheet would read as a formula, prefixed with ' so it stays text."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[object, object], object]    # (obj, assessment) → str | int | date | datetime | None
    width: int = 14


def _units(units) -> str:
    return "、".join(u.name for u in units)


def _local(value: datetime | None):
    """A stored (naive UTC) instant as the China Standard Time wall clock, for a date-time cell."""
    local = to_local(value)
    return local.replace(tzinfo=None, microsecond=0) if local else None


def _warning(_, a) -> str:
    return a.label if a is not None else ""


def _warning_reason(_, a) -> str:
    return (a.reason or "") if a is not None else ""


def _due(status) -> str:
    return DUE_LABELS.get(status, "") if status else ""


WARNING_COLUMNS = (Column("预警", _warning, 10), Column("预警原因", _warning_reason, 36))


def _part_state(p) -> str:
    label = TaskState.label_of(p.state)
    if p.state == IN_PROGRESS:
        label += f" {p.progress or 0}%"
    if p.submissions and p.submissions[-1].outcome == SubmissionOutcome.RETURNED and p.state in (PLANNED, IN_PROGRESS):
        label += "（曾被退回）"
    return label


def _next_step(p, start_without_receipt: bool) -> str:
    if p.state == PLANNED and not p.received_at:
        return "签收或开始办理" if start_without_receipt else "签收后开始办理"
    if p.state == PLANNED:
        return "开始办理"
    return "填报进度、添加材料并提交"


def task_columns(due_of: Callable) -> tuple[Column, ...]:
    """The task list (and the office's 待办结): ``due_of(task)`` is the page's 已逾期/临期 rule."""
    return (
        Column("编号", lambda t, a: t.number_label, 10),
        Column("任务内容", lambda t, a: t.text, 60),
        Column("牵头单位", lambda t, a: _units(t.lead_units), 20),
        Column("承办单位", lambda t, a: "、".join(f"{p.unit.name}（{TaskState.label_of(p.state)}）" for p in t.parts), 30),
        Column("完成时限", lambda t, a: deadline_shown(t), 12),
        Column("状态", lambda t, a: " ".join(x for x in (TaskState.label_of(t.state), _due(due_of(t))) if x), 10),
        *WARNING_COLUMNS,
    )


def todo_columns(due_of: Callable, start_without_receipt: bool) -> tuple[Column, ...]:
    """A unit's to-do parts (todo.html)."""
    return (
        Column("编号", lambda p, a: p.task.number_label, 10),
        Column("任务内容", lambda p, a: p.task.text, 60),
        Column("牵头单位", lambda p, a: _units(p.task.lead_units), 20),
        Column("完成时限", lambda p, a: " ".join(x for x in (deadline_shown(p.task), _due(due_of(p.task))) if x), 14),
        Column("状态", lambda p, a: _part_state(p), 14),
        Column("下一步", lambda p, a: _next_step(p, start_without_receipt), 20),
        *WARNING_COLUMNS,
    )


def _last_submission(p):
    return p.submissions[-1] if p.submissions else None


def verify_columns(due_of: Callable) -> tuple[Column, ...]:
    """Parts awaiting verification (verify.html); handed in, so without a colour."""
    return (
        Column("编号", lambda p, a: p.task.number_label, 10),
        Column("任务内容", lambda p, a: p.task.text, 60),
        Column("承办单位", lambda p, a: p.unit.name, 20),
        Column("完成时限", lambda p, a: " ".join(x for x in (deadline_shown(p.task), _due(due_of(p.task))) if x), 14),
        Column("状态", lambda p, a: TaskState.label_of(p.state), 10),
        Column("提交时间", lambda p, a: _local(_last_submission(p).submitted_at) if _last_submission(p) else None, 18),
        Column("提交次数", lambda p, a: _last_submission(p).number if _last_submission(p) else None, 8),
        Column("提交人", lambda p, a: (_last_submission(p).submitted_by.display_name
                                     if _last_submission(p) and _last_submission(p).submitted_by else ""), 12),
    )


def unreceived_columns(days_since: Callable, due_days: int) -> tuple[Column, ...]:
    """The 待签收 list: ``days_since(part)`` is whole days since its plan was imported."""
    return (
        Column("承办单位", lambda p, a: p.unit.name, 20),
        Column("编号", lambda p, a: p.task.number_label, 10),
        Column("任务内容", lambda p, a: p.task.text, 60),
        Column("方案导入日期", lambda p, a: to_local(p.task.item.plan.imported_at).date(), 12),
        Column("已过天数", lambda p, a: days_since(p), 8),
        Column("超期未签收", lambda p, a: "是" if days_since(p) > due_days else "", 10),
        *WARNING_COLUMNS,
    )


def _filing(e) -> str:
    if e.note_id is None:
        return "未报送"
    return "逾期报送" if e.late else "按时报送"


def round_columns() -> tuple[Column, ...]:
    """A round's page: every part it asked for, unit by unit, with its filing."""
    return (
        Column("承办单位", lambda e, a: e.part.unit.name, 20),
        Column("编号", lambda e, a: e.part.task.number_label, 10),
        Column("任务内容", lambda e, a: e.part.task.text, 60),
        Column("报送情况", lambda e, a: _filing(e), 10),
        Column("报送时间", lambda e, a: _local(e.filed_at), 17),
        Column("完成比例 %", lambda e, a: e.note.percent if e.note is not None else None, 10),
        Column("进展说明", lambda e, a: e.note.note if e.note is not None else "", 50),
    )


def extension_columns() -> tuple[Column, ...]:
    """延期审批's list of requests."""
    return (
        Column("编号", lambda r, a: r.part.task.number_label, 10),
        Column("任务内容", lambda r, a: r.part.task.text, 50),
        Column("承办单位", lambda r, a: r.part.unit.name, 20),
        Column("原时限", lambda r, a: r.old_deadline, 12),
        Column("申请延至", lambda r, a: r.new_deadline, 12),
        Column("申请理由", lambda r, a: r.reason, 40),
        Column("申请时进度 %", lambda r, a: r.progress, 10),
        Column("申请人", lambda r, a: r.requested_by.display_name if r.requested_by else "", 14),
        Column("申请时间", lambda r, a: _local(r.requested_at), 17),
        Column("状态", lambda r, a: r.state_label, 14),
        Column("牵头单位意见", lambda r, a: r.lead_reason or ("同意" if r.lead_decided_at else ""), 24),
        Column("办公室意见", lambda r, a: r.office_reason or ("批准" if r.office_decided_at else ""), 24),
        Column("决定时间", lambda r, a: _local(r.decided_at), 17),
    )


def _or_dash(value):
    return "—" if value is None else value


def score_columns() -> tuple[Column, ...]:
    """考核排名: a unit per row (workflow/scores.Figures), in rank order; "—" where a
    component has nothing to measure."""
    return (
        Column("排名", lambda f, a: _or_dash(f.rank), 6),
        Column("单位", lambda f, a: f.name, 22),
        Column("综合得分", lambda f, a: _or_dash(f.score), 9),
        Column("到期任务", lambda f, a: f.judged, 9),
        Column("按期完成", lambda f, a: f.on_time, 9),
        Column("逾期完成", lambda f, a: f.finished_late, 9),
        Column("到期未完成", lambda f, a: f.still_overdue, 10),
        Column("按期完成率 %", lambda f, a: _or_dash(f.ontime_rate), 11),
        Column("逾期任务", lambda f, a: f.overdue, 9),
        Column("逾期天数合计", lambda f, a: f.overdue_days, 11),
        Column("最长逾期天数", lambda f, a: f.overdue_max, 11),
        Column("核验决定", lambda f, a: f.decided, 9),
        Column("退回", lambda f, a: f.returned, 7),
        Column("退回率 %", lambda f, a: _or_dash(f.return_rate), 9),
        Column("延期申请", lambda f, a: f.ext_requested, 9),
        Column("延期批准", lambda f, a: f.ext_granted, 9),
        Column("调度应报", lambda f, a: f.filings_due, 9),
        Column("按时报送", lambda f, a: f.filed_on_time, 9),
        Column("逾期报送", lambda f, a: f.filed_late, 9),
        Column("未报送", lambda f, a: f.filings_missing, 8),
        Column("应签收", lambda f, a: f.receipt_due, 8),
        Column("超期未签收", lambda f, a: f.receipt_late, 10),
    )


def _audit_action(e) -> str:
    d = e.details if isinstance(e.details, dict) else {}
    if e.action == "transition" and d.get("event"):
        label = EVENT_LABELS.get(d["event"], d["event"])
    else:
        label = ACTION_LABELS.get(e.action, e.action)
    if isinstance(d.get("unit"), str):
        label += f"（{d['unit']}）"
    if e.from_state or e.to_state:
        label += f" {TaskState.label_of(e.from_state) if e.from_state else ''} → " \
                 f"{TaskState.label_of(e.to_state) if e.to_state else ''}"
    return label


AUDIT_COLUMNS = (
    Column("序号", lambda e, a: e.seq, 8),
    Column("时间", lambda e, a: _local(e.at), 18),
    Column("用户", lambda e, a: e.username or "系统", 14),
    Column("单位", lambda e, a: e.unit.name if e.unit else "", 18),
    Column("IP", lambda e, a: e.ip or "", 14),
    Column("操作", lambda e, a: _audit_action(e), 24),
    Column("任务", lambda e, a: e.task.number_label if e.task else "", 10),
    Column("理由/内容", lambda e, a: e.reason or "", 30),
    Column("详情", lambda e, a: "；".join(f"{label}：{value}" for label, value in describe(e)), 50),
)


# ---------------------------------------------------------------- the two formats

def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def as_csv(columns, rows) -> bytes:
    """UTF-8 with a byte-order mark: Excel opens it as UTF-8 only with one."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.header for c in columns])
    for obj, assessment in rows:
        writer.writerow([neutralise(_text(c.value(obj, assessment))) for c in columns])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def as_xlsx(columns, rows, title: str) -> bytes:
    # Here: openpyxl is loaded by the first export, not by every process.
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = title[:31]
    ws.append([c.header for c in columns])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for obj, assessment in rows:
        ws.append([neutralise(c.value(obj, assessment)) for c in columns])
    for i, c in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(i)].width = c.width
    for cells in ws.iter_rows(min_row=2):
        for cell in cells:
            if isinstance(cell.value, datetime):
                cell.number_format = "yyyy-mm-dd hh:mm:ss"
            elif isinstance(cell.value, date):
                cell.number_format = "yyyy-mm-dd"
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{ws.max_row}"
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


MIMETYPES = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def download(fmt: str, name: str, slug: str, columns, rows, today: date):
    """The response: ``name``-date.csv / .xlsx, the Chinese name as RFC 5987
    ``filename*`` (UTF-8) and ``slug``-date as the ASCII ``filename`` for
    clients that do not read it."""
    rows = list(rows)
    data = as_csv(columns, rows) if fmt == "csv" else as_xlsx(columns, rows, name)
    response = send_file(io.BytesIO(data), mimetype=MIMETYPES[fmt])
    stem = f"-{today.isoformat()}.{fmt}"
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{slug}{stem}\"; filename*=UTF-8''{quote(name + stem, safe='')}")
    # The lists are not public: no shared cache may keep a copy.
    response.headers["Cache-Control"] = "private, no-store"
    return response
