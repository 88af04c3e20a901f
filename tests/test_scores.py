"""单位考核排名 (workflow/scores.py, docs/scores.md): each component and the score on a
small plan whose figures are worked out by hand below, the ranking and its ties, the
weights setting, the periods, the page (who sees what, bad input, export, escaped
charts) and the overall report's section."""
from __future__ import annotations

import csv
import io
import shutil
import subprocess
from datetime import date, datetime

import pytest
from sqlalchemy import select

from auth.passwords import hash_password
from models import (
    Chapter, ExtensionRequest, Item, Plan, ProgressRound, Role, RoundPart, Submission, Task, TaskPart, Unit,
    UnitKind, User,
)
from workflow import scores
from workflow.extensions import db
from workflow.scores import Period, PeriodError, WeightsError, parse_weights, period_of
from workflow.vocabulary import IN_PROGRESS, PLANNED, VERIFIED, SubmissionOutcome

TODAY = date(2022, 9, 30)
QUARTER = Period(date(2022, 7, 1), date(2022, 9, 30))
SCRIPT_UNIT = "<script>alert(1)</script>局"


@pytest.fixture
def app_config() -> dict:
    return {"LUOSHI_ENV": "demo", "LUOSHI_TODAY": TODAY.isoformat()}


def utc(day: str, hour: int = 2) -> datetime:
    """A naive UTC instant on a China Standard Time day (02:00 UTC is 10:00 CST)."""
    return datetime.fromisoformat(day).replace(hour=hour)


