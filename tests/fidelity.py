"""Field-by-field comparison of a parsed document with its hand-checked expectation.

A fixture under ``tests/fixtures/shapes/`` is a document (``name.txt`` / ``.docx`` / ``.xlsx``)
and beside it ``name.expected.json``, written by hand from what the document says (never by
dumping the parser's output). ``record(draft)`` turns a draft into the same shape, with unit
names after the in-document merges (``workflow.importer.names.merge_spellings``, no database),
and ``compare`` counts the fields that agree.

The expected JSON::

    {"shape": "task_list",
     "title": "…",
     "chapters": [[1, "…"], …],
     "items": [{"number": "1", "chapter": 1, "subtitle": "…" | null,
                "owner_units": […], "contacts": [["王明", "1234567"], …],
                "tasks": [{"kind": "task", "text": "…", "lead_units": […], "responsible_units": […],
                           "sections": […], "leaders": […], "addressees": […],
                           "deadline": "2022-06-30" | null, "deadline_text": "…" | null,
                           "long_term": false, "deadline_proposal": "…" | null}, …]}, …]}

Keys left out of an expected item or task are not compared (a fixture says what it checks).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from workflow.importer.draft import Draft
from workflow.importer.load import written_unit_names
from workflow.importer.names import merge_spellings

SHAPES = Path(__file__).parent / "fixtures" / "shapes"

#: Filled by tests/test_fidelity.py, printed by the conftest's terminal summary.
RESULTS: list = []

ITEM_FIELDS = ("number", "chapter", "subtitle", "owner_units", "contacts")
TASK_FIELDS = ("kind", "text", "lead_units", "responsible_units", "sections", "leaders", "addressees",
               "deadline", "deadline_text", "long_term", "deadline_proposal")


def record(draft: Draft) -> dict:
    canonical = merge_spellings(written_unit_names(draft))

    def units(names):
        return list(dict.fromkeys(canonical.get(n, n) for n in names))

    return {
        "shape": draft.shape,
        "title": draft.title,
        "chapters": [[c.number, c.title] for c in draft.chapters],
        "items": [{
            "number": i.number, "chapter": i.chapter, "subtitle": i.subtitle,
            "owner_units": units(i.owner_units),
            "contacts": [[c.name, c.phone] for c in i.contacts],
            "tasks": [{
                "kind": str(t.kind), "text": t.text, "lead_units": units(t.lead_units),
                "responsible_units": [u for u in units(t.responsible_units) if u not in units(t.lead_units)],
                "sections": list(t.sections), "leaders": list(t.leaders), "addressees": list(t.addressees),
                "deadline": t.deadline.isoformat() if t.deadline else None, "deadline_text": t.deadline_text,
                "long_term": t.long_term, "deadline_proposal": t.deadline_proposal,
            } for t in i.tasks],
        } for i in draft.items],
    }


@dataclass
class Fidelity:
    name: str
    total: int = 0
    matched: int = 0
    misses: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.matched / self.total if self.total else 1.0

    def check(self, where: str, expected, actual) -> None:
        self.total += 1
        if expected == actual:
            self.matched += 1
        else:
            self.misses.append(f"{where}: expected {expected!r}, got {actual!r}")

    def __str__(self) -> str:
        return f"{self.name}: {self.matched}/{self.total} fields ({self.ratio:.1%})"


def compare(name: str, expected: dict, actual: dict) -> Fidelity:
    """Every field the expectation names counts once; a missing or extra item or task
    counts as many misses as the fields it has."""
    f = Fidelity(name)
    for key in ("shape", "title", "chapters"):
        if key in expected:
            f.check(key, expected[key], actual.get(key))
    got_items = actual["items"]
    for n, want in enumerate(expected["items"]):
        have = got_items[n] if n < len(got_items) else None
        where = f"item[{n}] {want.get('number', '')}"
        for key in ITEM_FIELDS:
            if key in want:
                f.check(f"{where}.{key}", want[key], have.get(key) if have else None)
        got_tasks = have["tasks"] if have else []
        for k, task in enumerate(want.get("tasks", [])):
            got = got_tasks[k] if k < len(got_tasks) else None
            for key in TASK_FIELDS:
                if key in task:
                    f.check(f"{where}.tasks[{k}].{key}", task[key], got.get(key) if got else None)
        for k in range(len(want.get("tasks", [])), len(got_tasks)):
            f.check(f"{where}.tasks[{k}]", None, got_tasks[k]["text"])
    for n in range(len(expected["items"]), len(got_items)):
        f.check(f"item[{n}]", None, got_items[n]["number"])
    return f


def load_expected(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
