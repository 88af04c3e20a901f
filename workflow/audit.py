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
from sqlalchemy import event, insert, select, update
from sqlalchemy.orm import Session, attributes

from models import AuditEntry, AuditHead, Role
from workflow import pending
from workflow.extensions import db
from workflow.machine import EVENT_LABELS
from workflow.timeutil import utcnow
from workflow.vocabulary import (STATE_LABELS, DocumentShape, ExtensionState, MilestoneState, NameDecision, ReportKind,
                                 UnitKind)

GENESIS = "0" * 64
#: In ``session.info`` once the transaction has written (head_cache.writing reads it).
WROTE = "luoshi.wrote"

ACTION_LABELS = {
    # login_locked / account_locked: written before 2026-12 by the old account lockout; kept so old entries read.
    "login": "登录", "login_failed": "登录失败", "login_locked": "锁定期间尝试登录",
    "account_locked": "账号锁定", "login_alert": "登录异常提醒", "logout": "退出", "password_changed": "修改密码",
    "user_created": "新建用户", "user_updated": "修改用户", "unit_created": "新建单位",
    "unit_updated": "修改单位", "alias_added": "新增别名", "alias_removed": "删除别名",
    "plan_imported": "导入方案", "transition": "状态变更", "task_state": "任务状态随分工变化", "evidence_removed": "撤回佐证材料", "evidence_added": "添加佐证材料",
    "progress": "进度填报", "task_edited": "修改任务", "urge": "催办", "report_generated": "生成报告",
    "backup_restored": "从备份恢复", "receipt_reminded": "提醒签收",
    "round_opened": "发起调度", "round_filed": "调度报送", "round_closed": "结束调度",
    "extension_requested": "申请延期", "extension_approved": "牵头单位同意延期",
    "extension_declined": "牵头单位不同意延期", "extension_granted": "办公室批准延期",
    "extension_refused": "办公室不予延期", "milestones_set": "设置进度节点", "milestone_proposed": "提出进度节点",
    "milestone_approved": "确认进度节点", "milestone_refused": "不同意进度节点",
    "reminder_sent": "自动提醒", "escalated": "列入督办", "escalation_resolved": "解除督办",
    "bulletin_issued": "发布督办通报", "reminder_rule_changed": "修改提醒规则", "round_scheduled": "设置定时调度",
    "round_schedule_changed": "启用/停用定时调度", "notice_settings_changed": "修改通知设置",
    "unit_robot_changed": "设置单位工作群机器人",
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


_PENDING_KIND = "audit_entry"


_LOCK_HEAD = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()

#: Entries about no task that change nothing a page shows: the head's ``general_hash`` passes them
#: by, so that a sign-in does not make every kept task page stale (head_cache.task_stamp).
NOT_SHOWN_ON_PAGES = frozenset({"login", "login_failed", "login_alert", "logout", "password_changed",
                                "report_generated"})


def _lock_head(session) -> tuple[int, str]:
    """The head's seq and hash, its row locked until the transaction ends (made on first use)."""
    found = session.execute(_LOCK_HEAD).first()
    if found is None:
        session.execute(insert(AuditHead).values(id=1, seq=0, hash=GENESIS))
        return 0, GENESIS
    return found.seq, found.hash


def has_waiting(session) -> bool:
    """Whether the session's transaction holds entries not yet chained (it has written)."""
    return pending.waiting(session, _PENDING_KIND)


def entry_count() -> int:
    """How many entries the trail holds, from its head: seq counts them (append-only, from 1)."""
    return db.session.scalar(select(AuditHead.seq).where(AuditHead.id == 1)) or 0


def append(action: str, *, user=None, username: str | None = None, task=None, part=None, plan=None,
           from_state: str | None = None, to_state: str | None = None, reason: str | None = None,
           details: dict | None = None, ip: str | None = None):
    """Add one entry to the caller's transaction (never commits).

    The entry takes its place in the chain (seq, prev_hash, hash) when the
    transaction commits, or earlier if the transaction reads the audit trail
    (or calls ``chain_pending()``): the head row is locked
    once for all the entries of a transaction, and only for the commit itself,
    so that concurrent writers queue on it for as short a time as possible.
    A savepoint rolled back takes the entries written inside it along."""
    if ip is None and has_request_context():
        ip = request.remote_addr
    entry = AuditEntry(
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
    )
    pending.add(db.session(), _PENDING_KIND, entry)
    return entry


def chain_pending(session=None) -> None:
    """Give the entries written so far in this transaction their place in the
    chain, in the order they were written, under one lock of the head."""
    session = session if session is not None else db.session()
    entries = pending.take(session, _PENDING_KIND)
    if not entries:
        return
    seq, last_hash = _lock_head(session)
    rows, general = [], None
    for entry in entries:
        entry.seq, entry.prev_hash = seq + 1, last_hash
        entry.hash = compute_hash(entry)
        seq, last_hash = entry.seq, entry.hash
        rows.append({column: getattr(entry, column) for column in _ENTRY_COLUMNS})
        if entry.task_id is None and entry.action not in NOT_SHOWN_ON_PAGES:
            general = entry.hash
    moved = {"seq": seq, "hash": last_hash, **({"general_hash": general} if general is not None else {})}
    # Core statements, not the unit of work: the entries are never read back as objects in
    # this transaction, and a flush of them and of the head cost a write a third of its time.
    # Before the commit's own flush of the ORM's changes: every id an entry holds was read from a
    # flushed row when it was appended (append() takes ids, not objects), so nothing is missing yet.
    session.execute(insert(AuditEntry.__table__), rows)
    session.execute(update(AuditHead.__table__).where(AuditHead.id == 1).values(**moved))
    session.info[WROTE] = True   # no flush said so (head_cache.writing)
    held = session.identity_map.get(session.identity_key(AuditHead, 1))
    if held is not None:
        for column, value in moved.items():
            attributes.set_committed_value(held, column, value)


_ENTRY_COLUMNS = [c.key for c in AuditEntry.__table__.columns if c.key != "id"]


@event.listens_for(Session, "before_commit")
def _chain_before_commit(session):
    if pending.committing_outermost(session):
        chain_pending(session)


@event.listens_for(Session, "do_orm_execute")
def _chain_before_reading_entries(state):
    # A transaction that reads the audit trail sees the entries it wrote, as it
    # would any other row it added (autoflush); it takes the head lock then.
    if (state.is_select and pending.waiting(state.session, _PENDING_KIND)
            and any(m.class_ is AuditEntry for m in state.all_mappers)):
        chain_pending(state.session)


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


def head_row():
    """The head's (seq, hash), or None before the first entry. Only these columns: a backup of an
    older schema is read before ``flask db upgrade`` adds the later ones."""
    return db.session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()


def head_hash() -> str:
    head = head_row()
    return head.hash if head else GENESIS


@dataclass
class Problem:
    seq: int | None
    entry_id: int | None
    message: str


#: Entries read per query by verify(): plain rows, by seq, so memory stays that of one chunk.
VERIFY_CHUNK = 2000


def _entries_in_order():
    """Every entry as a plain row (no ORM objects piling up in the session), in seq order, read in
    keyset chunks: constant memory however long the trail."""
    columns = list(AuditEntry.__table__.c)
    last = None
    while True:
        stmt = select(*columns).order_by(AuditEntry.seq).limit(VERIFY_CHUNK)
        if last is not None:
            stmt = stmt.where(AuditEntry.seq > last)
        rows = db.session.execute(stmt).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify() -> list[Problem]:
    """Walk the chain in seq order; return every break found (empty: intact)."""
    problems: list[Problem] = []
    prev_hash = GENESIS
    expected_seq = 1
    for entry in _entries_in_order():
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
    head = head_row()
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


# ---------------------------------------------------------------- details in words
#
# The one place that turns an entry's ``details`` (JSON written by the services,
# the admin views, the importer, the report archive, backup restore and login)
# into Chinese for the audit page. A key this table does not know still shows,
# under its own name, so nothing recorded is ever hidden.

DETAIL_LABELS = {
    "event": "操作", "unit": "单位", "unit_id": "单位编号", "units": "单位", "user_id": "用户编号",
    "username": "用户名", "display_name": "姓名", "role": "角色", "active": "启用", "changes": "修改内容",
    "sessions_ended": "已使其重新登录", "name": "名称", "kind": "类型", "alias_id": "别名编号", "alias": "别名",
    "submission": "提交次序", "evidence": "佐证材料", "carried": "沿用以前提交的材料", "statement": "完成情况说明", "derived": "随承办单位状态变化",
    "percent": "完成比例", "note": "说明", "text": "材料内容", "filename": "文件名", "sha256": "文件 sha256",
    "size": "大小", "archive": "报告存档编号", "params": "报告参数", "from_archive": "取自已有存档",
    "pages": "页数", "audit_head": "审计链头", "audit_seq": "审计记录序号", "seconds": "生成耗时",
    "counts": "导入统计", "warnings": "提示条数", "shape": "读取方式", "names_decided": "审核中决定的单位名称",
    "deadlines_taken": "采用的句中时限", "failures": "失败次数", "window": "时间范围",
    "archive_sha256": "备份文件 sha256", "backend": "数据库类型", "snapshot_at": "快照时间",
    "created_at": "备份时间", "evidence_files": "佐证文件数", "report_files": "报告文件数",
    "missing": "缺失文件数", "state": "状态", "from_state": "原状态", "to_state": "新状态",
    "round": "调度编号", "title": "调度名称", "due_on": "报送截止", "late": "逾期报送", "red_released": "解除红色预警",
    "extension": "延期申请编号", "old_deadline": "申请时的完成时限", "new_deadline": "申请延至",
    "progress": "进度", "deadline_before": "调整前的现行时限",
    "red_held": "红色预警保持至进度赶上", "milestone": "节点编号", "on": "节点日期",
    "milestones_before": "原进度节点", "milestones": "进度节点", "proposals_replaced": "被取代的待确认节点",
    "occasion": "提醒时点", "target": "所提醒的日期", "sweep": "巡查编号", "escalation": "督办编号",
    "reminders": "已提醒次数", "escalations": "督办编号", "newly_named": "本次新通报",
    "schedule": "定时调度编号", "day": "发起日", "due_days": "报送期限（天）", "email": "填写了邮箱",
    "notify_email": "邮件通知", "notify_robot": "工作群通知", "host": "机器人地址（主机）", "signed": "加签",
}
# A closed round's counts (round_services.filing_counts): "missing" is 未报送 there, not missing files.
_ROUND_COUNTS = {"entries": "应报送任务", "filed": "已报送", "late": "逾期报送", "missing": "未报送"}
#: Where one key means something else in one action.
_ACTION_DETAIL_LABELS = {
    "backup_restored": {"archive": "备份文件", "audit_head": "备份时的审计链头"},
    "report_generated": {"kind": "报告类型", "sha256": "报告 sha256", "audit_head": "报告依据的审计链头"},
    "unit_created": {"kind": "单位类型"}, "unit_updated": {"kind": "单位类型"},
    "evidence_added": {"kind": "材料形式", "evidence": "材料编号"},
    "evidence_removed": {"kind": "材料形式", "evidence": "材料编号"},
    "plan_imported": {"sha256": "文件 sha256"},
    "extension_requested": {"late": "超过时限后申请", "progress": "申请时进度"},
    "round_closed": _ROUND_COUNTS,
    "reminder_sent": {"kind": "提醒类型"}, "escalated": {"kind": "督办原因"},
    "escalation_resolved": {"kind": "督办原因"}, "reminder_rule_changed": {"kind": "提醒类型"},
    "round_scheduled": {"kind": "周期"}, "unit_robot_changed": {"kind": "机器人类型"},
}
_EVIDENCE_KINDS = {"text": "文字材料", "file": "文件"}
_BACKENDS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
_USER_FIELDS = {"display_name": "姓名", "role": "角色", "unit": "单位", "unit_id": "单位编号", "active": "启用",
                "password": "密码", "name": "名称", "kind": "类型"}
_REPORT_PARAMS = {"kind": "类型", "plan": "方案编号", "unit": "单位编号", "item": "事项编号", "round": "调度编号", "as_of": "截至",
                  "near_days": "临期天数", "layout": "版式"}
EMPTY = "（空）"


def _vocabulary_label(vocabulary, v) -> str:
    """A stored value's label; a value the vocabulary does not know reads as any other value."""
    return vocabulary(v).label if isinstance(v, str) and v in vocabulary.values() else _plain_value(v)


def _plain_value(v) -> str:
    """Any value, readably: 是/否, ``a、b`` for a list, ``键：值，…`` for a mapping."""
    if v is None or v == "":
        return EMPTY
    if isinstance(v, bool):
        return "是" if v else "否"
    if isinstance(v, dict):
        return "，".join(f"{k}：{_plain_value(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return "、".join(_plain_value(x) for x in v) if v else "无"
    return str(v)


def _size(n) -> str:
    if not isinstance(n, int) or isinstance(n, bool):
        return _plain_value(n)
    if n < 1024:
        return f"{n} 字节"
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


def _field_value(field: str, v, action: str) -> str:
    """One value of a user, unit or task field, as the pages show it."""
    if field == "role":
        return Role.LABELS.get(v, _plain_value(v))
    if field == "kind" and action.startswith("unit_"):
        return _vocabulary_label(UnitKind, v)
    if field == "password" and v == "reset":
        return "已重置"
    return _plain_value(v)


def _changes(changes, action: str, labels: dict) -> str:
    if not isinstance(changes, dict):
        return _plain_value(changes)
    if "unit" in changes and "unit_id" in changes:
        changes = {k: v for k, v in changes.items() if k != "unit_id"}   # the name says it
    return "；".join(f"{labels.get(field, field)}：{_change(field, change, action)}"
                    for field, change in changes.items())


def _change(field: str, change, action: str) -> str:
    if isinstance(change, dict) and set(change) <= {"old", "new"}:
        return (f"{_field_value(field, change.get('old'), action)} → "
                f"{_field_value(field, change.get('new'), action)}")
    return _field_value(field, change, action)


def _value(key: str, v, action: str) -> str:
    if key == "event":
        return EVENT_LABELS.get(v, _plain_value(v))
    if key in ("state", "from_state", "to_state"):
        # An extension request's and a milestone's states are their own vocabularies.
        if action.startswith("extension_"):
            return _vocabulary_label(ExtensionState, v)
        if action.startswith("milestone"):
            return _vocabulary_label(MilestoneState, v)
        return STATE_LABELS.get(v, _plain_value(v))
    if key == "progress" and action.startswith("extension_"):
        return f"{v}%"
    if key == "role":
        return Role.LABELS.get(v, _plain_value(v))
    if key == "changes":
        return _changes(v, action, _USER_FIELDS)
    if key == "kind":
        if action in ("evidence_added", "evidence_removed"):
            return _EVIDENCE_KINDS.get(v, _plain_value(v))
        if action == "report_generated":
            return _vocabulary_label(ReportKind, v)
        return _field_value("kind", v, action)
    if key == "backend":
        return _BACKENDS.get(v, _plain_value(v))
    if key == "size":
        return _size(v)
    if key == "percent":
        return f"{v}%"
    if key == "seconds":
        return f"{v} 秒"
    if key == "submission":
        return f"第 {v} 次提交"
    if key in ("evidence", "carried") and isinstance(v, list):
        return "、".join(f"#{x}" for x in v) if v else "无"
    if key in ("evidence", "archive", "alias_id", "unit_id", "user_id") and isinstance(v, int):
        return f"#{v}"
    if key == "audit_head" and isinstance(v, dict):
        return f"第 {v.get('seq')} 条（{str(v.get('hash', ''))[:16]}…）"
    if key == "counts" and isinstance(v, dict):
        from workflow.importer.load import COUNT_LABELS   # here: the importer's loader imports this module

        return "，".join(f"{COUNT_LABELS.get(k, k)} {_plain_value(n)}" for k, n in v.items())
    if key == "shape" and isinstance(v, str):
        return DocumentShape.label_of(v)
    if key == "names_decided" and isinstance(v, dict):
        return "，".join(f"“{name}”{NameDecision.label_of(d)}" for name, d in v.items()) if v else "无"
    if key == "params" and isinstance(v, dict):
        shown = {k: (ReportKind.label_of(x) if k == "kind" else x) for k, x in v.items() if x is not None}
        return "，".join(f"{_REPORT_PARAMS.get(k, k)} {_plain_value(x)}" for k, x in shown.items())
    return _plain_value(v)


def describe(entry) -> list[tuple[str, str]]:
    """An entry's details as (Chinese label, value in words), in the order written.

    An id is left out where the entry also carries the name it stands for
    (``unit_id`` beside ``unit``, ``user_id`` beside ``username``). A task edit's
    details are its fields (services.EDITABLE_FIELDS), each with old and new, and the units whose receipt it cleared."""
    details = entry.details
    if not details:
        return []
    action = entry.action or ""
    if not isinstance(details, dict):
        return [("详情", _plain_value(details))]
    if action == "task_edited":
        from workflow.services import EDIT_DETAIL_LABELS   # here: the services import this module

        return [(EDIT_DETAIL_LABELS.get(f, f), _change(f, ch, action)) for f, ch in details.items()]
    labels = {**DETAIL_LABELS, **_ACTION_DETAIL_LABELS.get(action, {})}
    out = []
    for key, v in details.items():
        if v is None:
            continue
        if (key == "unit_id" and "unit" in details) or (key == "user_id" and "username" in details):
            continue
        out.append((labels.get(key, key), _value(key, v, action)))
    return out
