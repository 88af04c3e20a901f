"""Pure helpers for the importer: text normalisation, unit-name lists, deadlines.

Everything here is a plain function of its arguments (no Flask, no database), so the
parser and the tests can use it freely.

Two kinds of normalisation are used, and they are kept separate on purpose:

* ``tidy_spaces`` removes the spacing noise of PDF extraction (``2022 年 12 月``,
  ``区 财政局``) and changes the length of the string;
* ``canon`` maps each character to a canonical one (full-width digits to ASCII,
  ASCII ``(:,;`` to the Chinese forms, every dash to ``-``) and is strictly one
  character for one character.  The parser matches its grammar on ``canon(text)``
  and slices the *original* text with the same indices, so what the office wrote
  is kept as written while the grammar only has to know one spelling of each mark.
"""
from __future__ import annotations

import calendar
import re
from datetime import date

from workflow.vocabulary import UnitKind

# --------------------------------------------------------------------------- text

# Characters rewritten by ``canon``.  Chinese brackets/colons/commas are the canonical
# form because unit names are stored with them (各镇（街道）); digits and Latin letters
# become ASCII so that ``２０２２`` and ``2022`` are one number.
_CANON = {ord("("): "（", ord(")"): "）", ord(":"): "：", ord(","): "，", ord(";"): "；",
          ord("﹙"): "（", ord("﹚"): "）", ord("．"): ".", ord("％"): "%"}
for _c in "—–―‐‑‒−﹣－─":
    _CANON[ord(_c)] = "-"
for _c in "\t\u3000\u00a0\u2002\u2003\u2009\u200b\f\v":
    _CANON[ord(_c)] = " "
for _i in range(10):
    _CANON[0xFF10 + _i] = str(_i)
for _i in range(26):
    _CANON[0xFF21 + _i] = chr(ord("A") + _i)
    _CANON[0xFF41 + _i] = chr(ord("a") + _i)


def canon(text: str) -> str:
    """Canonical spelling for matching; same length as ``text`` (index-compatible)."""
    return text.translate(_CANON)


def _char_class(ch: str) -> str:
    if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff":
        return "cjk"
    if ch.isascii() and ch.isdigit() or "０" <= ch <= "９":
        return "digit"
    if ch.isascii() and ch.isalpha() or "Ａ" <= ch <= "ｚ":
        return "latin"
    return "punct"


def keep_space(left: str, right: str) -> bool:
    """Whether a run of spaces between two characters means something.

    PDF extraction puts spaces around every number and after punctuation
    (``2022 年 12 月``, ``区民政局, 责任科室``); those go.  Spaces between Latin words or
    numbers (``2.0 and``) and between Latin and Chinese (``体验 and 消费``) stay, as one.
    """
    a, b = _char_class(left), _char_class(right)
    if a in ("latin", "digit") and b in ("latin", "digit"):
        return True
    return {a, b} == {"cjk", "latin"}


_SPACES = re.compile(r"[ \t\u3000\u00a0\u2002\u2003\u2009\u200b\f\v]+")


def tidy_spaces(text: str) -> str:
    """Collapse or remove extraction spacing (see ``keep_space``) and strip the ends."""
    text = text.strip(" \t\u3000\u00a0\u2002\u2003\u2009\u200b\f\v\r\n")
    out: list[str] = []
    pos = 0
    for m in _SPACES.finditer(text):
        out.append(text[pos:m.start()])
        left, right = text[m.start() - 1], text[m.end()]
        if keep_space(left, right):
            out.append(" ")
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def squash(text: str) -> str:
    """``canon`` + no whitespace at all: the form unit names and deadlines are read in."""
    return re.sub(r"\s+", "", canon(text))


_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
              "六": 6, "七": 7, "八": 8, "九": 9}


def cn_number(text: str) -> int | None:
    """``"19"``/``"１９"``/``"十九"``/``"一百零二"`` → int; None if it is not a number."""
    text = canon(text).strip()
    if text.isdigit():
        return int(text)
    if not text or any(c not in _CN_DIGITS and c not in "十百" for c in text):
        return None
    total, current = 0, 0
    for ch in text:
        if ch == "百":
            total += (current or 1) * 100
            current = 0
        elif ch == "十":
            total += (current or 1) * 10
            current = 0
        else:
            current = _CN_DIGITS[ch]
    return total + current


