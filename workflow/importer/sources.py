"""Reading an uploaded file: which kind of file it is, its text, or its tables.

Text files are decoded (UTF-8 with or without BOM, UTF-16 with BOM, GB18030), with
every invalid byte named; a Word .docx gives its paragraphs as lines, or its tables;
an Excel .xlsx/.xlsm/.xls gives its sheets as rows with merged cells carried to every
cell they cover. Everything else an office might upload (.doc, .wps, .et, PDF, a
password-protected workbook) is refused with a Chinese message saying what to save it as.

Nothing here knows the genre's grammar: ``parse.py`` reads text, ``tables.py`` rows.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path
from dataclasses import dataclass
from datetime import date, datetime, time

from workflow.text import clean_text

from .draft import DocumentError, DraftWarning


_UNREADABLE = ("无法读取该文件：它不是文本文件、Word（.docx）文档或 Excel 工作簿，或编码无法识别"
               "（支持 UTF-8、GB18030/GBK 文本、.docx、.xlsx 和 .xls）。")
#: Undecodable bytes, as ``surrogateescape`` decoding leaves them (one per byte).
_ESCAPED_RUN = re.compile("[\udc80-\udcff]+")
#: A text is UTF-8 with a few damaged bytes, not another encoding, when it has at
#: least this many well-formed non-ASCII characters for every invalid byte run.
#: (GB18030 Chinese read as UTF-8 is invalid almost everywhere: hardly any valid
#: multi-byte sequence appears, while a damaged UTF-8 compilation has thousands.)
UTF8_VALID_PER_INVALID = 20
#: How many invalid places a refusal names (all of them become review warnings).
_PLACES_SHOWN = 3
_PLACES_LISTED = 50
REPLACEMENT = "\ufffd"
_LINE_BREAK = re.compile(r"[\r\n]")


@dataclass
class InvalidPlace:
    """Where a byte sequence is not UTF-8: 1-based line and column (characters),
    0-based byte offset in the file, the bytes, and the text around them."""
    line: int
    column: int
    offset: int
    raw: bytes
    before: str
    after: str

    @property
    def hex(self) -> str:
        return " ".join(f"0x{b:02X}" for b in self.raw[:8]) + (" …" if len(self.raw) > 8 else "")

    def describe(self, mark: str | None = None, with_line: bool = True) -> str:
        shown = mark if mark is not None else f"[{self.hex}]"
        where = f"第{self.line}行第{self.column}列" if with_line else f"第{self.column}列"
        return (f"{where}（字节偏移 {self.offset}）：无效字节 {self.hex}，"
                f"前后文字“{self.before}{shown}{self.after}”")


class InvalidBytesError(DocumentError):
    """A UTF-8 text with invalid bytes: where they are, and that the office may read
    the file with replacement characters instead."""

    def __init__(self, places: list[InvalidPlace], total: int):
        shown = "；".join(p.describe() for p in places[:_PLACES_SHOWN])
        more = f"等共 {total} 处" if total > _PLACES_SHOWN else f"共 {total} 处"
        super().__init__(
            f"文件按 UTF-8 编码读取，但含有无法识别的字节（{more}）：{shown}。"
            "文件可能在复制或转换时损坏。可以修正后重新上传，或选择“以替换字符读取”："
            "这些字节将显示为“\ufffd”，并在审核结果中逐处列出。")
        self.places = places
        self.total = total


def _utf8_with_errors(text: str, runs: list[re.Match], base: int, replace_invalid: bool
                      ) -> tuple[str, list[DraftWarning]]:
    """Name every invalid place; refuse, or replace each run by U+FFFD and warn."""
    places = []
    line, line_start, scanned, offset = 1, 0, 0, base
    for run in runs[:_PLACES_LISTED]:
        # Lines as parse_text counts them: \r\n, \r and \n each end one.
        segment = text[scanned:run.start()]
        breaks = [m.end() for m in re.finditer(r"\r\n|\r|\n", segment)]
        if breaks:
            line += len(breaks)
            line_start = scanned + breaks[-1]
        offset += len(segment.encode("utf-8", "surrogateescape"))
        scanned = run.start()
        line_end = _LINE_BREAK.search(text, run.end())
        before = _ESCAPED_RUN.sub(REPLACEMENT, text[max(line_start, run.start() - 15):run.start()])
        after = _ESCAPED_RUN.sub(REPLACEMENT, text[run.end():min(run.end() + 15,
                                                                line_end.start() if line_end else len(text))])
        before, after = clean_text(before), clean_text(after)
        raw = run.group().encode("utf-8", "surrogateescape")
        places.append(InvalidPlace(line, run.start() - line_start + 1, offset, raw, before, after))
    if not replace_invalid:
        raise InvalidBytesError(places, len(runs))
    notes = [DraftWarning("replaced_bytes", p.describe(mark=REPLACEMENT, with_line=False) + f"，已替换为“{REPLACEMENT}”", p.line)
             for p in places]
    if len(runs) > len(places):
        notes.append(DraftWarning("replaced_bytes", f"另有 {len(runs) - len(places)} 处无效字节已替换为“{REPLACEMENT}”",
                                  places[-1].line))
    return _ESCAPED_RUN.sub(REPLACEMENT, text), notes


def _looks_binary(text: str) -> bool:
    """Control characters (other than line breaks, tabs and page breaks) do not occur
    in documents: a few are damage (clean_text removes them), many mean a binary file."""
    controls = sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\f\v")
    return controls > max(10, len(text) // 200)




def _decode(data: bytes, filename: str, replace_invalid: bool = False
            ) -> tuple[str, list[DraftWarning]]:
    """The text of an uploaded file (a .docx gives its paragraphs and table cells as lines)."""
    if not data or not data.strip():
        raise DocumentError("文件为空，没有可导入的内容。")
    kind = file_kind(data, filename)
    if kind == DOCX:
        return _docx_text(open_docx(data)), []
    if kind != TEXT:
        raise DocumentError(_REFUSED.get(kind, _UNREADABLE))
    notes: list[DraftWarning] = []
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise DocumentError(_UNREADABLE) from None
    else:
        bom = data.startswith(b"\xef\xbb\xbf")
        payload = data[3:] if bom else data
        text = payload.decode("utf-8", "surrogateescape")
        runs = list(_ESCAPED_RUN.finditer(text))
        if runs:
            valid = sum(1 for c in text if c >= "\x80" and not "\udc80" <= c <= "\udcff")
            if bom or valid >= UTF8_VALID_PER_INVALID * len(runs):
                text, notes = _utf8_with_errors(text, runs, 3 if bom else 0, replace_invalid)
            else:
                try:
                    text = payload.decode("gb18030")
                except UnicodeDecodeError:
                    # Not GB18030 either: a UTF-8 text badly damaged still says where.
                    if valid < 2 * len(runs):
                        raise DocumentError(_UNREADABLE) from None
                    text, notes = _utf8_with_errors(text, runs, 3 if bom else 0, replace_invalid)
    if _looks_binary(text):
        raise DocumentError(_UNREADABLE)
    return text, notes


# =========================================================================== kinds of file

TEXT, DOCX, XLSX, XLS, OLD_WORD, OLD_SHEET, ENCRYPTED, PDF, ZIP = (
    "text", "docx", "xlsx", "xls", "old_word", "old_sheet", "encrypted", "pdf", "zip")

#: The refusals, by kind: what the file is and what to save it as.
_REFUSED = {
    OLD_WORD: "本系统未安装读取旧版 Word（.doc）或 WPS 文字（.wps）文件的转换程序，请在 Word 或 WPS 中“另存为” .docx 后再上传。",
    OLD_SHEET: "不支持 WPS 表格（.et）文件，请在 WPS 中“另存为” Excel（.xlsx）后再上传。",
    ENCRYPTED: "该文件设置了打开密码（已加密），无法读取。请在 Word/Excel 中取消密码后另存为 .docx 或 .xlsx 再上传。",
    PDF: "不支持直接导入 PDF 文件，请先转换为 Word（.docx）或文本文件（只支持 .txt、.docx、.xlsx、.xls）。",
    ZIP: "该文件是压缩包，但不是 Word（.docx）文档或 Excel（.xlsx）工作簿。",
}
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
#: An OOXML file saved with a password is an OLE2 container holding this stream.
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
_WORD_STREAM = "WordDocument".encode("utf-16-le")
_SHEET_STREAMS = ("Workbook".encode("utf-16-le"), "Book".encode("utf-16-le"))


def file_kind(data: bytes, filename: str = "") -> str:
    """What the bytes are, by their signature first and the file name second (an office
    renames files: a workbook named .doc is still a workbook)."""
    name = (filename or "").lower()
    if data.startswith(_OLE2):
        # Old Word/Excel/WPS files, and any Office file saved with a password, are OLE2 containers.
        head = data[:1 << 20]
        if _ENCRYPTED_STREAM in head:
            return ENCRYPTED
        if name.endswith(".et"):
            return OLD_SHEET
        if _WORD_STREAM in head:
            # Before the workbook's streams: "Book" also occurs inside a Word file (a bookmark's name).
            return OLD_WORD
        if any(s in head for s in _SHEET_STREAMS) or name.endswith(".xls"):
            return XLS
        return OLD_WORD
    if data.startswith(b"PK\x03\x04") or name.endswith((".docx", ".xlsx", ".xlsm")):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except zipfile.BadZipFile:
            if name.endswith((".xlsx", ".xlsm")):
                raise DocumentError("该文件已损坏或不是有效的 Excel（.xlsx）工作簿。") from None
            raise DocumentError("该文件已损坏或不是有效的 Word（.docx）文档。") from None
        except Exception:  # noqa: BLE001 - a damaged central directory raises several kinds
            raise DocumentError("该文件已损坏，无法作为 Word（.docx）或 Excel（.xlsx）读取。") from None
        if "word/document.xml" in names:
            return DOCX
        if "xl/workbook.xml" in names:
            return XLSX
        return ZIP
    if data.startswith(b"%PDF"):
        return PDF
    return TEXT


# =========================================================================== old Word files

#: LibreOffice (Debian's libreoffice-writer-nogui, installed by scripts/setup.sh) turns a binary Word
#: file — .doc, and WPS 文字's .wps, which is the same binary format — into a .docx; without it they
#: are refused with how to save them as .docx.
CONVERT_TIMEOUT = 60
_OLD_WORD_BROKEN = ("无法读取该旧版 Word（.doc）或 WPS 文字（.wps）文件，文件可能已损坏。"
                    "请在 Word 或 WPS 中“另存为” .docx 后再上传。")
#: The last conversions, by the bytes' sha256: the review is shown again and confirmed from the
#: same bytes, and each conversion starts an office suite.
_CONVERTED: dict[str, bytes] = {}
_CONVERTED_KEEP = 4


def converter() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


def convert_old_word(data: bytes) -> bytes:
    """The .docx LibreOffice makes of a binary Word file, or a Chinese refusal.

    Each run has a profile of its own in a temporary folder (no shared state, no first-run
    dialogs) and a bare environment; the document is never opened by anything else."""
    key = hashlib.sha256(data).hexdigest()
    if key in _CONVERTED:
        return _CONVERTED[key]
    exe = converter()
    if exe is None:
        refuse(OLD_WORD)
    with tempfile.TemporaryDirectory(prefix="luoshi-convert-") as tmp:
        source, out = Path(tmp, "document.doc"), Path(tmp, "out")
        source.write_bytes(data)
        command = [exe, f"-env:UserInstallation={Path(tmp, 'profile').as_uri()}", "--headless",
                   "--norestore", "--nolockcheck", "--nodefault", "--convert-to", "docx:MS Word 2007 XML",
                   "--outdir", str(out), str(source)]
        try:
            subprocess.run(command, capture_output=True, timeout=CONVERT_TIMEOUT, check=False, cwd=tmp,
                           env={"HOME": tmp, "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                "LANG": "C.UTF-8"})
        except subprocess.TimeoutExpired:
            raise DocumentError(_OLD_WORD_BROKEN) from None
        converted = out / "document.docx"
        if not converted.is_file() or converted.stat().st_size == 0:
            raise DocumentError(_OLD_WORD_BROKEN)
        result = converted.read_bytes()
    while len(_CONVERTED) >= _CONVERTED_KEEP:
        _CONVERTED.pop(next(iter(_CONVERTED)))
    _CONVERTED[key] = result
    return result


def refuse(kind: str) -> None:
    """Raise the Chinese refusal for a kind of file that cannot be read."""
    raise DocumentError(_REFUSED.get(kind, _UNREADABLE))


# =========================================================================== zip packages

#: A compilation's .docx (or a ledger's .xlsx) unpacks to a few MB; anything far larger is a zip bomb.
DOCX_MAX_UNPACKED = 50 * 1024 * 1024
DOCX_MAX_RATIO = 100


def check_package(data: bytes, what: str) -> None:
    """Refuse a zip package that would unpack to far more than any document (a zip bomb)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except Exception:  # noqa: BLE001 - BadZipFile and the errors of a damaged directory
        raise DocumentError(f"该文件已损坏或不是有效的{what}。") from None
    if unpacked > DOCX_MAX_UNPACKED or unpacked > DOCX_MAX_RATIO * max(len(data), 1024 * 1024):
        raise DocumentError(f"该{what}解压后过大（可能是恶意构造的压缩文件），未导入。")


