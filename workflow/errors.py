"""Error pages in Chinese; no bare 4xx/5xx pages reach a user."""
from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError

from workflow.extensions import db

MESSAGES = {
    400: ("请求无效", "提交的内容无法处理，请返回重试。"),
    403: ("无权操作", "您没有执行此操作的权限。如有疑问，请联系办公室。"),
    404: ("页面不存在", "您访问的页面或记录不存在。"),
    405: ("操作方式不正确", "该页面不支持此操作方式。"),
    413: ("文件过大", "上传的文件超过了允许的大小。"),
    429: ("请求过于频繁", "请稍后再试。"),
    500: ("系统错误", "系统出现错误，操作未生效。请稍后重试或联系办公室。"),
}


def _back_link() -> str | None:
    """The page the user came from, if it is one of ours (no javascript: links: the CSP forbids them)."""
    referrer = request.referrer or ""
    if referrer.startswith(request.host_url) and referrer != request.url:
        return referrer
    return None


def _page(code: int, detail: str | None = None):
    title, message = MESSAGES.get(code, ("出错了", "操作未能完成。"))
    return render_template("errors/error.html", code=code, title=title, message=detail or message,
                           back=_back_link()), code


def bad_request(message: str):
    return _page(400, message)


def register(app: Flask) -> None:
    for code in MESSAGES:
        if code in (413, 500):
            continue
        app.register_error_handler(code, lambda e, code=code: _page(code))

    @app.errorhandler(CSRFError)
    def csrf_error(e):
        return _page(400, "页面已过期或表单校验失败（CSRF），请刷新页面后重新提交。")

    @app.errorhandler(413)
    def too_large(e):
        limit = app.config.get("MAX_UPLOAD_MB", 20)
        return _page(413, f"上传的文件超过 {limit} MB 的上限，未保存任何内容。请压缩或拆分后重新上传。")

    @app.errorhandler(500)
    def server_error(e):
        db.session.rollback()
        return _page(500)
