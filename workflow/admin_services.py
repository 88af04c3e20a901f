"""The only code that writes users, units and unit aliases (the office admin's pages).

Like ``workflow.services``: each function checks permission, validates, flushes
and appends its audit entry in the caller's transaction, and never commits —
the view commits once, or rolls back on a ``ServiceError``.

The forms check name uniqueness first (``validate_<field>`` in
``workflow/views/forms.py``, through the ``*_problem`` functions here) so the
message appears at the field; the services ask the same questions again under
a lock, because a unit name and an alias share one namespace that no database
constraint covers, and keep the unique constraints as the last guard
(IntegrityError → a Chinese refusal) against writers that take no lock, such
as a plan import creating the same unit at the same moment.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from auth.passwords import hash_password, password_problem
from auth.permissions import may
from models import Role, Unit, UnitAlias, User
from workflow import audit
from workflow.extensions import db
from workflow.services import Forbidden, Refused, ServiceError
from workflow.vocabulary import UnitKind

USERNAME_PATTERN = r"^[A-Za-z0-9._-]+$"
USERNAME_MESSAGE = "用户名只能包含字母、数字、点、下划线和连字符。"
USER_FIELDS = ("display_name", "role", "unit_id", "active")
# Changing any of these ends every session the user holds (see User.session_version).
SESSION_ENDING = frozenset({"role", "active", "password"})
RACE_MESSAGE = "保存时发现同名记录刚刚已被他人创建，本次操作未生效。请刷新页面后重试。"

# Keys of the PostgreSQL advisory locks that serialise the name checks below
# (any fixed 64-bit numbers; storage.content_lock derives its keys from hashes).
_UNIT_NAMES_LOCK = 0x4C53_0001
_USERNAMES_LOCK = 0x4C53_0002


class Invalid(Refused):
    """Bad input for one field: the page shows the message at that field."""
    status = 400

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class UserUpdate(NamedTuple):
    changes: dict          # as audited; empty when nothing changed
    sessions_ended: bool


# ---------------------------------------------------------------- checks shared with the forms

def username_problem(username: str) -> str | None:
    """Names differing only in case would be told apart by the login, not by people."""
    taken = db.session.scalar(select(User.id).where(func.lower(User.username) == username.lower()))
    return "该用户名已被使用。" if taken is not None else None


def unit_name_problem(name: str, unit_id: int | None = None) -> str | None:
    """A unit name must be unique among units (other than ``unit_id``) and aliases:
    the importer resolves a written name through both."""
    other = db.session.scalar(select(Unit.id).where(Unit.name == name))
    if other is not None and other != unit_id:
        return "已有同名单位。"
    alias = db.session.scalar(select(UnitAlias).where(UnitAlias.alias == name))
    if alias is not None and alias.unit is None:
        return "该名称已登记为“不是单位”，请先在单位别名中删除该登记。"
    if alias is not None:
        return f"该名称已登记为“{alias.unit.name}”的别名，请先删除该别名。"
    return None


def alias_problem(alias: str) -> str | None:
    if db.session.scalar(select(UnitAlias.id).where(UnitAlias.alias == alias)) is not None:
        return f"别名“{alias}”已存在。"
    if db.session.scalar(select(Unit.id).where(Unit.name == alias)) is not None:
        return f"“{alias}”本身就是一个单位的名称，不能作为别名。"
    return None


# ---------------------------------------------------------------- helpers

def _check(user) -> None:
    if not may(user, "admin.manage"):
        raise Forbidden("您没有执行此操作的权限。")


def _lock(key: int) -> None:
    """Until the transaction ends, one writer at a time checks and writes these names.
    SQLite needs nothing: a writing request's transaction begins with BEGIN
    IMMEDIATE, so it is already the only writer."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _flush() -> None:
    try:
        db.session.flush()
    except IntegrityError:
        # The session must be rolled back now; the caller does so for every ServiceError.
        raise Refused(RACE_MESSAGE) from None


def _text(value, field: str, label: str, limit: int) -> str:
    value = (value or "").strip()
    if not value:
        raise Invalid(f"请填写{label}。", field)
    if len(value) > limit:
        raise Invalid(f"{label}不能超过 {limit} 字。", field)
    return value


