"""The worker's snapshot of the day's colours (workflow/colours.py, colour_snapshot): written once
a day by the tick, taken up by a process that has no colours for the day, and then caught up
from the audit trail — never taken when it is of another day, other settings or another trail."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.test_colours_kept import _fresh, _kept, _same, report_done
from workflow.extensions import db


@pytest.fixture
def db_template() -> str:
    return "activity"


def _today(app):
    from workflow.timeutil import today_local

    with app.app_context():
        return today_local()


def _snapshot(app):
    from models import ColourSnapshot

    with app.app_context():
        found = db.session.scalar(select(ColourSnapshot))
        row = None if found is None else (found.day, found.head_seq, found.tasks, found.made_at)
        db.session.remove()
    return row


def _write(app) -> bool:
    from workflow import colours
    from workflow.sqlite import write_transactions

    with app.app_context():
        write_transactions(True)
        try:
            wrote = colours.write_snapshot()
            db.session.commit()
        finally:
            write_transactions(False)
            db.session.remove()
    return wrote


def _new_process(app) -> None:
    """What a process that has just started knows of colours: nothing."""
    app.extensions.pop("luoshi.colours", None)


def _counts(app) -> tuple[int, int, int]:
    from workflow import colours

    with app.app_context():
        rebuilds, assessed = colours.statistics()
        return rebuilds, assessed, colours.snapshots_loaded()


def test_the_tick_writes_the_days_snapshot_once(app):
    from models import Task
    from workflow import background

    assert "colours.snapshot" in background.PERIODIC
    background.tick(app)
    day, seq, tasks, made_at = _snapshot(app)
    with app.app_context():
        assert tasks == db.session.query(Task).count() and seq > 0
    assert day == _today(app)
    background.tick(app)
    assert _snapshot(app)[3] == made_at                    # the same day: not written again


def test_a_process_starts_from_the_snapshot_and_catches_up(app):
    day = _today(app)
    assert _write(app) is True
    changed = report_done(app, 3)
    _new_process(app)
    _same(_kept(app, day=day), _fresh(app, day=day))
    assert _counts(app) == (0, len(changed), 1)            # no full pass: the snapshot, then three tasks


@pytest.mark.parametrize("change", ["day", "settings", "rules", "trail"])
def test_a_snapshot_of_another_day_other_settings_or_another_trail_is_not_taken(app, change):
    from models import ColourSnapshot
    from workflow import colours

    day = _today(app)
    _write(app)
    with app.app_context():
        found = db.session.get(ColourSnapshot, 1)
        if change == "day":
            found.day = day.replace(day=day.day - 1) if day.day > 1 else day.replace(day=2)
        elif change == "trail":
            found.head_hash = "0" * 64                       # a restore put another trail in place
        elif change == "rules":                              # written by a worker of another release
            found.settings = found.settings.replace(colours.rules_version(), "0" * 12)
        db.session.commit()
        db.session.remove()
    if change == "settings":
        app.config["WARN_RED_LAG"] = int(app.config.get("WARN_RED_LAG", 40)) + 5
    _new_process(app)
    _same(_kept(app, day=day), _fresh(app, day=day))
    assert _counts(app)[0::2] == (1, 0)                    # a full pass of its own, nothing taken


def test_the_snapshot_holds_every_tasks_row_as_a_full_pass_makes_it(app):
    """Colour, plan, chapter, lead units (in order) and the list's order key of every task."""
    from models import ColourSnapshot
    from workflow import colours, head_cache, pace

    _write(app)
    with app.app_context():
        found = db.session.get(ColourSnapshot, 1)
        decoded = dict(colours._decode(found.data))
        full = colours._rebuild(head_cache.head(), found.day, pace.Settings.current(), None)
        db.session.remove()
    assert decoded == full.tasks and len(decoded) == found.tasks
    assert any(row[0] for row in decoded.values()) and any(len(row[3]) > 1 for row in decoded.values())
