"""HTML → PDF with WeasyPrint, locked down and measured.

* One FontConfiguration for the whole process: building it loads fontconfig's
  view of every font (about a second); reusing it keeps that out of each report.
* WeasyPrint is handed a fetcher that serves only our own report assets
  (``luoshi-asset:NAME`` from templates/reports/assets) and refuses every other
  URL (file:, http(s):, data: …). A refusal is an ordinary exception, which
  WeasyPrint logs and skips, so a stray URL can neither read a local file nor
  reach the network nor stop the report.
* Renders are serialised by a lock: WeasyPrint and the shared FontConfiguration
  are not meant for concurrent use, and one render at a time also bounds memory.
* A large report is rendered in sections (``render_report``): WeasyPrint holds
  the layout of a whole document in memory (a 9,450-task overall report took
  1.85 GB in one pass), so a document longer than ``section_size`` characters
  of HTML is cut at its seams into sections, each laid out and written on its
  own, and the section PDFs are joined (pypdf). How the page numbers stay
  continuous is told at ``render_report``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import io
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from markupsafe import Markup

log = logging.getLogger(__name__)

ASSET_SCHEME = "luoshi-asset:"
ASSET_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "templates", "reports", "assets")
ASSET_TYPES = {".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png"}

# Every URL any fetcher was asked for (newest last): lets tests and operators
# see what a document tried to load, including what was refused.
FETCH_LOG: deque[tuple[str, bool]] = deque(maxlen=2000)
# How many PDFs this process has rendered (the archive test counts on it).
STATS = {"renders": 0}

_LOCK = threading.Lock()
_FONT_CONFIG = None

HARFBUZZ_MISSING_MESSAGE = (
    "服务器缺少 HarfBuzz 字体子集库（Debian 软件包 libharfbuzz-subset0），"
    "生成 PDF 报告会慢数倍（200 行任务表约 33 秒，而非约 7 秒）。"
    "请管理员执行：apt-get install libharfbuzz-subset0（或运行 scripts/setup.sh）后重启服务。")


def harfbuzz_subset_available() -> bool:
    """Whether the shared library WeasyPrint subsets fonts with can be loaded.
    Without it WeasyPrint falls back to fontTools, several times slower."""
    for name in ("libharfbuzz-subset.so.0", ctypes.util.find_library("harfbuzz-subset")):
        if not name:
            continue
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


class AssetRefused(ValueError):
    """Raised for every URL that is not one of our own assets."""


def _fetcher_class():
    # WeasyPrint is imported where a PDF is made: it takes about two seconds, and
    # web and CLI processes that never render one should not pay for it.
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class SafeFetcher(URLFetcher):
        """Serves ``luoshi-asset:NAME`` for NAME a file in the assets folder; nothing else."""

        def __init__(self):
            super().__init__(allowed_protocols=("luoshi-asset",), allow_redirects=False)
            self.attempts: list[str] = []

        def fetch(self, url, headers=None):
            self.attempts.append(url)
            try:
                response = self._serve(url)
            except AssetRefused:
                FETCH_LOG.append((url, False))
                raise
            FETCH_LOG.append((url, True))
            return response

        def _serve(self, url: str):
            if not isinstance(url, str) or not url.startswith(ASSET_SCHEME):
                raise AssetRefused(f"报告只允许使用系统自带的资源，已拒绝：{str(url)[:200]}")
            name = url[len(ASSET_SCHEME):]
            # A bare file name from the folder listing: no path, no query, no tricks.
            if name not in _asset_names():
                raise AssetRefused(f"报告资源不存在或不允许：{name[:200]}")
            with open(os.path.join(ASSET_DIR, name), "rb") as fh:
                body = fh.read()
            mime = ASSET_TYPES[os.path.splitext(name)[1].lower()]
            return URLFetcherResponse(url, body, headers={"Content-Type": mime})

    return SafeFetcher


def _asset_names() -> set[str]:
    try:
        return {n for n in os.listdir(ASSET_DIR)
                if os.path.splitext(n)[1].lower() in ASSET_TYPES and os.path.isfile(os.path.join(ASSET_DIR, n))}
    except FileNotFoundError:
        return set()


_SAFE_FETCHER_CLASS = None


def safe_fetcher():
    global _SAFE_FETCHER_CLASS
    if _SAFE_FETCHER_CLASS is None:
        _SAFE_FETCHER_CLASS = _fetcher_class()
    return _SAFE_FETCHER_CLASS()


def font_config():
    global _FONT_CONFIG
    if _FONT_CONFIG is None:
        from weasyprint.text.fonts import FontConfiguration

        _FONT_CONFIG = FontConfiguration()
    return _FONT_CONFIG


@dataclass
class Rendered:
    pdf: bytes
    pages: int
    layout_seconds: float
    write_seconds: float
    attempts: list[str] = field(default_factory=list)
    sections: int = 1            # documents laid out one after another and joined
    join_seconds: float = 0.0    # page numbers stamped and sections joined (sectioned only)

    @property
    def seconds(self) -> float:
        return self.layout_seconds + self.write_seconds + self.join_seconds


# ------------------------------------------------------------------ seams and sections
#
# A report template marks where it may be cut (reports/pdf/_macros.html ``seam``):
#
#   <!--luoshi-seam-->CLOSE<!--luoshi-seam-open-->OPEN<!--luoshi-seam-end-->
#
# CLOSE ends what is open at that point (``</tbody></table>`` inside a table),
# OPEN starts it again (the table's head) and carries the running headers'
# strings (the document title, its subject and the current chapter) into a new
# section. Where the document is not cut, the whole seam goes and the document
# reads exactly as if there were none. The body between BODY and BODY_END is cut;
# what comes before it (the styles, the running footer) begins every section and
# what comes after ends it.
SEAM, SEAM_OPEN, SEAM_END = "<!--luoshi-seam-->", "<!--luoshi-seam-open-->", "<!--luoshi-seam-end-->"
BODY, BODY_END = "<!--luoshi-body-->", "<!--luoshi-body-end-->"
# Rows of a long table (and task blocks) between two seams: the grain of a cut.
SEAM_ROWS = 20
# In a section the page numbers are left out and stamped afterwards (render_report).
SECTION_STYLE = "<style>@page { @bottom-right { content: none; } }</style>"


def css_string(value) -> Markup:
    """A CSS string literal of ``value`` for a <style> element: quotes and
    backslashes escaped, and <, >, & and control characters as CSS escapes,
    so that no text can close the element or the string."""
    out = []
    for ch in str(value if value is not None else ""):
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "<>&" or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):x} ")
        else:
            out.append(ch)
    return Markup('"' + "".join(out) + '"')


def _split(html: str):
    """(head, pieces, seams, tail): the body's pieces between its seams, each
    seam a (close, open) pair; None when the document has no body markers."""
    start, end = html.find(BODY), html.rfind(BODY_END)
    if start < 0 or end < start:
        return None
    head, body, tail = html[:start], html[start + len(BODY):end], html[end + len(BODY_END):]
    pieces, seams, pos = [], [], 0
    while (at := body.find(SEAM, pos)) >= 0:
        opened = body.index(SEAM_OPEN, at)
        ended = body.index(SEAM_END, opened)
        pieces.append(body[pos:at])
        seams.append((body[at + len(SEAM):opened], body[opened + len(SEAM_OPEN):ended]))
        pos = ended + len(SEAM_END)
    pieces.append(body[pos:])
    return head, pieces, seams, tail


def sections(html: str, section_size: int | None = None) -> list[str]:
    """The document as complete HTML documents of at most ``section_size``
    characters of body each (a single piece larger than that stands alone),
    cut only at seams; one document, its seams removed, when it fits (or
    ``section_size`` is None)."""
    split = _split(html)
    if split is None:
        return [html]
    head, pieces, seams, tail = split
    if section_size is None or sum(map(len, pieces)) <= section_size or not seams:
        return [head + "".join(pieces) + tail]
    sectioned_head = head.replace("</head>", SECTION_STYLE + "</head>", 1)
    docs, current, size, opening = [], [pieces[0]], len(pieces[0]), ""
    for (close, reopen), piece in zip(seams, pieces[1:]):
        if size + len(piece) > section_size:
            docs.append(sectioned_head + opening + "".join(current) + close + tail)
            opening, current, size = reopen, [piece], len(piece)
        else:
            current.append(piece)
            size += len(piece)
    docs.append(sectioned_head + opening + "".join(current) + tail)
    return docs


def html_to_pdf(html: str) -> Rendered:
    """Lay out and write one PDF in one pass (any seams removed). The HTML must
    be complete and self-contained (styles inline; any asset as luoshi-asset:NAME)."""
    with _LOCK:
        return _one_pass(sections(html)[0])


def _one_pass(html: str) -> Rendered:
    fetcher = safe_fetcher()
    started = time.perf_counter()
    document = _layout(html, fetcher)
    laid_out = time.perf_counter()
    pdf = document.write_pdf()
    written = time.perf_counter()
    STATS["renders"] += 1
    return Rendered(pdf=pdf, pages=len(document.pages), layout_seconds=laid_out - started,
                    write_seconds=written - laid_out, attempts=fetcher.attempts)


def _layout(html: str, fetcher):
    from weasyprint import HTML

    # base_url is our own scheme, so a relative URL resolves to an asset
    # name (and is then checked) rather than to a path on the disk.
    return HTML(string=html, base_url=ASSET_SCHEME, url_fetcher=fetcher).render(font_config=font_config())


def render_report(html: str, section_size: int | None, progress=None) -> Rendered:
    """One PDF of the report, in one pass when its body fits in ``section_size``
    characters of HTML, else in sections (``sections``) joined into one file.

    Page numbers (第 N 页 / 共 M 页) across sections. The total M is known only
    when the last section has been laid out, and WeasyPrint writes a page's
    margin boxes when it lays the document out, so no section could print it
    without laying every section out twice (or keeping them all in memory,
    which is what sectioning avoids). So the sections are laid out without
    their page numbers (SECTION_STYLE) and written to temporary files one after
    another, counting pages; then, M known, a small document of blank pages
    per section carries only the numbers — the same @page rules of
    report.css, so the same box, font and place, its counter starting at the
    section's first page and its total M — and each of its pages is laid over
    the matching page of the section (pypdf ``merge_page``) as the sections are
    joined. Nothing in a page's body depends on its footer's text, so the pages
    are the ones a single pass would give, cut only where a section begins.
    The output is a function of the HTML alone (WeasyPrint's dates come from
    the document, pypdf writes no file identifier or date of its own): the
    same inputs give the same bytes.
    """
    docs = sections(html, section_size)
    with _LOCK:
        if len(docs) == 1:
            return _one_pass(docs[0])
        return _sectioned(docs, progress)


def _sectioned(docs: list[str], progress=None) -> Rendered:
    """``progress(done, of)``, if given, is told after each section."""
    from pypdf import PdfReader, PdfWriter
    from pypdf import __version__ as pypdf_version
    from pypdf.generic import NameObject

    fetcher = safe_fetcher()
    layout = write = 0.0
    folder = tempfile.mkdtemp(prefix="luoshi-report-")
    try:
        files = []
        for n, doc in enumerate(docs):
            started = time.perf_counter()
            document = _layout(doc, fetcher)
            laid_out = time.perf_counter()
            path = os.path.join(folder, f"{n:04d}.pdf")
            document.write_pdf(path)
            files.append((path, len(document.pages)))
            del document
            gc.collect()   # the layout's boxes refer to each other: free them before the next section
            write += time.perf_counter() - laid_out
            layout += laid_out - started
            if progress is not None:
                progress(n + 1, len(docs))
        started = time.perf_counter()
        total = sum(pages for _, pages in files)
        writer = PdfWriter()
        first_page = 1
        for n, (path, pages) in enumerate(files):
            reader = PdfReader(path)
            if n == 0:
                info = dict(reader.metadata or {})
                info["/Producer"] = f"{info.get('/Producer', 'WeasyPrint')} + pypdf {pypdf_version}"
                lang = reader.trailer["/Root"].get("/Lang")
            offset = len(writer.pages)
            writer.append(reader)
            numbers = PdfReader(io.BytesIO(_page_numbers(first_page, pages, total, fetcher)))
            for k in range(pages):
                page = writer.pages[offset + k]
                page.merge_page(numbers.pages[k])
                page.compress_content_streams()
            first_page += pages
        writer.add_metadata(info)
        if lang is not None:
            writer.root_object[NameObject("/Lang")] = lang
        out = io.BytesIO()
        writer.write(out)
        pdf = out.getvalue()
        joined = time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    STATS["renders"] += 1
    return Rendered(pdf=pdf, pages=total, layout_seconds=layout, write_seconds=write, attempts=fetcher.attempts,
                    sections=len(docs), join_seconds=joined)


_REPORT_CSS = os.path.join(os.path.dirname(ASSET_DIR), "pdf", "report.css")


def _page_numbers(first: int, pages: int, total: int, fetcher) -> bytes:
    """``pages`` blank pages numbered 第 first 页 / 共 total 页 onwards, in the
    bottom-right box of report.css's @page (nothing else is printed)."""
    with open(_REPORT_CSS, encoding="utf-8") as fh:
        css = fh.read()
    # counter-reset on the first page replaces its own increment (css-page-3),
    # so the first page is numbered ``first``; the total is written out.
    extra = ("@page { @top-left { content: none; } @top-right { content: none; } @bottom-left { content: none; }"
             f' @bottom-right {{ content: "第 " counter(page) " 页 / 共 {int(total)} 页"; }} }}'
             f" @page :first {{ counter-reset: page {int(first)}; }}")
    body = '<div style="break-after: page"></div>' * (pages - 1) + "<div></div>"
    html = (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><style>{css}\n{extra}</style></head>'
            f"<body>{body}</body></html>")
    document = _layout(html, fetcher)
    if len(document.pages) != pages:   # never silently misnumber a report
        raise RuntimeError(f"page numbers: {len(document.pages)} pages laid out for {pages}")
    return document.write_pdf()


def render_template_html(app, template: str, **context) -> str:
    """Our Jinja environment (autoescape on for .html), without the request
    context processors: reports are rendered in worker threads and the CLI."""
    return app.jinja_env.get_template(template).render(**context)
