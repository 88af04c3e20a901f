"""Mutation fuzz of the importer: whatever the review accepts must import.

    .venv/bin/python bench/import_fuzz.py [--count 400] [--seed 7] [--database-url URL]
                                          [--preload-seed] [-v]

Builds documents of several shapes (the seed compilation, the other office's
compilation in tests/fixtures, and .docx files built from both), mutates them
deterministically (a seeded random generator: the same arguments give the same
documents) and runs each through the importer on a real database:

  review  – ``service.review_upload``; a ``DocumentError`` (Chinese message) or a
            review that lists blocking problems is a *refusal*;
  write   – when the review accepts, ``load.write`` in a transaction that is then
            rolled back, so that every document meets the same empty database.

Anything else that escapes – an exception from the review other than
DocumentError, any exception from the write – is a *traceback*; the command
prints the figures, groups the tracebacks by kind and exits 1 if there is any.

The database is a scratch SQLite file in a temporary folder, migrated by the
real migrations; ``--database-url`` points it at another (empty) database,
e.g. PostgreSQL (it is migrated, and only ever rolled back).
"""
from __future__ import annotations

import argparse
import io
import random
import re
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEED = ROOT / "workflow" / "demo_data" / "zhoucun-2022-batch1.txt"
OTHER = ROOT / "tests" / "fixtures" / "other_office.txt"
SHAPES = ROOT / "tests" / "fixtures" / "shapes"

_CN_DIGITS = "一二三四五六七八九十"
_ITEM_HEAD = re.compile(r"第\s*(\d+|[一二三四五六七八九十百零]+)\s*项")
_CHAPTER_HEAD = re.compile(r"^([一二三四五六七八九十]+)、", re.M)
_UNIT = re.compile(r"[区县省][\u4e00-\u9fff]{1,12}?(?:局|委|办|中心)")


@dataclass
class Case:
    name: str          # what was done, for the report: "seed.txt:dup_item+truncate"
    filename: str
    data: bytes


# =========================================================================== documents

