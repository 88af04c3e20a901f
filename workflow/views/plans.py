"""Plans: list, upload → review → confirm, browse items, export."""
from __future__ import annotations

import contextlib
import io
import json
import re
from collections import Counter

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user, login_required
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from wtforms import HiddenField, SubmitField

from models import Chapter, Item, Plan, Task
from workflow.export import plan_as_dict, plan_as_xlsx
from workflow.extensions import db
from workflow.importer import service
from workflow.importer.tables import TABLE_FIELDS
from workflow.importer.load import (COUNT_LABELS, PROBLEM_LABELS, REMOVED_LABELS, WARNING_LABELS, ImportChoices,
                                    NameChoice, Review, sha256_of)
from workflow.vocabulary import DocumentShape, NameDecision
from workflow.filestore import staging_store
from workflow.storage import StorageFailed, clean_filename, storage_failure_message

from .forms import FlaskForm
from .helpers import require

bp = Blueprint("plans", __name__, url_prefix="/plans")

SHA_RE = re.compile(r"^[0-9a-f]{64}$")
#: What the upload takes; .doc and .wps are read through LibreOffice, and the importer answers the
#: formats it cannot read (.et, .pdf, or .doc without LibreOffice) with how to save them.
ALLOWED_SUFFIXES = (".txt", ".docx", ".xlsx", ".xlsm", ".xls", ".doc", ".wps", ".et", ".pdf")


class UploadForm(FlaskForm):
    document = FileField("文件（.txt、.docx、.doc、.wps、.xlsx 或 .xls）", validators=[FileRequired("请选择要上传的文件。")])
    submit = SubmitField("上传并审核")


class ConfirmForm(FlaskForm):
    """The review's form: the staged file by its hash, and the office's choices (the column
    mapping, each name, each deadline found in a sentence) as the fields ``choices_from``
    reads. "按所选重新审核" shows the review with them (``review_again``); "确认导入" writes what
    that review shows (``confirm``)."""
    sha256 = HiddenField()
    # "1" when the review read invalid bytes as replacement characters: the
    # confirmation reads the staged file the same way.
    replace_invalid = HiddenField()
    submit = SubmitField("确认导入")
    again = SubmitField("按所选重新审核")


def choices_from(form) -> ImportChoices:
    """The office's choices as the review page posts them. Values are checked where they are
    used: a name's target must be a unit or a name of the document (load.plan_units), a field a
    known one (the table reader), a deadline key a task with a proposal."""
    names = {}
    for key, value in form.items():
        if key.startswith("name-") and value in NameDecision.values():
            names[key[5:]] = NameChoice(value, (form.get("target-" + key[5:]) or "").strip() or None)
    mapping = {}
    for n in range(int(form.get("columns", "0") or 0) if (form.get("columns") or "").isdigit() else 0):
        sheet, index, field = form.get(f"colsheet-{n}"), form.get(f"colindex-{n}", ""), form.get(f"colfield-{n}")
        if sheet is not None and index.isdigit() and field:
            mapping[(sheet, int(index))] = field
    return ImportChoices(names=names, mapping=mapping or None, deadlines=set(form.getlist("deadline")))


class RereadForm(FlaskForm):
    """On the refusal of a text with invalid bytes: read it with U+FFFD instead."""
    sha256 = HiddenField()
    submit = SubmitField("以替换字符读取")


# Uploaded compilations wait in the staging store (a folder of the instance, or the bucket's
# staging/ when several hosts share the work), between review and confirm: the bytes by their
# hash, and beside them the name they came with, so that what is confirmed is exactly what was
# reviewed. `flask storage check --clean` removes what was never confirmed, after a day.

def _stage(sha: str, data: bytes, filename: str) -> None:
    """Raises StorageFailed (a Chinese message) when the store refuses."""
    try:
        staging_store().put_once(f"{sha}.bin", data)
        staging_store().replace(f"{sha}.name", filename.encode("utf-8"))
    except OSError as exc:
        raise StorageFailed(storage_failure_message(exc).replace("文件未保存", "文件未能暂存待审核")) from exc


def _read(key: str) -> bytes | None:
    try:
        with contextlib.closing(staging_store().open(key)) as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _staged(sha: str) -> tuple[bytes, str] | None:
    data = _read(f"{sha}.bin")
    if data is None:
        return None
    name = _read(f"{sha}.name")
    return data, name.decode("utf-8") if name is not None else "document.txt"


