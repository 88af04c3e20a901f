"""Benchmark: one 调度 over the whole seed plan, end to end.

    .venv/bin/python bench/round_bench.py [--keep DIR]

On a scratch SQLite database (the project's own database is never touched) with
the seed plan and accounts, it prints the seconds of each step:
  - open: a round over every open part of the plan (one audit entry per part,
    the notices), committed;
  - file: every unit files for all of its parts at once (round_services.file_rounds,
    one transaction per unit, as the to-do page does), committed;
  - close: closing the round (audit entry, the archive's pending 通报), committed;
  - render: the report worker's run of its 调度通报 (data, HTML, PDF, archive).
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_app(folder: Path):
    from workflow.app import create_app

    return create_app({
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'bench.sqlite'}",
        "UPLOAD_FOLDER": str(folder / "uploads"), "REPORT_FOLDER": str(folder / "reports"),
        "LUOSHI_ENV": "testing", "SECRET_KEY": "bench",
    })


def run(folder: Path) -> dict:
    from flask_migrate import upgrade
    from sqlalchemy import select

    from models import Plan, ProgressRound, ReportArchive, Role, RoundPart, User
    from workflow import demo, round_services
    from workflow.extensions import db
    from workflow.reports import archive, jobs
    from workflow.sqlite import write_transactions
    from workflow.timeutil import today_local

    app = make_app(folder)
    figures = {}
    with app.app_context():
        write_transactions(True)
        upgrade()
        demo.load_demo()
        db.session.commit()

        office = db.session.scalar(select(User).where(User.role == Role.OFFICE_ADMIN).order_by(User.id))
        plan = db.session.scalar(select(Plan).order_by(Plan.id))
        started = time.perf_counter()
        round_ = round_services.open_round(plan, office, kind="monthly", title="基准调度",
                                           due_on=today_local() + timedelta(days=5))
        db.session.commit()
        figures["open"] = time.perf_counter() - started
        round_id = round_.id
        figures["parts"] = len(round_.entries)

        by_unit: dict[int, list] = {}
        for entry in round_.entries:
            by_unit.setdefault(entry.part.unit_id, []).append(entry.id)
        figures["units"] = len(by_unit)
        started = time.perf_counter()
        for unit_id, entry_ids in by_unit.items():
            filer = db.session.scalar(select(User).where(User.unit_id == unit_id, User.role == Role.UNIT_STAFF,
                                                         User.active.is_(True)).order_by(User.id))
            entries = [db.session.get(RoundPart, e) for e in entry_ids]
            round_services.file_rounds(filer, [(e, 50, "按计划推进，已完成阶段性工作。") for e in entries])
            db.session.commit()
        figures["file"] = time.perf_counter() - started

        started = time.perf_counter()
        round_ = db.session.get(ProgressRound, round_id)
        round_services.close_round(round_, office)
        db.session.commit()
        figures["close"] = time.perf_counter() - started
        report_id = round_.report_id
        db.session.remove()
        write_transactions(False)

        started = time.perf_counter()
        archive.run(report_id, claim=jobs.claim)
        figures["render"] = time.perf_counter() - started
        row = db.session.get(ReportArchive, report_id)
        figures["status"], figures["pages"], figures["error"] = row.status, row.pages, row.error
        db.session.remove()
        db.engine.dispose()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep the scratch database and the PDF in this folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="luoshi-round-bench-"))
    try:
        figures = run(folder)
    finally:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copytree(folder, args.keep, dirs_exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"Python {platform.python_version()} · {platform.machine()} · {os.cpu_count()} CPUs · SQLite")
    print(f"调度 over the seed plan: {figures['parts']} parts of {figures['units']} units")
    print(f"  open (fix parts, audit, notices)   {figures['open']:7.2f} s")
    print(f"  file (every unit, bulk, committed) {figures['file']:7.2f} s")
    print(f"  close (audit, queue the 通报)       {figures['close']:7.2f} s")
    print(f"  render the 调度通报 ({figures['pages']} pages)    {figures['render']:7.2f} s")
    total = figures["open"] + figures["file"] + figures["close"] + figures["render"]
    print(f"  total                              {total:7.2f} s")
    if figures["status"] != "done":
        print(f"report failed: {figures['error']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