def _role(role) -> str:
    if role not in Role.ALL:
        raise Invalid("请选择角色。", "role")
    return role


def _unit(unit_id) -> Unit:
    unit = db.session.get(Unit, unit_id) if isinstance(unit_id, int) and not isinstance(unit_id, bool) else None
    if unit is None:
        raise Invalid("请选择单位。", "unit_id")
    return unit


def _password(password: str) -> str:
    if problem := password_problem(password):
        raise Invalid(problem, "password")
    return hash_password(password)


# ---------------------------------------------------------------- users

def create_user(user, *, username: str, display_name: str, unit_id: int, role: str, password: str,
                active: bool = True) -> User:
    _check(user)
    username = _text(username, "username", "用户名", 64)
    if not re.fullmatch(USERNAME_PATTERN, username):
        raise Invalid(USERNAME_MESSAGE, "username")
    display_name = _text(display_name, "display_name", "姓名", 100)
    role = _role(role)
    unit = _unit(unit_id)
    password_hash = _password(password or "")
    _lock(_USERNAMES_LOCK)
    if problem := username_problem(username):
        raise Invalid(problem, "username")
    created = User(username=username, display_name=display_name, unit_id=unit.id, role=role,
                   active=bool(active), password_hash=password_hash)
    db.session.add(created)
    _flush()
    audit.append("user_created", user=user, details={
        "user_id": created.id, "username": created.username, "display_name": created.display_name,
        "role": created.role, "unit_id": created.unit_id, "unit": unit.name, "active": created.active})
    return created


def update_user(target: User, user, *, password: str | None = None, **fields) -> UserUpdate:
    """Change any of USER_FIELDS and optionally reset the password. A change of
    role, of active, or of the password bumps ``session_version``: every cookie
    the user holds names the old version and stops working."""
    _check(user)
    unknown = set(fields) - set(USER_FIELDS)
    if unknown:
        raise Refused(f"字段“{sorted(unknown)[0]}”不能修改。")
    new = dict(fields)
    if "display_name" in new:
        new["display_name"] = _text(new["display_name"], "display_name", "姓名", 100)
    if "role" in new:
        new["role"] = _role(new["role"])
    if "unit_id" in new:
        new["unit_id"] = _unit(new["unit_id"]).id
    if "active" in new:
        new["active"] = bool(new["active"])
    if target.id == user.id and (new.get("role", target.role) != target.role or not new.get("active", True)):
        # An admin demoting or disabling themself could leave nobody to undo it.
        raise Invalid("不能修改自己的角色或停用自己的账号，请由其他管理员操作。", "role")
    password_hash = _password(password) if password else None

    old_unit_id = target.unit_id
    diff = audit.changes(target, new)
    if "unit_id" in diff:
        names = dict(db.session.execute(select(Unit.id, Unit.name).where(
            Unit.id.in_([old_unit_id, target.unit_id]))).all())
        diff["unit"] = {"old": names.get(old_unit_id), "new": names.get(target.unit_id)}
    if password_hash is not None:
        target.password_hash = password_hash
        diff["password"] = "reset"   # never the password itself
    if not diff:
        return UserUpdate({}, False)
    sessions_ended = bool(SESSION_ENDING & diff.keys())
    if sessions_ended:
        target.session_version += 1
    _flush()
    audit.append("user_updated", user=user, details={
        "user_id": target.id, "username": target.username, "changes": diff, "sessions_ended": sessions_ended})
    return UserUpdate(diff, sessions_ended)


# ---------------------------------------------------------------- units and aliases

def _kind(kind) -> str:
    if kind not in UnitKind.values():
        raise Invalid("请选择类别。", "kind")
    return kind


def create_unit(user, *, name: str, kind: str) -> Unit:
    _check(user)
    name = _text(name, "name", "单位名称", 100)
    kind = _kind(kind)
    _lock(_UNIT_NAMES_LOCK)
    if problem := unit_name_problem(name):
        raise Invalid(problem, "name")
    unit = Unit(name=name, kind=kind)
    db.session.add(unit)
    _flush()
    audit.append("unit_created", user=user, details={"unit_id": unit.id, "name": name, "kind": unit.kind})
    return unit