@pytest.fixture
def world(app):
    """Three working units on one plan imported 2022-03-01 (every receipt was due long ago):

    区甲局 (A): p1 due 07-31, handed in 07-30, verified 08-02 — on time;
                p2 due 08-31, returned 08-20, handed in again 09-10, verified 09-12 — late;
                p3 due 09-15, nothing — overdue 15 days; p4 due 06-30 (before the quarter),
                nothing — overdue 92 days; p5 long-term, never received; p6 due 10-31.
                A round due 08-05 (closed 08-10): p1 filed on time, p2 late, p3 never.
                An extension asked 09-01, granted 09-05.
    区乙局 (B): q1 due 08-15, handed in 08-10, verified 08-11.
    <script> (C): r1 due 12-31, in progress.
    """
    with app.app_context():
        office = Unit(name="区指挥部办公室", kind=UnitKind.OFFICE)
        a, b, c = Unit(name="区甲局"), Unit(name="区乙局"), Unit(name=SCRIPT_UNIT)
        db.session.add_all([office, a, b, c])
        db.session.flush()
        pw = hash_password("demo-2026")
        users = {name: User(username=name, display_name=name, unit_id=unit.id, role=role, password_hash=pw)
                 for name, unit, role in (("office", office, Role.OFFICE_ADMIN), ("viewer", office, Role.VIEWER),
                                          ("a.staff", a, Role.UNIT_STAFF), ("b.leader", b, Role.UNIT_LEADER))}
        db.session.add_all(users.values())
        plan = Plan(title="测试方案", source_filename="t.txt", source_sha256="0" * 64, imported_at=utc("2022-03-01"))
        db.session.add(plan)
        db.session.flush()
        ch1 = Chapter(plan_id=plan.id, number=1, title="甲章")
        ch2 = Chapter(plan_id=plan.id, number=2, title="乙章")
        db.session.add_all([ch1, ch2])
        db.session.flush()
        items = {ch.id: Item(plan_id=plan.id, chapter_id=ch.id, number=str(ch.number), position=ch.number)
                 for ch in (ch1, ch2)}
        db.session.add_all(items.values())
        db.session.flush()
        parts = {}
        seq = 0

        def part(key, unit, chapter, deadline, state=IN_PROGRESS, received=True, long_term=False):
            nonlocal seq
            seq += 1
            task = Task(item_id=items[chapter.id].id, kind="task", seq=seq, text=f"任务{key}",
                        deadline=date.fromisoformat(deadline) if deadline else None, long_term=long_term,
                        state=state)
            db.session.add(task)
            db.session.flush()
            parts[key] = TaskPart(task_id=task.id, unit_id=unit.id, state=state,
                                  received_at=utc("2022-03-02") if received else None)
            db.session.add(parts[key])
            db.session.flush()

        part("p1", a, ch1, "2022-07-31", VERIFIED)
        part("p2", a, ch1, "2022-08-31", VERIFIED)
        part("p3", a, ch1, "2022-09-15")
        part("p4", a, ch2, "2022-06-30")
        part("p5", a, ch2, None, PLANNED, received=False, long_term=True)
        part("p6", a, ch2, "2022-10-31", PLANNED)
        part("q1", b, ch1, "2022-08-15", VERIFIED)
        part("r1", c, ch2, "2022-12-31")
        staff, leader = users["a.staff"], users["b.leader"]

        def submission(key, number, submitted, decided, outcome, by=staff):
            db.session.add(Submission(part_id=parts[key].id, number=number, statement="完成", submitted_by_id=by.id,
                                      submitted_at=utc(submitted), decided_at=utc(decided), outcome=outcome,
                                      decided_by_id=leader.id))

        submission("p1", 1, "2022-07-30", "2022-08-02", SubmissionOutcome.VERIFIED)
        submission("p2", 1, "2022-08-15", "2022-08-20", SubmissionOutcome.RETURNED)
        submission("p2", 2, "2022-09-10", "2022-09-12", SubmissionOutcome.VERIFIED)
        submission("q1", 1, "2022-08-10", "2022-08-11", SubmissionOutcome.VERIFIED, by=leader)
        db.session.add(ExtensionRequest(part_id=parts["p6"].id, state="granted", requested_by_id=staff.id,
                                        requested_at=utc("2022-09-01"), old_deadline=date(2022, 10, 31),
                                        new_deadline=date(2022, 11, 30), reason="汛期", progress=10,
                                        office_decided_at=utc("2022-09-05")))
        round_ = ProgressRound(plan_id=plan.id, title="2022年8月调度", due_on=date(2022, 8, 5), state="closed",
                               opened_at=utc("2022-08-01"), closed_at=utc("2022-08-10"))
        db.session.add(round_)
        db.session.flush()
        db.session.add_all([
            RoundPart(round_id=round_.id, part_id=parts["p1"].id, filed_at=utc("2022-08-03"), late=False),
            RoundPart(round_id=round_.id, part_id=parts["p2"].id, filed_at=utc("2022-08-07"), late=True),
            RoundPart(round_id=round_.id, part_id=parts["p3"].id)])
        db.session.commit()
        return {"plan": plan.id, "a": a.id, "b": b.id, "c": c.id, "parts": {k: p.id for k, p in parts.items()}}


def measured(period=QUARTER, today=TODAY, weights=None) -> dict:
    facts = scores.load_facts()
    return scores.measure(facts, period, today, 3, weights or parse_weights(None))


def by_name(result) -> dict:
    return {f.name: f for f in result["units"]}


# ---------------------------------------------------------------- the components and the score

