"""Configuration, read from the environment (one class, microblog style)."""
from __future__ import annotations

import os

import flask

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


class CountedConfig(flask.Config):
    """Flask's config, counting its changes (``generation``): a page kept for the trail's head
    (head_cache.cached_page) was made with the settings of its generation and is not shown under
    others. A deployment changes its settings by a restart; tests change them as they run."""

    generation = 0

    def _changed(self) -> None:
        self.generation += 1

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key):
        super().__delitem__(key)
        self._changed()

    def update(self, *args, **kwargs):
        super().update(*args, **kwargs)
        self._changed()

    def setdefault(self, key, default=None):
        if key not in self:
            self._changed()
        return super().setdefault(key, default)

    def pop(self, *args):
        self._changed()
        return super().pop(*args)

    def popitem(self):
        self._changed()
        return super().popitem()

    def clear(self):
        super().clear()
        self._changed()


class Config:
    # "production" | "development" | "demo" | "testing"
    LUOSHI_ENV = os.environ.get("LUOSHI_ENV", "development")
    SECRET_KEY = os.environ.get("SECRET_KEY", DEFAULT_SECRET_KEY)
    SQLALCHEMY_DATABASE_URI = normalise_database_url(os.environ.get("DATABASE_URL"))
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    # Evidence lives outside the web root; default: <instance>/uploads
    UPLOAD_FOLDER = os.environ.get("UPLOAD_FOLDER")
    REPORT_FOLDER = os.environ.get("REPORT_FOLDER")
    # Where they are kept (workflow/filestore.py): "local" — those two folders — or "s3", a bucket
    # of an S3-compatible object store that several hosts share (objects below S3_PREFIX).
    FILE_STORE = os.environ.get("FILE_STORE", "local")
    S3_ENDPOINT_URL = os.environ.get("S3_ENDPOINT_URL")
    S3_BUCKET = os.environ.get("S3_BUCKET")
    S3_PREFIX = os.environ.get("S3_PREFIX", "")
    S3_REGION = os.environ.get("S3_REGION", "us-east-1")
    # Else boto3's own chain (AWS_ACCESS_KEY_ID…, an instance role).
    S3_ACCESS_KEY_ID = os.environ.get("S3_ACCESS_KEY_ID")
    S3_SECRET_ACCESS_KEY = os.environ.get("S3_SECRET_ACCESS_KEY")
    MAX_UPLOAD_MB = _int("MAX_UPLOAD_MB", 20)
    # A document to import is refused above this, before it is parsed (no request above MAX_UPLOAD_MB is read).
    MAX_IMPORT_MB = _int("MAX_IMPORT_MB", 20)
    NEAR_DUE_DAYS = _int("NEAR_DUE_DAYS", 14)
    # 红黄蓝 (workflow/pace.py, docs/warnings.md): points behind planned progress
    # for yellow and for red, returns of one part for yellow, and days before a
    # long-term task's checkpoint for blue.
    WARN_YELLOW_LAG = _int("WARN_YELLOW_LAG", 20)
    WARN_RED_LAG = _int("WARN_RED_LAG", 40)
    WARN_RETURNS = _int("WARN_RETURNS", 2)
    WARN_CHECKPOINT_DAYS = _int("WARN_CHECKPOINT_DAYS", 5)
    # The demo's "today" for deadlines (YYYY-MM-DD), honoured only when
    # LUOSHI_ENV is "demo"; checked and applied by timeutil.configure_clock.
    LUOSHI_TODAY = os.environ.get("LUOSHI_TODAY")
    # Separation of duties (docs/permissions.md): nobody decides on work they
    # handed in. When the only leader of the lead unit did, the office decides
    # in its place — unless this is set to 0, and another leader must be added.
    OFFICE_VERIFY_FALLBACK = os.environ.get("OFFICE_VERIFY_FALLBACK", "1") not in ("0", "false", "no", "")
    PER_PAGE = _int("PER_PAGE", 30)
    # Logs that only grow and are not audited (通知记录) are counted up to this many rows;
    # beyond, the page says "N 条以上".
    COUNT_LIMIT = _int("COUNT_LIMIT", 10000)
    # 签收 (receipt): whether a unit may start a part it has not received (the
    # office's setting; 0 = receipt first), and after how many days since the
    # plan's import an unreceived part is shown as overdue for receipt.
    START_WITHOUT_RECEIPT = os.environ.get("START_WITHOUT_RECEIPT", "1") not in ("0", "false", "no", "")
    RECEIPT_DUE_DAYS = _int("RECEIPT_DUE_DAYS", 3)
    # 延期申请 after the deadline in force (docs/extensions.md). Off by default:
    # an extension is asked for before the date is missed; once it is, the unit
    # talks to the office. 1: the office accepts late requests, marked 逾期后申请.
    LATE_EXTENSIONS = os.environ.get("LATE_EXTENSIONS", "0") in ("1", "true", "yes")
    # Background work (workflow/background.py, docs/background.md). The queue: a SQLite
    # file in the instance folder by default; redis://host:6379/0 in production.
    QUEUE_URL = os.environ.get("QUEUE_URL")
    # A claim whose worker shows no pulse for this long is a dead worker's.
    JOB_STALE_SECONDS = _int("JOB_STALE_SECONDS", 60)
    HEARTBEAT_SECONDS = _int("HEARTBEAT_SECONDS", 10)
    REPORT_ATTEMPTS = _int("REPORT_ATTEMPTS", 2)
    # A report whose HTML body is longer than this many characters is rendered in
    # sections of at most this size, joined into one PDF (workflow/reports/render.py):
    # memory stays bounded whatever the plan's size. About 3,700 characters a page.
    REPORT_SECTION_SIZE = _int("REPORT_SECTION_SIZE", 300_000)
    # The daily reminder sweep starts at this time (China Standard Time); "off": only
    # `flask reminders run` and the page's button sweep. It commits every SWEEP_CHUNK
    # parts, pausing SWEEP_PAUSE_MS between chunks (room for web writers on SQLite).
    REMINDER_TIME = os.environ.get("REMINDER_TIME", "08:30")
    SWEEP_CHUNK = _int("SWEEP_CHUNK", 300)
    SWEEP_PAUSE_MS = _int("SWEEP_PAUSE_MS", 0)
    # Notices beyond the inbox (workflow/notices/, docs/notices.md). No MAIL_SERVER: no e-mail.
    MAIL_SERVER = os.environ.get("MAIL_SERVER")
    MAIL_PORT = _int("MAIL_PORT", 25)
    MAIL_FROM = os.environ.get("MAIL_FROM", "luoshi@localhost")
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD")
    MAIL_USE_TLS = os.environ.get("MAIL_USE_TLS", "0") in ("1", "true", "yes")
    MAIL_USE_SSL = os.environ.get("MAIL_USE_SSL", "0") in ("1", "true", "yes")
    MAIL_TIMEOUT = _int("MAIL_TIMEOUT", 10)
    ROBOT_TIMEOUT = _int("ROBOT_TIMEOUT", 10)
    # The address users open the app at: the links in e-mails and robot posts.
    PUBLIC_URL = os.environ.get("PUBLIC_URL", "http://127.0.0.1:5000")
    # E-mail and robot posts wait outside these hours (China Standard Time); "" for none.
    QUIET_HOURS = os.environ.get("QUIET_HOURS", "22:00-07:30")
    NOTICE_ATTEMPTS = _int("NOTICE_ATTEMPTS", 5)
    NOTICE_LEASE_SECONDS = _int("NOTICE_LEASE_SECONDS", 120)
    # 单位考核排名 (workflow/scores.py, docs/scores.md): the weight of each component,
    # "ontime=40,overdue=20,returns=15,filings=15,receipt=10" when unset; checked at start-up.
    SCORE_WEIGHTS = os.environ.get("SCORE_WEIGHTS")
    # Sessions (auth/session.py, docs/security.md): they end SESSION_HOURS
    # after sign-in whatever happens, after SESSION_IDLE_MINUTES without a
    # request, on logout or password change, and when used from another
    # browser or address (SESSION_BIND: "agent+address", "agent" or "none").
    SESSION_HOURS = _int("SESSION_HOURS", 8)
    SESSION_IDLE_MINUTES = _int("SESSION_IDLE_MINUTES", 120)
    SESSION_BIND = os.environ.get("SESSION_BIND", "agent+address")
    PERMANENT_SESSION_LIFETIME = SESSION_HOURS * 3600   # the cookie's own expiry
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_DURATION = 0
    WTF_CSRF_TIME_LIMIT = None  # the session lifetime already bounds the token
    # Reverse proxies in front of the app whose X-Forwarded-For/-Proto are
    # believed (werkzeug ProxyFix). 0: the TCP peer is the client, and the
    # header, which anyone can send, is ignored.
    TRUSTED_PROXIES = _int("TRUSTED_PROXIES", 0)
    # Sign-in limits (auth/views.py, docs/security.md), in the notation of the
    # ``limits`` library; counters live in RATELIMIT_STORAGE_URI.
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "luoshi-db://")
    RATELIMIT_STRATEGY = "fixed-window"
    RATELIMIT_HEADERS_ENABLED = False
    # Every login POST from one client address.
    LOGIN_CLIENT_LIMIT = os.environ.get("LOGIN_CLIENT_LIMIT", "30 per 10 minutes; 100 per hour")
    # Failed attempts from one client address for one user name: that pair waits.
    LOGIN_BACKOFF = os.environ.get("LOGIN_BACKOFF", "5 per 15 minutes; 10 per hour; 20 per day")
    # Failed attempts for one account from all clients before office admins are told.
    LOGIN_ALERT = os.environ.get("LOGIN_ALERT", "20 per hour")
    # Failed attempts from one client address that are written to the audit trail.
    LOGIN_AUDIT_LIMIT = os.environ.get("LOGIN_AUDIT_LIMIT", "10 per hour")

    def __init__(self) -> None:
        self.MAX_CONTENT_LENGTH = (self.MAX_UPLOAD_MB + 1) * 1024 * 1024
