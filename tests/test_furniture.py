"""Page furniture (page numbers, running headers and footers) is removed before parsing.

Pure tests of ``workflow.importer.furniture.strip_furniture`` on small texts written here, and of
``parse_text`` on the PDF-extracted fixture (tests/fixtures/shapes/compilation-pdf-extracted.txt).
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from workflow.importer.furniture import page_start, strip_furniture
from workflow.importer.parse import parse_text

FIXTURE = Path(__file__).parent / "fixtures" / "shapes" / "compilation-pdf-extracted.txt"

PARA = "加强统筹调度，按月通报工作进展。"
TITLE = "某某县落实省稳增长政策措施实施方案汇编"
ISSUER = "某某县稳增长工作领导小组办公室"


def strip(text: str):
    """strip_furniture as parse_text calls it: form feeds mark page starts, then become spaces."""
    raw = text.split("\n")
    starts = {page_start(no, line) for no, line in enumerate(raw, 1) if "\f" in line}
    return strip_furniture([line.replace("\f", " ") for line in raw], starts)


def pages(count: int, header=None, footer=None, number=lambda p: f"- {p} -", body=None) -> str:
    """A document of ``count`` pages: front matter with the title, then pages of text."""
    out = [ISSUER, "", "关于印发《" + TITLE + "》的通知", "", TITLE, "", "一、扩大有效投资", ""]
    for p in range(1, count + 1):
        if header:
            out += [header(p) if callable(header) else header, ""]
        out += (body(p) if body else [f"第{p}页的正文，{PARA}", ""])
        if footer:
            out += [footer, ""]
        out += [number(p), "\f"]
    return "\n".join(out)


# =========================================================================== page numbers

@pytest.mark.parametrize("line", ["- 12 -", "-12-", "—12—", "— 12 —", "－１２－", "·12·", "· 12 ·",
                                  "第12页", "第 12 页", "第 12 页 共 40 页", "第12页/共40页", "共40页 第12页",
                                  "第十二页", "12/40", " 12 / 40 "])
def test_each_page_number_shape_is_removed_wherever_it_stands(line):
    # inside a paragraph, not next to any blank line or page break
    lines, removed = strip("前一段文字没有写完，\n" + line + "\n接着写完。")
    assert removed == {2: "page_number"}
    assert lines == ["前一段文字没有写完，", "", "接着写完。"]


@pytest.mark.parametrize("line", ["12/4", "（12）", "12、", "12.", "第12项", "1000", "0", "- 1000 -"])
def test_lines_that_only_look_like_numbers_stay(line):
    text = f"{PARA}\n\n{line}\n\n{PARA}"
    assert strip(text)[1] == {}


@pytest.mark.parametrize("text, line", [
    (f"{PARA}\n\n12\n\n{PARA}", 3),                    # between blank lines
    (f"{PARA}\n12\n\f{PARA}", 2),                       # the last line before a form feed
    (f"{PARA}\n\f12\n{PARA}", 2),                       # the first line after one
    ("区发展改\n12\n革局负责。", 2),                      # inside the paragraph a page break cut
])
def test_a_bare_number_where_a_page_number_stands_is_one(text, line):
    assert strip(text)[1] == {line: "page_number"}


def test_a_bare_number_that_is_an_entry_is_kept():
    """An entry numbered 12 on its own line, its text on the next: no page number stands so."""
    text = "\n".join([PARA, "", "12", "对全区重点项目实行清单化管理。（牵头单位：区发展改革局）", ""])
    lines, removed = strip(text)
    assert removed == {} and lines == text.split("\n")
    # also in a document whose bare page numbers increase page after page: in the page,
    # or at its top, where a number that does not fit between pages 2 and 3 is no page number
    body = lambda p: [f"第{p}页的正文，{PARA}", "", "12", "对全区重点项目实行清单化管理。", ""]
    for doc in (pages(6, number=str, body=body),
                pages(6, number=str).replace("第3页的正文，", "12\n第3页的正文，")):
        lines, removed = strip(doc)
        assert "12" in lines and list(removed.values()) == ["page_number"] * 6


def test_bare_page_numbers_that_increase_go_when_followed_by_a_blank_line():
    doc = "\n".join(f"第{p}页的最后一句。\n{p}\n" for p in range(1, 6))
    removed = strip(doc)[1]
    assert sorted(removed) == [2, 5, 8, 11, 14] and set(removed.values()) == {"page_number"}


# =========================================================================== running lines

def test_a_repeated_header_is_removed_but_the_title_kept():
    doc = pages(5, header=TITLE)
    lines, removed = strip(doc)
    raw = doc.split("\n")
    headers = [n for n, line in enumerate(raw, 1) if line == TITLE][1:]
    assert [n for n, r in removed.items() if r == "running_header"] == headers and len(headers) == 5
    # the cover letter, the title page and the issuer stay
    assert lines[:8] == raw[:8]
    assert parse_text_title(doc) == TITLE


def parse_text_title(doc: str) -> str | None:
    # A chapter heading without items is no compilation; the title is read from the front matter.
    from workflow.importer.draft import DocumentError
    try:
        return parse_text(doc + "\n第1项\n（一）政策原文\n政策内容。").title
    except DocumentError:
        return None


def test_alternate_headers_and_a_footer_are_named_by_where_they_stand():
    doc = pages(6, header=lambda p: TITLE if p % 2 == 0 else ISSUER, footer="内部资料 注意保存")
    lines, removed = strip(doc)
    raw = doc.split("\n")
    for n, reason in removed.items():
        assert (raw[n - 1], reason) in {(TITLE, "running_header"), (ISSUER, "running_header"),
                                        ("内部资料 注意保存", "running_footer")} or reason == "page_number"
    assert list(removed.values()).count("running_footer") == 6
    assert list(removed.values()).count("running_header") == 6
    # the issuer in the front matter (its first line) stays
    assert lines[0] == ISSUER


def test_without_page_numbers_repetition_is_the_evidence():
    doc = pages(4, header=TITLE, number=lambda p: "")
    removed = strip(doc)[1]
    assert list(removed.values()) == ["running_header"] * 4


def test_a_line_repeated_twice_is_not_furniture():
    doc = pages(2, header=TITLE)
    assert set(strip(doc)[1].values()) == {"page_number"}


def test_a_repeated_line_far_from_page_breaks_is_not_furniture():
    """With page numbers in the document, a repeated short line that never touches one is text."""
    body = lambda p: [f"第{p}页的正文，{PARA}", "区财政局负责", f"第{p}页的第二段，{PARA}", ""]
    removed = strip(pages(5, body=body))[1]
    assert set(removed.values()) == {"page_number"}


@pytest.mark.parametrize("line", ["（三）工作任务", "保障措施：", "第 3 项", "二、稳定经济运行", "1. 强化组织保障",
                                  "（牵头单位：区财政局）", "（区商务局牵头，联系人：王明，联系电话：1234567）"])
def test_a_structural_line_repeated_at_every_page_break_stays(line):
    removed = strip(pages(5, header=line))[1]
    assert set(removed.values()) == {"page_number"}


@pytest.mark.parametrize("line", ["本页以下为正文。", "积极组织符合条件的企业，做好", "2022年12月）"])
def test_a_sentence_or_the_half_of_one_is_not_a_header(line):
    for number in (lambda p: f"- {p} -", lambda p: ""):      # with page numbers and without
        removed = strip(pages(5, header=line, number=number))[1]
        assert set(removed.values()) <= {"page_number"}


# =========================================================================== through the parser

@pytest.fixture(scope="module")
def pdf_text() -> str:
    return FIXTURE.read_text(encoding="utf-8")


def test_split_sentences_and_names_rejoin_across_page_breaks(pdf_text):
    draft = parse_text(pdf_text)
    texts = [t.text for i in draft.items for t in i.tasks]
    units = {u for i in draft.items for t in i.tasks for u in t.lead_units + t.responsible_units}
    assert "县发展和改革局" in units
    assert any(t.endswith("加快推进项目前期工作，确保早开工、早见效。") for t in texts)
    assert any(t.endswith("切实发挥资金稳就业、保民生的作用。") for t in texts)
    assert not any("汇编" in t or "领导小组办公室" in t for t in texts)
    assert not any("汇编" in u or "领导小组办公室" in u for u in units)
    reasons = list(draft.removed.values())
    assert reasons.count("page_number") == 9 and reasons.count("running_header") == 8
    assert not any(w.code == "page_number" for w in draft.warnings)


def test_every_line_of_the_pdf_text_is_accounted_for(pdf_text):
    """Every non-blank line is in the preamble, a chapter heading, an item's range, a warning,
    or removed as furniture — and what was removed is furniture (a header or a page number)."""
    draft = parse_text(pdf_text)
    lines = pdf_text.split("\n")
    first_body = min([c.source_line for c in draft.chapters] + [i.source_lines[0] for i in draft.items])
    covered = set(range(1, first_body)) | {c.source_line for c in draft.chapters}
    for item in draft.items:
        covered |= set(range(item.source_lines[0], item.source_lines[1] + 1))
    covered |= {w.line for w in draft.warnings if w.line} | set(draft.removed)
    assert [n for n, line in enumerate(lines, 1) if line.strip(" \f") and n not in covered] == []
    header_texts = {lines[n - 1].strip(" \f") for n, r in draft.removed.items() if r == "running_header"}
    assert header_texts == {"青峪县落实省“扩需求稳增长”政策措施实施方案汇编", "青峪县稳增长促发展工作领导小组办公室"}
    # the front matter keeps its issuer, its signature and the title page
    assert len(draft.preamble) == sum(1 for n, line in enumerate(lines[:first_body - 1], 1)
                                      if line.strip(" \f") and n not in draft.removed)
    assert draft.issuer == "青峪县稳增长促发展工作领导小组办公室"


# =========================================================================== linear

def _megabyte_document(scale: int) -> str:
    page = [TITLE, "", "一、扩大有效投资", ""] + [f"{PARA}{PARA}{PARA}"] * 20 + ["- {p} -", "\f"]
    text = "\n".join(page)
    return "\n".join(text.replace("{p}", str(p % 999 + 1)) for p in range(scale))


def test_stripping_is_linear_on_a_megabyte():
    small, large = _megabyte_document(250), _megabyte_document(1000)
    assert len(large.encode("utf-8")) > 1_000_000

    def seconds(text):
        start = time.perf_counter()
        _, removed = strip(text)
        return time.perf_counter() - start, removed

    seconds(small)      # warm up
    t_small, _ = seconds(small)
    t_large, removed = seconds(large)
    assert list(removed.values()).count("running_header") == 1000 - 1   # the first is the title
    assert list(removed.values()).count("page_number") == 1000
    # four times the text: about four times the time (quadratic would be sixteen)
    assert t_large < 2.0 and t_large < 8 * t_small + 0.05, (t_small, t_large)
