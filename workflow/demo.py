"""Demo mode: the seed compilation, a login for everyone, and (see play_activity)
a realistic spread of work, so that a new user sees a working system at once."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from sqlalchemy import func, select

from auth.passwords import hash_password
from models import Plan, Role, Unit, User
from workflow.demo_activity import play_activity as play
from workflow.extensions import db
from workflow.importer import load, service
from workflow.vocabulary import UnitKind

SEED_PATH = Path(__file__).parent / "demo_data" / "zhoucun-2022-batch1.txt"
OFFICE_NAME = "区指挥部办公室"
# Only ever used by `flask demo`, which refuses to run in production.
DEMO_PASSWORD = "demo-2026"


@dataclass
class DemoAccount:
    username: str
    role_label: str
    unit: str


#: The accounts of the office unit, as (username, display name, Role attribute). load_demo creates these and
#: two per other unit (unit_usernames); the login page hint reads the same table, so it names only real accounts.
OFFICE_ACCOUNTS = (("office", "办公室管理员", "OFFICE_ADMIN"), ("office2", "办公室工作人员", "OFFICE_STAFF"),
                   ("leader", "区领导", "VIEWER"))


def unit_usernames(unit) -> tuple[str, str]:
    """The demo leader and staff account names of a (non-office) unit."""
    code = f"u{unit.id:02d}"
    return f"{code}.leader", f"{code}.staff"


@dataclass
class LoginHint:
    accounts: list[DemoAccount]   # the office accounts that exist, then one unit's pair as an example
    password: str = DEMO_PASSWORD


def login_hint() -> LoginHint | None:
    """The demo accounts for the login page, or None where there are none.

    Never in production: `flask demo` refuses to run there, and a production
    database that somehow holds an "office" user must not have it advertised."""
    if current_app.config["LUOSHI_ENV"] == "production":
        return None
    names = [name for name, _, _ in OFFICE_ACCOUNTS]
    users = {u.username: u for u in db.session.scalars(select(User).where(User.username.in_(names)))}
    accounts = [DemoAccount(n, Role.LABELS[users[n].role], users[n].unit.name) for n in names if n in users]
    if not accounts:
        return None
    # One unit as the example: the first whose two demo accounts both exist.
    for unit in db.session.scalars(select(Unit).where(Unit.kind != UnitKind.OFFICE).order_by(Unit.id).limit(20)):
        pair = unit_usernames(unit)
        found = {u.username: u for u in db.session.scalars(select(User).where(User.username.in_(pair)))}
        if len(found) == 2:
            accounts += [DemoAccount(n, Role.LABELS[found[n].role], unit.name) for n in pair]
            break
    return LoginHint(accounts)


def _user(username: str, display: str, unit, role: str, password_hash: str) -> DemoAccount:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username, display_name=display, unit_id=unit.id, role=role,
                    password_hash=password_hash)
        db.session.add(user)
    return DemoAccount(username, Role.LABELS[role], unit.name)


def load_demo(seed_path: Path | None = None) -> list[DemoAccount]:
    office = db.session.scalar(select(Unit).where(Unit.name == OFFICE_NAME))
    if office is None:
        office = Unit(name=OFFICE_NAME, kind=UnitKind.OFFICE)
        db.session.add(office)
        db.session.flush()
    # Every demo account has the same published password: hashing it once
    # (scrypt is slow on purpose) keeps `flask demo` quick.
    password_hash = hash_password(DEMO_PASSWORD)
    accounts = [_user(name, display, office, getattr(Role, role), password_hash)
                for name, display, role in OFFICE_ACCOUNTS]
    db.session.flush()
    if not db.session.scalar(select(func.count(Plan.id))):
        path = seed_path or SEED_PATH
        rv = service.review_upload(path.read_bytes(), path.name)
        load.write(rv, user=None)
    for unit in db.session.scalars(select(Unit).where(Unit.kind != UnitKind.OFFICE).order_by(Unit.id)):
        leader, staff = unit_usernames(unit)
        accounts.append(_user(leader, f"{unit.name}负责人", unit, Role.UNIT_LEADER, password_hash))
        accounts.append(_user(staff, f"{unit.name}经办人", unit, Role.UNIT_STAFF, password_hash))
    db.session.flush()
    return accounts


def describe(accounts: list[DemoAccount]) -> str:
    lines = ["演示账号（密码均为 %s）：" % DEMO_PASSWORD]
    for a in accounts:
        lines.append(f"  {a.username:<14} {a.role_label:<10} {a.unit}")
    return "\n".join(lines)


def play_activity() -> dict[str, int] | None:
    """Demo activity through the services (workflow/demo_activity.py); does
    nothing and returns None once any activity exists. The caller commits."""
    return play()


def render_pending_reports(app) -> int:
    """Render every report the demo's story asked for and left queued (the
    closed rounds' 调度通报), in this process; how many."""
    from models import ReportArchive
    from workflow.reports import jobs
    from workflow.vocabulary import ReportStatus

    ids = db.session.scalars(select(ReportArchive.id).where(ReportArchive.status == ReportStatus.PENDING)
                             .order_by(ReportArchive.id)).all()
    db.session.commit()
    for archive_id in ids:
        jobs.run_now(app, archive_id)
    return len(ids)


#: The demo's local mail server and robot receiver (`flask mailsink`, started by scripts/run.sh).
DEMO_MAIL_DOMAIN = "demo.luoshi.local"
DEMO_ROBOT_BASE = "http://127.0.0.1:8026"
DEMO_DINGTALK_SECRET = "SECdemo-luoshi-only"


def configure_channels(robots: int = 4) -> int:
    """Every demo account gets an e-mail address at the demo's domain, and the
    first units (by id) get work-group robots on the local receiver: 企业微信,
    and one 钉钉 with a signing secret. Addresses already set are kept. How many
    units have robots."""
    from workflow.vocabulary import RobotKind

    for user in db.session.scalars(select(User).where(User.email.is_(None))):
        user.email = f"{user.username}@{DEMO_MAIL_DOMAIN}"
    units = db.session.scalars(select(Unit).where(Unit.kind != UnitKind.OFFICE).order_by(Unit.id).limit(robots)).all()
    for n, unit in enumerate(units):
        if unit.robot_url:
            continue
        if n == len(units) - 1:
            unit.robot_kind = RobotKind.DINGTALK.value
            unit.robot_url = f"{DEMO_ROBOT_BASE}/robot/send?access_token=demo-u{unit.id:02d}"
            unit.robot_secret = DEMO_DINGTALK_SECRET
        else:
            unit.robot_kind = RobotKind.WECOM.value
            unit.robot_url = f"{DEMO_ROBOT_BASE}/cgi-bin/webhook/send?key=demo-u{unit.id:02d}"
    db.session.flush()
    return len(units)