def test_each_component_and_the_score_of_a_unit_as_worked_out_by_hand(app, world):
    with app.app_context():
        a = by_name(measured())["区甲局"]
    # Due in the quarter and judged: p1 on time, p2 finished late, p3 still overdue.
    assert (a.judged, a.on_time, a.finished_late, a.still_overdue) == (3, 1, 1, 1)
    # Overdue at 09-30, whatever the deadline: p3 (15 days) and p4 (92 days), of four past due.
    assert (a.past_due, a.overdue, a.overdue_days, a.overdue_max) == (4, 2, 107, 92)
    # Decided in the quarter: p1 verified, p2 returned then verified.
    assert (a.decided, a.returned, a.return_rate) == (3, 1, 33.3)
    assert (a.ext_requested, a.ext_granted) == (1, 1)
    assert (a.filings_due, a.filed_on_time, a.filed_late, a.filings_missing) == (3, 1, 1, 1)
    # Six parts, all due for receipt; the long-term one never received.
    assert (a.receipt_due, a.receipt_late) == (6, 1)
    assert a.components == {"ontime": 33.3,                    # 1 / 3
                            "overdue": 62.5,                   # 1 − (15 + 30) / (30 × 4)
                            "returns": 66.7,                   # 1 − 1 / 3
                            "filings": 50.0,                   # (1 + ½) / 3
                            "receipt": 83.3}                   # 1 − 1 / 6
    # (40 × 33.33 + 20 × 62.5 + 15 × 66.67 + 15 × 50 + 10 × 83.33) / 100
    assert a.score == 51.7
    assert a.ontime_rate == 33.3


def test_a_component_with_nothing_to_measure_is_left_out_not_counted_as_zero_or_full(app, world):
    with app.app_context():
        units = by_name(measured())
    b, c = units["区乙局"], units[SCRIPT_UNIT]
    # B: no round asked it anything — filings is "—", the rest are full.
    assert b.components == {"ontime": 100.0, "overdue": 100.0, "returns": 100.0, "filings": None, "receipt": 100.0}
    assert b.score == 100.0
    # C: only its receipt can be measured.
    assert [k for k, v in c.components.items() if v is not None] == ["receipt"]
    assert c.score == 100.0


def test_the_china_date_of_the_hand_in_decides_on_time(app, world):
    """16:30 UTC on 07-31 is 00:30 on 08-01 in Beijing: a day after p1's deadline."""
    with app.app_context():
        first = db.session.scalar(select(Submission).where(Submission.part_id == world["parts"]["p1"]))
        first.submitted_at = datetime(2022, 7, 31, 16, 30)
        db.session.commit()
        a = by_name(measured())["区甲局"]
    assert (a.on_time, a.finished_late) == (0, 2)


def test_ranking_by_score_then_the_documented_keys(app, world):
    with app.app_context():
        rows = measured()["units"]
    # B and C both score 100: B has a part judged, C none — B first.
    assert [(f.rank, f.name, f.score) for f in rows] == [
        (1, "区乙局", 100.0), (2, SCRIPT_UNIT, 100.0), (3, "区甲局", 51.7)]
    assert scores.rank_key(rows[0]) < scores.rank_key(rows[1])


def test_the_weights_setting_changes_the_score_and_a_unit_with_nothing_scored_is_unranked(app, world):
    with app.app_context():
        rows = measured(weights=parse_weights("ontime=100"))["units"]
    assert [(f.rank, f.name, f.score) for f in rows] == [(1, "区乙局", 100.0), (2, "区甲局", 33.3),
                                                         (None, SCRIPT_UNIT, None)]


def test_chapters_and_the_total(app, world):
    with app.app_context():
        result = measured()
    chapters = {f.name: f for f in result["chapters"]}
    assert list(chapters) == ["1、甲章", "2、乙章"]
    one, two = chapters["1、甲章"], chapters["2、乙章"]
    assert (one.judged, one.on_time, one.finished_late, one.still_overdue, one.overdue) == (4, 2, 1, 1, 1)
    assert (two.judged, two.overdue, two.overdue_days) == (0, 1, 92)
    total = result["total"]
    assert (total.judged, total.on_time, total.overdue, total.decided, total.returned) == (4, 2, 2, 4, 1)


