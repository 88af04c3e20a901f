"""The services on the seed plan: full cycles, the task following its parts,
one audit entry per transition in the caller's transaction, permissions,
evidence immutability, returns and resubmissions, closing and reopening."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.helpers import find_seed_task as find_task, unit_user, user_named as user
from workflow import audit, services
from workflow.demo_activity import make_pdf, make_png
from workflow.extensions import db
from workflow.services import Forbidden, Refused, Stale
from workflow.vocabulary import CLOSED, IN_PROGRESS, PLANNED, SUBMITTED, VERIFIED

PDF = make_pdf("ledger")
PNG = make_png(1)


@pytest.fixture
def db_template():
    return "seed"


pytestmark = pytest.mark.usefixtures("app_context")


# ---------------------------------------------------------------- helpers

def staff(unit):
    return unit_user(unit, "staff")


def leader(unit):
    return unit_user(unit, "leader")


def unrelated_unit(task):
    from models import Unit, UnitKind

    involved = {u.id for u in task.lead_units} | {p.unit_id for p in task.parts}
    return db.session.scalar(select(Unit).where(Unit.kind != UnitKind.OFFICE, Unit.id.not_in(involved))
                             .order_by(Unit.id))


def transitions_of(part):
    from models import AuditEntry

    return db.session.scalars(select(AuditEntry).where(AuditEntry.part_id == part.id,
                                                       AuditEntry.action == "transition")
                              .order_by(AuditEntry.seq)).all()


def audit_count() -> int:
    from models import AuditEntry

    return db.session.scalar(select(func.count(AuditEntry.id)))


def commit():
    db.session.commit()


def work_until_submitted(part, *, statement="已完成政策宣传3场，覆盖企业45家，台账已归档。", by=None):
    by = by or staff(part.unit)
    if part.state == PLANNED:
        services.start_part(part, by)
    services.add_text_evidence(part, by, "活动照片12张、签到表3份已存档")
    services.submit_part(part, by, statement=statement)
    commit()
    return part


# ---------------------------------------------------------------- full cycles

def test_one_part_task_through_the_full_cycle():
    from models import Notification

    task = find_task(parts=1, lead_owns_part=False)
    part = task.parts[0]
    worker, checker, office = staff(part.unit), leader(task.lead_units[0]), user("office")
    assert (task.state, part.state) == (PLANNED, PLANNED)

    services.start_part(part, worker)
    commit()
    assert (part.state, task.state) == (IN_PROGRESS, IN_PROGRESS)

    services.record_progress(part, worker, 40, "已完成政策宣传3场，覆盖企业45家")
    evidence = services.add_text_evidence(part, worker, "会议纪要（周政办纪〔2022〕12号）")
    commit()
    assert part.progress == 40 and evidence.is_pending

    services.submit_part(part, worker, statement="已按要求完成，佐证材料已上传。")
    commit()
    assert (part.state, task.state) == (SUBMITTED, SUBMITTED)
    submission = part.submissions[0]
    assert (submission.number, submission.outcome, submission.submitted_by_id) == (1, "pending", worker.id)
    assert evidence.submission_id == submission.id and part.progress == 100
    notified = {n.user_id for n in db.session.scalars(select(Notification).where(
        Notification.task_id == task.id, Notification.kind == "submitted"))}
    assert checker.id in notified

    services.verify_part(part, checker)
    commit()
    assert (part.state, task.state) == (VERIFIED, VERIFIED)
    assert (submission.outcome, submission.decided_by_id) == ("verified", checker.id)

    services.close_task(task, office)
    commit()
    assert task.state == CLOSED and part.state == VERIFIED

    steps = [(e.from_state, e.to_state, e.user_id) for e in transitions_of(part)]
    assert steps == [(PLANNED, IN_PROGRESS, worker.id), (IN_PROGRESS, SUBMITTED, worker.id),
                     (SUBMITTED, VERIFIED, checker.id)]
    assert audit.verify() == []


def test_multi_part_task_follows_its_parts():
    task = find_task(parts=2, lead_owns_part=False)
    a, b = task.parts
    checker = leader(task.lead_units[0])

    services.start_part(a, staff(a.unit))
    commit()
    assert task.state == IN_PROGRESS          # one part started is enough
    work_until_submitted(a)
    assert task.state == IN_PROGRESS          # b has not even started

    services.start_part(b, leader(b.unit))
    commit()
    assert task.state == IN_PROGRESS
    work_until_submitted(b)
    assert task.state == SUBMITTED            # every part handed in

    services.verify_part(a, checker)
    commit()
    assert (a.state, b.state, task.state) == (VERIFIED, SUBMITTED, SUBMITTED)

    services.return_part(b, checker, reason="佐证材料不完整，请补充活动照片")
    commit()
    assert (b.state, task.state) == (IN_PROGRESS, IN_PROGRESS)   # back with the unit

    services.add_text_evidence(b, staff(b.unit), "补充活动照片6张")
    services.submit_part(b, staff(b.unit), statement="已按退回意见补充照片。")
    commit()
    assert task.state == SUBMITTED
    services.verify_part(b, checker)
    commit()
    assert task.state == VERIFIED

    derived = [(e.from_state, e.to_state) for e in db.session.scalars(select_audit("task_state", task))]
    assert derived == [(PLANNED, IN_PROGRESS), (IN_PROGRESS, SUBMITTED), (SUBMITTED, IN_PROGRESS),
                       (IN_PROGRESS, SUBMITTED), (SUBMITTED, VERIFIED)]


def select_audit(action, task):
    from models import AuditEntry

    return select(AuditEntry).where(AuditEntry.action == action, AuditEntry.task_id == task.id).order_by(AuditEntry.seq)


# ---------------------------------------------------------------- one audit entry per transition, same transaction

def _to_state(part, task, state):
    """Bring a one-part task's part to ``state`` through the services."""
    if state == PLANNED:
        return
    if state == IN_PROGRESS:
        services.start_part(part, staff(part.unit))
    else:
        work_until_submitted(part)
    if state == VERIFIED:
        services.verify_part(part, leader(task.lead_units[0]))
    commit()


