"""The report archive: what to render, whether it already exists, running it,
storing the PDF by its sha256, and telling an archived file from any other.

A report is the function of (parameters, data). The data is named by the
audit chain: every change to plans, tasks, evidence, units or users is an
audit entry, so the hash of the last such entry ("input head") names the
data a report was made from. Entries that change nothing a report prints
(logins, report generation itself …) are skipped, or every login would
invalidate every report. A request whose parameters and input head match a
finished archive entry is answered from the archive without rendering.

The report prints, and the archive keeps, the chain's real head (and its
position) at the moment the data was read.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time

from flask import current_app
from sqlalchemy import select, update

from models import AuditEntry, Item, Plan, ProgressRound, ReportArchive, Unit
from workflow import audit, background, notices, scores, storage
from workflow.extensions import db
from workflow.sqlite import write_transactions
from workflow.filestore import report_store
from workflow.storage import report_key, storage_failure_message
from workflow.timeutil import CST, format_local, today_local, utcnow
from workflow.vocabulary import NON_DATA_ACTIONS, NotificationKind, ReportKind, ReportStatus

from . import bulletin, charts
from . import data as report_data
from .render import render_report, render_template_html

log = logging.getLogger(__name__)

CLI_USERNAME = "cli"
RENDER_JOB = "report.render"   # workflow/reports/jobs.py
CLI_GENERATOR = "命令行（flask report generate）"


class ReportError(Exception):
    """Bad parameters or a report that cannot be made; .message is for the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# ------------------------------------------------------------------ parameters

@functools.cache
def layout_version() -> str:
    """A digest of everything that decides how data becomes a PDF (templates,
    queries, charts, the due-date and state rules), so a changed layout or rule
    is rendered anew rather than served from an archive entry made by the old
    one. Computed once, on first use."""
    here = os.path.dirname(os.path.abspath(__file__))
    workflow_dir = os.path.dirname(here)
    pdf_templates = os.path.join(os.path.dirname(workflow_dir), "templates", "reports", "pdf")
    digest = hashlib.sha256()
    paths = [os.path.join(here, n) for n in ("data.py", "bulletin.py", "charts.py", "archive.py", "render.py")]
    paths += [os.path.join(workflow_dir, n) for n in ("due.py", "vocabulary.py", "scores.py", "pace.py")]
    paths += sorted(os.path.join(pdf_templates, n) for n in os.listdir(pdf_templates))
    for path in paths:
        with open(path, "rb") as fh:
            digest.update(os.path.basename(path).encode() + b"\0" + fh.read() + b"\0")
    return digest.hexdigest()[:12]


def current_layout() -> str:
    """The layout version with the office's score weights (the overall report's
    ranking changes with them) and the section size (where a long report is cut,
    so its bytes), so that a report made under other settings is not reused."""
    weights = scores.weights_text(scores.current_weights())
    settings = f"{weights}|section={section_size()}"
    return f"{layout_version()}-{hashlib.sha256(settings.encode()).hexdigest()[:6]}"


def section_size() -> int:
    """REPORT_SECTION_SIZE: the characters of HTML a section of a report holds at most."""
    return max(1, int(current_app.config["REPORT_SECTION_SIZE"]))


