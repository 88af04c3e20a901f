"""User text as it is kept: without the invisible characters that change how
other text around it is shown.

A bidi override (U+202E …) inside a unit name or a reason reorders what
follows it on every page, PDF and e-mail that prints it, so that "区财政局"
can read as "局政财区" or hide a word; C0/C1 control characters break
terminals, CSV and XML. Neither has a place in anything typed into a form,
written in a document or given as a file name, so they are removed where text
enters (forms, the importer, file names), once, by this function.
"""
from __future__ import annotations

import re

# Characters that change what the text around them shows: bidi embeddings,
# overrides and isolates, the implicit marks (LRM, RLM, ALM), and every C0/C1
# control except tab and newline (carriage returns become newlines).
_DISPLAY_CHANGING = "\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
# Word processors' invisible noise: zero-width space, word joiner, a BOM inside text.
_NOISE = "\u200b\u2060\ufeff"
_INVISIBLE = re.compile(f"[{_DISPLAY_CHANGING}{_NOISE}]")
_CHANGING = re.compile(f"[{_DISPLAY_CHANGING}]")
_CRLF = re.compile(r"\r\n?")


def clean_text(value):
    """The text without bidi controls and control characters (None and
    non-strings pass through unchanged, so it can be a WTForms filter)."""
    if not isinstance(value, str):
        return value
    return _INVISIBLE.sub("", _CRLF.sub("\n", value))


def display_changing(value: str) -> list[str]:
    """The characters ``clean_text`` removes that changed how the text showed
    (not the zero-width noise): worth telling whoever wrote it."""
    return _CHANGING.findall(value)


def clean_line(value):
    """As ``clean_text``, for one-line values (names, titles): newlines and
    tabs become spaces."""
    value = clean_text(value)
    if not isinstance(value, str):
        return value
    return value.replace("\n", " ").replace("\t", " ")