# --------------------------------------------------------------------------- units

#: What a collective addressee enumerates after its 各 (各区、县级市 / 各乡镇、街道 / 各镇，街道办事处):
#: a piece made only of these follows the 各… piece before it, not a unit of its own.
_PLACE_ONLY = re.compile(r"(?:县级市|县市区|乡镇|街道办事处|街道办|街道|镇街|镇|乡|区|县|市|开发区|园区)+"
                         r"(?:人民政府|政府)?")

#: Phrases that stand where a unit name should be but name nobody in particular.
#: They are kept on the task as written (``DraftTask.addressees``), never loaded as units.
NOT_A_UNIT_PATTERNS = (
    r"按职责", r"职责分工", r"分工负责", r"^(?:区直|县直|市直)?(?:各)?(?:有关|相关)(?:部门|单位)",
    r"^各(?:有关)?部门", r"^(?:其他)?(?:有关|相关)", r"^等$", r"^各级", r"^(?:区直|县直|市直)?各有关单位",
)
_NOT_A_UNIT_RE = re.compile("|".join(NOT_A_UNIT_PATTERNS))


def split_list(text: str) -> list[str]:
    """Split a list written with ``、，；`` into its pieces, whitespace removed, each as written.

    A separator inside brackets does not cut (各县（市、区）人民政府), and a collective keeps what it
    enumerates: ``各区、县级市`` / ``各乡镇、街道`` / ``各镇，街道办事处`` are one addressee each.
    Spellings of one collective are merged later, like any unit's (workflow/importer/names.py)."""
    text = squash(text)
    pieces: list[str] = []
    separators: list[str] = []
    depth, start = 0, 0
    for m in re.finditer(r"[（）]|[、，；,;]+", text):
        mark = m.group()
        if mark == "（":
            depth += 1
        elif mark == "）":
            depth = max(0, depth - 1)
        elif depth == 0:
            pieces.append(text[start:m.start()])
            separators.append(mark)
            start = m.end()
    pieces.append(text[start:])
    out: list[str] = []
    for k, piece in enumerate(pieces):
        piece = piece.strip()
        if not piece:
            continue
        if out and out[-1].startswith("各") and _PLACE_ONLY.fullmatch(piece) and k > 0:
            out[-1] += separators[k - 1][0] + piece
        else:
            out.append(piece)
    return out


def is_not_a_unit(name: str) -> bool:
    return bool(_NOT_A_UNIT_RE.search(name))


def split_unit_list(text: str) -> tuple[list[str], list[str]]:
    """``(units, rejected)``: the unit names in order (deduplicated) and the pieces that
    are not unit names (``有关部门按职责分工负责``) for the caller to report."""
    units: list[str] = []
    rejected: list[str] = []
    for piece in split_list(text):
        if is_not_a_unit(piece):
            rejected.append(piece)
        elif piece not in units:
            units.append(piece)
    return units, rejected


def split_units(text: str) -> list[str]:
    """``"区财政局，各镇、街道，经济开发区"`` → ``["区财政局", "各镇、街道", "经济开发区"]``: a
    collective stays as written (names.py says which spellings are one body)."""
    return split_unit_list(text)[0]


def unit_kind(name: str) -> UnitKind:
    """Classify a unit name: office | bureau | branch | center | town | group | other.

    Ordered from the most specific ending to the least: ``…局周村分局`` is a branch
    although it also contains 局, ``…指挥部）办公室`` is the office, not a bureau (办).
    """
    name = squash(name)
    if name.startswith("各"):
        return UnitKind.GROUP
    if name.endswith("办公室"):
        return UnitKind.OFFICE
    if name.endswith("分局"):
        return UnitKind.BRANCH
    if name.endswith("中心"):
        return UnitKind.CENTER
    if re.search(r"(镇|街道|街道办事处|开发区|园区|管委会)$", name):
        return UnitKind.TOWN
    if re.search(r"(局|委|办|委员会)$", name):
        return UnitKind.BUREAU
    return UnitKind.OTHER


