"""Benchmark: the three report kinds at size — pages, seconds and peak memory.

    .venv/bin/python bench/report_bench.py [--only seed|x10|x50 …] [--plans N] [--kinds overall,unit,item]
                                           [--bare] [--keep DIR]

Scales: the seed plan (with the demo activity when workflow/demo.py can play
it), ten times its size (x10: 1,890 tasks) and fifty times (x50: 9,450 tasks);
the larger plans are the seed plan with its chapters, items, tasks and parts
(states, deadlines, units, progress) copied into the same plan, items
renumbered (19-1 → 119-1, 219-1, …).

``--plans N`` then adds N-1 more plans, each a copy of that plan: the unit and
item reports of the newest plan must not grow with the number of plans.

Each report is generated in a fresh child process (the same path as the worker:
``archive.build_html`` then ``archive.render_built``), after the imports and the
shared FontConfiguration are warm, as in a running worker. The child reports
  - pages, the seconds for data queries + HTML and for the PDF;
  - its peak resident memory (``ru_maxrss``) and the resident memory it had
    before the report (imports, fonts: what any worker carries anyway).
``--bare`` adds, for the overall report, bare WeasyPrint on the identical HTML
(``HTML(string=…).write_pdf()``, a new FontConfiguration, the default fetcher).

Everything happens in scratch SQLite databases in a temporary folder; the
project's own database is never touched.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
AS_OF = "2022-06-30"
SCALES = {"seed": 1, "x10": 10, "x50": 50}


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
        _checkpoint()
        write_transactions(False)
    return activity


def _checkpoint() -> None:
    from workflow.extensions import db

    db.session.remove()
    db.engine.dispose()  # checkpoints the WAL, so the file alone is the whole database


def _copy_items(plan_id: int, chapters, items, chapter_number, item_number, position, chapter_title=None) -> None:
    """Copy ``items`` (parents before their sub-items) with their tasks and parts
    into plan ``plan_id``, under copies of ``chapters``."""
    from models import Chapter, Item, Task, TaskPart
    from workflow.extensions import db

    chapter_map = {}
    for c in chapters:
        copy = Chapter(plan_id=plan_id, number=chapter_number(c.number),
                       title=chapter_title(c.title) if chapter_title else c.title)
        db.session.add(copy)
        chapter_map[c.id] = copy
    db.session.flush()
    item_map = {}
    for i in items:
        copy = Item(plan_id=plan_id, chapter_id=chapter_map[i.chapter_id].id,
                    parent_id=item_map[i.parent_id].id if i.parent_id else None, number=item_number(i.number),
                    position=position(i.position), subtitle=i.subtitle, policy_text=i.policy_text,
                    goal=i.goal, explanation=i.explanation, applicable=i.applicable, complete=i.complete)
        copy.owner_units = list(i.owner_units)
        db.session.add(copy)
        db.session.flush()
        item_map[i.id] = copy
        for t in i.tasks:
            task = Task(item_id=copy.id, kind=t.kind, seq=t.seq, text=t.text, deadline=t.deadline,
                        deadline_original=t.deadline_original, deadline_text=t.deadline_text,
                        long_term=t.long_term, clause_source=t.clause_source,
                        source_lines=list(t.source_lines or []), state=t.state)
            task.lead_units = list(t.lead_units)
            task.responsible_units = list(t.responsible_units)
            task.parts = [TaskPart(unit_id=p.unit_id, position=p.position, state=p.state, progress=p.progress)
                          for p in t.parts]
            db.session.add(task)
    db.session.flush()


def multiply_plan(app, factor: int) -> None:
    """Copy the first plan's chapters, items, tasks and parts factor-1 more times into it."""
    from sqlalchemy import select

    from models import Plan
    from workflow.sqlite import write_transactions
    from workflow.extensions import db

    with app.app_context():
        write_transactions(True)
        plan = db.session.scalars(select(Plan).order_by(Plan.id)).first()
        chapters, items = list(plan.chapters), list(plan.items)
        n_chapters = max(c.number for c in chapters)

        def renumber(k):
            def number(n: str) -> str:
                head, _, tail = n.partition("-")
                return f"{int(head) + 100 * k}" + (f"-{tail}" if tail else "") if head.isdigit() else f"{k}.{n}"
            return number

        for k in range(1, factor):
            _copy_items(plan.id, chapters, items, lambda n, k=k: n + n_chapters * k, renumber(k),
                        lambda p, k=k: p + 10000 * k, lambda t, k=k: f"{t}（副本{k}）")
        db.session.commit()
        _checkpoint()
        write_transactions(False)


