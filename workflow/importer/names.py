"""Spellings of one body within one document, and which spelling stands for it.

Documents write one body several ways: a long and a short form (区住房和城乡建设局 /
区住房城乡建设局), the name before and after a renaming (区发展改革委 / 区发展改革局),
a collective with other separators (各镇、街道 / 各镇（街道）). The canonical names are
the office's unit table and nothing else: a spelling is merged only with another
spelling *of the same document* or with a unit that already exists, never rewritten
to a name that neither contains. The review lists every merge, and the office can
undo it (workflow/importer/load.py).

The key below is a rule of the genre, not a list of one district's names.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from .units import squash

#: The kinds of place a collective addressee (各…) enumerates, with the short forms they are
#: written in. A collective's key is the set of kinds, whatever the separators and brackets.
_PLACE_WORDS = {
    "县级市": "县级市", "县市区": "县|市|区", "镇街": "镇|街道", "乡镇": "乡镇", "街道办事处": "街道",
    "街道办": "街道", "街道": "街道", "街": "街道", "办": "街道", "镇": "镇", "乡": "乡", "区": "区",
    "县": "县", "市": "市", "开发区": "开发区", "园区": "园区",
}
_PLACE_RE = re.compile("|".join(sorted(map(re.escape, _PLACE_WORDS), key=len, reverse=True)))
_COLLECTIVE_BODY = re.compile(r"^各(?P<body>[^人]*?)(?P<tail>人民政府|政府|管委会)?$")


def _collective_key(name: str) -> str | None:
    """``各镇、街道`` / ``各镇（街道）`` / ``各镇街`` → one key; None if ``name`` is not a collective
    of place kinds (``各有关单位`` is not: it names nobody in particular)."""
    m = _COLLECTIVE_BODY.match(name)
    if not m:
        return None
    body, prefix = m["body"], "各"
    if body.startswith("有关"):
        body, prefix = body[2:], "各有关"
    kinds: set[str] = set()
    for piece in filter(None, re.split(r"[（）()、，,/\s]", body)):
        pos = 0
        while pos < len(piece):
            match = _PLACE_RE.match(piece, pos)
            if not match:
                return None
            kinds.update(_PLACE_WORDS[match.group()].split("|"))
            pos = match.end()
    if not kinds:
        return None
    return prefix + "|".join(sorted(kinds)) + (m["tail"] or "")


def name_key(name: str) -> str:
    """Two names with the same key are one body written two ways.

    A dropped 和 (住房和城乡建设局 / 住房城乡建设局), a 委 or 委员会 that became a 局 on renaming,
    half- and full-width brackets, spaces; for a collective, the kinds of place it names."""
    name = squash(name)
    collective = _collective_key(name)
    if collective is not None:
        return "collective:" + collective
    key = name.replace("和", "")
    return re.sub(r"(委员会|委)$", "局", key)


def merge_spellings(written: Iterable[str], existing: Iterable[str] = ()) -> dict[str, str]:
    """Every written name → the name it stands for in this import.

    ``written`` is every occurrence in document order (repeats count). Spellings with one key
    are merged: to the unit that already exists under that key (its exact name first), else to
    the spelling the document uses most (on a tie, the one it uses first)."""
    written = list(written)
    counts = Counter(written)
    first_seen = {name: i for i, name in reversed(list(enumerate(written)))}
    known: dict[str, list[str]] = {}
    for name in existing:
        known.setdefault(name_key(name), []).append(name)
    groups: dict[str, list[str]] = {}
    for name in counts:
        groups.setdefault(name_key(name), []).append(name)
    chosen: dict[str, str] = {}
    for key, names in groups.items():
        units = sorted(known.get(key, ()))
        for name in names:
            if name in units:
                chosen[name] = name
            elif units:
                chosen[name] = units[0]
            else:
                chosen[name] = min(names, key=lambda n: (-counts[n], first_seen[n]))
    return chosen
