"""Page furniture in text extracted from a PDF: page numbers and running headers/footers.

A PDF's text comes out page by page, and every page brings its furniture along: the
page number (``- 12 -``, ``第12页 共40页``, a bare ``12``) and a running header or
footer (the compilation's title, the issuer's name on odd pages).  Left in, they are
glued into the paragraph a page break falls into, and even into the unit name a
sentence is split at (``区发展改`` / header / ``- 12 -`` / ``革局``).  They are
removed here, line by line, *before* the parser joins paragraphs, so that the pieces
around a page break rejoin cleanly.

Two kinds of evidence, both rules of the genre rather than of one document:

* **shape** for page numbers: a line that is only a number decorated the way page
  numbers are (``- 12 -``, ``—12—``, ``·12·``, ``第12页``, ``第 12 页 共 40 页``, ``12/40``)
  is one.  A *bare* number is one only where a page number would stand (see
  :func:`_bare_is_page`): entries are written ``12.`` / ``12、``, but a bare ``12`` on
  its own line followed by its text must not be lost.
* **repetition** for running headers and footers: a short line that recurs at least
  three times, in places spread through the document, that is no structural line
  of the grammar (heading, entry, contact line, clause) and that sits next to page
  boundaries (a page number or a form feed), when the document has any.

A removed line becomes ``""`` (line numbers stay the same) and its line number is
recorded with the reason (``running_header``, ``running_footer``, ``page_number``) for
``Draft.removed``, so that every input line is still accounted for.

Everything here is linear in the number of lines: one Counter over the squashed short
lines and a few passes forwards and backwards.
"""
from __future__ import annotations

import re
from collections import Counter

from .units import cn_number, squash

PAGE_NUMBER = "page_number"
RUNNING_HEADER = "running_header"
RUNNING_FOOTER = "running_footer"

#: A running header or footer is short (after squashing spaces).
HEADER_MAX = 40
#: … and recurs at least this often, in at least this many separate places.
HEADER_MIN_COUNT = 3
#: Occurrences closer than this many lines are one place (a line written twice in a row).
_PLACE_GAP = 3
#: Page numbers the genre has: a compilation runs to a few hundred pages at most.
PAGE_MAX = 999

_CN = "[一二三四五六七八九十百零〇两]+"
#: ``-12-`` (every dash is ``-`` after ``canon``), ``·12·``, ``•12•``; squashed text.
_DECORATED = re.compile(r"^(?:[-·•・]+(?P<a>\d{1,3})[-·•・]*|(?P<b>\d{1,3})[-·•・]+)$")
#: ``第12页``, ``第12页共40页``, ``共40页第12页``, ``第十二页``, ``12/40``.
_PAGE_OF = re.compile(rf"^(?:第(?P<a>\d{{1,3}}|{_CN})页(?:[,，/]?共\d{{1,3}}页)?"
                      rf"|共\d{{1,3}}页[,，/]?第(?P<b>\d{{1,3}}|{_CN})页"
                      r"|(?P<c>\d{1,3})/(?P<total>\d{1,3}))$")
_BARE = re.compile(r"^\d{1,3}$")
#: A line ending like a sentence or a label is text, never a header …
_SENTENCE_END = "。！？；，、：.!?;,:"
#: … and so is one with a sentence's marks inside (the half of a wrapped sentence).
_SENTENCE_MARKS = re.compile("[。！？；，]")

# Line kinds of this module (not the parser's).
_BLANK, _TEXT, _PAGE, _BARE_NO, _REPEATED = range(5)


def page_start(no: int, raw: str) -> int:
    """The line a new page starts on, for a raw line ``no`` that holds a form feed.

    pdftotext writes the form feed at the start of the next page's first line
    (``\\fHeader``); a form feed written after a page's last text (``12\\f``) starts the
    page on the next line."""
    text = raw.strip(" \t")
    if text.endswith("\f") and text.strip("\f").strip():
        return no + 1
    return no


def decorated_page_number(squashed: str) -> int | None:
    """The number of a page-number line by its shape (not a bare number), else None."""
    m = _DECORATED.match(squashed) or _PAGE_OF.match(squashed)
    if not m:
        return None
    if m.re is _PAGE_OF and m["c"] and int(m["c"]) > int(m["total"]):
        return None          # 12/4 is no "page 12 of 4"
    return cn_number(next(v for v in m.groups() if v)) or 0