@pytest.mark.parametrize("source,event,who,reason", [
    (PLANNED, "start", "staff", None),
    (IN_PROGRESS, "submit", "staff", None),
    (SUBMITTED, "verify", "checker", None),
    (SUBMITTED, "return", "checker", "佐证材料不完整，请补充活动照片"),
])
def test_each_transition_writes_one_audit_entry_and_rolls_back_with_it(source, event, who, reason):
    from models import AuditHead, TaskPart

    task = find_task(parts=1, lead_owns_part=False)
    part = task.parts[0]
    _to_state(part, task, source)
    if event == "submit":
        services.add_text_evidence(part, staff(part.unit), "台账已更新")
        commit()
    actor = staff(part.unit) if who == "staff" else leader(task.lead_units[0])
    part_id, version = part.id, part.version
    before, head_before = audit_count(), (db.session.get(AuditHead, 1).seq, db.session.get(AuditHead, 1).hash)
    entries_before = len(transitions_of(part))

    inputs = {"submit": {"statement": "已全部完成。"}, "return": {"reason": reason}}.get(event, {})
    services.apply(part, event, actor, **inputs)
    db.session.flush()
    new = transitions_of(part)[entries_before:]
    assert len(new) == 1                                          # exactly one, visible in this transaction
    entry = new[0]
    assert (entry.from_state, entry.to_state, entry.reason) == (source, part.state, reason)
    assert (entry.user_id, entry.username, entry.unit_id) == (actor.id, actor.username, actor.unit_id)
    assert entry.details["event"] == event

    db.session.rollback()                                          # the caller's transaction fails
    part = db.session.get(TaskPart, part_id)
    assert (part.state, part.version) == (source, version)
    assert audit_count() == before and len(transitions_of(part)) == entries_before
    head = db.session.get(AuditHead, 1)
    assert (head.seq, head.hash) == head_before
    assert audit.verify() == []


