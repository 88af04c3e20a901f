"""Error pages in Chinese; no bare 4xx/5xx pages reach a user."""
from flask import Flask, current_app, make_response, render_template, request
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import InternalError, OperationalError, SQLAlchemyError

from workflow.extensions import db
from workflow.sqlite import write_transactions

MESSAGES = {
    400: ("请求无效", "提交的内容无法处理，请返回重试。"),
    403: ("无权操作", "您没有执行此操作的权限。如有疑问，请联系办公室。"),
    404: ("页面不存在", "您访问的页面或记录不存在。"),
    405: ("操作方式不正确", "该页面不支持此操作方式。"),
    413: ("文件过大", "上传的文件超过了允许的大小。"),
    429: ("请求过于频繁", "请稍后再试。"),
    500: ("系统错误", "系统出现错误，操作未生效。请稍后重试或联系办公室。"),
    503: ("暂时无法保存", "数据库暂时不能写入（可能处于只读状态或磁盘已满），本次操作未生效，"
                       "已填写的内容未保存。请稍后重试；如持续出现，请联系系统管理员。"),
}

# PostgreSQL's "cannot execute … in a read-only transaction"; psycopg reports
# it as an InternalError (SQLSTATE class 25), not as an OperationalError.
READ_ONLY_SQLSTATE = "25006"


def _refuses_writes(error) -> bool:
    """A database that is there but will not take the write: read-only (SQLite
    "attempt to write a readonly database", PostgreSQL read-only transaction),
    disk full, locked or unreachable. SQLAlchemy raises OperationalError for all
    of these except PostgreSQL's read-only transaction."""
    if isinstance(error, OperationalError):
        return True
    return getattr(getattr(error, "orig", None), "sqlstate", None) == READ_ONLY_SQLSTATE


def _back_link() -> str | None:
    """The page the user came from, if it is one of ours (no javascript: links: the CSP forbids them)."""
    referrer = request.referrer or ""
    if referrer.startswith(request.host_url) and referrer != request.url:
        return referrer
    return None


def _page(code: int, detail: str | None = None, headers: dict | None = None, title: str | None = None):
    default_title, message = MESSAGES.get(code, ("出错了", "操作未能完成。"))
    return render_template("errors/error.html", code=code, title=title or default_title, message=detail or message,
                           back=_back_link()), code, headers or {}


def bad_request(message: str):
    return _page(400, message)


def forbidden(message: str | None = None):
    """A 403 page that says why (e.g. separation of duties), not only that."""
    return _page(403, message)


def store_unavailable():
    """The file store (a folder, an object store) could not be read: a response, to which
    the caller may add headers."""
    return make_response(_page(503, "文件存储暂时无法读取，请稍后重试；如持续出现，请联系系统管理员。",
                               title="文件暂时无法读取"))


def register(app: Flask) -> None:
    for code in MESSAGES:
        if code in (413, 429, 500, 503):
            continue
        app.register_error_handler(code, lambda e, code=code: _page(code))

    @app.errorhandler(CSRFError)
    def csrf_error(e):
        return _page(400, "页面已过期或表单校验失败（CSRF），请刷新页面后重新提交。")

    @app.errorhandler(413)
    def too_large(e):
        limit = app.config.get("MAX_UPLOAD_MB", 20)
        return _page(413, f"上传的文件超过 {limit} MB 的上限，未保存任何内容。请压缩或拆分后重新上传。")

    @app.errorhandler(429)
    def too_many(e):
        # Flask-Limiter's refusals carry our Chinese message (auth/views.py).
        detail = e.description if isinstance(e, RateLimitExceeded) else None
        return _page(429, detail, {"Retry-After": e.retry_after} if getattr(e, "retry_after", None) else None)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InternalError)
    def database_refused(e):
        if not _refuses_writes(e):
            raise e
        try:
            db.session.rollback()
        except Exception:  # noqa: BLE001  (the connection may be gone; the page still has to go out)
            db.session.invalidate()
        current_app.logger.error("database refused the request: %s", e)
        # The page itself only reads (who is signed in, the inbox count): on
        # SQLite it must not ask for the write lock the database just refused.
        write_transactions(False)
        try:
            return _page(503)
        except SQLAlchemyError:
            # Not even reading works (the server is gone): the page without the layout.
            db.session.rollback()
            title, message = MESSAGES[503]
            return f"<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1><p>{message}</p>", 503

    @app.errorhandler(500)
    def server_error(e):
        db.session.rollback()
        return _page(500)
