"""Pages of the long lists, and how deep they go.

A page N of a list in some order is found by skipping the N − 1 pages before it (OFFSET): the
database walks every skipped row, so page 3,000 of the task list costs a hundred times page 30.
Lists therefore page through their first ``COUNT_LIMIT`` rows — as far as 通知记录 and 审计日志
count theirs — and a page asked beyond that shows the deepest one with a message to narrow the
filter (a plan, a chapter, a state, a unit narrows any list to a few hundred rows). The task lists
walk only the ids of the rows they skip (``WalkPage``), then load the page's rows with what a row
shows. The whole trail (审计日志 without a filter) seeks each page by its seq instead and goes
as deep as the trail (views/audit_log.py TrailPage).
"""
from __future__ import annotations

from typing import Callable

from flask import current_app, flash, request
from flask_sqlalchemy.pagination import Pagination

from workflow import queries
from workflow.extensions import db

from .urls import page_number


def deepest_page(per_page: int) -> int:
    """The last page a list reaches: the one holding its ``COUNT_LIMIT``-th row."""
    return max(1, -(-current_app.config["COUNT_LIMIT"] // per_page))


def requested_page(per_page: int) -> int:
    """The page of the request's ``page`` argument, no deeper than ``deepest_page``: beyond it the
    deepest page, with a message to narrow the list."""
    number, deepest = page_number(request.args.get("page")), deepest_page(per_page)
    if number > deepest:
        flash(f"列表只能翻到第 {deepest} 页，已显示该页；要看后面的记录，请用筛选条件缩小范围。", "warning")
        return deepest
    return number


class Page(Pagination):
    """A page of a list whose pager stops at ``deepest_page`` (``pages`` and everything built on it:
    ``has_next``, ``iter_pages``); ``total`` stays the list's own. Subclasses give the rows."""

    def __init__(self, per_page: int, *, count: bool = True, **kwargs):
        self.deepest = deepest_page(per_page)
        super().__init__(page=requested_page(per_page), per_page=per_page, max_per_page=None, error_out=False,
                         count=count, **kwargs)

    @property
    def pages(self) -> int:
        return min(super().pages, self.deepest)

    @property
    def cut_short(self) -> bool:
        """Whether the list holds rows beyond the deepest page (the pager says so)."""
        return bool(self.total) and self.total > self.deepest * self.per_page


class RowsPage(Page):
    """A page of ``stmt``'s rows; ``total``: the count, when given (else set by the view)."""

    def __init__(self, stmt, per_page: int, total: int | None = None):
        self._stmt = stmt
        super().__init__(per_page, count=False)
        self.total = total

    def _query_items(self) -> list:
        return db.session.scalars(self._stmt.limit(self.per_page).offset(self._query_offset)).all()


def counted_page(stmt, per_page: int | None = None) -> RowsPage:
    """A page of ``stmt``'s rows for a list that is neither audited nor cached (rounds, reports, 延期申请,
    the admin's lists): its total counted up to ``COUNT_LIMIT`` and shown as "N 条以上" beyond, the way
    通知记录 counts, so that neither the count nor the deepest page grows with the table."""
    page = RowsPage(stmt, per_page or current_app.config["PER_PAGE"])
    limit = current_app.config["COUNT_LIMIT"]
    queries.show_capped_total(page, queries.count_up_to(stmt, limit + 1), limit)
    return page


class WalkPage(RowsPage):
    """A page walked as ids (``stmt`` selects only the key column, in list order), then its rows
    loaded by ``load(ids)``, in that order: the rows skipped over cost an index entry each, not a
    row with its columns (at 100,000 tasks the deepest task-list page took a quarter as long)."""

    def __init__(self, stmt, load: Callable[[list[int]], list], per_page: int, total: int | None = None):
        self._load = load
        super().__init__(stmt, per_page, total)

    def _query_items(self) -> list:
        ids = super()._query_items()
        return self._load(ids) if ids else []


class ListPage(Page):
    """One page of rows already in a list (a list filtered in Python: the 红黄蓝 filter); with
    ``load``, the list holds ids (the kept colours' tasks) and the page's rows are loaded."""

    def __init__(self, rows: list, per_page: int, load: Callable[[list[int]], list] | None = None):
        self._rows, self._load = rows, load
        super().__init__(per_page)

    def _query_items(self) -> list:
        rows = self._rows[self._query_offset:self._query_offset + self.per_page]
        return self._load(rows) if self._load and rows else rows

    def _query_count(self) -> int:
        return len(self._rows)