def test_close_and_reopen_write_one_entry_each_with_reason():
    task = find_task(parts=1, lead_owns_part=False)
    part = task.parts[0]
    _to_state(part, task, VERIFIED)
    office, office2 = user("office"), user("office2")

    with pytest.raises(Refused) as info:
        services.reopen_task(task, office, reason="  ")
    assert "理由" in info.value.message
    db.session.rollback()

    services.close_task(task, office2)
    commit()
    assert task.state == CLOSED
    services.reopen_task(task, office, reason="复核发现台账数据有误")
    commit()
    assert (task.state, part.state) == (IN_PROGRESS, IN_PROGRESS)
    assert part.submissions[-1].outcome == "reopened"

    task_entries = [(e.from_state, e.to_state, e.reason, e.user_id)
                    for e in db.session.scalars(select_audit("transition", task)) if e.part_id is None]
    assert task_entries == [(VERIFIED, CLOSED, None, office2.id), (CLOSED, IN_PROGRESS, "复核发现台账数据有误", office.id)]
    part_entries = transitions_of(part)
    assert (part_entries[-1].from_state, part_entries[-1].to_state, part_entries[-1].reason) == (
        VERIFIED, IN_PROGRESS, "复核发现台账数据有误")

    # The unit can work on and hand it in again.
    work_until_submitted(part)
    assert task.state == SUBMITTED       # following its parts again once reopened
    services.verify_part(part, leader(task.lead_units[0]))
    commit()
    assert task.state == VERIFIED


def test_close_needs_a_verified_task():
    task = find_task(parts=1, lead_owns_part=False)
    work_until_submitted(task.parts[0])
    with pytest.raises(Refused) as info:
        services.close_task(task, user("office"))
    assert "已提交" in info.value.message
    db.session.rollback()
    assert task.state == SUBMITTED


# ---------------------------------------------------------------- forbidden: nothing changes

def _snapshot(part):
    from models import Evidence, Notification, ProgressNote, Submission

    db.session.expire_all()
    return (part.state, part.version, part.task.state, part.task.version, audit_count(),
            *(db.session.scalar(select(func.count()).select_from(m))
              for m in (Notification, ProgressNote, Submission, Evidence)))


@pytest.mark.parametrize("who,call", [
    ("unrelated_staff", lambda p, u: services.start_part(p, u)),
    ("unrelated_leader", lambda p, u: services.record_progress(p, u, 50, "已走访企业20家")),
    ("viewer", lambda p, u: services.start_part(p, u)),
    ("viewer", lambda p, u: services.add_text_evidence(p, u, "材料")),
    ("office", lambda p, u: services.start_part(p, u)),
    ("lead_leader", lambda p, u: services.start_part(p, u)),
])
def test_forbidden_on_a_planned_part(who, call):
    task = find_task(parts=1, lead_owns_part=False)
    part = task.parts[0]
    actor = {
        "unrelated_staff": lambda: staff(unrelated_unit(task)),
        "unrelated_leader": lambda: leader(unrelated_unit(task)),
        "viewer": lambda: user("leader"),
        "office": lambda: user("office"),
        "lead_leader": lambda: leader(task.lead_units[0]),
    }[who]()
    before = _snapshot(part)
    with pytest.raises(Forbidden) as info:
        call(part, actor)
    assert info.value.status == 403 and "权限" in info.value.message
    db.session.rollback()
    assert _snapshot(part) == before


@pytest.mark.parametrize("who,event", [
    ("part_staff", "verify"), ("part_leader", "verify"), ("lead_staff", "verify"), ("viewer", "verify"),
    ("office", "verify"), ("unrelated_leader", "verify"), ("part_staff", "return"), ("lead_staff", "return"),
])
def test_forbidden_on_a_submitted_part(who, event):
    task = find_task(parts=1, lead_owns_part=False)
    part = work_until_submitted(task.parts[0])
    lead = task.lead_units[0]
    actor = {
        "part_staff": lambda: staff(part.unit), "part_leader": lambda: leader(part.unit),
        "lead_staff": lambda: staff(lead), "viewer": lambda: user("leader"), "office": lambda: user("office"),
        "unrelated_leader": lambda: leader(unrelated_unit(task)),
    }[who]()
    before = _snapshot(part)
    with pytest.raises(Forbidden):
        services.apply(part, event, actor, **({"reason": "不符合要求"} if event == "return" else {}))
    db.session.rollback()
    assert _snapshot(part) == before