def open_docx(data: bytes):
    check_package(data, "Word（.docx）文档")
    try:
        # Here: python-docx is loaded by the first .docx, not by every process.
        from docx import Document
        return Document(io.BytesIO(data))
    except Exception:  # python-docx raises several kinds of errors on a bad package
        raise DocumentError("无法打开该 Word（.docx）文档，文件可能已损坏。") from None


def _docx_text(document) -> str:
    from docx.table import Table

    lines: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            # A table read as text (the document is mainly running text): its cells go
            # through the parser like any other line (and are reported if unplaced).
            seen = set()
            for row in block.rows:
                for cell in row.cells:
                    if id(cell._tc) in seen:
                        continue
                    seen.add(id(cell._tc))
                    for paragraph in cell.paragraphs:
                        lines.extend(paragraph.text.split("\n"))
        else:
            lines.extend(block.text.split("\n"))
    return "\n".join(lines)


# =========================================================================== tables

#: At most this many rows and columns of a sheet are read: a task table has hundreds.
MAX_ROWS = 20_000
MAX_COLUMNS = 200


@dataclass
class Sheet:
    """One table as read: its name and its rows, every merged cell's value carried to each
    cell it covers."""
    name: str
    rows: list[list]
    paragraphs_before: list[str]    # a .docx's paragraphs above the table (title, 附件N …)


