"""The audit log, searchable by the office, and the integrity page: is the audit
chain intact, and is an uploaded PDF an archived report."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from flask import Blueprint, current_app, flash, render_template, request
from flask_login import login_required
from flask_sqlalchemy.pagination import Pagination
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import func, select
from wtforms import SubmitField

from models import AuditEntry
from workflow import audit, head_cache, queries, tables
from workflow.audit import ACTION_LABELS, describe
from workflow.extensions import db
from workflow.reports import archive
from workflow.timeutil import today_local
from workflow.vocabulary import ReportKind

from .forms import FlaskForm
from .helpers import require
from .paging import RowsPage
from .urls import page_number

bp = Blueprint("audit_log", __name__)


class TrailPage(Pagination):
    """A page of the whole trail, newest first. Its entries are numbered 1 … head by ``seq`` with no
    gap (append-only: the database refuses UPDATE and DELETE), so page N begins at seq
    head − (N − 1) · per_page: a seek in the seq index instead of an OFFSET that walks every newer
    entry. Entries appended after the head was read are above it and wait for the next view."""

    def __init__(self, stmt, head_seq: int, page: int, per_page: int):
        self._stmt, self._head_seq = stmt, head_seq
        super().__init__(page=page, per_page=per_page, max_per_page=None, error_out=False)

    def _query_items(self) -> list:
        top = self._head_seq - self._query_offset
        return db.session.scalars(self._stmt.where(AuditEntry.seq <= top).limit(self.per_page)).all()

    def _query_count(self) -> int:
        return self._head_seq


@bp.route("/audit")
@login_required
def index():
    require("audit.view")
    filters = queries.AuditFilters.from_args(request.args)
    for message in filters.errors:
        flash(message, "warning")
    fmt = (request.args.get("format") or "").strip()
    if fmt in tables.FORMATS:
        entries = db.session.scalars(queries.audit_entries(filters)).all()
        return tables.download(fmt, "审计日志", "audit-log", tables.AUDIT_COLUMNS, [(e, None) for e in entries],
                               today_local())
    if fmt:
        flash(tables.FORMAT_ERROR, "warning")
    # Filtered, the count is made once per change of the trail and stops at COUNT_LIMIT ("10000 条以上":
    # the head moves with every write, and a filter such as an action matches most of a trail that
    # only grows); unfiltered, the head knows it and where each page starts (TrailPage): nothing is
    # counted or skipped over, however deep the page.
    stmt = queries.audit_entries(filters)
    per_page = current_app.config["PER_PAGE"]
    args = filters.as_args()
    if args:
        page = RowsPage(stmt, per_page)    # views/paging.py: no deeper than the counted rows
        limit = current_app.config["COUNT_LIMIT"]
        total = head_cache.cached(("count", "audit", tuple(sorted(args.items())), limit),
                                  lambda: queries.count_up_to(stmt, limit + 1))
        queries.show_capped_total(page, total, limit)
    else:
        page = TrailPage(stmt, head_cache.request_head()[0], page_number(request.args.get("page")), per_page)
    return render_template("audit/index.html", page=page, filters=filters, units=queries.unit_choices(),
                           actions=ACTION_LABELS, describe=describe)


# ---------------------------------------------------------------- integrity

class ReportCheckForm(FlaskForm):
    report = FileField("报告 PDF 文件", validators=[FileRequired("请选择要核对的 PDF 文件。")])
    submit = SubmitField("核对")


@dataclass
class ChainState:
    intact: bool
    count: int
    first: object | None          # the first and last entries (None on an empty chain)
    last: object | None
    problems: list                # audit.Problem, in chain order
    good_until: int | None = None  # entries 1..good_until precede the first break


def chain_state() -> ChainState:
    problems = audit.verify()
    count = db.session.scalar(select(func.count(AuditEntry.id))) or 0
    first = db.session.scalar(select(AuditEntry).order_by(AuditEntry.seq).limit(1))
    last = db.session.scalar(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1))
    state = ChainState(not problems, count, first, last, problems)
    seqs = [p.seq for p in problems if p.seq is not None]
    if seqs:
        state.good_until = max(0, min(seqs) - 1)
    return state


@dataclass
class ArchivedReport:
    id: int
    title: str        # kind and subject, as the report list names it
    params: str       # every parameter, in words
    by: str
    at: object        # when it finished (naive UTC)
    pages: int | None


@dataclass
class ReportCheck:
    filename: str
    matches: list[ArchivedReport]   # the archive entries whose PDF is exactly the upload
    sha256: str
    size: int


def _archived(row) -> ArchivedReport:
    params = archive.params_from_archive(row)
    who = archive.generator_label(row.created_by) if row.created_by_id else archive.CLI_GENERATOR
    return ArchivedReport(row.id, ReportKind.label_of(row.kind), archive.describe_params(params),
                          who, row.finished_at, row.pages)


def _pdf_problem(data: bytes) -> str | None:
    limit = current_app.config["MAX_UPLOAD_MB"]
    if not data:
        return "上传的文件是空的，请选择报告 PDF 文件。"
    if len(data) > limit * 1024 * 1024:
        return f"文件超过 {limit} MB，不是本系统生成的报告（报告远小于此）。"
    # By content, not by name: a renamed file is still not a PDF.
    if not data.startswith(b"%PDF-"):
        return "只能核对 PDF 文件：所选文件不是 PDF（本系统生成的报告均为 PDF）。"
    return None


def _integrity_page(form, check=None, status: int = 200):
    return render_template("audit/integrity.html", chain=chain_state(), form=form, check=check,
                           max_mb=current_app.config["MAX_UPLOAD_MB"]), status


@bp.route("/audit/integrity")
@login_required
def integrity():
    require("audit.view")
    return _integrity_page(ReportCheckForm())


@bp.route("/audit/integrity", methods=["POST"])
@login_required
def check_report():
    require("audit.view")
    form = ReportCheckForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            flash(errors[0], "danger")
        return _integrity_page(form, status=400)
    upload = form.report.data
    data = upload.read(current_app.config["MAX_UPLOAD_MB"] * 1024 * 1024 + 1)
    problem = _pdf_problem(data)
    if problem:
        flash(problem, "danger")
        return _integrity_page(form, status=400)
    check = ReportCheck(upload.filename or "", [_archived(row) for row in archive.verify_bytes(data)],
                        hashlib.sha256(data).hexdigest(), len(data))
    return _integrity_page(form, check)