def test_unit_users_cannot_close_urge_or_edit():
    task = find_task(parts=1, lead_owns_part=False)
    part = task.parts[0]
    _to_state(part, task, VERIFIED)
    before = _snapshot(part)
    for actor in (leader(task.lead_units[0]), staff(part.unit), user("leader")):
        for call in (lambda: services.close_task(task, actor),
                     lambda: services.reopen_task(task, actor, reason="重新核实"),
                     lambda: services.urge(task, actor),
                     lambda: services.edit_task(task, actor, text="改动")):
            with pytest.raises(Forbidden):
                call()
            db.session.rollback()
    assert _snapshot(part) == before


def test_nobody_verifies_their_own_submission():
    task = find_task(parts=1, lead_owns_part=True)
    part = task.parts[0]
    boss = leader(task.lead_units[0])
    assert part.unit_id == boss.unit_id
    work_until_submitted(part, by=boss)
    before = _snapshot(part)
    for decide in (lambda: services.verify_part(part, boss), lambda: services.return_part(part, boss, "自查")):
        with pytest.raises(Forbidden) as info:
            decide()
        assert "本人提交" in info.value.message and "职责分离" in info.value.message
        db.session.rollback()
    assert _snapshot(part) == before


def test_a_stale_version_changes_nothing():
    task = find_task(parts=1, lead_owns_part=False)
    part = work_until_submitted(task.parts[0])
    seen = part.version - 1
    before = _snapshot(part)
    with pytest.raises(Stale) as info:
        services.verify_part(part, leader(task.lead_units[0]), expected_version=seen)
    assert "已被他人更新" in info.value.message
    db.session.rollback()
    assert _snapshot(part) == before
    services.verify_part(part, leader(task.lead_units[0]), expected_version=part.version)
    commit()
    assert part.state == VERIFIED


# ---------------------------------------------------------------- evidence

def test_evidence_is_immutable_once_submitted():
    from models import Evidence

    task = find_task(parts=1, lead_owns_part=False)
    part = task.parts[0]
    worker = staff(part.unit)
    services.start_part(part, worker)
    text = services.add_text_evidence(part, worker, "走访企业20家")
    file = services.add_file_evidence(part, worker, PDF, "工作台账.pdf", "2022年台账")
    withdrawn = services.add_text_evidence(part, worker, "传错了")
    commit()

    # Pending evidence may be withdrawn (and the withdrawal is audited).
    withdrawn_id = withdrawn.id
    services.remove_pending_evidence(withdrawn, worker)
    commit()
    assert db.session.get(Evidence, withdrawn_id) is None
    from models import AuditEntry
    removed = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "evidence_removed")).all()
    assert [e.details["evidence"] for e in removed] == [withdrawn_id]

    services.submit_part(part, worker, statement="已完成")
    commit()
    submission = part.submissions[0]
    assert {e.id for e in submission.evidence} == {text.id, file.id}
    assert text.submission_id == file.submission_id == submission.id

    for evidence in (text, file):
        with pytest.raises(Refused) as info:
            services.remove_pending_evidence(evidence, worker)
        assert "不能删除" in info.value.message
        db.session.rollback()
        assert db.session.get(Evidence, evidence.id).submission_id == submission.id
    # And nothing can be added while it waits for verification.
    with pytest.raises(Refused):
        services.add_text_evidence(part, worker, "再补一份")
    db.session.rollback()
    assert len(part.evidence) == 2