def add_plans(app, count: int) -> None:
    """``count`` more plans, each a copy of the first one (its numbers kept)."""
    from sqlalchemy import select

    from models import Plan
    from workflow.sqlite import write_transactions
    from workflow.extensions import db

    with app.app_context():
        write_transactions(True)
        first = db.session.scalars(select(Plan).order_by(Plan.id)).first()
        chapters, items = list(first.chapters), list(first.items)
        for k in range(1, count + 1):
            plan = Plan(title=f"{first.title}（副本{k}）", issuer=first.issuer, issued_on=first.issued_on,
                        batch=first.batch, source_filename=first.source_filename,
                        source_sha256=f"{k:064x}", preamble=first.preamble, shape=first.shape)
            db.session.add(plan)
            db.session.flush()
            _copy_items(plan.id, chapters, items, lambda n: n, lambda n: n, lambda p: p)
            db.session.commit()
        _checkpoint()
        write_transactions(False)


def subjects(app) -> dict:
    """The newest plan's busiest unit (most parts) and biggest item (most tasks, with its sub-items)."""
    from sqlalchemy import func, select

    from models import Item, Plan, Task, TaskPart
    from workflow.extensions import db

    with app.app_context():
        plan_id = db.session.scalar(select(func.max(Plan.id)))
        unit_id, parts = db.session.execute(
            select(TaskPart.unit_id, func.count(TaskPart.id)).join(Task).join(Item).where(Item.plan_id == plan_id)
            .group_by(TaskPart.unit_id).order_by(func.count(TaskPart.id).desc(), TaskPart.unit_id).limit(1)).one()
        top = func.coalesce(Item.parent_id, Item.id)
        item_id, _ = db.session.execute(
            select(top, func.count(Task.id)).join(Task).where(Item.plan_id == plan_id)
            .group_by(top).order_by(func.count(Task.id).desc(), top).limit(1)).one()
        number = db.session.get(Item, item_id).number
        tasks = db.session.scalar(select(func.count(Task.id)))
        plans = db.session.scalar(select(func.count(Plan.id)))
        _checkpoint()
    return {"plan": plan_id, "unit": unit_id, "unit_parts": parts, "item": number, "tasks": tasks, "plans": plans}


# ---------------------------------------------------------------- the child: one report

def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux: kilobytes


def child(args) -> int:
    from sqlalchemy import func, select

    from models import Item, Task
    from workflow.extensions import db
    from workflow.reports import archive, render

    app = make_app(Path(args.child))
    logging.getLogger("weasyprint").setLevel(logging.CRITICAL)   # the bare fetcher cannot load luoshi-asset:
    # Warm up imports and the shared FontConfiguration, as a running worker has them.
    render.html_to_pdf('<p style="font-family: \'Noto Sans CJK SC\'">预热</p>')
    with app.app_context():
        tasks = db.session.scalar(select(func.count(Task.id)).join(Item).where(Item.plan_id == args.plan))
        db.session.remove()
    before = maxrss_mb()
    with app.app_context():
        started = time.perf_counter()
        params = archive.make_params(args.kind, plan_id=args.plan, unit_id=args.unit, item_number=args.item,
                                     as_of=AS_OF)
        size = archive.estimate(params) if hasattr(archive, "estimate") else None
        built = archive.build_html(params, "基准测试")
        data_html = time.perf_counter() - started
        db.session.remove()
    started = time.perf_counter()
    phases = {}
    if args.bare:
        from weasyprint import HTML

        document = HTML(string=built.html).render()
        pdf, pages = document.write_pdf(), len(document.pages)
        sections = 1
    elif hasattr(archive, "render_built"):
        with app.app_context():   # the section size is the app's REPORT_SECTION_SIZE
            rendered = archive.render_built(built)
        pdf, pages, sections = rendered.pdf, rendered.pages, rendered.sections
        phases = {"layout": rendered.layout_seconds, "write": rendered.write_seconds,
                  "join": getattr(rendered, "join_seconds", 0.0)}
    else:
        rendered = render.html_to_pdf(built.html)
        pdf, pages, sections = rendered.pdf, rendered.pages, 1
    seconds = time.perf_counter() - started
    if args.keep:
        Path(args.keep).write_bytes(pdf)
    print(json.dumps({"pages": pages, "data_html": data_html, "pdf_seconds": seconds, "peak": maxrss_mb(),
                      "before": before, "bytes": len(pdf), "sections": sections, "plan_tasks": tasks,
                      "estimate": getattr(size, "pages", None), **phases}))
    return 0


