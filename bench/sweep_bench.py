"""Benchmark: the daily reminder sweep over 10,000 parts.

    .venv/bin/python bench/sweep_bench.py [--parts 10000] [--database-url postgresql://…]

On a scratch database (SQLite in a temporary folder by default; with
--database-url, an empty PostgreSQL database you name, which it fills) with the
seed plan and accounts, plus synthetic one-part tasks up to --parts, spread over
the seed's units with deadlines from 60 days before to 30 days after the sweep's
day, every user with an e-mail address (so the outbox rows are written too; no
mail is sent). It prints the seconds of:
  - the first sweep: every part's current occasion, as on the first day;
  - the next day's sweep: only that day's new occasions;
  - the same day again: nothing new (the unique keys), the cost of looking.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AS_OF = date(2022, 9, 30)


def make_app(folder: Path, url: str | None):
    from workflow.app import create_app

    return create_app({
        "SQLALCHEMY_DATABASE_URI": url or f"sqlite:///{folder / 'bench.sqlite'}",
        "UPLOAD_FOLDER": str(folder / "uploads"), "REPORT_FOLDER": str(folder / "reports"),
        "QUEUE_URL": f"sqlite:///{folder / 'queue.sqlite3'}", "MAIL_SERVER": "127.0.0.1", "QUIET_HOURS": "",
        "LUOSHI_ENV": "testing", "SECRET_KEY": "bench",
    })


def build(parts: int) -> int:
    from sqlalchemy import func, select

    from models import Item, Task, TaskPart, Unit, User
    from workflow import demo
    from workflow.extensions import db
    from workflow.vocabulary import UnitKind

    demo.load_demo()
    for user in db.session.scalars(select(User)):
        user.email = f"{user.username}@bench.example"
    db.session.commit()
    have = db.session.scalar(select(func.count(TaskPart.id)))
    items = db.session.scalars(select(Item).where(Item.explanation.is_(None))).all()
    units = db.session.scalars(select(Unit).where(Unit.kind != UnitKind.OFFICE)).all()
    rng = random.Random(10)
    for n in range(max(0, parts - have)):
        item = items[n % len(items)]
        task = Task(item_id=item.id, kind="task", seq=1000 + n, text=f"基准任务 {n}", long_term=False,
                    deadline=AS_OF + timedelta(days=rng.randint(-60, 30)), clause_source="own", source_lines=[])
        task.parts = [TaskPart(unit_id=units[n % len(units)].id, state="in_progress", progress=rng.randint(0, 90))]
        db.session.add(task)
        if n % 1000 == 999:
            db.session.commit()
    db.session.commit()
    return db.session.scalar(select(func.count(TaskPart.id)))


def timed_sweep(day: date) -> tuple[float, int, int]:
    from sqlalchemy import func, select

    from models import Delivery
    from workflow import reminders
    from workflow.extensions import db

    before = db.session.scalar(select(func.count(Delivery.id)))
    db.session.commit()
    started = time.perf_counter()
    row = reminders.run_sweep(day, "bench", again=True)
    seconds = time.perf_counter() - started
    deliveries = db.session.scalar(select(func.count(Delivery.id))) - before
    return seconds, row.reminders, deliveries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=10_000)
    parser.add_argument("--database-url", help="an empty PostgreSQL database to fill (default: scratch SQLite)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="luoshi-sweep-bench-"))
    try:
        from flask_migrate import upgrade

        from workflow.extensions import db

        app = make_app(folder, args.database_url)
        with app.app_context():
            upgrade()
            started = time.perf_counter()
            total = build(args.parts)
            setup = time.perf_counter() - started
            first = timed_sweep(AS_OF)
            second = timed_sweep(AS_OF + timedelta(days=1))
            again = timed_sweep(AS_OF + timedelta(days=1))
            backend = db.engine.dialect.name
            db.session.remove()
            db.engine.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"Python {platform.python_version()} · {platform.machine()} · {os.cpu_count()} CPUs · {backend}")
    print(f"{total} open parts (set up in {setup:.1f} s)")
    for label, (seconds, reminders_sent, deliveries) in (("first sweep (every current occasion)", first),
                                                          ("next day's sweep", second),
                                                          ("the same day again (nothing new)", again)):
        print(f"  {label:<38} {seconds:7.2f} s   {reminders_sent:6d} reminders  {deliveries:6d} e-mails queued")
    return 0


if __name__ == "__main__":
    sys.exit(main())