def _unstage(sha: str) -> None:
    for key in (f"{sha}.bin", f"{sha}.name"):
        staging_store().remove(key)


#: How many problems and hints of one kind the review lists (the rest are counted): a large document
#: can have tens of thousands of one kind (every paragraph of a copied part repeats one before it),
#: and a page of all of them ran to megabytes; the first ones show what to fix in the file.
LISTED_PER_KIND = 50


def listed(entries, per_kind: int | None = None) -> tuple[list, dict[str, int]]:
    """The entries to list, in their order (each kind's first ``per_kind``), and how many each kind
    cut short has in all."""
    per_kind = LISTED_PER_KIND if per_kind is None else per_kind
    seen: Counter = Counter()
    shown = []
    for entry in entries:
        seen[entry.code] += 1
        if seen[entry.code] <= per_kind:
            shown.append(entry)
    return shown, {code: n for code, n in seen.items() if n > per_kind}


def _review_page(rv, replace_invalid: bool = False):
    """The review with its choices; the confirm button only when the review accepts the
    document (a review with problems is answered 400: it cannot be imported as it is)."""
    form = ConfirmForm(sha256=rv.sha256, replace_invalid="1" if replace_invalid else "")
    problems, problems_cut = listed(rv.problems)
    warnings, warnings_cut = listed(rv.warnings)
    return render_template("plans/review.html", rv=rv, form=form, confirm=rv.accepted,
                           problems=problems, problems_cut=problems_cut, warnings=warnings,
                           warnings_cut=warnings_cut, per_kind=LISTED_PER_KIND,
                           replace_invalid=replace_invalid, unit_names=_unit_names(),
                           fields=_table_fields(), COUNT_LABELS=COUNT_LABELS, WARNING_LABELS=WARNING_LABELS,
                           PROBLEM_LABELS=PROBLEM_LABELS, REMOVED_LABELS=REMOVED_LABELS,
                           SHAPES=DocumentShape.labels(), DECISIONS=NameDecision), 200 if rv.accepted else 400


def _unit_names() -> list[str]:
    from models import Unit
    return list(db.session.scalars(select(Unit.name).order_by(Unit.name)))


def _table_fields() -> dict[str, str]:
    """Field key → label of what a table column can be read as."""
    return {key: label for key, (label, _synonyms) in TABLE_FIELDS.items()}


@bp.route("/")
@login_required
def index():
    require("plan.view")
    plans = db.session.scalars(select(Plan).order_by(Plan.id.desc())).all()
    return render_template("plans/index.html", plans=plans)


@bp.route("/import", methods=["GET", "POST"])
@login_required
def upload():
    require("plan.import")
    form = UploadForm()
    if form.validate_on_submit():
        storage = form.document.data
        filename = clean_filename(storage.filename or "") or "document"
        if not filename.lower().endswith(ALLOWED_SUFFIXES):
            form.document.errors.append("只支持 .txt（UTF-8 或 GB18030 编码）、Word（.docx、.doc）、WPS 文字（.wps）和 Excel（.xlsx、.xls）文件。")
            return render_template("plans/upload.html", form=form), 400
        data = storage.read()
        try:
            return _review_upload(form, data, filename)
        except StorageFailed as exc:
            form.document.errors.append(exc.message)
            return render_template("plans/upload.html", form=form), 507
    return render_template("plans/upload.html", form=form)


def _review_upload(form, data: bytes, filename: str):
    """Review the upload and stage its bytes (refused with invalid bytes: staged too)."""
    try:
        rv = service.review_upload(data, filename)
    except service.InvalidBytesError as exc:
        # Kept, so that the office can choose to read it with replacement characters.
        sha = sha256_of(data)
        _stage(sha, data, filename)
        form.document.errors.append(f"文件按 UTF-8 编码读取，但含有 {exc.total} 处无法识别的字节，"
                                    "位置见下方。")
        return render_template("plans/upload.html", form=form, invalid=exc,
                               reread=RereadForm(sha256=sha)), 400
    except service.DocumentError as exc:
        form.document.errors.append(exc.message)
        # No shape fits: what the importer did find tells the office what to do.
        return render_template("plans/upload.html", form=form, found=getattr(exc, "found", None)), 400
    _stage(rv.sha256, data, filename)
    return _review_page(rv)