def run_child(folder: Path, kind: str, subject: dict, bare: bool, keep: Path | None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(folder), "--kind", kind,
           "--plan", str(subject["plan"])]
    if kind == "unit":
        cmd += ["--unit", str(subject["unit"])]
    if kind == "item":
        cmd += ["--item", subject["item"]]
    if bare:
        cmd.append("--bare")
    if keep is not None:
        cmd += ["--keep", str(keep)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"子进程失败：{' '.join(cmd)}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=tuple(SCALES), help="只测这些规模（默认 seed x10）")
    parser.add_argument("--plans", type=int, default=1, help="数据库中方案份数（其余为副本），默认 1")
    parser.add_argument("--kinds", default="overall,unit,item", help="报告类型，逗号分隔")
    parser.add_argument("--bare", action="store_true", help="总体报告另测裸 WeasyPrint")
    parser.add_argument("--keep", type=Path, help="把生成的 PDF 留在此目录")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--plan", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--unit", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--item", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    from workflow.reports import render

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"机器：{platform.machine()}，{os.cpu_count()} 核，开始时负载 {load:.2f}；Python {platform.python_version()}；",
          end="")
    import weasyprint

    print(f"WeasyPrint {weasyprint.__version__}；libharfbuzz-subset："
          f"{'可用' if render.harfbuzz_subset_available() else '缺失（将慢数倍）'}")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)

    scratch = Path(tempfile.mkdtemp(prefix="luoshi-bench-"))
    try:
        seed_dir = scratch / "seed"
        seed_dir.mkdir()
        t = time.perf_counter()
        activity = build_seed(make_app(seed_dir))
        print(f"种子数据库已建（演示办理记录：{activity}），用时 {time.perf_counter() - t:.1f} 秒")
        header = True
        for label in args.only or ("seed", "x10"):
            folder = scratch / label
            if label != "seed":
                folder.mkdir()
                shutil.copyfile(seed_dir / "bench.sqlite", folder / "bench.sqlite")
                t = time.perf_counter()
                multiply_plan(make_app(folder), SCALES[label])
                print(f"{label} 方案已生成，用时 {time.perf_counter() - t:.1f} 秒")
            if args.plans > 1:
                copy_dir = scratch / f"{label}-plans"
                copy_dir.mkdir()
                shutil.copyfile(folder / "bench.sqlite", copy_dir / "bench.sqlite")
                folder = copy_dir
                t = time.perf_counter()
                add_plans(make_app(folder), args.plans - 1)
                print(f"已加 {args.plans - 1} 份方案副本，用时 {time.perf_counter() - t:.1f} 秒")
            subject = subjects(make_app(folder))
            for kind in kinds:
                for bare in ((False, True) if args.bare and kind == "overall" else (False,)):
                    keep = args.keep / f"{label}-{kind}{'-bare' if bare else ''}.pdf" if args.keep else None
                    r = run_child(folder, kind, subject, bare, keep)
                    print_row(label, kind + ("（裸）" if bare else ""), subject, r, header)
                    header = False
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print("说明：每份报告在新的子进程中生成（导入与字体已预热）；秒数 = 数据查询与 HTML、PDF（排版、写文件、分段时的拼接与页码）；")
    print("      峰值内存 = 子进程的 ru_maxrss，“其中基础” = 生成前已占用的（导入、字体）。单位报告取承办部分最多的单位，")
    print("      事项报告取任务最多的事项（含子项），均在最新的方案中。")
    return 0


def print_row(label: str, kind: str, subject: dict, r: dict, header: bool) -> None:
    if header:
        print()
        print(f"{'规模':<6}{'方案数':>6}{'库中任务':>8}{'报告':<10}{'本方案任务':>9}{'页数':>6}{'预估':>6}{'分段':>5}"
              f"{'数据+HTML':>10}{'PDF':>8}{'合计':>8}{'峰值MB':>8}{'其中基础':>9}{'大小KB':>8}")
    estimate = r.get("estimate")
    print(f"{label:<8}{subject['plans']:>6}{subject['tasks']:>10}  {kind:<10}{r['plan_tasks']:>8}{r['pages']:>8}"
          f"{estimate if estimate is not None else '—':>7}{r['sections']:>6}{r['data_html']:>11.2f}"
          f"{r['pdf_seconds']:>9.2f}{r['data_html'] + r['pdf_seconds']:>9.2f}{r['peak']:>9.0f}{r['before']:>10.0f}"
          f"{r['bytes'] / 1024:>9.0f}", flush=True)
    if "layout" in r:
        print(f"    （排版 {r['layout']:.2f} 秒，写 PDF {r['write']:.2f} 秒，页码与拼接 {r['join']:.2f} 秒）", flush=True)


if __name__ == "__main__":
    sys.exit(main())
