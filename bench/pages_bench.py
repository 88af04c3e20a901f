"""Benchmark: the pages that show colours (红黄蓝), on the played demo.

    .venv/bin/python bench/pages_bench.py [--repeat N]

In a scratch SQLite database (the project's own is never touched) it loads the
seed, plays the demo's April–September 2022 history, sets the demo clock to
2022-09-30 and, through the test client as a signed-in user, requests each page
``--repeat`` times (after one warm-up), printing for each: the SQL statements
per request, the median and the slowest time, and the HTML size. The pages:
the office's overview and to-do, the task list (first page and the red filter),
a staff member's to-do, the task page of a task with several parts, and 考核排名
(this year and this month for the office, this year for the staff member).
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
CLOCK = "2022-09-30"


def make_app(folder: Path):
    from workflow.app import create_app

    return create_app({
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'bench.sqlite'}",
        "UPLOAD_FOLDER": str(folder / "uploads"), "REPORT_FOLDER": str(folder / "reports"),
        "LUOSHI_ENV": "demo", "LUOSHI_TODAY": CLOCK, "SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False,
    })


def build(app) -> float:
    from flask_migrate import upgrade

    from workflow import demo
    from workflow.extensions import db

    with app.app_context():
        upgrade()
        demo.load_demo()
        db.session.commit()
        started = time.perf_counter()
        demo.play_activity()
        db.session.commit()
        return time.perf_counter() - started


def measure(app, client, url: str, repeat: int) -> tuple[int, float, float, int]:
    from sqlalchemy import event

    from workflow.extensions import db

    with app.app_context():
        engine = db.engine
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    response = client.get(url)             # warm-up (templates compiled, caches filled)
    assert response.status_code == 200, (url, response.status_code)
    times = []
    event.listen(engine, "before_cursor_execute", record)
    try:
        for _ in range(repeat):
            statements.clear()
            started = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - started)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return len(statements), statistics.median(times), max(times), len(response.data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()

    from sqlalchemy import func, select

    from models import Task, TaskPart, User
    from workflow.extensions import db

    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(Path(tmp))
        played = build(app)
        print(f"demo history played in {played:.1f} s")
        with app.app_context():
            task_id = db.session.scalar(select(TaskPart.task_id).group_by(TaskPart.task_id)
                                        .having(func.count() > 2).order_by(TaskPart.task_id))
            staff = db.session.scalar(select(User.username).where(User.username.like("u%.staff"))
                                      .join(TaskPart, TaskPart.unit_id == User.unit_id)
                                      .group_by(User.username).order_by(func.count().desc()))
            tasks = db.session.scalar(select(func.count(Task.id)))
        pages = [
            ("office", "/overview", "总览（办公室）"),
            ("office", "/tasks/todo", "我的待办（办公室）"),
            ("office", "/tasks/", "任务列表 第1页"),
            ("office", "/tasks/?warning=red", "任务列表 红色预警"),
            ("office", f"/tasks/{task_id}", "任务页（多家承办）"),
            (staff, "/tasks/todo", f"我的待办（{staff}）"),
            ("office", "/scores/", "考核排名 本年（办公室）"),
            ("office", "/scores/?period=month", "考核排名 本月（办公室）"),
            (staff, "/scores/", f"考核排名（{staff}）"),
        ]
        print(f"{tasks} tasks; clock {CLOCK}; {args.repeat} requests per page after one warm-up\n")
        print(f"{'page':<24} {'SQL/req':>8} {'median ms':>10} {'max ms':>8} {'KiB':>7}")
        clients = {}
        for username, url, label in pages:
            client = clients.get(username)
            if client is None:
                client = clients[username] = app.test_client()
                client.post("/auth/login", data={"username": username, "password": "demo-2026"})
            n, median, worst, size = measure(app, client, url, args.repeat)
            print(f"{label:<24} {n:>8} {median * 1000:>10.1f} {worst * 1000:>8.1f} {size / 1024:>7.1f}")


if __name__ == "__main__":
    main()