def _too_large(name: str, rows: int, columns: int) -> None:
    if rows > MAX_ROWS or columns > MAX_COLUMNS:
        raise DocumentError(f"工作表“{name}”有 {rows} 行、{columns} 列，超过了可导入的上限"
                            f"（{MAX_ROWS} 行、{MAX_COLUMNS} 列）。请删去多余的行列或拆分成几个文件后再上传。")


def _cell_text(value) -> object:
    """A cell as the table reader takes it: text stripped, dates as dates, whole numbers as int."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date() if value.time() == time(0) else value
    if isinstance(value, date):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (int, float)):
        return value
    text = clean_text(str(value).replace("\r\n", "\n")).strip()
    return text or None


def docx_tables(document) -> tuple[list[Sheet], int, int, list[str]]:
    """Every table of a .docx as a Sheet ("表1", "表2" …), how many characters are in tables
    and in paragraphs (the caller decides whether the body is mainly tables), and every
    paragraph outside the tables in order (title, 附件, notes under the table)."""
    from docx.table import Table

    sheets: list[Sheet] = []
    before: list[str] = []
    paragraphs: list[str] = []
    in_tables = in_text = 0
    for block in document.iter_inner_content():
        if not isinstance(block, Table):
            text = clean_text(block.text).strip()
            if text:
                before.append(text)
                paragraphs.append(text)
                in_text += len(text)
            continue
        rows = []
        for row in block.rows:
            # python-docx gives a horizontally merged cell once per grid column it spans and a
            # vertically merged one as the cell it continues: merged values are carried already.
            cells = [_cell_text(cell.text) for cell in row.cells]
            rows.append(cells)
            in_tables += sum(len(str(c)) for c in cells if c is not None)
            _too_large(f"表{len(sheets) + 1}", len(rows), len(cells))
        sheets.append(Sheet(_table_name(before, len(sheets) + 1, {s.name for s in sheets}), rows, before))
        before = []
    return sheets, in_tables, in_text, paragraphs


#: A heading paragraph right above a table names it (``一、稳住经济大盘``): short, not a sentence.
_HEADING_MAX = 30


def _table_name(before: list[str], number: int, taken: set[str]) -> str:
    """A .docx table's name: the heading paragraph right above it, else "表N" (the tables of a
    document with several are its chapters, and the mapping's keys)."""
    heading = before[-1] if before else ""
    if heading and len(heading) <= _HEADING_MAX and not re.search(r"[。；;]", heading) \
            and not re.fullmatch(r"附件\s*\d*[：:]?", heading) and heading not in taken:
        return heading
    return f"表{number}"


