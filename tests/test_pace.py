"""序时进度 and 红黄蓝 (workflow/pace.py, docs/warnings.md): the line, each colour's
rule and reason, the settings, the long-term checkpoints, and the red that holds
through a date change until the progress catches up."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from models import Plan, Task, TaskPart, User
from tests.helpers import unit_username
from workflow import pace, services
from workflow.extensions import db
from workflow.pace import Facts, Settings, planned_progress
from workflow.vocabulary import IN_PROGRESS, PLANNED, SUBMITTED, WarningLevel

START = date(2022, 4, 1)
DUE = date(2022, 9, 30)          # 182 days after START
SETTINGS = Settings(yellow_lag=20, red_lag=40, returns=2, near_days=14, checkpoint_days=5)


class FakeTask:
    def __init__(self, deadline=DUE, long_term=False, deadline_text=None):
        self.deadline, self.long_term, self.deadline_text = deadline, long_term, deadline_text


class FakePart:
    def __init__(self, progress=0, state=IN_PROGRESS, deadline=None, red_since=None, red_reason=None):
        self.progress, self.state, self.deadline = progress, state, deadline
        self.red_since, self.red_reason = red_since, red_reason


def colour(part, task=None, today=date(2022, 7, 1), **facts):
    return pace.assess(part, task or FakeTask(), Facts(START, **facts), today, SETTINGS)


# ---------------------------------------------------------------- the line

def test_the_line_runs_from_the_start_at_nothing_to_the_deadline_at_everything():
    assert planned_progress(START, DUE, START) == 0
    assert planned_progress(START, DUE, START - timedelta(days=9)) == 0
    assert planned_progress(START, DUE, date(2022, 6, 30)) == round(90 / 182 * 100)     # 49
    assert planned_progress(START, DUE, DUE) == 100
    assert planned_progress(START, DUE, DUE + timedelta(days=30)) == 100


def test_milestones_are_points_on_the_line_joined_straight():
    milestones = [(date(2022, 5, 1), 60)]         # front-loaded: 60% within a month
    assert planned_progress(START, DUE, date(2022, 5, 1), milestones) == 60
    assert planned_progress(START, DUE, date(2022, 4, 16), milestones) == 30
    # From the milestone to the deadline: 60 → 100 over 152 days.
    assert planned_progress(START, DUE, date(2022, 7, 1), milestones) == round(60 + 40 * 61 / 152)
    # A milestone outside the line (before the start, after the deadline) is not a point of it.
    assert planned_progress(START, DUE, date(2022, 6, 30), [(date(2023, 1, 1), 10)]) == 49


# ---------------------------------------------------------------- the colours and their reasons

def test_behind_the_line_by_the_yellow_then_the_red_number_of_points():
    # 2022-07-01: planned 50%.
    assert colour(FakePart(progress=45)).level is None
    found = colour(FakePart(progress=30))
    assert (found.level, found.reason, found.planned, found.lag) == (WarningLevel.YELLOW, "落后序时进度 20 个百分点", 50, 20)
    found = colour(FakePart(progress=10))
    assert (found.level, found.reason) == (WarningLevel.RED, "落后序时进度 40 个百分点")


def test_overdue_is_red_with_the_days_and_near_due_is_blue():
    found = colour(FakePart(progress=90), today=DUE + timedelta(days=3))
    assert (found.level, found.reason, found.overdue_days) == (WarningLevel.RED, "已逾期 3 天", 3)
    found = colour(FakePart(progress=95), today=DUE - timedelta(days=10))
    assert (found.level, found.reason) == (WarningLevel.BLUE, "距完成时限还有 10 天")
    assert colour(FakePart(progress=95), today=DUE - timedelta(days=15)).level is None


def test_returned_twice_is_yellow_even_when_on_schedule():
    assert colour(FakePart(progress=60), returns=1).level is None
    found = colour(FakePart(progress=60), returns=2)
    assert (found.level, found.reason) == (WarningLevel.YELLOW, "已被退回 2 次")


def test_a_part_handed_in_has_no_colour_and_the_part_own_deadline_is_the_one_that_counts():
    assert colour(FakePart(progress=0, state=SUBMITTED), today=DUE + timedelta(days=40)).level is None
    extended = FakePart(progress=90, deadline=DUE + timedelta(days=60))
    assert colour(extended, today=DUE + timedelta(days=3)).level is None
    assert colour(extended, today=DUE + timedelta(days=3)).deadline == DUE + timedelta(days=60)


def test_the_thresholds_are_settings(app):
    with app.app_context():
        app.config.update(WARN_YELLOW_LAG=5, WARN_RED_LAG=10)
        settings = Settings.current()
        found = pace.assess(FakePart(progress=40), FakeTask(), Facts(START), date(2022, 7, 1), settings)
        assert (found.level, found.reason) == (WarningLevel.RED, "落后序时进度 10 个百分点")


# ---------------------------------------------------------------- long-term tasks

def test_a_long_term_part_has_checkpoints_not_a_line():
    task = FakeTask(deadline=None, long_term=True, deadline_text="长期")
    # Reported in June: nothing to say on 2022-07-10 (next checkpoint 07-31).
    found = colour(FakePart(progress=30), task, today=date(2022, 7, 10), last_report=date(2022, 6, 20))
    assert found.level is None and found.planned is None
    # Five days before the month's end, nothing yet this month: blue.
    found = colour(FakePart(), task, today=date(2022, 7, 27), last_report=date(2022, 6, 20))
    assert (found.level, found.reason) == (WarningLevel.BLUE, "长期任务：请于7月31日节点前报送进展")
    # Nothing reported in the whole of the last checkpoint's period: red.
    found = colour(FakePart(), task, today=date(2022, 8, 5), last_report=date(2022, 6, 20))
    assert (found.level, found.reason) == (WarningLevel.RED, "长期任务：7月31日节点前未报送进展")


def test_a_monthly_deadline_names_the_checkpoint_day():
    task = FakeTask(deadline=None, long_term=True, deadline_text="每月5日前报送上月进展")
    assert pace.checkpoint_day(task.deadline_text) == 5
    found = colour(FakePart(), task, today=date(2022, 8, 6), last_report=date(2022, 6, 20))
    assert (found.level, found.reason) == (WarningLevel.RED, "长期任务：8月5日节点前未报送进展")
    # A part that did not yet exist for a whole period is not held to it.
    assert colour(FakePart(), task, today=date(2022, 4, 10)).level is None


# ---------------------------------------------------------------- the red that holds

@pytest.fixture
def db_template():
    return "seed"


@pytest.fixture
def app_config():
    return {"LUOSHI_ENV": "demo", "LUOSHI_TODAY": "2022-09-30"}


def _dated_part_of_one_part_task():
    """A dated, not long-term task of the seed with one part, set in progress from 2022-04-01."""
    task = next(t for t in db.session.scalars(select(Task).where(Task.long_term.is_(False),
                                                                 Task.deadline.is_not(None)).order_by(Task.id))
                if len(t.parts) == 1)
    part = task.parts[0]
    plan = db.session.get(Plan, task.item.plan_id)
    plan.issued_on = START
    part.state, task.state = IN_PROGRESS, IN_PROGRESS
    db.session.commit()
    return task, part


def _office():
    return db.session.scalar(select(User).where(User.username == "office"))


def test_a_red_part_stays_red_when_its_date_moves_until_progress_catches_up(app):
    with app.app_context():
        task, part = _dated_part_of_one_part_task()
        task.deadline = date(2022, 9, 20)          # ten days before the clock: overdue
        part.progress = 50
        db.session.commit()
        assert pace.assess_one(part, date(2022, 9, 30)).reason == "已逾期 10 天"

        services.edit_task(task, _office(), deadline=date(2022, 12, 31))
        db.session.commit()
        found = pace.assess_one(part, date(2022, 9, 30))
        # By the rules alone the new line (66% planned) puts 50% only 16 points behind:
        # no colour. Red holds, with the reason it had, saying how it ends.
        assert found.level == WarningLevel.RED
        assert found.reason.startswith("时限调整前已逾期 10 天") and "赶上序时进度" in found.reason
        assert part.red_since is not None

        unit_staff = db.session.scalar(select(User).where(User.username == unit_username(part.unit_id, "staff")))
        # Progress that is still 40+ points behind the new line: red holds.
        services.record_progress(part, unit_staff, 20, "已完成前期调研")
        db.session.commit()
        assert part.red_since is not None and pace.assess_one(part, date(2022, 9, 30)).level == WarningLevel.RED
        # Progress within the red threshold: released, and the colour is the rules' again (yellow: 20+ behind).
        services.record_progress(part, unit_staff, 45, "已完成主体工作")
        db.session.commit()
        assert part.red_since is None
        found = pace.assess_one(part, date(2022, 9, 30))
        assert found.level == WarningLevel.YELLOW and found.reason.startswith("落后序时进度")


def test_editing_the_date_of_a_part_on_schedule_holds_nothing(app):
    with app.app_context():
        task, part = _dated_part_of_one_part_task()
        task.deadline = date(2022, 12, 31)
        part.progress = 80
        db.session.commit()
        assert pace.assess_one(part, date(2022, 9, 30)).level is None
        services.edit_task(task, _office(), deadline=date(2022, 11, 30))
        db.session.commit()
        assert part.red_since is None


def test_a_submitted_part_drops_its_held_red(app):
    with app.app_context():
        task, part = _dated_part_of_one_part_task()
        part.red_since, part.red_reason = datetime(2022, 9, 1), "已逾期 3 天"
        db.session.commit()
        assert pace.assess_one(part, date(2022, 9, 30)).level == WarningLevel.RED
        part.state = SUBMITTED
        assert pace.assess_one(part, date(2022, 9, 30)).level is None


def test_a_task_has_its_worst_part_with_the_unit_named(app):
    with app.app_context():
        task = next(t for t in db.session.scalars(select(Task).where(Task.long_term.is_(False),
                                                                     Task.deadline.is_not(None)).order_by(Task.id))
                    if len(t.parts) >= 2)
        plan = db.session.get(Plan, task.item.plan_id)
        plan.issued_on = START
        task.deadline = date(2022, 12, 31)       # 2022-09-30: planned 66%
        first, second = task.parts[0], task.parts[1]
        for p in task.parts:
            p.state, p.progress = IN_PROGRESS, 60
        first.progress, second.progress = 40, 10   # yellow (26 behind), red (56 behind)
        db.session.commit()
        found = pace.assess_tasks([task], date(2022, 9, 30))[task.id]
        assert found.level == WarningLevel.RED
        assert found.reason == f"{second.unit.name}：落后序时进度 56 个百分点"
        assert all(p.state != PLANNED for p in task.parts)


def test_the_facts_of_many_parts_take_a_fixed_number_of_queries(app, count_queries):
    with app.app_context():
        parts = db.session.scalars(select(TaskPart).order_by(TaskPart.id)).all()
        for p in parts:
            _ = p.task.item
        with count_queries() as few:
            pace.assess_parts(parts[:5], date(2022, 9, 30))
        with count_queries() as many:
            pace.assess_parts(parts, date(2022, 9, 30))
        assert len(parts) > 100 and len(many) == len(few)


def test_a_receipt_stamped_after_the_clock_day_does_not_move_the_start(app):
    """Under the demo clock a receipt made now carries the real date: the line
    still starts at the plan's date, so the part keeps its colour."""
    with app.app_context():
        task, part = _dated_part_of_one_part_task()
        task.deadline = date(2022, 12, 31)
        part.progress = 0
        part.received_at = datetime(2026, 12, 2, 3, 0)
        db.session.commit()
        found = pace.assess_one(part, date(2022, 9, 30))
        assert found.planned == pace.planned_progress(START, date(2022, 12, 31), date(2022, 9, 30)) > 0
        assert found.level == WarningLevel.RED
        part.received_at = datetime(2022, 6, 30, 2, 0)     # 10:00 CST on 30 June: the line starts there
        assert pace.assess_one(part, date(2022, 9, 30)).planned == pace.planned_progress(
            date(2022, 6, 30), date(2022, 12, 31), date(2022, 9, 30))