def update_unit(unit: Unit, user, *, name: str, kind: str) -> dict:
    """Rename or reclassify a unit; returns the audited changes (empty: nothing changed)."""
    _check(user)
    name = _text(name, "name", "单位名称", 100)
    kind = _kind(kind)
    if name != unit.name:
        _lock(_UNIT_NAMES_LOCK)
        if problem := unit_name_problem(name, unit.id):
            raise Invalid(problem, "name")
    diff = audit.changes(unit, {"name": name, "kind": kind})
    if diff:
        _flush()
        audit.append("unit_updated", user=user, details={"unit_id": unit.id, "changes": diff})
    return diff


def set_robot(unit: Unit, user, *, kind: str | None, url: str | None, secret: str | None,
              keep_secret: bool = True) -> bool:
    """The unit's work-group robot (None/"" kind: none). An empty secret keeps the one
    set before unless ``keep_secret`` is False. The audit names the platform and the
    host, never the address's key or the secret. Whether anything changed."""
    from urllib.parse import urlsplit

    from workflow.notices.channels import check_robot_url
    from workflow.vocabulary import RobotKind

    _check(user)
    kind = (kind or "").strip() or None
    url = (url or "").strip() or None
    secret = (secret or "").strip() or None
    if kind is None:
        url = secret = None
        keep_secret = False
    else:
        if kind not in RobotKind.values():
            raise Invalid("机器人类型无效，请选择企业微信或钉钉。", "robot_kind")
        if not url:
            raise Invalid("请填写机器人的 Webhook 地址。", "robot_url")
        if len(url) > 500:
            raise Invalid("Webhook 地址不能超过 500 个字符。", "robot_url")
        if why := check_robot_url(url):
            raise Invalid(why, "robot_url")
        if secret and len(secret) > 200:
            raise Invalid("加签密钥不能超过 200 个字符。", "robot_secret")
    new_secret = secret if secret or not keep_secret else unit.robot_secret
    if kind != RobotKind.DINGTALK:
        new_secret = None     # 企业微信 robots are not signed
    before = (unit.robot_kind, unit.robot_url, unit.robot_secret)
    unit.robot_kind, unit.robot_url, unit.robot_secret = kind, url, new_secret
    if before == (unit.robot_kind, unit.robot_url, unit.robot_secret):
        return False
    _flush()
    audit.append("unit_robot_changed", user=user, details={
        "unit_id": unit.id, "unit": unit.name, "kind": kind or "", "host": urlsplit(url).hostname if url else "",
        "signed": bool(new_secret)})
    return True


#: The unit choice that records a phrase as naming no unit (kept as text by the importer).
NOT_A_UNIT = 0


def add_alias(user, *, alias: str, unit_id: int) -> UnitAlias:
    """``unit_id`` NOT_A_UNIT records a phrase that names no unit: imports keep it as text."""
    _check(user)
    alias = _text(alias, "alias", "别名", 100)
    unit = None if unit_id == NOT_A_UNIT else _unit(unit_id)
    _lock(_UNIT_NAMES_LOCK)
    if problem := alias_problem(alias):
        raise Invalid(problem, "alias")
    row = UnitAlias(alias=alias, unit_id=unit.id if unit else None)
    db.session.add(row)
    _flush()
    audit.append("alias_added", user=user, details={
        "alias_id": row.id, "alias": alias, "unit_id": unit.id if unit else None,
        "unit": unit.name if unit else None})
    return row


def remove_alias(row: UnitAlias, user) -> dict:
    """Returns the audited details (the row is gone after the flush)."""
    _check(user)
    details = {"alias_id": row.id, "alias": row.alias, "unit_id": row.unit_id,
               "unit": row.unit.name if row.unit else None}
    db.session.delete(row)
    _flush()
    audit.append("alias_removed", user=user, details=details)
    return details


__all__ = ["NOT_A_UNIT", "Forbidden", "Invalid", "Refused", "ServiceError", "UserUpdate", "add_alias", "alias_problem",
           "create_unit", "create_user", "remove_alias", "unit_name_problem", "update_unit", "update_user",
           "username_problem"]