_JURISDICTION = re.compile(r"^(?:区|市|县|省|国家|各)")


def looks_like_section(piece: str) -> bool:
    """A 科室 written where a unit was expected (``区财政局，经济建设科``)."""
    return bool(re.search(r"(科|股|室|组)$", piece)) and not _JURISDICTION.match(piece)


def looks_like_unit(piece: str) -> bool:
    """A unit written where a 科室 was expected (``责任科室：工商贸易科；区住房和城乡建设局``).

    Deliberately narrow: sections are often named like small bodies (``棚改办``,
    ``住房保障服务中心``), so only names that carry a jurisdiction prefix or are
    unmistakably branches/towns/collectives count."""
    kind = unit_kind(piece)
    if kind in ("branch", "town", "group"):
        return True
    return kind == "bureau" and bool(_JURISDICTION.match(piece))


def looks_like_person(piece: str) -> bool:
    """A bare personal name in a contact line (``李雪``): 2–4 Chinese characters that do
    not end like an organisation."""
    return bool(re.fullmatch(r"[\u4e00-\u9fff·]{2,4}", piece)) and unit_kind(piece) == "other" \
        and not re.search(r"(科|股|室|组|院|所|会|司|行|队|站|部|厅)$", piece)


# --------------------------------------------------------------------------- deadlines

#: Deadlines that are not a date: the task is ongoing. A recurring one (``每月5日前``) keeps its
#: wording in ``deadline_text``, which the monthly checkpoint reads (``pace.checkpoint_day``);
#: 即时/立即 is due at once and kept up, so it is ongoing too.
LONG_TERM_WORDS = ("长期坚持", "长期", "持续推进", "持续开展", "持续", "常态化", "常年",
                   "每月", "每季度", "每半年", "每年", "每周", "即时", "立即", "立行立改", "随时")
#: Words around a date that do not change it (``6月底前完成``).
_DEADLINE_NOISE = re.compile(r"(?:之前|以前|前|完成|内|止|为止|截止|左右|。|\.)$")
_DEADLINE_PREFIX = re.compile(r"^(?:于|在|截至|截止|到|至)")
_RANGE_SPLIT = re.compile(r"(?:至|到|~|～|-)")

_QUARTER_END = {"一": 3, "1": 3, "二": 6, "2": 6, "三": 9, "3": 9, "四": 12, "4": 12}


def _month_end(year: int, month: int) -> date | None:
    if not 1 <= month <= 12:
        return None
    return date(year, month, calendar.monthrange(year, month)[1])


def _parse_single_deadline(text: str, default_year: int | None) -> date | None:
    """One date expression, already squashed and stripped of noise words."""
    m = re.fullmatch(r"(?:(\d{4})年)?(\d{1,2})月(\d{1,2})[日号]", text) \
        or re.fullmatch(r"(\d{4})[./-](\d{1,2})[./-](\d{1,2})", text)
    if m:
        year = int(m.group(1)) if m.group(1) else default_year
        if year is None:
            return None
        try:
            return date(year, int(m.group(2)), int(m.group(3)))
        except ValueError:
            return None
    m = re.fullmatch(r"(?:(\d{4})年)?(\d{1,2})月(?:份)?(?:底|末|中旬|下旬)?", text) \
        or re.fullmatch(r"(\d{4})[./-](\d{1,2})", text)
    if m:
        year = int(m.group(1)) if m.group(1) else default_year
        return _month_end(year, int(m.group(2))) if year is not None else None
    m = re.fullmatch(r"(?:(\d{4})年)?(?:第)?([一二三四1-4])季度(?:末|底)?", text)
    if m:
        year = int(m.group(1)) if m.group(1) else default_year
        return _month_end(year, _QUARTER_END[m.group(2)]) if year is not None else None
    m = re.fullmatch(r"(?:(\d{4})年)?(上|下)半年(?:末|底)?", text)
    if m:
        year = int(m.group(1)) if m.group(1) else default_year
        return _month_end(year, 6 if m.group(2) == "上" else 12) if year is not None else None
    m = re.fullmatch(r"(?:(\d{4})年)?(?:年底|年末|底|末|全年|年内)", text) \
        or re.fullmatch(r"(\d{4})(?:年|年度)?", text)
    if m and text:
        year = int(m.group(1)) if m.group(1) else default_year
        return date(year, 12, 31) if year is not None else None
    return None


