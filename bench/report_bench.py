"""Benchmark: our overall progress report against bare WeasyPrint on the same HTML.

    .venv/bin/python bench/report_bench.py [--only seed|x10] [--keep DIR]

For the seed plan (with the demo activity when workflow/demo.py can play it)
and for a plan ten times its size, it prints the pages and the seconds of
  - ours: the full overall report — data queries and HTML (Jinja), then the
    PDF with our renderer (shared FontConfiguration, safe URL fetcher);
  - bare: ``weasyprint.HTML(string=html).write_pdf()`` on the identical HTML,
    as a fresh process would call it (new FontConfiguration, default fetcher);
and ours/bare, so the ratio shows what our code adds (or saves) around WeasyPrint.

Everything happens in scratch SQLite databases in a temporary folder; the
project's own database is never touched. The ×10 plan is the seed plan with
its chapters, items, tasks and parts (states, deadlines, units, progress)
copied nine more times, items renumbered (19-1 → 119-1, 219-1, …).
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
AS_OF = "2022-06-30"


def make_app(folder: Path):
    from workflow.app import create_app

    return create_app({
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'bench.sqlite'}",
        "UPLOAD_FOLDER": str(folder / "uploads"), "REPORT_FOLDER": str(folder / "reports"),
        "LUOSHI_ENV": "testing", "SECRET_KEY": "bench",
    })


def build_seed(app) -> str:
    from flask_migrate import upgrade

    from workflow import demo
    from workflow.sqlite import write_transactions
    from workflow.extensions import db

    with app.app_context():
        write_transactions(True)
        upgrade()
        demo.load_demo()
        db.session.commit()
        activity = "无"
        if hasattr(demo, "play_activity"):
            demo.play_activity()
            db.session.commit()
            activity = "有（workflow/demo.py play_activity）"
        db.session.remove()
        db.engine.dispose()  # checkpoints the WAL, so the file alone is the whole database
        write_transactions(False)
    return activity


def multiply_plan(app, factor: int) -> None:
    """Copy the plan's chapters, items, tasks and parts factor-1 more times."""
    from sqlalchemy import select

    from models import Chapter, Item, Plan, Task, TaskPart
    from workflow.sqlite import write_transactions
    from workflow.extensions import db

    with app.app_context():
        write_transactions(True)
        plan = db.session.scalars(select(Plan).order_by(Plan.id)).first()
        chapters = list(plan.chapters)
        items = list(plan.items)
        n_chapters = max(c.number for c in chapters)
        for k in range(1, factor):
            chapter_map = {}
            for c in chapters:
                copy = Chapter(plan_id=plan.id, number=c.number + n_chapters * k, title=f"{c.title}（副本{k}）")
                db.session.add(copy)
                chapter_map[c.id] = copy
            db.session.flush()
            item_map = {}
            for i in items:  # parents come before their sub-items in document order
                head, _, tail = i.number.partition("-")
                number = f"{int(head) + 100 * k}" + (f"-{tail}" if tail else "") if head.isdigit() else f"{k}.{i.number}"
                copy = Item(plan_id=plan.id, chapter_id=chapter_map[i.chapter_id].id,
                            parent_id=item_map[i.parent_id].id if i.parent_id else None, number=number,
                            position=i.position + 10000 * k, subtitle=i.subtitle, policy_text=i.policy_text,
                            goal=i.goal, explanation=i.explanation, applicable=i.applicable, complete=i.complete)
                copy.owner_units = list(i.owner_units)
                db.session.add(copy)
                db.session.flush()
                item_map[i.id] = copy
                for t in i.tasks:
                    task = Task(item_id=copy.id, kind=t.kind, seq=t.seq, text=t.text, deadline=t.deadline, deadline_original=t.deadline_original,
                                deadline_text=t.deadline_text, long_term=t.long_term, clause_source=t.clause_source,
                                source_lines=list(t.source_lines or []), state=t.state)
                    task.lead_units = list(t.lead_units)
                    task.responsible_units = list(t.responsible_units)
                    task.parts = [TaskPart(unit_id=p.unit_id, position=p.position, state=p.state, progress=p.progress)
                                  for p in t.parts]
                    db.session.add(task)
            db.session.flush()
        db.session.commit()
        db.session.remove()
        write_transactions(False)