def test_the_month_trend_judges_each_month_at_its_end(app, world):
    """August, seen on 09-30: events up to 08-31, overdue judged on 09-01 — p2 (due
    08-31, verified 09-12) is one day late; p4 is capped at 30 days."""
    with app.app_context():
        august = by_name(measured(period=scores.month_period(2022, 8)))["区甲局"]
        result = scores.ranking(QUARTER, TODAY)
    assert (august.judged, august.on_time, august.still_overdue) == (1, 0, 1)
    assert (august.past_due, august.overdue_penalty) == (3, 31)
    assert (august.decided, august.returned) == (2, 1)
    # (40 × 0 + 20 × 65.56 + 15 × 50 + 15 × 50 + 10 × 83.33) / 100
    assert august.score == 36.4
    trend = result["trend"]
    assert trend["months"][-3:] == ["2022-07", "2022-08", "2022-09"] and len(trend["months"]) == 12
    assert trend["units"][world["a"]][trend["months"].index("2022-08")] == 36.4
    # Before the plan's parts had any deadline or receipt due: nothing to score.
    assert trend["total"][0] is None


def test_a_fixed_number_of_queries_whatever_the_units_parts_and_months(app, world, count_queries):
    with app.app_context():
        with count_queries() as few:
            scores.ranking(QUARTER, TODAY, trend=1)
        plan = db.session.get(Plan, world["plan"])
        item = db.session.scalar(select(Item).where(Item.plan_id == plan.id))
        for n in range(5):
            unit = Unit(name=f"区新增局{n}")
            db.session.add(unit)
            db.session.flush()
            task = Task(item_id=item.id, kind="measure", seq=n + 1, text="新增", deadline=date(2022, 8, 1))
            db.session.add(task)
            db.session.flush()
            db.session.add(TaskPart(task_id=task.id, unit_id=unit.id))
        db.session.commit()
        with count_queries() as many:
            result = scores.ranking(QUARTER, TODAY, trend=12)
    assert len(result["units"]) == 8
    selects = [q for q in many if q.lstrip().upper().startswith("SELECT")]
    assert len(many) == len(few) and len(selects) == 5


def test_work_done_through_the_services_counts_on_the_days_it_was_done(app, world):
    """p6 (due 10-31) driven through the real services, back-dated: handed in 09-20, returned
    09-22, handed in again 09-25, verified 09-26 — on time for the year; two decisions,
    one a return, in the quarter."""
    from workflow import services
    from workflow.timeutil import played_at

    with app.app_context():
        part = db.session.get(TaskPart, world["parts"]["p6"])
        part.task.lead_units.append(db.session.get(Unit, world["b"]))
        db.session.commit()
        staff = db.session.scalar(select(User).where(User.username == "a.staff"))
        leader = db.session.scalar(select(User).where(User.username == "b.leader"))
        with played_at(utc("2022-09-20")):
            services.start_part(part, staff)
            services.add_text_evidence(part, staff, "方案已印发。")
            services.submit_part(part, staff, "已完成。")
        with played_at(utc("2022-09-22")):
            services.return_part(part, leader, "请补充印发文件。")
        with played_at(utc("2022-09-25")):
            services.add_text_evidence(part, staff, "印发文件见附件。")
            services.submit_part(part, staff, "已完成，补充了印发文件。")
        with played_at(utc("2022-09-26")):
            services.verify_part(part, leader)
        db.session.commit()
        quarter = by_name(measured())["区甲局"]
        year = by_name(measured(period=Period(date(2022, 1, 1), date(2022, 12, 31))))["区甲局"]
    assert (quarter.judged, quarter.decided, quarter.returned) == (3, 5, 2)
    # The year: p4 (06-30) overdue, p1 on time, p2 late, p3 overdue, and now p6 on time.
    assert (year.judged, year.on_time, year.finished_late, year.still_overdue) == (5, 2, 1, 2)


# ---------------------------------------------------------------- settings and periods