def strip_furniture(lines: list[str], page_starts: set[int] | frozenset = frozenset()
                    ) -> tuple[list[str], dict[int, str]]:
    """Blank the page furniture in ``lines`` (cleaned lines, line 1 first).

    ``page_starts`` are the 1-based lines a new page starts on (form feeds, see
    :func:`page_start`).  Returns the lines with every removed line replaced by ``""``
    and the removed line numbers with their reason."""
    n = len(lines)
    keys = [squash(line) for line in lines]
    kinds = [_BLANK if not k else _TEXT for k in keys]
    numbers: dict[int, int] = {}        # index -> page number (decorated or bare)
    for i, key in enumerate(keys):
        if not key:
            continue
        value = decorated_page_number(key)
        if value is not None:
            kinds[i], numbers[i] = _PAGE, value
        elif _BARE.match(key) and 1 <= int(key) <= PAGE_MAX:
            kinds[i], numbers[i] = _BARE_NO, int(key)
    starts = {s - 1 for s in page_starts if 1 <= s <= n}      # 0-based
    repeated = _repeated_keys(lines, keys, kinds)
    for i, key in enumerate(keys):
        if kinds[i] == _TEXT and key in repeated:
            kinds[i] = _REPEATED

    # Bare numbers: decided with decorated page numbers and form feeds as the only boundaries.
    before, after = _boundaries(kinds, starts)
    prev_text, next_text = _neighbours(kinds)
    increasing = _mostly_increasing([numbers[i] for i in range(n) if kinds[i] == _BARE_NO])
    following = _next_numbers(kinds, numbers)
    last_page = 0
    for i in range(n):
        if kinds[i] == _PAGE:
            last_page = numbers[i]
        elif kinds[i] == _BARE_NO:
            fits = last_page < numbers[i] and (following[i] is None or numbers[i] < following[i])
            if _bare_is_page(i, lines, kinds, before, after, prev_text, next_text, increasing, fits):
                kinds[i] = _PAGE
                last_page = numbers[i]
            else:
                kinds[i] = _TEXT

    removed: dict[int, str] = {i: PAGE_NUMBER for i in range(n) if kinds[i] == _PAGE}
    removed.update(_running_lines(keys, kinds, starts))
    out = list(lines)
    for i in removed:
        out[i] = ""
    return out, {i + 1: reason for i, reason in sorted(removed.items())}


# --------------------------------------------------------------------------- page numbers

def _bare_is_page(i, lines, kinds, before, after, prev_text, next_text, increasing, fits) -> bool:
    """A bare number stands where a page number stands, not where an entry number does.

    An entry number is followed by its text on the next line; a page number is the last
    line before a page break, between blank lines, inside the paragraph the page break
    cut, or — when the document's bare numbers mostly increase, as pages do — followed
    by a blank line.  Where it could be either (after a page break or inside an open
    paragraph, with text right after it) it must also ``fit`` the page numbers around it
    (above the last one, below the next number): ``12`` between pages 2 and 3 is an entry."""
    blank_before = i == 0 or kinds[i - 1] == _BLANK
    blank_after = i + 1 == len(kinds) or kinds[i + 1] == _BLANK
    if after[i] or (blank_before and blank_after):
        return True
    if before[i] and (blank_after or fits):
        return True
    p, q = prev_text[i], next_text[i]
    if fits and p is not None and q is not None and _open_text(lines[p]) and not _structural(lines[q]):
        return True      # inside the paragraph a page break cut: "区发展改" / 12 / "革局"
    return increasing and blank_after


def _next_numbers(kinds: list[int], numbers: dict[int, int]) -> list[int | None]:
    """For each line, the value of the next page-number-shaped line after it (bare or not)."""
    out: list[int | None] = [None] * len(kinds)
    nxt = None
    for i in range(len(kinds) - 1, -1, -1):
        out[i] = nxt
        if kinds[i] in (_PAGE, _BARE_NO):
            nxt = numbers[i]
    return out


def _mostly_increasing(values: list[int]) -> bool:
    """Page numbers go up: at least three of them, and at least two steps in three up."""
    if len(values) < 3:
        return False
    ups = sum(1 for a, b in zip(values, values[1:]) if b > a)
    return 3 * ups >= 2 * (len(values) - 1)


# --------------------------------------------------------------------------- running lines

def _repeated_keys(lines: list[str], keys: list[str], kinds: list[int]) -> set[str]:
    """Short lines recurring in at least three separate places spread through the text,
    that are no line of the grammar's structure and do not read like a sentence.  (The
    structure is judged on a line as written: a TOC line's tab is gone once squashed.)"""
    counts = Counter(k for k, kind in zip(keys, kinds) if kind == _TEXT and len(k) <= HEADER_MAX)
    wanted = {k for k, c in counts.items() if c >= HEADER_MIN_COUNT and _could_be_header(k)}
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    places: Counter = Counter()
    for i, key in enumerate(keys):
        if key in wanted:
            if key not in last or i - last[key] >= _PLACE_GAP:
                places[key] += 1
            first.setdefault(key, i)
            last[key] = i
    spread = len(keys) // 3
    return {k for k in wanted if places[k] >= HEADER_MIN_COUNT and last[k] - first[k] >= spread
            and not _structural(lines[first[k]])}