def measure(app, label: str, out_dir: Path | None, repeat: int) -> dict:
    """Ours and bare, interleaved ``repeat`` times; the fastest run of each
    counts (other work on the machine only ever adds time)."""
    from sqlalchemy import func, select
    from weasyprint import HTML

    from models import Task
    from workflow.extensions import db
    from workflow.reports import archive, render

    with app.app_context():
        tasks = db.session.scalar(select(func.count(Task.id)))
        db.session.remove()
    quiet = logging.getLogger("weasyprint")
    best_ours = best_bare = None
    for _ in range(repeat):
        with app.app_context():
            started = time.perf_counter()
            params = archive.make_params("overall", as_of=AS_OF)
            built = archive.build_html(params, "基准测试")
            data_html = time.perf_counter() - started
            db.session.remove()
        ours = render.html_to_pdf(built.html)
        run = {"data_html": data_html, "layout": ours.layout_seconds, "write": ours.write_seconds,
               "ours": data_html + ours.seconds, "pages": ours.pages, "pdf": ours.pdf}
        if best_ours is None or run["ours"] < best_ours["ours"]:
            best_ours = run

        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # the bare fetcher cannot load luoshi-asset: (one image)
        try:
            started = time.perf_counter()
            bare_doc = HTML(string=built.html).render()
            bare_layout = time.perf_counter() - started
            bare_pdf = bare_doc.write_pdf()
            bare = time.perf_counter() - started
        finally:
            quiet.setLevel(level)
        run = {"bare_layout": bare_layout, "bare_write": bare - bare_layout, "bare": bare,
               "bare_pages": len(bare_doc.pages), "bare_pdf": bare_pdf}
        if best_bare is None or run["bare"] < best_bare["bare"]:
            best_bare = run
    if out_dir is not None:
        (out_dir / f"{label}-ours.pdf").write_bytes(best_ours.pop("pdf"))
        (out_dir / f"{label}-bare.pdf").write_bytes(best_bare.pop("bare_pdf"))
    return {"label": label, "tasks": tasks, "repeat": repeat, **best_ours, **best_bare,
            "ratio": best_ours["ours"] / best_bare["bare"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("seed", "x10"), help="只测其中一项")
    parser.add_argument("--keep", type=Path, help="把生成的 PDF 留在此目录")
    parser.add_argument("--repeat", type=int, default=3, help="种子方案重复次数，取最快一次（×10 方案取其一半，至少 1 次）")
    args = parser.parse_args()

    from workflow.reports import render

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"机器：{platform.machine()}，{os.cpu_count()} 核，开始时负载 {load:.2f}；Python {platform.python_version()}；",
          end="")
    import weasyprint

    print(f"WeasyPrint {weasyprint.__version__}；libharfbuzz-subset："
          f"{'可用' if render.harfbuzz_subset_available() else '缺失（将慢数倍）'}")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)

    scratch = Path(tempfile.mkdtemp(prefix="luoshi-bench-"))
    results = []
    try:
        seed_dir = scratch / "seed"
        seed_dir.mkdir()
        app = make_app(seed_dir)
        t = time.perf_counter()
        activity = build_seed(app)
        print(f"种子数据库已建（演示办理记录：{activity}），用时 {time.perf_counter() - t:.1f} 秒")
        # Warm up imports and the shared FontConfiguration, as a running server has them.
        render.html_to_pdf('<p style="font-family: \'Noto Sans CJK SC\'">预热</p>')
        if args.only in (None, "seed"):
            results.append(measure(app, "seed", args.keep, max(1, args.repeat)))
            print_row(results[-1], header=True)
        if args.only in (None, "x10"):
            x10_dir = scratch / "x10"
            x10_dir.mkdir()
            shutil.copyfile(seed_dir / "bench.sqlite", x10_dir / "bench.sqlite")
            app10 = make_app(x10_dir)
            t = time.perf_counter()
            multiply_plan(app10, 10)
            print(f"×10 方案已生成，用时 {time.perf_counter() - t:.1f} 秒")
            results.append(measure(app10, "x10", args.keep, max(1, args.repeat // 2)))
            print_row(results[-1], header=not results[:-1])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print("说明：各取多次运行中最快的一次（次数见上）；我们的合计 = 数据查询与 HTML + 排版 + 写 PDF（共用 FontConfiguration、安全取资源器）；")
    print("      裸 WeasyPrint = 同一 HTML 上 HTML(string=…).write_pdf()（每次新建 FontConfiguration）；比值 = 我们 / 裸。")
    return 0


def print_row(r: dict, header: bool) -> None:
    if header:
        print()
        print(f"{'方案':<6}{'任务':>6}{'页数':>6}{'数据+HTML':>10}{'排版':>8}{'写PDF':>8}{'我们合计':>9}"
              f"{'裸排版':>8}{'裸写PDF':>8}{'裸合计':>8}{'比值':>7}")
    print(f"{r['label']:<8}{r['tasks']:>6}{r['pages']:>7}{r['data_html']:>11.2f}{r['layout']:>9.2f}{r['write']:>9.2f}"
          f"{r['ours']:>11.2f}{r['bare_layout']:>10.2f}{r['bare_write']:>9.2f}{r['bare']:>10.2f}{r['ratio']:>8.2f}",
          flush=True)
    print(f"  （{r['repeat']} 次中最快；每秒 {r['pages'] / (r['layout'] + r['write']):.1f} 页）")
    if r["pages"] != r["bare_pages"]:
        print(f"  （裸 WeasyPrint 排出 {r['bare_pages']} 页）")


if __name__ == "__main__":
    sys.exit(main())
