"""Every fixture document of the genre family imports as its hand-checked expectation says.

Each ``tests/fixtures/shapes/<name>.<ext>`` with a ``<name>.expected.json`` beside it is parsed
from its bytes and compared field by field (tests/fidelity.py); the figures are printed at the
end of the run (conftest ``pytest_terminal_summary``)."""
from __future__ import annotations

import pytest

from tests import fidelity
from workflow.importer.parse import parse_bytes

DOCUMENTS = sorted(p for p in fidelity.SHAPES.glob("*") if not p.name.endswith(".json")
                   and p.with_name(p.name.rsplit(".", 1)[0] + ".expected.json").exists())


def test_every_shape_of_the_family_has_its_fixtures():
    """Every shape the importer knows is checked on documents of its own: at least two task lists
    in running text and two compilations besides the seed, and each file kind a table comes in."""
    from collections import Counter

    from workflow.vocabulary import DocumentShape

    shapes = Counter(fidelity.load_expected(p.with_name(p.name.rsplit(".", 1)[0] + ".expected.json"))["shape"]
                     for p in DOCUMENTS)
    assert set(shapes) == set(DocumentShape.values()), shapes
    assert shapes[DocumentShape.TASK_LIST] >= 2 and shapes[DocumentShape.COMPILATION] >= 2, shapes
    tables = {p.suffix for p in DOCUMENTS if p.suffix not in (".txt",)}
    assert tables >= {".docx", ".doc", ".xlsx", ".xls"}, tables


@pytest.mark.parametrize("path", DOCUMENTS, ids=[p.name for p in DOCUMENTS])
def test_fixture_reads_as_expected(path):
    expected = fidelity.load_expected(path.with_name(path.name.rsplit(".", 1)[0] + ".expected.json"))
    draft = parse_bytes(path.read_bytes(), path.name)
    result = fidelity.compare(path.name, expected, fidelity.record(draft))
    fidelity.RESULTS.append(result)
    assert not result.misses, f"{result}\n" + "\n".join(result.misses[:40])
