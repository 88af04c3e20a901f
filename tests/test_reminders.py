"""Reminders that fire by themselves, 督办 after repeated ones, rounds on a
schedule, the 督办通报 (workflow/reminders.py, workflow/reminder_services.py,
docs/reminders.md).

Each test quiets the seed plan first (every part but the ones it watches is
marked verified), so that a sweep's figures are the watched parts' alone.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from models import (
    AuditEntry, Escalation, Notification, ProgressRound, Reminder, ReminderRule, ReportArchive, RoundSchedule,
    SweepRun, Task, TaskPart, User,
)
from tests.helpers import csrf_token, unit_username, user_named
from workflow import background, reminders
from workflow.extensions import db
from workflow.reminders import Rule, occasion
from workflow.vocabulary import ReminderKind

D = date(2022, 6, 30)


@pytest.fixture
def db_template() -> str:
    return "seed"


def rule(before=(7, 3, 1), on_due=True, repeat=3, escalate=3, enabled=True):
    return Rule("deadline", enabled, tuple(before), on_due, repeat, escalate)


# ---------------------------------------------------------------- the occasion of a day

def test_the_current_occasion_is_the_latest_one_not_yet_overtaken():
    r = rule()
    assert occasion(r, D, D - timedelta(days=8)) is None
    assert occasion(r, D, D - timedelta(days=7)) == ("before-7", D - timedelta(days=7))
    # Days between two occasions still belong to the earlier one (a missed day catches up, once).
    assert occasion(r, D, D - timedelta(days=5)) == ("before-7", D - timedelta(days=7))
    assert occasion(r, D, D - timedelta(days=3)) == ("before-3", D - timedelta(days=3))
    assert occasion(r, D, D - timedelta(days=1)) == ("before-1", D - timedelta(days=1))
    assert occasion(r, D, D) == ("due", D)
    assert occasion(r, D, D + timedelta(days=2)) == ("due", D)
    assert occasion(r, D, D + timedelta(days=3)) == ("after-1", D + timedelta(days=3))
    assert occasion(r, D, D + timedelta(days=8)) == ("after-2", D + timedelta(days=6))


def test_a_rule_without_days_after_or_switched_off_stays_quiet():
    assert occasion(rule(repeat=0), D, D + timedelta(days=1)) is None       # "due" is the date itself
    assert occasion(rule(repeat=0), D, D) == ("due", D)
    assert occasion(rule(on_due=False), D, D + timedelta(days=1)) is None    # until the first repeat
    assert occasion(rule(before=()), D, D - timedelta(days=1)) is None
    assert occasion(rule(enabled=False), D, D) is None


# ---------------------------------------------------------------- helpers on the seed plan

def quiet_all_but(*part_ids: int) -> None:
    """Every other part handed in and verified: nothing else to remind."""
    db.session.execute(update(TaskPart).where(TaskPart.id.not_in(part_ids)).values(state="verified"),
                       execution_options={"synchronize_session": False})


def only_rules(**rules) -> None:
    """The rules of this test: every kind off unless given as kind=(days_before, on_due, repeat, escalate)."""
    for kind in ReminderKind.values():
        row = reminders.rule_row(kind)
        given = rules.get(row.kind)
        row.enabled = given is not None
        if given:
            row.days_before, row.on_due, row.repeat_days, row.escalate_after = given


def watched_part(deadline: date, received: bool = True):
    """A seed task with one part, dated ``deadline``, the rest of the plan quiet."""
    from tests.helpers import find_seed_task

    task = find_seed_task(parts=1)
    part = task.parts[0]
    task.deadline = deadline
    part.state = "in_progress"
    if received:
        part.received_at = datetime(2022, 4, 1)
    quiet_all_but(part.id)
    db.session.commit()
    return task.id, part.id, part.unit_id


def sweep(day: date):
    row = reminders.run_sweep(day, "test", again=True)
    return row.reminders, row.escalations


def notices_of(unit_id: int, kind: str) -> list[Notification]:
    return db.session.scalars(select(Notification).join(User).where(User.unit_id == unit_id,
                                                                    Notification.kind == kind)
                              .order_by(Notification.id)).all()


# ---------------------------------------------------------------- deadline reminders

def test_a_deadline_reminds_before_on_and_after_the_day_each_once(app, app_context):
    task_id, part_id, unit_id = watched_part(D)
    only_rules(deadline=("7,3,1", True, 3, 0))
    assert sweep(D - timedelta(days=3)) == (1, 0)
    # The same day again, and the next day (still the same occasion): nothing new.
    assert sweep(D - timedelta(days=3)) == (0, 0)
    assert sweep(D - timedelta(days=2)) == (0, 0)
    assert sweep(D) == (1, 0)
    assert sweep(D + timedelta(days=3)) == (1, 0)
    keys = db.session.scalars(select(Reminder.occasion).where(Reminder.part_id == part_id)
                              .order_by(Reminder.id)).all()
    assert keys == ["before-3", "due", "after-1"]
    due = notices_of(unit_id, "due_remind")
    overdue = notices_of(unit_id, "overdue_remind")
    users = db.session.scalar(select(func.count(User.id)).where(User.unit_id == unit_id, User.active.is_(True)))
    assert len(due) == 2 * users and len(overdue) == users
    assert "还有 3 天" in due[0].message and due[0].task_id == task_id
    assert "今天到期" in due[-1].message
    assert "已逾期 3 天" in overdue[0].message and "2022年6月30日" in overdue[0].message
    # Each reminder is in the audit trail, by the system.
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "reminder_sent",
                                                          AuditEntry.part_id == part_id)).all()
    assert len(entries) == 3 and {e.username for e in entries} == {reminders.ACTOR}


def test_a_handed_in_part_or_an_extension_changes_what_is_reminded(app, app_context):
    task_id, part_id, _ = watched_part(D)
    only_rules(deadline=("3", True, 3, 0))
    assert sweep(D - timedelta(days=3)) == (1, 0)
    part = db.session.get(TaskPart, part_id)
    part.deadline = D + timedelta(days=30)            # an extension granted
    db.session.commit()
    assert sweep(D) == (0, 0)                          # the old date no longer counts
    assert sweep(D + timedelta(days=27)) == (1, 0)     # the new one does
    part = db.session.get(TaskPart, part_id)
    part.state = "submitted"
    db.session.commit()
    assert sweep(D + timedelta(days=30)) == (0, 0)


def test_one_notice_per_unit_names_every_part_due(app, app_context):
    from tests.helpers import find_seed_task

    first = find_seed_task(parts=1)
    unit_id = first.parts[0].unit_id
    parts = db.session.scalars(select(TaskPart).join(Task).where(TaskPart.unit_id == unit_id)
                               .order_by(TaskPart.id).limit(3)).all()
    assert len(parts) == 3
    for part in parts:
        part.task.deadline = D
        part.state = "in_progress"
    quiet_all_but(*[p.id for p in parts])
    db.session.commit()
    only_rules(deadline=("", True, 0, 0))
    assert sweep(D) == (3, 0)
    leader = user_named(unit_username(unit_id, "leader"))
    mine = db.session.scalars(select(Notification).where(Notification.user_id == leader.id,
                                                         Notification.kind == "due_remind")).all()
    assert len(mine) == 1
    assert mine[0].message.startswith("今日提醒（3 项）")
    assert all(p.task.label in mine[0].message for p in parts)


# ---------------------------------------------------------------- 督办

def test_k_reminders_on_or_after_the_date_raise_one_escalation_to_the_leaders(app, app_context, login):
    task_id, part_id, unit_id = watched_part(D)
    only_rules(deadline=("1", True, 3, 3))
    assert sweep(D - timedelta(days=1)) == (1, 0)     # before the date: does not count
    assert sweep(D) == (1, 0)
    assert sweep(D + timedelta(days=3)) == (1, 0)
    assert sweep(D + timedelta(days=6)) == (1, 1)     # the third on or after the date
    assert sweep(D + timedelta(days=9)) == (1, 0)     # one 督办 per part and date
    row = db.session.scalar(select(Escalation).where(Escalation.part_id == part_id))
    assert (row.kind, row.state, row.reminders, row.raised_on) == ("deadline", "open", 3, D + timedelta(days=6))
    assert "已逾期 6 天" in row.reason
    to_leaders = notices_of(unit_id, "escalated")
    assert to_leaders and {n.user.role for n in to_leaders} == {"unit_leader"}
    assert "督办" in to_leaders[0].message
    # The office sees it: on the 督办 page and the overview, and in the header's count.
    office = login("office")
    page = office.get("/escalations/")
    assert page.status_code == 200 and row.part.task.number_label in page.text and "已提醒" not in page.text
    assert "督办 <span class=\"badge warn-red\"" in office.get("/overview").text
    # Handed in: the next sweep resolves it.
    part = db.session.get(TaskPart, part_id)
    part.state = "submitted"
    db.session.commit()
    sweep(D + timedelta(days=10))
    db.session.expire_all()
    row = db.session.get(Escalation, row.id)
    assert (row.state, row.resolved_reason) == ("resolved", "已提交完成材料")


def test_receipt_and_round_filing_are_watched_too(app, app_context):
    from workflow import round_services

    task_id, part_id, unit_id = watched_part(D, received=False)
    part = db.session.get(TaskPart, part_id)
    part.state = "planned"
    db.session.commit()
    only_rules(receipt=("", True, 2, 2))
    plan = part.task.item.plan
    due = reminders.receipt_due(plan)
    assert due == (plan.imported_at + timedelta(hours=8)).date() + timedelta(days=app.config["RECEIPT_DUE_DAYS"])
    assert sweep(due) == (1, 0)
    assert sweep(due + timedelta(days=2)) == (1, 1)
    assert db.session.scalar(select(Escalation.reason).where(Escalation.part_id == part_id)).startswith("超过签收期限")
    assert "尚未签收" in notices_of(unit_id, "receipt_remind")[0].message

    # A round: filing due in two days, reminded before and on the day; filed, it stops.
    only_rules(filing=("2", True, 1, 0))
    part = db.session.get(TaskPart, part_id)
    part.state = "in_progress"
    office = user_named("office")
    today = reminders.today_local()
    round_ = round_services.open_round(plan, office, kind="monthly", title="测试调度", due_on=today + timedelta(days=2),
                                       task_ids=[task_id])
    db.session.commit()
    assert sweep(today) == (1, 0)
    assert "“测试调度”报送截止" in notices_of(unit_id, "filing_remind")[0].message
    entry = round_.entries[0]
    entry.filed_at = datetime(2022, 1, 1)
    db.session.commit()
    assert sweep(today + timedelta(days=2)) == (0, 0)


# ---------------------------------------------------------------- the office's rules, on the page

def test_the_office_admin_sets_a_rule_and_bad_input_changes_nothing(app, login):
    office = login("office")
    token = csrf_token(office, "/reminders/")
    version = 1                   # a new office's rule (no row yet)
    fields = {"csrf_token": token, "deadline-version": str(version), "deadline-enabled": "y",
              "deadline-days_before": "10，5、2", "deadline-on_due": "y", "deadline-repeat_days": "2",
              "deadline-escalate_after": "4"}
    page = office.post("/reminders/rules/deadline", data=fields, follow_redirects=True)
    assert "提醒规则已保存" in page.text
    with app.app_context():
        row = db.session.get(ReminderRule, "deadline")
        assert (row.days_before, row.repeat_days, row.escalate_after, row.updated_by.username) == ("10,5,2", 2, 4,
                                                                                                   "office")
        assert db.session.scalar(select(AuditEntry.details).where(AuditEntry.action == "reminder_rule_changed")
                                 )["new"]["days_before"] == "10,5,2"
        version = row.version
    for bad, message in (({"deadline-days_before": "七天"}, "提前天数请填写以逗号分隔的天数"),
                         ({"deadline-days_before": "200"}, "提前天数应在 1 到 90 天之间"),
                         ({"deadline-repeat_days": "-1"}, "间隔应在 0 到 90 天之间"),
                         ({"deadline-escalate_after": "x"}, "次数须为整数"),
                         ({"deadline-version": str(version - 1)}, "刚刚已被他人更新")):
        page = office.post("/reminders/rules/deadline", data={**fields, "deadline-version": str(version), **bad},
                           follow_redirects=True)
        assert message in page.text, bad
        with app.app_context():
            assert db.session.get(ReminderRule, "deadline").days_before == "10,5,2"
    # Office staff read the rules but may not change them.
    staff = login("office2")
    assert staff.get("/reminders/").status_code == 200
    assert staff.post("/reminders/rules/deadline", data={**fields, "csrf_token": csrf_token(staff, "/reminders/")}
                      ).status_code == 403


# ---------------------------------------------------------------- by itself: the tick, schedules, the watchdog

def test_the_tick_queues_one_sweep_a_day_after_its_time(app, app_context):
    app.config["REMINDER_TIME"] = "00:00"
    assert reminders.daily() is not None
    db.session.commit()
    assert reminders.daily() is None              # the day's sweep exists: queued once
    db.session.commit()
    row = db.session.scalar(select(SweepRun))
    assert (row.status, row.requested_by) == ("queued", "scheduler")
    # The job was queued by the commit: a worker (this thread) runs it.
    db.session.remove()
    assert background.drain(app) >= 1
    assert db.session.get(SweepRun, row.id).status == "done"
    app.config["REMINDER_TIME"] = "23:59"
    db.session.execute(update(SweepRun).values(as_of=date(2000, 1, 1)))
    db.session.commit()
    if datetime.now(reminders.CST).time() < reminders.time(23, 59):
        assert reminders.daily() is None          # not yet the time today


def test_a_sweep_whose_worker_died_is_queued_again_then_failed(app, app_context):
    stale = reminders.utcnow() - timedelta(seconds=app.config["JOB_STALE_SECONDS"] + 5)
    db.session.add(SweepRun(as_of=D, status="running", attempts=1, worker="elsewhere:1", requested_by="scheduler",
                            created_at=stale, started_at=stale, heartbeat_at=stale))
    db.session.add(SweepRun(as_of=D + timedelta(days=1), status="running", attempts=reminders.SWEEP_ATTEMPTS,
                            worker="elsewhere:1", requested_by="scheduler", created_at=stale, started_at=stale,
                            heartbeat_at=stale))
    db.session.commit()
    assert reminders.watchdog() == 1
    db.session.commit()
    rows = {r.as_of: r for r in db.session.scalars(select(SweepRun))}
    assert rows[D].status == "queued"
    assert rows[D + timedelta(days=1)].status == "failed" and "后台处理程序已停止" in rows[D + timedelta(days=1)].error


def test_a_schedule_opens_its_round_once_per_period_from_the_next_opening(app, app_context):
    from workflow import reminder_services
    from workflow.timeutil import played_at

    from models import Plan

    plan = db.session.scalar(select(Plan))
    office = user_named("office")
    with played_at(datetime(2022, 5, 20, 2)):
        schedule = reminder_services.add_schedule(office, plan, kind="monthly", day=1, due_days=5,
                                                  instructions="每月5日前报送")
    db.session.commit()
    only_rules()

    def sweep_on(day):      # the sweep of that morning, with that day's clock
        with played_at(datetime.combine(day, datetime.min.time()) + timedelta(hours=1)):
            return reminders.run_sweep(day, "test")

    assert sweep_on(date(2022, 5, 25)).rounds_opened == 0    # May's opening was before it
    row = sweep_on(date(2022, 6, 3))
    assert (row.rounds_opened, row.error) == (1, None)
    round_ = db.session.scalar(select(ProgressRound).where(ProgressRound.schedule_key.is_not(None)))
    assert (round_.title, round_.due_on, round_.opened_by.username) == ("2022年6月调度", date(2022, 6, 6), "office")
    assert round_.schedule_key == f"schedule:{schedule.id}:2022-06"
    assert sweep_on(date(2022, 6, 4)).rounds_opened == 0
    # Weekly: Monday of each ISO week.
    assert reminder_services.add_schedule(office, plan, kind="weekly", day=1, due_days=2, instructions=None)
    db.session.commit()


# ---------------------------------------------------------------- 通报

@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext): scripts/setup.sh --test")
def test_a_bulletin_names_every_escalation_tells_the_leaders_and_is_a_pdf(app, login, tmp_path):
    with app.app_context():
        task_id, part_id, unit_id = watched_part(D)
        only_rules(deadline=("", True, 1, 2))
        sweep(D)
        sweep(D + timedelta(days=1))
        unit_name = db.session.get(TaskPart, part_id).unit.name
        number = db.session.get(Task, task_id).number_label
        db.session.remove()
    office = login("office")
    token = csrf_token(office, "/escalations/")
    response = office.post("/escalations/bulletin", data={"csrf_token": token, "plan": "1"})
    assert response.status_code == 302 and "/reports/" in response.headers["Location"]
    with app.app_context():
        row = db.session.scalar(select(Escalation))
        assert row.state == "bulletin" and row.bulletin_report_id is not None
        assert notices_of(unit_id, "bulletin")
        db.session.remove()
    background.drain(app)        # the report, and the sweeps' delivery pumps (nothing to deliver)
    with app.app_context():
        report = db.session.get(ReportArchive, row.bulletin_report_id)
        assert (report.kind, report.status) == ("bulletin", "done")
        from workflow.reports import archive

        pdf = tmp_path / "b.pdf"
        pdf.write_bytes(archive.read_pdf(report))
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True).stdout
    assert "督办通报" in text and unit_name in text and number in text and "已逾期" in text
    # The viewer sees the list, may not issue.
    viewer = login("leader")          # 区领导: read-only
    assert viewer.get("/escalations/").status_code == 200
    assert viewer.post("/escalations/bulletin", data={"csrf_token": csrf_token(viewer, "/escalations/"),
                                                      "plan": "1"}).status_code == 403


# ---------------------------------------------------------------- the command line

def test_flask_reminders_run_sweeps_now_and_reports(app, runner):
    with app.app_context():
        watched_part(D)
        only_rules(deadline=("", True, 0, 0))
        db.session.commit()
    result = runner.invoke(args=["reminders", "run", "--as-of", D.isoformat()])
    assert result.exit_code == 0, result.output
    assert "发出提醒 1 条" in result.output and "通知投递：已发送 0，失败 0" in result.output
    again = runner.invoke(args=["reminders", "run", "--as-of", D.isoformat()])
    assert "发出提醒 0 条" in again.output
    assert "2022-06-30  已完成  检查 1" in runner.invoke(args=["reminders", "list"]).output
    bad = runner.invoke(args=["reminders", "run", "--as-of", "2022-13-01"])
    assert bad.exit_code != 0 and "日期“2022-13-01”无效" in bad.output


def test_the_schedule_form_adds_switches_and_refuses_in_chinese(app, login):
    office = login("office")
    token = csrf_token(office, "/reminders/")
    bad = office.post("/reminders/schedules", data={"csrf_token": token, "plan": "1", "kind": "monthly", "day": "31",
                                                    "due_days": "5"}, follow_redirects=True)
    assert "月调度的发起日应为每月 1–28 日" in bad.text
    # A plan that is not one of the choices (forged or deleted meanwhile): WTForms' message, in Chinese.
    assert "不是有效的选择" in office.post("/reminders/schedules", data={
        "csrf_token": token, "plan": "999", "kind": "monthly", "day": "1", "due_days": "5"}, follow_redirects=True).text
    with app.app_context():
        assert db.session.scalar(select(func.count(RoundSchedule.id))) == 0
    good = office.post("/reminders/schedules", data={"csrf_token": token, "plan": "1", "kind": "weekly", "day": "1",
                                                     "due_days": "3", "instructions": "<b>周一</b>"},
                       follow_redirects=True)
    assert "定时调度已设置" in good.text and "每周星期一" in good.text and "&lt;b&gt;周一&lt;/b&gt;" in good.text
    with app.app_context():
        schedule_id = db.session.scalar(select(RoundSchedule.id))
    off = office.post(f"/reminders/schedules/{schedule_id}/active", data={"csrf_token": token}, follow_redirects=True)
    assert "定时调度已停用" in off.text
    with app.app_context():
        assert db.session.get(RoundSchedule, schedule_id).active is False
    assert login("u03.staff").post("/reminders/schedules", data={"csrf_token": token}).status_code in (400, 403)


def test_the_notice_record_and_the_escalations_page_cost_the_same_queries_for_more_rows(app, login, count_queries):
    """No query per row: twice the notices (with tasks) and 督办 (with round filings), the same statements."""
    from workflow import notices, round_services
    from workflow.vocabulary import NotificationKind

    def add(n: int) -> None:
        with app.app_context():
            office = user_named("office")
            tasks = db.session.scalars(select(Task).order_by(Task.id).limit(n)).all()
            for task in tasks:
                notices.send([office], NotificationKind.URGED, "催办", task)
            plan = tasks[0].item.plan
            round_ = round_services.open_round(plan, office, kind="adhoc", title=f"专项{n}",
                                               due_on=reminders.today_local(), task_ids=[t.id for t in tasks])
            for entry in round_.entries:
                db.session.add(Escalation(key=f"filing:r{entry.id}:x", kind="filing", part_id=entry.part_id,
                                          round_part_id=entry.id, target_on=D, reminders=2, state="open",
                                          reason="未报送", raised_at=datetime(2022, 7, 1), raised_on=D))
            db.session.commit()

    office = login("office")

    def statements(path: str) -> int:
        with count_queries() as seen:
            assert office.get(path).status_code == 200
        return len(seen)

    add(3)
    few = (statements("/notices/"), statements("/escalations/"))
    add(6)
    assert (statements("/notices/"), statements("/escalations/")) == few


def test_many_escalations_the_overview_shows_the_first_and_the_page_pages_them_all(app, login):
    """A province has thousands of 督办 at once: the overview lists the first few and says how many
    in all; the 督办 page counts them all and pages through them, oldest first."""
    from workflow import audit
    from workflow.views.tasks import ESCALATIONS_SHOWN

    office = login("office")
    office.get("/overview")                 # the kept count, made before the new 督办 arrive
    with app.app_context():
        parts = db.session.scalars(select(TaskPart).order_by(TaskPart.id).limit(35)).all()
        for n, part in enumerate(parts):
            raised = D + timedelta(days=n)
            db.session.add(Escalation(key=f"deadline:{part.id}:x", kind="deadline", part_id=part.id, target_on=D,
                                      reminders=3, state="open", reason="已逾期", raised_at=datetime(2022, 7, 1),
                                      raised_on=raised))
            # As the sweep does: each 督办 is an audited action (so the kept count moves with it).
            audit.append("escalated", username=reminders.ACTOR, part=part, reason="已逾期")
        db.session.commit()
        labels = [p.task.number_label for p in parts]
    total = len(parts)
    per_page = app.config["PER_PAGE"]
    assert total > per_page > ESCALATIONS_SHOWN

    overview = office.get("/overview").text
    assert f'督办事项 <span class="badge warn-red">{total}</span>' in overview
    assert f"另有 {total - ESCALATIONS_SHOWN} 项。" in overview
    listed = overview[overview.index('aria-label="督办事项"'):].split("</ul>")[0].count("<li>")
    assert listed == ESCALATIONS_SHOWN

    first = office.get("/escalations/").text
    second = office.get("/escalations/?page=2").text
    assert f"督办事项 <span class=\"muted\">（{total} 项）</span>" in first
    rows = [re.findall(r'<tr class="warn-red">', page) for page in (first, second)]
    assert [len(r) for r in rows] == [per_page, total - per_page]
    # Oldest first: the first raised leads page 1, the last raised is on page 2.
    assert labels[0] in first.split('<tr class="warn-red">')[1] and labels[-1] in second