def _review_staged(form, replace_invalid: bool, choices: ImportChoices | None = None):
    """The review of the bytes a form names (by hash), or the response that
    refuses the form: 400 if forged, back to the upload page if expired or
    unreadable."""
    if not form.validate_on_submit() or not SHA_RE.fullmatch(form.sha256.data or ""):
        abort(400)
    try:
        staged = _staged(form.sha256.data)
    except OSError:   # the store itself did not answer (a bucket out of reach)
        flash("暂存的文件暂时无法读取，请稍后重试；如持续出现，请联系系统管理员。", "danger")
        return redirect(url_for("plans.upload"))
    if staged is None:
        flash("审核结果已过期，请重新上传文件。", "warning")
        return redirect(url_for("plans.upload"))
    try:
        return service.review_upload(*staged, replace_invalid=replace_invalid, choices=choices)
    except service.DocumentError as exc:
        flash(exc.message, "danger")
        return redirect(url_for("plans.upload"))


@bp.route("/import/reread", methods=["POST"])
@login_required
def reread():
    require("plan.import")
    form = RereadForm()
    rv = _review_staged(form, replace_invalid=True)
    return rv if not isinstance(rv, Review) else _review_page(rv, replace_invalid=True)


@bp.route("/import/review", methods=["POST"])
@login_required
def review_again():
    """The review of the staged file with the choices made on the review page; writes nothing."""
    require("plan.import")
    form = ConfirmForm()
    replace_invalid = form.replace_invalid.data == "1"
    rv = _review_staged(form, replace_invalid, choices_from(request.form))
    return rv if not isinstance(rv, Review) else _review_page(rv, replace_invalid)


@bp.route("/import/confirm", methods=["POST"])
@login_required
def confirm():
    require("plan.import")
    form = ConfirmForm()
    replace_invalid = form.replace_invalid.data == "1"
    # What is written is what the review of these same bytes, with these choices, accepts now.
    rv = _review_staged(form, replace_invalid, choices_from(request.form))
    if not isinstance(rv, Review):
        return rv
    if rv.already_imported:
        flash(f"该文件已导入过（方案编号 {rv.existing_plan_id}），未重复导入。", "info")
        return redirect(url_for("plans.detail", plan_id=rv.existing_plan_id))
    if not rv.accepted:
        flash(f"该文件有 {len(rv.problems)} 处问题，不能导入，请修改文件后重新上传。", "danger")
        return _review_page(rv, replace_invalid)
    try:
        plan = service.confirm(rv, user=current_user._get_current_object())
    except service.DocumentError as exc:
        flash(exc.message, "danger")
        return redirect(url_for("plans.upload"))
    _unstage(form.sha256.data)
    flash(f"导入成功：{rv.counts['items']} 个事项，{rv.counts['tasks'] + rv.counts['measures']} 条任务。", "success")
    return redirect(url_for("plans.detail", plan_id=plan.id))


@bp.route("/<int:plan_id>")
@login_required
def detail(plan_id: int):
    require("plan.view")
    plan = db.session.scalar(select(Plan).where(Plan.id == plan_id).options(
        selectinload(Plan.chapters).selectinload(Chapter.items).selectinload(Item.owner_units)))
    if plan is None:
        abort(404)
    task_counts = dict(db.session.execute(
        select(Task.item_id, func.count(Task.id)).join(Item).where(Item.plan_id == plan_id).group_by(Task.item_id)).all())
    return render_template("plans/detail.html", plan=plan, task_counts=task_counts)


@bp.route("/<int:plan_id>/items/<number>")
@login_required
def item(plan_id: int, number: str):
    require("plan.view")
    item = db.session.scalar(select(Item).where(Item.plan_id == plan_id, Item.number == number))
    if item is None:
        abort(404)
    return render_template("plans/item.html", item=item)


@bp.route("/<int:plan_id>/export.<fmt>")
@login_required
def export(plan_id: int, fmt: str):
    require("plan.export")
    if fmt == "json":
        data = plan_as_dict(plan_id)
        if data is None:
            abort(404)
        payload = io.BytesIO(json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8"))
        return send_file(payload, mimetype="application/json", as_attachment=True,
                         download_name=f"plan-{plan_id}.json")
    if fmt == "xlsx":
        content = plan_as_xlsx(plan_id)
        if content is None:
            abort(404)
        return send_file(io.BytesIO(content), as_attachment=True, download_name=f"任务台账-{plan_id}.xlsx",
                         mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    abort(404)
