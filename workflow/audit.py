"""Append to and verify the hash-chained audit trail.

Each entry's hash is sha256 over a canonical JSON of its own content plus the
previous entry's hash, so an edited, removed or reordered entry breaks the
chain at a place ``verify`` can name.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date

from flask import has_request_context, request
from sqlalchemy import select

from workflow.extensions import db
from workflow.timeutil import utcnow

GENESIS = "0" * 64

ACTION_LABELS = {
    # login_locked / account_locked: written before 2026-12 by the old account lockout; kept so old entries read.
    "login": "登录", "login_failed": "登录失败", "login_locked": "锁定期间尝试登录",
    "account_locked": "账号锁定", "login_alert": "登录异常提醒", "logout": "退出", "password_changed": "修改密码",
    "user_created": "新建用户", "user_updated": "修改用户", "unit_created": "新建单位",
    "unit_updated": "修改单位", "alias_added": "新增别名", "alias_removed": "删除别名",
    "plan_imported": "导入方案", "transition": "状态变更", "task_state": "任务状态随分工变化", "evidence_removed": "撤回佐证材料", "evidence_added": "添加佐证材料",
    "progress": "进度填报", "task_edited": "修改任务", "urge": "催办", "report_generated": "生成报告",
    "backup_restored": "从备份恢复",
}


def canonical(entry) -> bytes:
    content = {
        "seq": entry.seq,
        "at": entry.at.isoformat(timespec="microseconds"),
        "user_id": entry.user_id,
        "username": entry.username,
        "unit_id": entry.unit_id,
        "ip": entry.ip,
        "action": entry.action,
        "task_id": entry.task_id,
        "part_id": entry.part_id,
        "plan_id": entry.plan_id,
        "from_state": entry.from_state,
        "to_state": entry.to_state,
        "reason": entry.reason,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
    }
    return json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def compute_hash(entry) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


def _lock_head():
    from models import AuditHead

    head = db.session.scalar(select(AuditHead).where(AuditHead.id == 1).with_for_update())
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS)
        db.session.add(head)
        db.session.flush()
    return head


def append(action: str, *, user=None, username: str | None = None, task=None, part=None, plan=None,
           from_state: str | None = None, to_state: str | None = None, reason: str | None = None,
           details: dict | None = None, ip: str | None = None):
    """Add one entry in the caller's transaction (flushes, never commits)."""
    from models import AuditEntry

    head = _lock_head()
    if ip is None and has_request_context():
        ip = request.remote_addr
    entry = AuditEntry(
        seq=head.seq + 1,
        at=utcnow(),
        user_id=user.id if user is not None else None,
        username=user.username if user is not None else username,
        unit_id=user.unit_id if user is not None else None,
        ip=ip,
        action=action,
        task_id=task.id if task is not None else (part.task_id if part is not None else None),
        part_id=part.id if part is not None else None,
        plan_id=plan.id if plan is not None else None,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        details=_plain(details),
        prev_hash=head.hash,
    )
    entry.hash = compute_hash(entry)
    db.session.add(entry)
    head.seq = entry.seq
    head.hash = entry.hash
    db.session.flush()
    return entry


def _plain(details):
    """JSON round trip, so the hash is computed over exactly what is stored."""
    if details is None:
        return None
    return json.loads(json.dumps(details, ensure_ascii=False, default=str))


def changes(obj, new_values: dict, *, apply: bool = True) -> dict:
    """The audited diff of an edit: ``{field: {"old": …, "new": …}}`` for each
    field of ``new_values`` whose value differs from ``obj``'s, in the order
    given; unchanged fields are left out, so an empty result means "nothing to
    record". Values are JSON-safe (a date as its ISO string), so what the
    caller compares is what the entry stores. With ``apply`` (the default) the
    new values are also set on ``obj``: the caller validates first, or rolls
    back on a refusal found after."""
    diff = {}
    for field, value in new_values.items():
        old = getattr(obj, field)
        if old != value:
            diff[field] = {"old": _json_value(old), "new": _json_value(value)}
            if apply:
                setattr(obj, field, value)
    return diff


def _json_value(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, date):   # datetime too
        return value.isoformat()
    return str(value)


def head_hash() -> str:
    from models import AuditHead

    head = db.session.get(AuditHead, 1)
    return head.hash if head else GENESIS


@dataclass
class Problem:
    seq: int | None
    entry_id: int | None
    message: str


def verify() -> list[Problem]:
    """Walk the chain in seq order; return every break found (empty: intact)."""
    from models import AuditEntry, AuditHead

    problems: list[Problem] = []
    prev_hash = GENESIS
    expected_seq = 1
    for entry in db.session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).yield_per(500):
        if entry.seq != expected_seq:
            problems.append(Problem(entry.seq, entry.id,
                                    f"第 {expected_seq} 条至第 {entry.seq - 1} 条记录缺失或顺序被改动"))
            expected_seq = entry.seq
        if entry.prev_hash != prev_hash:
            problems.append(Problem(entry.seq, entry.id, f"第 {entry.seq} 条记录的前序哈希不符：之前的记录被删除、改动或调换了顺序"))
        if compute_hash(entry) != entry.hash:
            problems.append(Problem(entry.seq, entry.id, f"第 {entry.seq} 条记录的内容与其哈希不符：该记录被篡改"))
        prev_hash = entry.hash
        expected_seq += 1
    head = db.session.get(AuditHead, 1)
    last = expected_seq - 1
    if head is not None and (head.seq != last or head.hash != prev_hash):
        # Name the entries, so that the office knows which record to look for.
        if head.seq > last:
            where = f"第 {head.seq} 条" if head.seq == last + 1 else f"第 {last + 1} 条至第 {head.seq} 条"
            message = f"链尾与记录不符：{where}记录（链尾）被删除"
        elif head.seq < last:
            message = f"链尾与记录不符：第 {head.seq + 1} 条至第 {last} 条记录不是由系统写入的"
        else:
            message = f"链尾与记录不符：第 {last} 条记录（链尾）被改动或替换"
        problems.append(Problem(head.seq, None, message))
    return problems
