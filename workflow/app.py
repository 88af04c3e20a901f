"""The application factory."""
from __future__ import annotations

import os

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

import models  # noqa: F401  (registers every table on the metadata for Alembic)
from auth import session as auth_session  # noqa: F401  (user loader, session checks on auth_bp)
from auth import views as auth_views  # noqa: F401  (routes on auth_bp)
from auth.blueprint import bp as auth_bp
from auth.ratelimit import limiter

from . import background, colours, errors, filestore, reminders, scores, sqlite  # noqa: F401  (reminders, colours: their jobs and ticks)
from .notices import delivery as notice_delivery, quiet  # noqa: F401  (the delivery jobs)
from .reports import jobs as report_jobs  # noqa: F401  (the report job)
from .cli import register_cli
from .config import DEFAULT_SECRET_KEY, Config, CountedConfig
from .errors import bad_request
from .extensions import csrf, db, login_manager, migrate
from .timeutil import configure_clock
from .views import admin, audit_log, extensions as extension_views, inbox, notices as notice_views, plans, \
    reminders as reminder_views, reports, rounds, tasks, templating
from .views import scores as score_views
from .views.urls import MAX_ID


class LuoshiFlask(Flask):
    config_class = CountedConfig


def create_app(config: Config | dict | None = None) -> Flask:
    app = LuoshiFlask(
        __name__,
        instance_relative_config=True,
        template_folder=os.path.join(os.path.dirname(os.path.dirname(__file__)), "templates"),
        static_folder="static",
    )
    app.config.from_object(Config())
    if isinstance(config, dict):
        app.config.update(config)
    elif config is not None:
        app.config.from_object(config)

    # The request limit follows the per-file limit however MAX_UPLOAD_MB was
    # set (Config computes it only from the environment), unless given itself.
    explicit = config.get("MAX_CONTENT_LENGTH") if isinstance(config, dict) else getattr(
        config, "MAX_CONTENT_LENGTH", None)
    if explicit is None:
        app.config["MAX_CONTENT_LENGTH"] = (int(app.config["MAX_UPLOAD_MB"]) + 1) * 1024 * 1024
    # Likewise the cookie's lifetime follows SESSION_HOURS (auth/session.py
    # enforces the limit itself; this only tells the browser).
    if (config.get("PERMANENT_SESSION_LIFETIME") if isinstance(config, dict) else getattr(
            config, "PERMANENT_SESSION_LIFETIME", None)) is None:
        app.config["PERMANENT_SESSION_LIFETIME"] = int(app.config["SESSION_HOURS"]) * 3600

    os.makedirs(app.instance_path, exist_ok=True)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(app.instance_path, "luoshi.sqlite")
    app.config.setdefault("UPLOAD_FOLDER", None)
    app.config["UPLOAD_FOLDER"] = app.config["UPLOAD_FOLDER"] or os.path.join(app.instance_path, "uploads")
    app.config["REPORT_FOLDER"] = app.config.get("REPORT_FOLDER") or os.path.join(app.instance_path, "reports")
    filestore.init_app(app)
    if sqlite.is_sqlite(app.config["SQLALCHEMY_DATABASE_URI"]):
        # Busy timeout, pragmas, idle checkpoints: workflow/sqlite.py.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = sqlite.engine_options(app.config.get("SQLALCHEMY_ENGINE_OPTIONS"))

    _refuse_unsafe_production(app)
    _check_background_settings(app)
    configure_clock(app)
    scores.configure(app)
    if app.config["LUOSHI_ENV"] == "production":
        # Behind TLS in production: cookies never travel in clear text.
        app.config.update(SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True)

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)

    # Ids from URLs fit the database's integer: a larger number is a 404, not an overflow.
    app.url_map.converters["int"] = BoundedIntConverter
    _install_request_hooks(app)
    limiter.init_app(app)
    _trust_proxies(app)
    app.register_blueprint(auth_bp)
    # extension_views imports workflow.extension_services: its decisions join services.TRANSITIONS.
    for module in (tasks, plans, inbox, admin, audit_log, reports, rounds, extension_views, notice_views,
                   reminder_views, score_views):
        app.register_blueprint(module.bp)
    templating.register(app)
    register_cli(app)
    errors.register(app)
    sqlite.install(app)
    return app


class BoundedIntConverter(IntegerConverter):
    def __init__(self, map, fixed_digits=0, min=None, max=MAX_ID, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def _install_request_hooks(app: Flask) -> None:
    @app.before_request
    def _mark_write_request():
        # On SQLite a request that may write takes the write lock when its
        # transaction begins (BEGIN IMMEDIATE): a second writer then waits and
        # reads the committed state, instead of failing half-way through.
        sqlite.write_transactions(request.method not in ("GET", "HEAD", "OPTIONS"))

    @app.teardown_request
    def _end_write_request(error=None):
        # The flag belongs to the request: code that runs after it in the same
        # thread (a CLI command, a test) must not begin its transactions as a writer.
        sqlite.write_transactions(False)

    @app.before_request
    def _refuse_nul_bytes():
        # PostgreSQL text cannot hold NUL; no real form or link has one.
        # Refuse it once here rather than let any query fail on it.
        values = list(request.args.values()) + list((request.view_args or {}).values())
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            values += list(request.form.values()) + [f.filename or "" for f in request.files.values()]
        if any(isinstance(v, str) and "\x00" in v for v in values):
            return bad_request("提交的内容含有无效字符（空字符），未处理。请检查后重试。")

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
        return response


def _trust_proxies(app: Flask) -> None:
    """Behind TRUSTED_PROXIES reverse proxies, the client address is the one the
    outermost trusted proxy saw (X-Forwarded-For, counted from the right);
    without, the header is the client's own claim and is ignored. Rate limits
    and the session binding (auth/) rely on request.remote_addr being right."""
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)


def _check_background_settings(app: Flask) -> None:
    """A malformed time setting stops the start with a message, not the worker at night."""
    try:
        background.check_queue_url(background.queue_url(app))
        quiet.parse(app.config.get("QUIET_HOURS"))
        reminders.parse_sweep_time(app.config.get("REMINDER_TIME") or "08:30")
    except (ValueError, RuntimeError) as exc:
        raise RuntimeError(str(exc)) from None


def _refuse_unsafe_production(app: Flask) -> None:
    if app.config["LUOSHI_ENV"] == "production" and app.config["SECRET_KEY"] in (DEFAULT_SECRET_KEY, "", None):
        raise RuntimeError("生产环境必须设置 SECRET_KEY 环境变量（不能使用默认密钥），拒绝启动。")
