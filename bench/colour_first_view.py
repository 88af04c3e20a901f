"""Benchmark: the first view of the day in a web process — the colours (红黄蓝) of every task —
with and without the worker's snapshot (workflow/colours.py, colour_snapshot).

    .venv/bin/python bench/colour_first_view.py [--tasks 100000] [--folder DIR] [--url URL]

Generates the data set of bench/scale.py (bench/scale_data.py) in DIR, unless DIR already holds
one (then it is reused: --folder keeps it between runs), and prints, each the median of
``--repeat`` runs in this process with nothing kept beforehand (a process that has just
started): the full pass a process makes without a snapshot; the worker's writing of the
snapshot (its full pass, the encoding, the row) and its size; a process taking it up; and
taking it up then catching up after changes to ``--changed`` tasks.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100000)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--url", default=None, help="a database URL (default: SQLite in the folder)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--changed", type=int, default=200)
    args = parser.parse_args()

    import scale_data
    from sqlalchemy import func, select

    folder = args.folder or Path(tempfile.mkdtemp(prefix="luoshi-colours-"))
    url = args.url or f"sqlite:///{folder / 'bench.sqlite'}"
    marker = folder / "generated"
    if not marker.exists():
        started = time.perf_counter()
        scale_data.generate(url, folder, args.tasks, 5.4, log=lambda *a, **k: None)
        marker.write_text(url)
        print(f"data set generated in {time.perf_counter() - started:.0f} s")
    app = scale_data.make_app(url, folder)

    from models import ColourSnapshot, Task, TaskPart
    from tests.helpers import unit_user
    from workflow import colours, services
    from workflow.extensions import db
    from workflow.sqlite import write_transactions
    from workflow.timeutil import today_local
    from workflow.vocabulary import IN_PROGRESS

    def first_view():
        app.extensions.pop("luoshi.colours", None)
        with app.test_request_context():
            colours.breakdown(None, today_local())
            return colours.statistics(), colours.snapshots_loaded()

    def write():
        with app.app_context():
            db.session.query(ColourSnapshot).delete()
            db.session.commit()
            write_transactions(True)
            try:
                colours.write_snapshot()
                db.session.commit()
            finally:
                write_transactions(False)
            found = db.session.get(ColourSnapshot, 1)
            return found.tasks, len(found.data)

    with app.app_context():
        tasks = db.session.scalar(select(func.count(Task.id)))
        db.session.query(ColourSnapshot).delete()
        db.session.commit()
    print(f"{tasks} tasks, {url.split('://')[0]}; median of {args.repeat} runs\n")
    seconds, (stats, loaded) = timed(first_view, args.repeat)
    assert loaded == 0 and stats[0] == 1
    print(f"first view, no snapshot (full pass)        {seconds * 1000:8.0f} ms")
    seconds, (rows, size) = timed(write, args.repeat)
    print(f"worker writes the snapshot                 {seconds * 1000:8.0f} ms   {rows} tasks, {size / 1024:.0f} KiB")
    seconds, (stats, loaded) = timed(first_view, args.repeat)
    assert loaded == 1 and stats[0] == 0
    print(f"first view, from the snapshot              {seconds * 1000:8.0f} ms")

    with app.app_context():
        parts = db.session.scalars(select(TaskPart).where(TaskPart.state == IN_PROGRESS).order_by(TaskPart.id)
                                   .limit(args.changed)).all()
        for part in parts:
            services.record_progress(part, unit_user(part.unit_id, "staff"), min(100, part.progress + 1), "bench")
        db.session.commit()
        changed = len({p.task_id for p in parts})
    seconds, (stats, loaded) = timed(first_view, args.repeat)
    assert loaded == 1 and stats[0] == 0
    print(f"first view, snapshot + {changed} tasks caught up   {seconds * 1000:8.0f} ms")


if __name__ == "__main__":
    main()