def test_return_then_resubmit_keeps_the_first_submission():
    from models import Notification

    task = find_task(parts=1, lead_owns_part=False)
    part = task.parts[0]
    worker, checker = staff(part.unit), leader(task.lead_units[0])
    services.start_part(part, worker)
    first = services.add_file_evidence(part, worker, PDF, "工作台账.pdf")
    services.submit_part(part, worker, statement="已完成第一批。")
    commit()

    with pytest.raises(Refused):
        services.return_part(part, checker, reason="")
    db.session.rollback()
    assert part.state == SUBMITTED

    services.return_part(part, checker, reason="佐证材料不完整，请补充活动照片")
    commit()
    assert part.state == IN_PROGRESS
    returned = db.session.scalar(select(Notification).where(Notification.kind == "returned",
                                                            Notification.user_id == worker.id))
    assert returned is not None and "佐证材料不完整，请补充活动照片" in returned.message

    second = services.add_file_evidence(part, worker, PNG, "活动照片.png", "补充照片")
    services.submit_part(part, worker, statement="已补充活动照片。")
    commit()

    one, two = part.submissions
    assert (one.number, one.outcome, one.decision_reason, one.decided_by_id) == (
        1, "returned", "佐证材料不完整，请补充活动照片", checker.id)
    assert [e.id for e in one.evidence] == [first.id]
    assert (two.number, two.outcome, two.statement) == (2, "pending", "已补充活动照片。")
    assert [e.id for e in two.evidence] == [second.id]

    services.verify_part(part, checker)
    commit()
    assert (one.outcome, two.outcome) == ("returned", "verified")
    assert [(e.from_state, e.to_state, e.reason) for e in transitions_of(part)] == [
        (PLANNED, IN_PROGRESS, None), (IN_PROGRESS, SUBMITTED, None),
        (SUBMITTED, IN_PROGRESS, "佐证材料不完整，请补充活动照片"), (IN_PROGRESS, SUBMITTED, None),
        (SUBMITTED, VERIFIED, None)]
    assert audit.verify() == []


def test_progress_rules():
    task = find_task(parts=1, lead_owns_part=False)
    part = task.parts[0]
    worker = staff(part.unit)
    with pytest.raises(Refused) as info:
        services.record_progress(part, worker, 10, "还没开始")
    assert "推进中" in info.value.message
    db.session.rollback()
    services.start_part(part, worker)
    commit()
    for percent, note in ((101, "超了"), (-1, "负数"), (50, "   ")):
        with pytest.raises(Refused):
            services.record_progress(part, worker, percent, note)
        db.session.rollback()
    services.record_progress(part, worker, 60, "已兑现奖补资金48.6万元")
    commit()
    assert part.progress == 60 and [n.note for n in part.progress_notes] == ["已兑现奖补资金48.6万元"]


def test_urge_notifies_the_units_behind():
    from models import AuditEntry, Notification

    task = find_task(parts=2, lead_owns_part=False)
    a, b = task.parts
    work_until_submitted(a)
    services.urge(task, user("office"), "请于本周五前报送进展情况。")
    commit()
    urged = {n.user_id for n in db.session.scalars(select(Notification).where(Notification.kind == "urged"))}
    assert urged == {staff(b.unit).id, leader(b.unit).id}
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "urge"))
    assert entry.task_id == task.id and entry.reason == "请于本周五前报送进展情况。"


@pytest.mark.parametrize("event", ["verify", "return"])
def test_a_change_committed_in_between_is_stale_not_an_orm_error(app, event):
    """The page (here: the objects in memory) shows version v; another
    transaction commits v+1 before this one writes. The service must answer
    with its Stale refusal whichever statement first notices."""
    from models import TaskPart

    task = find_task(parts=1, lead_owns_part=False)
    part = work_until_submitted(task.parts[0])
    seen = part.version
    checker = leader(task.lead_units[0])
    db.session.close()                         # keep the objects as loaded, without a transaction

    other = db.engine.connect()                # someone else's request
    other.execute(TaskPart.__table__.update().where(TaskPart.id == part.id).values(version=seen + 1))
    other.commit()
    other.close()

    db.session.add(part)
    db.session.add(checker)
    with pytest.raises(Stale) as info:
        services.apply(part, event, checker, expected_version=seen, **({"reason": "请补充材料"} if event == "return" else {}))
    assert "已被他人更新" in info.value.message
    db.session.rollback()
    part = db.session.get(TaskPart, part.id)
    assert (part.state, part.version, part.submissions[-1].outcome) == (SUBMITTED, seen + 1, "pending")