@pytest.mark.parametrize("raw, message", [
    ("ontime=40,speed=10", "“speed”不是考核项"),
    ("ontime=40,ontime=10", "“ontime”出现了两次"),
    ("ontime=abc", "“ontime”的权重“abc”应为 0 到 100 的整数"),
    ("ontime=101", "应为 0 到 100 的整数"),
    ("ontime", "应写作 名称=权重"),
    ("ontime=0,receipt=0", "权重全为 0"),
])
def test_bad_weights_stop_the_start_with_a_clear_message(raw, message, tmp_path):
    from tests.conftest import make_app

    with pytest.raises(WeightsError, match=message) as found:
        make_app(f"sqlite:///{tmp_path / 'x.sqlite'}", tmp_path, SCORE_WEIGHTS=raw)
    assert "SCORE_WEIGHTS" in str(found.value) and "拒绝启动" in str(found.value)


def test_weights_read_with_spaces_and_left_out_components_weigh_nothing():
    assert parse_weights(" ontime = 60 , returns=40 ") == {
        "ontime": 60, "overdue": 0, "returns": 40, "filings": 0, "receipt": 0}
    assert parse_weights(None) == parse_weights("") == {
        "ontime": 40, "overdue": 20, "returns": 15, "filings": 15, "receipt": 10}


def test_the_named_periods_around_today():
    day = date(2022, 8, 17)
    assert period_of("month", day) == Period(date(2022, 8, 1), date(2022, 8, 31), "month")
    assert period_of("last_month", date(2022, 1, 5)) == Period(date(2021, 12, 1), date(2021, 12, 31), "last_month")
    assert period_of("quarter", day) == Period(date(2022, 7, 1), date(2022, 9, 30), "quarter")
    assert period_of("year", day) == Period(date(2022, 1, 1), date(2022, 12, 31), "year")
    custom = period_of("custom", day, date(2022, 2, 1), date(2022, 2, 28))
    assert (custom.last_day(day), custom.judge_day(day)) == (date(2022, 2, 28), date(2022, 3, 1))
    running = period_of("month", day)
    assert (running.last_day(day), running.judge_day(day)) == (day, day)
    for args in (("custom", day, None, date(2022, 2, 1)), ("custom", day, date(2022, 3, 1), date(2022, 2, 1)),
                 ("week", day), ("custom", day, date(2022, 9, 1), date(2022, 9, 30))):
        with pytest.raises(PeriodError):
            period_of(*args)


# ---------------------------------------------------------------- the page

def _csv_rows(response) -> list[dict]:
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))


def test_the_office_and_viewers_see_every_unit_ranked_with_charts(app, world, login):
    for username in ("office", "viewer"):
        client = login(username)
        html = client.get("/scores/?period=quarter").get_data(as_text=True)
        assert "考核排名" in html and "区甲局" in html and "区乙局" in html
        assert html.count("<svg") == 3
        assert "51.7" in html and "全部单位" in html
        rows = _csv_rows(client.get("/scores/?period=quarter&format=csv"))
        assert [(r["排名"], r["单位"], r["综合得分"]) for r in rows] == [
            ("1", "区乙局", "100.0"), ("2", SCRIPT_UNIT, "100.0"), ("3", "区甲局", "51.7")]
        assert rows[2]["逾期天数合计"] == "107" and rows[1]["按期完成率 %"] == "—"
    xlsx = login("office").get("/scores/?period=quarter&format=xlsx")
    assert xlsx.status_code == 200 and xlsx.data[:2] == b"PK"


def test_a_unit_user_sees_their_own_line_and_place_and_nothing_of_the_others(app, world, login):
    client = login("a.staff")
    html = client.get("/scores/?period=quarter").get_data(as_text=True)
    assert "区甲局" in html and "在 3 个参加排名的承办单位中排第 <strong>3</strong> 名" in html
    assert "区乙局" not in html and "alert(1)" not in html and "全部单位" not in html
    rows = _csv_rows(client.get("/scores/?period=quarter&format=csv"))
    assert [(r["排名"], r["单位"]) for r in rows] == [("3", "区甲局")]
    # Asking for another unit's trend line changes nothing.
    html = client.get(f"/scores/?period=quarter&unit={world['b']}").get_data(as_text=True)
    assert "区乙局" not in html