def docx_bytes(text: str) -> bytes:
    import docx

    document = docx.Document()
    for line in text.splitlines():
        # python-docx refuses control characters in XML; the genre never has them.
        document.add_paragraph(re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", line))
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def base_documents() -> list[tuple[str, str]]:
    """The seed, the other office's compilation and every text fixture of the genre family."""
    return [("seed", SEED.read_text(encoding="utf-8")),
            ("other_office", OTHER.read_text(encoding="utf-8"))] + \
        [(p.stem, p.read_text(encoding="utf-8")) for p in sorted(SHAPES.glob("*.txt"))]


def binary_documents() -> list[tuple[str, bytes]]:
    """The Word and Excel fixtures (tables): damaged, they are broken zips and OLE files."""
    return [(p.name, p.read_bytes()) for p in sorted(SHAPES.glob("*"))
            if p.suffix in (".docx", ".xlsx", ".xls")]


# =========================================================================== text mutations
# Each takes (rng, lines) and returns new lines; they never name a line of a
# particular document – they pick by shape (an item header, a chapter heading …).

def _pick(rng, lines, regex=None):
    idx = [i for i, l in enumerate(lines) if (regex.search(l) if regex else l.strip())]
    return rng.choice(idx) if idx else None


def m_delete_lines(rng, lines):
    for _ in range(rng.randint(1, 5)):
        if lines:
            del lines[rng.randrange(len(lines))]
    return lines


def m_duplicate_line(rng, lines):
    i = _pick(rng, lines)
    if i is not None:
        lines.insert(rng.randrange(len(lines) + 1), lines[i])
    return lines


def m_swap_lines(rng, lines):
    for _ in range(rng.randint(1, 3)):
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    return lines


def m_truncate(rng, lines):
    return lines[:rng.randrange(1, max(2, len(lines)))]


def m_dup_item_number(rng, lines):
    """Give one item the number of another (第 2 项 → 第 1 项)."""
    heads = [i for i, l in enumerate(lines) if _ITEM_HEAD.match(l.strip())]
    if len(heads) >= 2:
        a, b = rng.sample(heads, 2)
        number = _ITEM_HEAD.match(lines[a].strip()).group(1)
        lines[b] = _ITEM_HEAD.sub(f"第 {number} 项", lines[b], count=1)
    return lines


def m_change_item_number(rng, lines):
    i = _pick(rng, lines, _ITEM_HEAD)
    if i is not None:
        new = rng.choice([str(rng.randint(0, 120)), "0", "999999999999999999999999", "三十七", "一百零二"])
        lines[i] = _ITEM_HEAD.sub(f"第{new}项", lines[i], count=1)
    return lines


def m_change_chapter_number(rng, lines):
    i = _pick(rng, lines, _CHAPTER_HEAD)
    if i is not None:
        lines[i] = _CHAPTER_HEAD.sub(rng.choice(list(_CN_DIGITS) + ["零", "九十九"]) + "、", lines[i], count=1)
    return lines


def m_duplicate_heading(rng, lines):
    """Repeat a chapter heading (or an item header) further on."""
    regex = rng.choice([_CHAPTER_HEAD, _ITEM_HEAD])
    i = _pick(rng, lines, regex)
    if i is not None:
        heads = [j for j, l in enumerate(lines) if _ITEM_HEAD.match(l.strip())] or [len(lines)]
        lines.insert(rng.choice(heads), lines[i])
    return lines


def m_items_before_chapter(rng, lines):
    """Remove every chapter heading before some item, or all of them."""
    cut = rng.randrange(len(lines)) if rng.random() < 0.5 else len(lines)
    return [l for k, l in enumerate(lines) if not (k < cut and _CHAPTER_HEAD.match(l))]


def m_concat_self(rng, lines):
    return lines + ([""] if rng.random() < 0.5 else []) + list(lines)


def m_drop_brackets(rng, lines):
    chars = rng.choice(["（", "）", "（）", "()"])
    share = rng.choice([0.1, 0.5, 1.0])
    return ["".join(c for c in l if c not in chars or rng.random() > share) for l in lines]


def m_huge_line(rng, lines):
    piece = rng.choice(["汉", "区财政局、", "第1项", "（牵头单位：", "a", "１２３"])
    lines.insert(rng.randrange(len(lines) + 1), piece * rng.choice([5000, 40000]))
    return lines


def m_long_unit(rng, lines):
    """Replace a unit name with a very long one (longer than any column)."""
    i = _pick(rng, lines, _UNIT)
    if i is not None:
        lines[i] = _UNIT.sub("区" + "经济" * rng.choice([30, 60, 200]) + "局", lines[i], count=1)
    return lines


def m_long_field(rng, lines):
    """Make a deadline, a contact, a section or a chapter title very long."""
    kind = rng.choice(["完成时限：", "联系人：", "联系电话：", "责任科室：", "、"])
    i = _pick(rng, lines, re.compile(re.escape(kind)))
    if i is not None:
        filler = rng.choice(["2022年12月底前全面完成", "张三", "6195196", "综合科", "加快建设"]) * rng.choice([10, 40])
        pos = lines[i].index(kind) + len(kind)
        lines[i] = lines[i][:pos] + filler + lines[i][pos:]
    return lines


def m_swap_blocks(rng, lines):
    """Move a run of lines elsewhere (a page put back in the wrong place)."""
    a = rng.randrange(len(lines))
    b = min(len(lines), a + rng.randint(3, 60))
    chunk, rest = lines[a:b], lines[:a] + lines[b:]
    at = rng.randrange(len(rest) + 1)
    return rest[:at] + chunk + rest[at:]


def m_char_noise(rng, lines):
    pool = "第项一二三四五六七八九十（）()：:、，。；—-0123456789 \t\u3000牵头单位责任科室完成时限联系人"
    for _ in range(rng.randint(5, 60)):
        i = rng.randrange(len(lines))
        l = lines[i]
        p = rng.randrange(len(l) + 1)
        lines[i] = l[:p] + rng.choice(pool) + l[p + rng.randint(0, 2):]
    return lines


def m_invisible(rng, lines):
    """Bidi overrides, zero-width and control characters inside the text."""
    chars = ["\u202e", "\u202d", "\u2066", "\u200b", "\ufeff", "\x00", "\x07", "\x1b", "\x85", "\x0c"]
    for _ in range(rng.randint(1, 20)):
        i = rng.randrange(len(lines))
        p = rng.randrange(len(lines[i]) + 1)
        lines[i] = lines[i][:p] + rng.choice(chars) + lines[i][p:]
    return lines


def m_deadlines(rng, lines):
    """Dates that do not exist or are out of range."""
    i = _pick(rng, lines, re.compile(r"\d{4}\s*年"))
    if i is not None:
        lines[i] = re.sub(r"\d{4}\s*年\s*\d{1,2}\s*月", rng.choice(
            ["99999年13月", "0年0月", "2022年2月30日", "10000年1月", "2022年99月31日", "长期年底"]), lines[i], count=1)
    return lines


def m_subitems(rng, lines):
    """Sub-item headers whose parent is missing or elsewhere."""
    i = _pick(rng, lines, _ITEM_HEAD)
    if i is not None:
        n = rng.randint(1, 80)
        lines.insert(i, rng.choice([f"第{n}项政策{n}-1", f"{n}-{rng.randint(1, 9)} 子项", f"第{n}-2项"]))
    return lines


TEXT_MUTATIONS = [m_delete_lines, m_duplicate_line, m_swap_lines, m_truncate, m_dup_item_number,
                  m_change_item_number, m_change_chapter_number, m_duplicate_heading,
                  m_items_before_chapter, m_concat_self, m_drop_brackets, m_huge_line, m_long_unit,
                  m_long_field, m_swap_blocks, m_char_noise, m_invisible, m_deadlines, m_subitems]


# =========================================================================== byte mutations

def b_garbage(rng, data):
    for _ in range(rng.choice([1, 2, 5, 50])):
        p = rng.randrange(len(data) + 1)
        data = data[:p] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 4))) + data[p:]
    return data