def xlsx_sheets(data: bytes) -> list[Sheet]:
    check_package(data, "Excel（.xlsx）工作簿")
    try:
        # Here: openpyxl is loaded by the first workbook, not by every process.
        from openpyxl import load_workbook
        # Not read_only: merged cell ranges are known only to a fully loaded sheet.
        book = load_workbook(io.BytesIO(data), data_only=True)
    except Exception:  # noqa: BLE001 - openpyxl raises many kinds on a bad package
        raise DocumentError("无法打开该 Excel（.xlsx）工作簿，文件可能已损坏。") from None
    sheets = []
    for ws in book.worksheets:
        last_row, last_col = ws.max_row, ws.max_column
        if last_row > MAX_ROWS or last_col > MAX_COLUMNS:
            # Formatting alone stretches a sheet's dimensions: what counts is the cells with values.
            last_row, last_col = _filled_extent(ws)
            _too_large(ws.title, last_row, last_col)
        rows = [[_cell_text(v) for v in row]
                for row in ws.iter_rows(max_row=last_row, max_col=last_col, values_only=True)]
        for rng in ws.merged_cells.ranges:
            _spread(rows, rng.min_row - 1, rng.max_row, rng.min_col - 1, rng.max_col)
        sheets.append(Sheet(ws.title, rows, []))
    return sheets


