"""The audit log, searchable by the office."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, render_template, request
from flask_login import login_required

from workflow import queries
from workflow.audit import ACTION_LABELS
from workflow.extensions import db

from .helpers import require

bp = Blueprint("audit_log", __name__)


@bp.route("/audit")
@login_required
def index():
    require("audit.view")
    filters = queries.AuditFilters.from_args(request.args)
    for message in filters.errors:
        flash(message, "warning")
    page = db.paginate(queries.audit_entries(filters), page=queries.page_number(request.args.get("page")),
                       per_page=current_app.config["PER_PAGE"], error_out=False)
    return render_template("audit/index.html", page=page, filters=filters, units=queries.all_units(),
                           actions=ACTION_LABELS)