def test_the_nav_links_the_page(app, world, login):
    for username in ("office", "viewer", "b.leader"):
        assert 'href="/scores/"' in login(username).get("/").get_data(as_text=True)


@pytest.mark.parametrize("query, message", [
    ("period=custom&start=2022-02-30&end=2022-03-01", "开始日期“2022-02-30”不是有效日期"),
    ("period=custom&start=2022-05-01&end=2022-04-01", "开始日期不能晚于结束日期"),
    ("period=custom&start=2022-05-01", "请填写开始日期和结束日期"),
    ("period=weekly", "考核期间无效"),
    ("period=custom&start=2023-01-01&end=2023-02-01", "考核期间尚未开始"),
    ("period=custom&start=1999-01-01&end=2022-02-01", "开始日期须在 2000-01-01 至 2100-12-31 之间"),
    ("plan=999", "所选实施方案不存在"),
    ("period=custom&start=%00&end=x&format=csv", None),
])
def test_bad_period_input_is_a_chinese_message_not_a_500(app, world, login, query, message):
    response = login("office").get(f"/scores/?{query}")
    assert response.status_code == 400
    if message:
        assert message in response.get_data(as_text=True)


def test_the_svg_escapes_a_unit_name(app, world, login):
    html = login("office").get(f"/scores/?period=quarter&unit={world['c']}").get_data(as_text=True)
    charts = html[html.index("<svg"):]
    assert "<script" not in charts
    # Shortened to fit beside its bar (the table has the full name), escaped in every chart.
    assert charts.count("&lt;script&gt;a") == 2        # the score bars and the trend legend
    assert "&lt;script&gt;alert(1)&lt;/script&gt;局" in html    # the table


def test_with_no_plan_the_page_says_so(app, office_client):
    response = office_client.get("/scores/")
    assert response.status_code == 200 and "没有承办单位" in response.get_data(as_text=True)
    assert _csv_rows(office_client.get("/scores/?format=csv")) == []


def test_anonymous_is_sent_to_login(app, world):
    response = app.test_client().get("/scores/")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


# ---------------------------------------------------------------- the overall report

@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext) not installed")
def test_the_overall_report_carries_the_ranking(app, world, tmp_path):
    from workflow.reports import archive, render

    with app.app_context():
        params = archive.make_params("overall", plan_id=world["plan"], as_of=TODAY)
        built = archive.build_html(params, "测试")
        pdf = render.html_to_pdf(built.html).pdf
        again = render.html_to_pdf(archive.build_html(params, "测试").html).pdf
    assert again == pdf      # the section keeps the report byte for byte the same
    path = tmp_path / "overall.pdf"
    path.write_bytes(pdf)
    text = "".join(subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True,
                                  capture_output=True, text=True).stdout.split())
    assert "六、单位考核排名" in text
    assert "2022-01-01至2022-09-30" in text
    # The year to 09-30 adds nothing to A's quarter but p4, due 06-30: judged and overdue.
    with app.app_context():
        year = by_name(measured(period=Period(date(2022, 1, 1), TODAY)))
    assert f"区甲局{year['区甲局'].score}" in text
    assert "区乙局100.0" in text


def test_other_weights_are_another_report_not_the_archived_one(app, world):
    """The overall report prints the ranking: a report asked for under other
    SCORE_WEIGHTS has other parameters, so the archive does not serve the old one."""
    from workflow import scores
    from workflow.reports import archive

    with app.app_context():
        plan_id = db.session.scalar(select(Plan.id))
        before = archive.make_params("overall", plan_id=plan_id, as_of="2022-09-30")
        app.extensions[scores._WEIGHTS_KEY] = scores.parse_weights("ontime=100")
        after = archive.make_params("overall", plan_id=plan_id, as_of="2022-09-30")
        assert before.layout != after.layout and before.key != after.key
        assert after.layout.startswith(archive.layout_version())