def _filled_extent(ws) -> tuple[int, int]:
    """The last row and column that hold a value (formatted empty cells do not count)."""
    last_row = last_col = 0
    # The cells the file holds (iter_rows would create every empty cell up to the dimensions).
    for (row, col), cell in ws._cells.items():
        if cell.value is not None:
            last_row, last_col = max(last_row, row), max(last_col, col)
    return last_row, last_col


def xls_sheets(data: bytes) -> list[Sheet]:
    try:
        import xlrd
        # xlrd writes its complaints about a damaged file to a log (stdout by default): not ours to print.
        book = xlrd.open_workbook(file_contents=data, formatting_info=True, logfile=io.StringIO())
    except Exception as exc:  # noqa: BLE001 - xlrd raises its own and struct errors
        if "encrypt" in str(exc).lower():
            refuse(ENCRYPTED)
        raise DocumentError("无法打开该 Excel（.xls）工作簿，文件可能已损坏；"
                            "可以在 Excel 中另存为 .xlsx 后再上传。") from None
    sheets = []
    for ws in book.sheets():
        _too_large(ws.name, ws.nrows, ws.ncols)
        rows = []
        for r in range(ws.nrows):
            row = []
            for c, cell in enumerate(ws.row(r)):
                value = cell.value
                if cell.ctype == xlrd.XL_CELL_DATE:
                    try:
                        value = xlrd.xldate_as_datetime(value, book.datemode)
                    except Exception:  # noqa: BLE001 - a date cell out of range stays a number
                        pass
                elif cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK, xlrd.XL_CELL_ERROR):
                    value = None
                row.append(_cell_text(value))
            rows.append(row)
        for r0, r1, c0, c1 in ws.merged_cells:
            _spread(rows, r0, r1, c0, c1)
        sheets.append(Sheet(ws.name, rows, []))
    return sheets


def _spread(rows: list[list], r0: int, r1: int, c0: int, c1: int) -> None:
    """Carry a merged range's value (its top-left cell) to every cell it covers (0-based,
    end exclusive). Linear in the cells covered."""
    if r0 >= len(rows) or c0 >= len(rows[r0]):
        return
    value = rows[r0][c0]
    for r in range(r0, min(r1, len(rows))):
        row = rows[r]
        for c in range(c0, min(c1, len(row))):
            row[c] = value
