"""Tasks per colour kept per process and brought up to date from the audit trail
(workflow/colours.py): after every kind of change they equal a fresh assessment, and only
the tasks the new entries name are assessed again."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from tests.fidelity import SHAPES
from tests.helpers import unit_user
from workflow.extensions import db

DAY = date(2022, 9, 30)


@pytest.fixture
def db_template() -> str:
    return "activity"


def _kept(app, plan_id=None, day=DAY) -> dict:
    from workflow import colours

    with app.test_request_context():
        return colours.breakdown(plan_id, day)


def _fresh(app, plan_id=None, day=DAY) -> dict:
    from workflow import queries

    with app.app_context():
        return queries.warning_breakdown_now(plan_id, day)


def _stats(app) -> tuple[int, int]:
    from workflow import colours

    with app.app_context():
        return colours.statistics()


def _same(kept: dict, fresh: dict) -> None:
    """Equal, an empty counter and a missing one being the same."""
    assert kept["total"] == fresh["total"]
    for scope in ("plans", "chapters", "units"):
        keys = set(kept[scope]) | set(fresh[scope])
        assert {k: kept[scope].get(k, kept["empty"]) for k in keys} == \
               {k: fresh[scope].get(k, fresh["empty"]) for k in keys}, scope


def _open_parts(limit: int):
    from models import TaskPart
    from workflow.vocabulary import IN_PROGRESS

    return db.session.scalars(select(TaskPart).where(TaskPart.state == IN_PROGRESS)
                              .order_by(TaskPart.id).limit(limit)).all()


def report_done(app, parts: int) -> set[int]:
    """100% reported on the first ``parts`` open parts (a lag closed); the ids of their tasks."""
    from workflow import services

    with app.app_context():
        chosen = _open_parts(parts)
        for part in chosen:
            services.record_progress(part, unit_user(part.unit_id, "staff"), 100, "已全部完成")
        db.session.commit()
        return {p.task_id for p in chosen}


def test_the_kept_colours_follow_each_change_and_assess_only_what_changed(app):
    from models import Plan
    from workflow.importer import service

    first = _kept(app)
    _same(first, _fresh(app))
    assert sum(first["total"].values()) > 20          # the played demo has colours to keep
    rebuilds, assessed = _stats(app)
    assert rebuilds == 1

    # Progress reported on three parts (a lag closed): three tasks assessed again, no full pass.
    tasks = report_done(app, 3)
    _same(_kept(app), _fresh(app))
    assert _stats(app) == (1, assessed + len(tasks))

    # Logins change no colour: nothing is assessed.
    from tests.helpers import log_in
    log_in(app.test_client(), "office")
    _kept(app)
    assert _stats(app) == (1, assessed + len(tasks))

    # A second plan imported: its tasks are assessed, the first plan's are not.
    with app.app_context():
        service.confirm(service.review_upload((SHAPES / "compilation-other-wording.txt").read_bytes(), "other.txt"))
        new_plan = db.session.scalar(select(Plan.id).order_by(Plan.id.desc()).limit(1))
    kept = _kept(app)
    _same(kept, _fresh(app))
    _same(_kept(app, new_plan), _fresh(app, new_plan))
    rebuilds_now, assessed_now = _stats(app)
    assert rebuilds_now == 1 and assessed_now - (assessed + len(tasks)) == 16   # the other plan's 16 tasks


def test_a_new_day_a_restored_trail_or_an_unknown_action_assess_everything(app):
    from workflow import audit

    _kept(app)
    assert _stats(app)[0] == 1
    _same(_kept(app, day=date(2022, 10, 20)), _fresh(app, day=date(2022, 10, 20)))
    assert _stats(app)[0] == 2

    # What this process saw last is not in the trail (a restore put another trail in place: the entry at
    # the seq it saw has another hash): everything again.
    from workflow import colours
    with app.app_context():
        kept = colours._store().kept
        kept.head = (kept.head[0], "0" * 64)
    _kept(app, day=date(2022, 10, 20))
    assert _stats(app)[0] == 3

    with app.app_context():
        audit.append("some_action_added_later", username="cli")
        db.session.commit()
    _kept(app, day=date(2022, 10, 20))
    assert _stats(app)[0] == 4


def test_a_transaction_that_has_written_sees_its_own_colours(app):
    from workflow import pace, queries, services

    with app.test_request_context():
        before = queries.warning_breakdown(None, DAY)
        parts = _open_parts(200)
        assessed = pace.assess_parts(parts, DAY)
        # A part behind its line (not overdue, not held red): reporting 100% takes its colour away.
        part = next(p for p in parts if assessed[p.id].level and "落后序时进度" in assessed[p.id].reason
                    and p.red_since is None and len(p.task.parts) == 1)
        services.record_progress(part, unit_user(part.unit_id, "staff"), 100, "已全部完成")
        mine = queries.warning_breakdown(None, DAY)
        assert mine == queries.warning_breakdown_now(None, DAY) and mine["total"] != before["total"]
        db.session.rollback()
        assert queries.warning_breakdown(None, DAY)["total"] == before["total"]