@dataclass(frozen=True)
class Params:
    kind: str
    plan: int
    as_of: date
    near_days: int
    unit: int | None = None
    item: str | None = None
    layout: str = field(default_factory=lambda: current_layout())
    round: int | None = None      # the ProgressRound of a 调度通报

    def as_dict(self) -> dict:
        params = {"kind": self.kind, "plan": self.plan, "unit": self.unit, "item": self.item,
                  "as_of": self.as_of.isoformat(), "near_days": self.near_days, "layout": self.layout}
        # Only a 调度通报 names a round: the other kinds keep their keys (and archive matches).
        if self.round is not None:
            params["round"] = self.round
        return params

    @property
    def key(self) -> str:
        canonical = json.dumps(self.as_dict(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def parse_as_of(value) -> date:
    if value in (None, ""):
        return today_local()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ReportError(f"截至日期“{str(value)[:30]}”无效，请使用 YYYY-MM-DD 格式，例如 2022-06-30。") from None


def make_params(kind: str, *, plan_id=None, unit_id=None, item_number=None, as_of=None, round_id=None) -> Params:
    """Check and normalise what the user asked for; raise ReportError (Chinese).
    A 调度通报 (kind "round") needs its round, of the plan."""
    if kind not in ReportKind.values():
        raise ReportError("报告类型无效，请选择总体进展、单位报告或事项详情。")
    if plan_id in (None, ""):
        plan_id = db.session.scalar(select(Plan.id).order_by(Plan.id.desc()).limit(1))
        if plan_id is None:
            raise ReportError("尚未导入任何实施方案，无法生成报告。")
    try:
        plan_id = int(plan_id)
    except (TypeError, ValueError):
        raise ReportError("方案编号无效。") from None
    if db.session.get(Plan, plan_id) is None:
        raise ReportError(f"方案 {plan_id} 不存在。")
    as_of_date = parse_as_of(as_of)
    if not date(2000, 1, 1) <= as_of_date <= date(2100, 12, 31):
        raise ReportError("截至日期超出合理范围。")
    unit = item = None
    if kind == "unit":
        if unit_id in (None, ""):
            raise ReportError("单位报告需要选择单位。")
        try:
            unit = int(unit_id)
        except (TypeError, ValueError):
            raise ReportError("单位编号无效。") from None
        if db.session.get(Unit, unit) is None:
            raise ReportError(f"单位 {unit} 不存在。")
    if kind == "item":
        number = (str(item_number or "")).strip().removeprefix("第").removesuffix("项").strip()
        if not number:
            raise ReportError("事项详情报告需要填写事项编号，例如 19-1。")
        found = db.session.scalar(select(Item.id).where(Item.plan_id == plan_id, Item.number == number))
        if found is None:
            raise ReportError(f"方案 {plan_id} 中没有第{number[:20]}项。")
        item = number
    round_ = None
    if kind == ReportKind.ROUND:
        found = db.session.get(ProgressRound, round_id) if isinstance(round_id, int) else None
        if found is None or found.plan_id != plan_id:
            raise ReportError("调度通报由调度结束时生成：请在“调度”页面结束该轮调度。")
        round_ = found.id
    return Params(kind=kind, plan=plan_id, as_of=as_of_date, near_days=int(current_app.config["NEAR_DUE_DAYS"]),
                  unit=unit, item=item, round=round_)


def params_from_archive(archive) -> Params:
    p = archive.params
    return Params(kind=p["kind"], plan=p["plan"], as_of=date.fromisoformat(p["as_of"]), near_days=p["near_days"],
                  unit=p.get("unit"), item=p.get("item"), layout=p.get("layout", ""), round=p.get("round"))


# ------------------------------------------------------------------ size, before rendering

# Pages a report takes, measured (bench/report_bench.py, 2022-06-30, the seed plan with
# its played activity and ten times its size): fixed pages (cover, summaries) and pages
# per task it covers. Overall: 29 pages for 193 tasks, 231 for 1,930. Unit (承办 parts
# + 牵头 tasks): 12 pages for 42, 69 for 420. Item (its tasks, sub-items included,
# each with its parts, submissions, evidence and timeline): 17 pages for 25.
PAGE_MODEL = {"overall": (7, 0.117), "unit": (5, 0.17), "item": (2, 0.6)}
PAGES_PER_SECOND = 8          # measured laying out and writing those reports on 2 cores
LARGE_PAGES = 300             # from this estimate on, a report is said to take long


@dataclass(frozen=True)
class Size:
    """What a report covers and about how long it will be, counted before it is rendered."""
    kind: str
    tasks: int
    parts: int
    led: int
    pages: int
    seconds: int

    @property
    def large(self) -> bool:
        return self.pages >= LARGE_PAGES

    @property
    def text(self) -> str:
        if self.kind == "unit":
            covers = f"本报告涵盖本单位承办的 {self.parts:,} 条任务和牵头的 {self.led:,} 条任务"
        elif self.kind == "item":
            covers = f"本报告涵盖该事项（含子项）的 {self.tasks:,} 条任务、{self.parts:,} 个承办部分"
        else:
            covers = f"本报告涵盖 {self.tasks:,} 条任务、{self.parts:,} 个承办部分"
        if self.large:
            minutes = max(1, round(self.seconds / 60))
            return (f"{covers}，预计约 {self.pages:,} 页。这是一份大报告，生成约需 {minutes} 分钟；"
                    f"生成期间可以离开本页继续其他工作。")
        return f"{covers}，预计约 {self.pages:,} 页，生成约需 {max(1, self.seconds)} 秒。"


def estimate(params: Params) -> Size | None:
    """The size of the report these parameters ask for, from counts in SQL (no
    rows are loaded); None for the kinds made elsewhere (调度通报, 督办通报)."""
    if params.kind not in PAGE_MODEL:
        return None
    item_id = None
    if params.kind == "item":
        item_id = db.session.scalar(select(Item.id).where(Item.plan_id == params.plan, Item.number == params.item))
    counted = report_data.scope(params.kind, params.plan, unit_id=params.unit, item_id=item_id)
    fixed, per_task = PAGE_MODEL[params.kind]
    pages = max(1, round(fixed + per_task * counted["tasks"]))
    return Size(kind=params.kind, tasks=counted["tasks"], parts=counted["parts"], led=counted["led"], pages=pages,
                seconds=round(pages / PAGES_PER_SECOND))


# ------------------------------------------------------------------ audit heads

def chain_head() -> tuple[int, str]:
    head = audit.head_row()
    return (head.seq, head.hash) if head is not None else (0, audit.GENESIS)


def input_head() -> str:
    """Hash of the last audit entry that may change what a report shows."""
    found = db.session.scalar(
        select(AuditEntry.hash).where(AuditEntry.action.not_in(NON_DATA_ACTIONS))
        .order_by(AuditEntry.seq.desc()).limit(1))
    return found or audit.GENESIS


# ------------------------------------------------------------------ lookup and request

def find_reusable(params: Params, head: str):
    """A finished archive entry for these parameters and data, if any."""
    for row in db.session.scalars(
            select(ReportArchive).where(ReportArchive.params_key == params.key, ReportArchive.input_head == head,
                                        ReportArchive.status == ReportStatus.DONE).order_by(ReportArchive.id)):
        try:
            if report_store().exists(report_key(row.sha256)):  # a lost file is rendered again, not served
                return row
        except OSError:   # the store did not answer: rendered again (its archiving says why it fails)
            return None
    return None


def find_in_flight(params: Params, head: str):
    return db.session.scalar(
        select(ReportArchive).where(ReportArchive.params_key == params.key, ReportArchive.input_head == head,
                                    ReportArchive.status.in_(ReportStatus.working()))
        .order_by(ReportArchive.id).limit(1))


@dataclass
class Request:
    archive: object
    reused: bool      # answered from a finished archive entry: nothing to render
    in_flight: bool   # the same report is already queued or running


def request_report(params: Params, user=None, *, queue: bool = True) -> Request:
    """Find or create the archive entry for these parameters (caller commits).
    A new entry is queued for the worker once committed (``queue=False``: the
    caller renders it itself, jobs.run_now). A reused entry is itself audited,
    so the trail shows who obtained which report."""
    head = input_head()
    reusable = find_reusable(params, head)
    if reusable is not None:
        audit.append("report_generated", user=user, username=None if user else CLI_USERNAME,
                     plan=_plan(params.plan),
                     details={"archive": reusable.id, "kind": params.kind, "params": params.as_dict(),
                              "sha256": reusable.sha256, "from_archive": True})
        return Request(reusable, reused=True, in_flight=False)
    running = find_in_flight(params, head)
    if running is not None:
        return Request(running, reused=False, in_flight=True)
    seq, chain = chain_head()
    archive = ReportArchive(kind=params.kind, params=params.as_dict(), params_key=params.key,
                            as_of=datetime.combine(params.as_of, time()), audit_head=chain, audit_seq=seq,
                            input_head=head, status=ReportStatus.PENDING, created_by_id=user.id if user else None,
                            created_at=utcnow())
    db.session.add(archive)
    db.session.flush()
    if queue:
        background.enqueue_after_commit(RENDER_JOB, archive.id)
    return Request(archive, reused=False, in_flight=False)


def _plan(plan_id: int):
    return db.session.get(Plan, plan_id)


# ------------------------------------------------------------------ building

@dataclass
class Built:
    html: str
    audit_seq: int
    audit_head: str
    input_head: str
    title: str
    filename: str


def begin_snapshot() -> None:
    """Start a read transaction in which the figures and the printed chain head
    come from the same moment (call with no transaction open)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def build_html(params: Params, generator: str) -> Built:
    """Read the data and fill the template (inside begin_snapshot's transaction)."""
    seq, chain = chain_head()
    head = input_head()
    plan = db.session.get(Plan, params.plan)
    if plan is None:
        raise ReportError(f"方案 {params.plan} 不存在。")
    subject = ""
    context_charts = {}
    if params.kind == "overall":
        figures = report_data.overall(plan, params.as_of, params.near_days)
        context_charts = {"states": charts.state_distribution(figures["summary"]["by_state"]),
                          "units": charts.unit_completion(figures["lead_units"])}
        stem = "总体进展报告"
    elif params.kind == "unit":
        unit = db.session.get(Unit, params.unit)
        if unit is None:
            raise ReportError(f"单位 {params.unit} 不存在。")
        figures = report_data.unit(plan, unit, params.as_of, params.near_days)
        subject = unit.name
        stem = f"单位报告-{unit.name}"
    elif params.kind == ReportKind.BULLETIN:
        figures = bulletin.bulletin_report(plan)
        stem = "督办通报"
    elif params.kind == ReportKind.ROUND:
        round_ = db.session.get(ProgressRound, params.round) if params.round is not None else None
        if round_ is None or round_.plan_id != plan.id:
            raise ReportError(f"调度 {params.round} 不存在。")
        figures = report_data.round_report(plan, round_)
        subject = round_.title
        stem = f"调度通报-{round_.title}"
    else:
        item = db.session.scalar(select(Item).where(Item.plan_id == plan.id, Item.number == params.item))
        if item is None:
            raise ReportError(f"方案中没有第{params.item}项。")
        figures = report_data.item(plan, item, params.as_of, params.near_days)
        subject = f"{item.label}" + (f" {item.subtitle}" if item.subtitle else "")
        stem = f"事项详情-{item.label}"
    kind_label = ReportKind(params.kind).label
    title = f"{kind_label}{('：' + subject) if subject else ''}（截至 {params.as_of.isoformat()}）"
    meta = {
        "title": title, "kind_label": kind_label, "subject": subject, "plan_title": plan.title,
        "issuer": plan.issuer or "", "as_of": params.as_of.isoformat(),
        "as_of_iso": datetime.combine(params.as_of, time(), CST).isoformat(),
        "generator": generator, "audit_seq": seq, "audit_head": chain, "near_days": params.near_days,
        "params_text": describe_params(params, plan=plan),
    }
    html = render_template_html(current_app, f"reports/pdf/{params.kind}.html", meta=meta, data=figures,
                                charts=context_charts)
    filename = safe_filename(f"{stem}-{params.as_of.isoformat()}.pdf")
    return Built(html=html, audit_seq=seq, audit_head=chain, input_head=head, title=title, filename=filename)


def render_built(built: Built, progress=None):
    """The PDF of a built report: one pass, or in sections when it is long
    (render.render_report, which calls ``progress(done, of)`` after each section)."""
    return render_report(built.html, section_size(), progress)


def describe_params(params: Params, plan=None) -> str:
    parts = [f"类型 {ReportKind(params.kind).label}", f"方案 {params.plan}"]
    if params.unit is not None:
        unit = db.session.get(Unit, params.unit)
        parts.append(f"单位 {unit.name if unit else params.unit}")
    if params.item is not None:
        parts.append(f"事项 第{params.item}项")
    if params.round is not None:
        round_ = db.session.get(ProgressRound, params.round)
        parts.append(f"调度 {round_.title if round_ else params.round}")
    parts.append(f"截至 {params.as_of.isoformat()}")
    parts.append(f"临期天数 {params.near_days}")
    return "，".join(parts)


def safe_filename(name: str) -> str:
    name = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', "_", name).strip() or "report.pdf"
    return name[:200]


def generator_label(user) -> str:
    if user is None:
        return CLI_GENERATOR
    return f"{user.display_name}（{user.username}）"


# ------------------------------------------------------------------ running

def run(archive_id: int, *, claim) -> None:
    """Render one pending archive entry to the end (done or failed), committing
    as it goes; ``claim(archive_id)`` takes it first (workflow/reports/jobs.py),
    and if another worker has it or it is finished, nothing happens. The
    rendering itself runs outside any transaction, so the database is never
    held while WeasyPrint works."""
    if not claim(archive_id):
        return
    try:
        begin_snapshot()
        archive = db.session.get(ReportArchive, archive_id)
        params = params_from_archive(archive)
        built = build_html(params, generator_label(archive.created_by))
        db.session.rollback()  # end the read snapshot before the long render
        _progress(archive_id, 30)
        # A report in sections moves from 30% towards 90% as each section is done.
        rendered = render_built(built, lambda done, of: _progress(archive_id, 30 + 60 * done // of))
        _progress(archive_id, 90)
        sha = store(rendered.pdf)
    except Exception as exc:  # a failed report must say so, never hang as "running"
        db.session.rollback()
        message = exc.message if isinstance(exc, ReportError) else f"生成失败：{type(exc).__name__}"
        if not isinstance(exc, ReportError):
            log.exception("report %s failed", archive_id)
        _fail(archive_id, message)
        return
    write_transactions(True)
    try:
        # Under the content's lock until this commit: a clean-up deciding on this file meanwhile
        # waits, or has decided already — then the file (an old one with the same bytes, left
        # unreferenced) may be gone, and is put back.
        storage.content_lock(sha)
        if not report_store().exists(report_key(sha)):
            store(rendered.pdf)
    except (OSError, ReportError) as exc:
        db.session.rollback()
        write_transactions(False)
        _fail(archive_id, exc.message if isinstance(exc, ReportError) else "报告未能存档：文件存储暂时无法访问。")
        return
    archive = db.session.get(ReportArchive, archive_id)
    archive.status = ReportStatus.DONE
    archive.progress = 100
    archive.sha256 = sha
    archive.size = len(rendered.pdf)
    archive.pages = rendered.pages
    archive.filename = built.filename
    archive.audit_head = built.audit_head
    archive.audit_seq = built.audit_seq
    archive.input_head = built.input_head
    archive.finished_at = utcnow()
    user = archive.created_by
    audit.append("report_generated", user=user, username=None if user else CLI_USERNAME, plan=_plan(params.plan),
                 details={"archive": archive.id, "kind": params.kind, "params": params.as_dict(), "sha256": sha,
                          "size": archive.size, "pages": rendered.pages, "audit_head": built.audit_head,
                          "audit_seq": built.audit_seq, "seconds": round(rendered.seconds, 2)})
    notify_requester(archive, f"您申请的{built.title}已生成（{rendered.pages} 页，存档 #{archive.id}），"
                     f"可在“进展报告”中下载。")
    db.session.commit()
    write_transactions(False)


def _fail(archive_id: int, message: str) -> None:
    write_transactions(True)
    archive = db.session.get(ReportArchive, archive_id)
    archive.status = ReportStatus.FAILED
    archive.error = message
    archive.finished_at = utcnow()
    notify_requester(archive, f"报告生成失败（存档 #{archive.id}）：{message}")
    db.session.commit()
    write_transactions(False)


def _progress(archive_id: int, percent: int) -> None:
    write_transactions(True)
    db.session.execute(update(ReportArchive).where(ReportArchive.id == archive_id).values(progress=percent))
    db.session.commit()
    write_transactions(False)


def notify_requester(archive, message: str) -> None:
    if archive.created_by_id is None:
        return
    notices.send([archive.created_by], NotificationKind.REPORT, message)


# ------------------------------------------------------------------ files

def path_for(sha256: str) -> str:
    """Where the archived PDF of this content is, in words (a path in the default folder store)."""
    return report_store().describe(report_key(sha256))


def store(pdf: bytes) -> str:
    """Write the PDF under its sha256 (never half-written: see filestore.put_once)."""
    sha = hashlib.sha256(pdf).hexdigest()
    try:
        storage.claim(report_store())
        report_store().put_once(report_key(sha), pdf)
    except OSError as exc:   # a full disk is said in words, and the job is marked failed
        raise ReportError(storage_failure_message(exc).replace("文件未保存", "报告未能存档")) from exc
    return sha


def read_pdf(archive) -> bytes:
    """The archived bytes, checked against the recorded hash."""
    try:
        with contextlib.closing(report_store().open(report_key(archive.sha256))) as fh:
            content = fh.read()
    except FileNotFoundError:
        raise
    except OSError as exc:   # the store itself failed (unreachable, refused)
        raise ReportError("存档文件无法读取，请重新生成该报告或联系管理员。") from exc
    if hashlib.sha256(content).hexdigest() != archive.sha256:
        raise ReportError("存档文件已损坏（内容与记录的哈希不符），请联系管理员。")
    return content


def verify_bytes(content: bytes) -> list:
    """The finished archive entries whose PDF is exactly these bytes."""
    sha = hashlib.sha256(content).hexdigest()
    return db.session.scalars(select(ReportArchive).where(ReportArchive.sha256 == sha,
                                                          ReportArchive.status == ReportStatus.DONE)
                              .order_by(ReportArchive.id)).all()


def describe_archive(archive) -> str:
    who = generator_label(archive.created_by) if archive.created_by_id else CLI_GENERATOR
    return (f"存档 #{archive.id}：{describe_params(params_from_archive(archive))}；生成人 {who}；"
            f"生成于 {format_local(archive.finished_at)}；{archive.pages or '?'} 页；"
            f"审计链第 {archive.audit_seq} 条，链头 {archive.audit_head}；sha256 {archive.sha256}")