def _arabic_dates(text: str) -> str:
    """``二〇二二年十二月`` → ``2022年12月`` (formal documents write dates in Chinese)."""
    text = re.sub(r"([〇零一二三四五六七八九]{4})年",
                  lambda m: "".join(str(_CN_DIGITS[c]) for c in m[1]) + "年", text)
    return re.sub(r"([一二三四五六七八九十]{1,3})(?=月|日|号)", lambda m: str(cn_number(m[1])), text)


def parse_deadline(text: str | None, default_year: int | None) -> tuple[date | None, bool, bool]:
    """Read a 完成时限 → ``(date | None, long_term, ok)``.

    ``2022年12月`` → 2022-12-31 (a month means its last day); ``6月底前``/``2022年6月底``
    → month end; ``年底``/``2022年年底前`` → 31 December (of the year written, else of
    ``default_year``, the year of the document); ``2022年12月31日`` → that day;
    ``长期``/``常态化``/``持续推进`` → ``(None, True, True)``.  A range
    (``2022年3月至6月``) means its end.  Anything else, or nothing, → ``ok=False``.
    """
    if text is None:
        return None, False, False
    text = squash(text).strip("。，；")
    if not text:
        return None, False, False
    if any(text.startswith(w) for w in LONG_TERM_WORDS):
        return None, True, True
    text = _arabic_dates(_DEADLINE_PREFIX.sub("", text))
    for _ in range(3):      # "底前完成" carries more than one noise word
        text = _DEADLINE_NOISE.sub("", text)
    if not text:
        return None, False, False
    found = _parse_single_deadline(text, default_year)
    if found is None:
        # A range: read its last part, carrying the year from the first part.
        parts = [p for p in _RANGE_SPLIT.split(text) if p]
        if len(parts) == 2:
            year = re.match(r"(\d{4})年", parts[0])
            last = parts[1]
            if year and not re.match(r"\d{4}", last):
                last = f"{year.group(1)}年{last}"
            found = _parse_single_deadline(last, default_year)
    if found is None:
        return None, False, False
    return found, False, True


#: A deadline written inside a task's sentence (``力争2023年10月底前完成…``, ``三季度末前``): a month,
#: a quarter, a half-year or a year's end followed by 前, or a year's or month's 底/末. A bare target
#: year (``到2025年``) is not one.
_DEADLINE_IN_TEXT = re.compile(
    r"(?:\d{4}年)?(?:\d{1,2}月(?:\d{1,2}日|底|末|中旬|下旬)?|[一二三四]季度(?:末|底)?|[上下]半年|年底|年末)前"
    r"|\d{4}年(?:\d{1,2}月)?(?:底|末)")


def propose_deadline(text: str, default_year: int | None) -> str | None:
    """The first deadline written in a task's sentence, as written: the review proposes it to a
    task that has none, and it is taken only when the office ticks it."""
    for m in _DEADLINE_IN_TEXT.finditer(canon(text)):
        found, _, ok = parse_deadline(m.group(), default_year)
        if ok and found is not None:
            return text[m.start():m.end()]
    return None


def no_deadline_message(where: str, proposal: str | None, what: str = "未写明完成时限") -> str:
    """The warning for a task without a deadline, pointing at the one its sentence names."""
    if proposal:
        return f"{where}：{what}；任务内容中写有“{proposal}”，可在审核页勾选采用"
    return f"{where}：{what}"


def looks_like_deadline(piece: str) -> bool:
    """Whether a bare piece of a clause (no label) is a deadline (``2022年12月``)."""
    d, long_term, ok = parse_deadline(piece, 2000)
    return ok and (d is not None or long_term)
