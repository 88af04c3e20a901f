"""Configuration, read from the environment (one class, microblog style)."""
from __future__ import annotations

import os

DEFAULT_SECRET_KEY = "dev-not-secret-change-me"


def normalise_database_url(url: str | None) -> str | None:
    """Accept the URLs operators paste (``postgres://`` / ``postgresql://``) and
    route them to the psycopg 3 driver that requirements.txt installs."""
    if not url:
        return None
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


class Config:
    # "production" | "development" | "demo" | "testing"
    LUOSHI_ENV = os.environ.get("LUOSHI_ENV", "development")
    SECRET_KEY = os.environ.get("SECRET_KEY", DEFAULT_SECRET_KEY)
    SQLALCHEMY_DATABASE_URI = normalise_database_url(os.environ.get("DATABASE_URL"))
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    # Evidence lives outside the web root; default: <instance>/uploads
    UPLOAD_FOLDER = os.environ.get("UPLOAD_FOLDER")
    REPORT_FOLDER = os.environ.get("REPORT_FOLDER")
    MAX_UPLOAD_MB = _int("MAX_UPLOAD_MB", 20)
    NEAR_DUE_DAYS = _int("NEAR_DUE_DAYS", 14)
    PER_PAGE = _int("PER_PAGE", 30)
    # Sessions expire; a password change or logout ends them (see auth/)
    PERMANENT_SESSION_LIFETIME = _int("SESSION_HOURS", 8) * 3600
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_DURATION = 0
    WTF_CSRF_TIME_LIMIT = None  # the session lifetime already bounds the token
    LOGIN_MAX_FAILURES = _int("LOGIN_MAX_FAILURES", 5)
    LOGIN_LOCK_MINUTES = _int("LOGIN_LOCK_MINUTES", 15)

    def __init__(self) -> None:
        self.MAX_CONTENT_LENGTH = (self.MAX_UPLOAD_MB + 1) * 1024 * 1024
