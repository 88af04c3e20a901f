"""单位考核排名: the period chooser (a GET form), the ranked table with every figure,
its charts (inline SVG drawn on the server) and its CSV / xlsx export
(docs/scores.md). The office and viewers see every unit; a unit's users see
their own unit's line and its place only (auth.permissions.scores_unit)."""
from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required
from sqlalchemy import select

from auth.permissions import scores_unit
from models import Plan
from workflow import head_cache, scores, tables
from workflow.extensions import db
from workflow.reports import charts
from workflow.reports.data import chinese_number
from workflow.timeutil import today_local

from .helpers import require
from .urls import parse_id

bp = Blueprint("scores", __name__, url_prefix="/scores")

DEFAULT_PERIOD = "year"


def _choices(args) -> dict:
    """The form as the request filled it, each value as typed (shown back on an error)."""
    return {"period": (args.get("period") or DEFAULT_PERIOD).strip()[:20],
            "start": (args.get("start") or "").strip()[:20], "end": (args.get("end") or "").strip()[:20],
            "plan": (args.get("plan") or "").strip()[:20], "unit": (args.get("unit") or "").strip()[:20]}


def _read(chosen: dict, today, plan_ids: set) -> tuple:
    """(period, plan id or None) from the form; PeriodError with the Chinese message otherwise."""
    start = scores.parse_day(chosen["start"], "开始日期")
    end = scores.parse_day(chosen["end"], "结束日期")
    period = scores.period_of(chosen["period"], today, start, end)
    plan_id = None
    if chosen["plan"]:
        plan_id = parse_id(chosen["plan"])
        if plan_id not in plan_ids:
            raise scores.PeriodError("所选实施方案不存在，请重新选择。")
    return period, plan_id


@bp.route("/")
@login_required
def index():
    require("scores.view")
    own = scores_unit(current_user)
    today = today_local()
    plans = db.session.execute(select(Plan.id, Plan.title).order_by(Plan.id.desc())).all()
    chosen = _choices(request.args)
    page = {"chosen": chosen, "plans": plans, "kinds": scores.PERIOD_KINDS, "own": own, "today": today}
    try:
        period, plan_id = _read(chosen, today, {p.id for p in plans})
    except scores.PeriodError as error:
        return render_template("scores/index.html", error=str(error), **page), 400

    # Every figure comes from audited actions: the ranking is made once per change of the trail.
    due_days, weights = scores.settings()
    result = head_cache.cached(("scores", period, today, plan_id, own, due_days, tuple(sorted(weights.items()))),
                               lambda: scores.ranking(period, today, plan_id, chapter_unit=own,
                                                      numeral=chinese_number))
    everyone = result["units"]
    rows = [f for f in everyone if f.unit_id == own] if own is not None else everyone
    fmt = tables.requested_format()
    if fmt:
        return tables.download(fmt, "考核排名", "scores", tables.score_columns(), [(f, None) for f in rows], today)

    trend = result["trend"]
    names = {f.unit_id: f.name for f in everyone}
    if own is not None:
        series = [(names[own], trend["units"][own])] if own in names else []
        trend_unit = None
    else:
        trend_unit = parse_id(chosen["unit"]) if chosen["unit"] else None
        trend_unit = trend_unit if trend_unit in names else None
        series = [("全部单位", trend["total"])]
        if trend_unit is not None:
            series.append((names[trend_unit], trend["units"][trend_unit]))
    svg = {"scores": charts.score_bars(rows),
           "chapters": charts.chapter_bars(result["chapters"]),
           "trend": charts.trend_line(trend["months"], series)}
    return render_template("scores/index.html", error=None, result=result, rows=rows, period=period,
                           svg=svg, trend_unit=trend_unit, units=sorted(names.items(), key=lambda u: u[1]),
                           weights_text=scores.weights_text(result["weights"]),
                           components=scores.COMPONENTS, component_labels=scores.COMPONENT_LABELS, **page)