def _could_be_header(key: str) -> bool:
    """A header is a name or a title: it does not end or pause like a sentence, and its
    brackets are closed (``2022年12月）`` is the end of a wrapped clause)."""
    return key[-1] not in _SENTENCE_END and not _SENTENCE_MARKS.search(key) \
        and key.count("（") == key.count("）")


def _running_lines(keys: list[str], kinds: list[int], starts: set[int]) -> dict[int, str]:
    """Every occurrence of a running line, as header or footer.

    With page boundaries in the document (page numbers, form feeds), a repeated line
    is a running line only when most of its occurrences touch one; without any, the
    repetition is the evidence.  Occurrences in the front matter (before the first
    chapter or item heading) that touch no boundary stay: the first is the document's
    own title (or its issuer), only the repetitions are furniture."""
    before, after = _boundaries(kinds, starts)
    # Direct neighbours only (other running lines not looked through): for the front matter.
    next_to, next_to_after = _boundaries(kinds, starts, through=(_BLANK,))
    has_boundaries = bool(starts) or _PAGE in kinds
    body = _first_heading(keys, kinds)
    occurrences: dict[str, list[int]] = {}
    for i, kind in enumerate(kinds):
        if kind == _REPEATED:
            occurrences.setdefault(keys[i], []).append(i)
    removed: dict[int, str] = {}
    for places in occurrences.values():
        touching = sum(1 for i in places if before[i] or after[i])
        if has_boundaries and 2 * touching < len(places):
            continue
        for i in places:
            # The title page says the title and the issuer under it: the first occurrence
            # in the front matter stays, and so does any other there that is not directly at
            # a page break (the notice's signature, the cover's issuer under its title).
            if i < body and (i == places[0] or not (next_to[i] or next_to_after[i])):
                continue
            # After a page break or page number: the page's header; before one: its footer.
            removed[i] = RUNNING_FOOTER if after[i] and not before[i] else RUNNING_HEADER
    return removed


def _first_heading(keys: list[str], kinds: list[int]) -> int:
    """Index of the first chapter or item heading (where the front matter ends)."""
    from . import parse as grammar   # here: parse.py imports this module
    for i, key in enumerate(keys):
        if kinds[i] == _TEXT and grammar._classify_line(key, key)[0] in (grammar.ITEM, grammar.CHAPTER):
            return i
    return len(keys)


# --------------------------------------------------------------------------- neighbourhood

def _boundaries(kinds: list[int], starts: set[int], through=(_BLANK, _REPEATED, _BARE_NO)
                ) -> tuple[list[bool], list[bool]]:
    """For each line: is there a page boundary (a page-number line or a page start)
    between it and the nearest line before it / after it that is not of a kind in
    ``through``?  By default blank lines, repeated lines and bare numbers are looked
    through (a header sits between the page number and the text)."""
    n = len(kinds)
    before = [False] * n
    state = False
    for i in range(n):
        if i in starts:
            state = True
        before[i] = state
        if kinds[i] == _PAGE:
            state = True
        elif kinds[i] not in through:
            state = False
    after = [False] * n
    state = False
    for i in range(n - 1, -1, -1):
        if i + 1 in starts:
            state = True
        after[i] = state
        if kinds[i] == _PAGE:
            state = True
        elif kinds[i] not in through:
            state = False
    return before, after


def _neighbours(kinds: list[int]) -> tuple[list[int | None], list[int | None]]:
    """For each line, the nearest text line before and after it (furniture looked through)."""
    n = len(kinds)
    prev: list[int | None] = [None] * n
    nxt: list[int | None] = [None] * n
    last = None
    for i in range(n):
        prev[i] = last
        if kinds[i] == _TEXT:
            last = i
    last = None
    for i in range(n - 1, -1, -1):
        nxt[i] = last
        if kinds[i] == _TEXT:
            last = i
    return prev, nxt


def _structural(line: str) -> bool:
    """A line of the grammar's structure (item, section, chapter, entry, contact, TOC,
    clause): never furniture, however often it recurs."""
    from . import parse as grammar   # here: parse.py imports this module
    norm = grammar.canon(grammar.tidy_spaces(line))
    kind, _ = grammar._classify_line(line, norm)
    return kind not in (grammar.TEXT, grammar.PAGE, grammar.BLANK) or bool(grammar.CLAUSE_LABEL_RE.search(norm))


def _open_text(line: str) -> bool:
    """A text line the paragraph goes on after (no sentence-final mark, not a heading)."""
    from . import parse as grammar   # here: parse.py imports this module
    norm = grammar.canon(grammar.tidy_spaces(line))
    return not _structural(line) and grammar._is_open(norm)
