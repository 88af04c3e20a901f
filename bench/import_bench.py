"""Benchmark: does parsing stay linear in the size of the document?

    .venv/bin/python bench/import_bench.py [--sizes 1,10,50] [--long-mb 1.2] [--review]

Parses (``parse_bytes``: decoding, furniture, grammar, duplicate check; no database) documents
built from the seed compilation:

  seed ×N     – the seed repeated N times, its items renumbered so that each copy is a new part
                of one long compilation (every paragraph of copy 2… repeats one of copy 1: the
                worst case for the duplicate-paragraph check);
  long line   – one paragraph of the given size without a full stop inside a task entry;
  task list   – each fixture under tests/fixtures/shapes/ of another shape, repeated to 1 MB.

and prints seconds, MB and seconds per MB for each (linear means that column stays flat), and the
peak of memory the parse allocates (a second parse, under tracemalloc).
With --review it also times the review (``service.review_upload``: the parse, the units, the checks)
and the confirm's write (``service.confirm``) on a scratch SQLite database, for seed ×1 and the
largest size (chapters numbered, so that the document can be imported).
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEED = ROOT / "workflow" / "demo_data" / "zhoucun-2022-batch1.txt"
SHAPES = ROOT / "tests" / "fixtures" / "shapes"
_ITEM = re.compile(r"第\s*(\d+)\s*项")
_SUB = re.compile(r"(?m)^(\d+)\s*[—-]\s*(\d+)")


def seed_times(n: int, number_chapters: bool = False) -> str:
    """The seed N times, item numbers shifted by 100 per copy (sub-items too); with
    ``number_chapters`` its chapters (一、…) become 第1章 … 第6N章, so that the office could import it
    (the same chapter number twice in one plan is refused)."""
    text = SEED.read_text(encoding="utf-8")
    body = text[text.index("一、"):] if "一、" in text else text
    parts = [text]
    for copy in range(1, n):
        shift = 100 * copy
        shifted = _ITEM.sub(lambda m: f"第{int(m[1]) + shift}项", body)
        shifted = _SUB.sub(lambda m: f"{int(m[1]) + shift}—{m[2]}", shifted)
        shifted = re.sub(r"第(\d+)项政策(\d+)—", lambda m: f"第{m[1]}项政策{int(m[2]) + shift}—", shifted)
        parts.append(shifted)
    text = "\n".join(parts)
    if number_chapters:
        numbers = iter(range(1, 1_000_000))
        text = re.sub(r"(?m)^[一二三四五六七八九十]+、", lambda m: f"第{next(numbers)}章 ", text)
    return text


def long_paragraph(mb: float) -> str:
    """A one-item compilation whose first task runs on for ``mb`` MB without a full stop, broken
    into lines of 40 characters as text extracted from a PDF is."""
    chunk = "推进重点项目建设并加强要素保障，"
    words = chunk * max(1, int(mb * 1024 * 1024 / len(chunk.encode("utf-8"))))
    words = "\n".join(words[i:i + 40] for i in range(0, len(words), 40))
    return ("某县实施方案汇编\n\n一、扩大投资\n\n第1项\n（一）政策原文\n支持项目。\n（二）落实目标\n开工十个。\n"
            f"（三）工作任务\n1. {words}\n（牵头单位：县发展改革局；完成时限：2023年6月）\n"
            "（四）保障措施\n1. 加强调度。（牵头单位：县发展改革局；完成时限：长期）\n"
            "（县发展改革局牵头，联系人：王明，联系电话：1234567）\n")


def measure(name: str, data: bytes, filename: str) -> None:
    """Time one parse, then parse again under tracemalloc for the peak: tracing every allocation
    slows a parse several times over (more so the larger the document), so never both at once."""
    from workflow.importer.draft import DocumentError
    from workflow.importer.parse import parse_bytes

    def parse() -> str:
        try:
            draft = parse_bytes(data, filename)
            return f"{sum(len(i.tasks) for i in draft.items)} tasks"
        except DocumentError as exc:
            return f"refused: {exc.message[:30]}"

    started = time.perf_counter()
    what = parse()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    parse()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    mb = len(data) / 1024 / 1024
    print(f"{name:<28} {mb:7.2f} MB {seconds:8.2f} s {seconds / mb:8.2f} s/MB  peak {peak / 1024 / 1024:7.1f} MB  {what}",
          flush=True)


def review_times(sizes: list[int]) -> None:
    """The office's two steps on a scratch SQLite database: the review (``service.review_upload``:
    the parse, then the units and the checks) and the write of the confirm (``service.confirm``:
    the view reviews the staged bytes again first), for the seed N times with numbered chapters."""
    from workflow.app import create_app
    from workflow.extensions import db
    from workflow.importer import service

    folder = Path(tempfile.mkdtemp(prefix="import-bench-"))
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'bench.sqlite'}",
                      "UPLOAD_FOLDER": str(folder / "uploads"), "REPORT_FOLDER": str(folder / "reports"),
                      "QUEUE_URL": f"sqlite:///{folder / 'queue.sqlite3'}"})
    with app.app_context():
        from flask_migrate import upgrade
        upgrade(directory=str(ROOT / "migrations"))
        for n in sizes:
            data = seed_times(n, number_chapters=True).encode("utf-8")
            started = time.perf_counter()
            rv = service.review_upload(data, f"seed-x{n}.txt")
            reviewed = time.perf_counter() - started
            tasks = rv.counts["tasks"] + rv.counts["measures"]
            if rv.accepted:
                started = time.perf_counter()
                service.confirm(rv)
                db.session.commit()
                written = f"written in {time.perf_counter() - started:.2f} s"
            else:
                written = f"not accepted: {len(rv.problems)} problems"
            print(f"review + confirm seed ×{n:<8} {len(data) / 1024 / 1024:7.2f} MB  review {reviewed:6.2f} s, "
                  f"{written}  ({tasks} tasks)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50")
    parser.add_argument("--long-mb", type=float, default=1.2)
    parser.add_argument("--review", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"{'document':<28} {'size':>10} {'time':>10} {'per MB':>10}")
    for n in sizes:
        measure(f"seed ×{n}", seed_times(n).encode("utf-8"), f"seed-x{n}.txt")
    for mb in sorted({args.long_mb / 4, args.long_mb}):
        measure(f"long paragraph {mb:.2f} MB", long_paragraph(mb).encode("utf-8"), "long.txt")
    for path in sorted(SHAPES.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        times = max(1, (1024 * 1024) // len(text.encode("utf-8")))
        measure(f"{path.stem} ×{times}", "\n".join([text] * times).encode("utf-8"), path.name)
    if args.review:
        review_times(sorted({1, max(sizes)}))


if __name__ == "__main__":
    main()