def b_flip(rng, data):
    data = bytearray(data)
    for _ in range(rng.choice([1, 3, 200])):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def b_truncate(rng, data):
    return data[:rng.randrange(len(data) + 1)]


def b_empty(rng, data):
    return rng.choice([b"", b" \n\n\t ", b"\xef\xbb\xbf", b"\xff\xfe", b"\n" * 1000])


def b_encoding(rng, data):
    text = data.decode("utf-8", errors="ignore")
    encoding = rng.choice(["gb18030", "utf-16", "utf-8-sig", "utf-16-le", "big5"])
    return text.encode(encoding, errors="ignore")


def b_crlf(rng, data):
    return data.replace(b"\n", rng.choice([b"\r\n", b"\r", b"\n\r"]))


BYTE_MUTATIONS = [b_garbage, b_flip, b_truncate, b_empty, b_encoding, b_crlf]


# =========================================================================== generator

def cases(count: int, seed: int = 7) -> list[Case]:
    """``count`` mutated documents, the same ones for the same arguments."""
    rng = random.Random(seed)
    bases = base_documents()
    binaries = binary_documents()
    out: list[Case] = []
    docx_cache: dict[str, bytes] = {}
    for k in range(count):
        if binaries and k % 5 == 4:
            # A table file with damaged bytes: truncated, flipped, garbage appended.
            name, raw = binaries[(k // 5) % len(binaries)]
            op = rng.choice([b_truncate, b_flip, b_garbage])
            out.append(Case(f"{name}:{op.__name__[2:]}", name, op(rng, raw)))
            continue
        base_name, text = bases[k % len(bases)]
        shape = rng.choice(["txt", "txt", "txt", "docx"])
        lines = text.split("\n")
        ops: list[str] = []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            op = rng.choice(TEXT_MUTATIONS)
            lines = op(rng, lines) or [""]
            ops.append(op.__name__[2:])
        mutated = "\n".join(lines)
        if shape == "docx":
            if rng.random() < 0.15:
                # A broken Word file: the zip itself damaged.
                raw = docx_cache.setdefault(base_name, docx_bytes(text))
                data = rng.choice([b_truncate, b_flip])(rng, raw)
                ops = ["docx_bytes_" + ("damaged")]
            else:
                data = docx_bytes(mutated)
            out.append(Case(f"{base_name}.docx:{'+'.join(ops)}", f"{base_name}.docx", data))
            continue
        data = mutated.encode("utf-8")
        if rng.random() < 0.35:
            op = rng.choice(BYTE_MUTATIONS)
            data = op(rng, data)
            ops.append(op.__name__[2:])
        out.append(Case(f"{base_name}.txt:{'+'.join(ops)}", f"{base_name}.txt", data))
    return out


# =========================================================================== running

@dataclass
class Outcome:
    case: Case
    result: str                  # "imported" | "refused" | "traceback"
    message: str = ""            # the refusal's first message, or the traceback's kind
    stage: str = ""              # "review" | "write" (for tracebacks)
    detail: str = ""             # the formatted traceback


def _kind(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/workflow/" in f.filename or "/models/" in f.filename] or frames
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
    return f"{type(exc).__name__} at {where}"


def run_case(case: Case, replace_invalid: bool = False) -> Outcome:
    """Review, and when accepted write and roll back. Needs an app context."""
    from workflow.extensions import db
    from workflow.importer import load, service

    try:
        try:
            rv = service.review_upload(case.data, case.filename, replace_invalid=replace_invalid)
        except TypeError as exc:        # an importer without the replace_invalid option
            if "replace_invalid" not in str(exc):
                raise
            rv = service.review_upload(case.data, case.filename)
    except service.DocumentError as exc:
        db.session.rollback()
        return Outcome(case, "refused", exc.message)
    except Exception as exc:  # noqa: BLE001 - counting them is the point
        db.session.rollback()
        return Outcome(case, "traceback", _kind(exc), "review", traceback.format_exc())
    problems = getattr(rv, "problems", [])
    if problems:
        db.session.rollback()
        return Outcome(case, "refused", problems[0].message)
    try:
        load.write(rv)
        db.session.flush()
        return Outcome(case, "imported")
    except Exception as exc:  # noqa: BLE001
        return Outcome(case, "traceback", _kind(exc), "write", traceback.format_exc())
    finally:
        db.session.rollback()


def make_app(database_url: str | None, folder: Path, preload_seed: bool = False):
    from flask_migrate import upgrade

    from workflow.app import create_app

    app = create_app({
        "SQLALCHEMY_DATABASE_URI": database_url or f"sqlite:///{folder / 'fuzz.sqlite'}",
        "UPLOAD_FOLDER": str(folder / "uploads"), "REPORT_FOLDER": str(folder / "reports"),
        "LUOSHI_ENV": "testing", "SECRET_KEY": "fuzz", "TESTING": True,
    })
    app.instance_path = str(folder / "instance")
    with app.app_context():
        upgrade()
        if preload_seed:
            # Reviews then meet existing units, aliases, sections and a plan of the same title.
            from workflow.importer import service

            service.confirm(service.review_upload(SEED.read_bytes(), SEED.name))
    return app


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--preload-seed", action="store_true",
                        help="import the seed first (committed), so documents meet a populated database")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every traceback in full")
    args = parser.parse_args(argv)

    import logging
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(args.database_url, Path(tmp), args.preload_seed)
        started = time.perf_counter()
        documents = cases(args.count, args.seed)
        outcomes: list[Outcome] = []
        with app.app_context():
            for case in documents:
                outcome = run_case(case)
                if outcome.result == "refused" and "替换字符" in outcome.message:
                    outcomes.append(outcome)
                    # The office may choose to read it with replacement characters.
                    outcome = run_case(case, replace_invalid=True)
                    outcome.case = Case(case.name + "+replace_invalid", case.filename, case.data)
                outcomes.append(outcome)
        elapsed = time.perf_counter() - started

    results = Counter(o.result for o in outcomes)
    print(f"importer mutation fuzz  (seed {args.seed}, {elapsed:.1f} s"
          f"{', database preloaded with the seed' if args.preload_seed else ''})")
    print(f"  documents tried        {len(documents)}  (runs: {len(outcomes)}, incl. re-reads with replacement characters)")
    print(f"  refused with a message {results['refused']}")
    print(f"  imported               {results['imported']}")
    print(f"  tracebacks             {results['traceback']}")
    refusals = Counter(re.sub(r"第\s*[\d\-]+\s*[行项]|\d+", "#", o.message)[:50]
                       for o in outcomes if o.result == "refused")
    print("  refusals, most common:")
    for message, n in refusals.most_common(8):
        print(f"    {n:4d}  {message}")
    tracebacks = [o for o in outcomes if o.result == "traceback"]
    if tracebacks:
        print("  tracebacks by kind:")
        for (stage, kind), n in Counter((o.stage, o.message) for o in tracebacks).most_common():
            example = next(o for o in tracebacks if (o.stage, o.message) == (stage, kind))
            print(f"    {n:4d}  {stage}: {kind}   e.g. {example.case.name}")
        if args.verbose:
            for o in tracebacks:
                print(f"\n--- {o.case.name}\n{o.detail}")
    return 1 if tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