def test_the_task_page_reads_the_facts_from_what_it_loaded_and_they_match_the_queries(app, count_queries):
    """The task page loads each part's milestones, submissions and progress notes to show them;
    the colours take their facts from those (no query), and they are the facts the bulk
    queries give: approved milestones only, returned hand-ins counted, the last report's day."""
    from models import Milestone, ProgressNote, Submission
    from workflow import queries
    from workflow.vocabulary import MilestoneState, SubmissionOutcome

    with app.app_context():
        task = next(t for t in db.session.scalars(select(Task).order_by(Task.id)) if len(t.parts) >= 2)
        first, second = task.parts[0], task.parts[1]
        office = _office()
        at = datetime(2022, 8, 1, 3, 0)
        db.session.add_all([
            Milestone(part_id=first.id, on=date(2022, 6, 30), percent=30, proposed_by_id=office.id, proposed_at=at),
            Milestone(part_id=first.id, on=date(2022, 8, 31), percent=60, proposed_by_id=office.id, proposed_at=at,
                      state=MilestoneState.PROPOSED),
            *[Submission(part_id=first.id, number=n, statement="说明", submitted_by_id=office.id, submitted_at=at,
                         outcome=outcome) for n, outcome in ((1, SubmissionOutcome.RETURNED),
                                                             (2, SubmissionOutcome.RETURNED),
                                                             (3, SubmissionOutcome.PENDING))],
            ProgressNote(part_id=first.id, user_id=office.id, at=datetime(2022, 9, 10, 17, 0), percent=20, note="一"),
            ProgressNote(part_id=first.id, user_id=office.id, at=datetime(2022, 7, 1, 2, 0), percent=10, note="二"),
            ProgressNote(part_id=second.id, user_id=office.id, at=datetime(2022, 9, 1, 2, 0), percent=5, note="三"),
        ])
        db.session.commit()
        task_id, ids, office_id = task.id, [p.id for p in task.parts], office.id
        db.session.expunge_all()

        expected = pace.fact_maps(ids)
        assert expected[0][ids[0]] == [(date(2022, 6, 30), 30)] and expected[1][ids[0]] == 2
        assert expected[2][ids[0]] == date(2022, 9, 11)        # 17:00 UTC is the next day in Beijing
        page_task = queries.task_for_page(task_id)
        with count_queries() as statements:
            loaded = pace.loaded_fact_maps(page_task.parts)
            by_page = pace.facts_for(page_task.parts, {task_id: page_task}, {}, from_collections=True)
        assert loaded == expected and statements == []
        assert [by_page[i].milestones for i in ids[:1]] == [((date(2022, 6, 30), 30),)]
        # Without the flag the queries answer, whatever is loaded: a service's new note is in the
        # session, not in a collection read before it.
        db.session.add(ProgressNote(part_id=ids[1], user_id=office_id, at=datetime(2022, 9, 20, 2, 0), percent=9,
                                    note="四"))
        assert pace.facts_for(page_task.parts, {task_id: page_task}, {})[ids[1]].last_report == date(2022, 9, 20)
        db.session.rollback()
        db.session.expunge_all()
        plain = db.session.scalars(select(TaskPart).where(TaskPart.id.in_(ids))).all()
        assert pace.loaded_fact_maps(plain) is None            # not loaded: the queries answer
