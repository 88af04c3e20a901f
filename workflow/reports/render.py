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
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field

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

    @property
    def seconds(self) -> float:
        return self.layout_seconds + self.write_seconds


def html_to_pdf(html: str) -> Rendered:
    """Lay out and write one PDF. The HTML must be complete and self-contained
    (styles inline; any asset as luoshi-asset:NAME)."""
    from weasyprint import HTML

    with _LOCK:
        fetcher = safe_fetcher()
        started = time.perf_counter()
        # base_url is our own scheme, so a relative URL resolves to an asset
        # name (and is then checked) rather than to a path on the disk.
        document = HTML(string=html, base_url=ASSET_SCHEME, url_fetcher=fetcher).render(font_config=font_config())
        laid_out = time.perf_counter()
        pdf = document.write_pdf()
        written = time.perf_counter()
        STATS["renders"] += 1
    return Rendered(pdf=pdf, pages=len(document.pages), layout_seconds=laid_out - started,
                    write_seconds=written - laid_out, attempts=fetcher.attempts)


def render_template_html(app, template: str, **context) -> str:
    """Our Jinja environment (autoescape on for .html), without the request
    context processors: reports are rendered in worker threads and the CLI."""
    return app.jinja_env.get_template(template).render(**context)
