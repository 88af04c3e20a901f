"""The one definition of what can happen to a task, and when.

``EVENTS`` is the table: one row per event with its trigger, source and target
states, guards, the permission action that fires it, the inputs it reads from
its form, its Chinese label and success message, and who is told. Everything
else is derived from it: one ``transitions`` Machine per subject (a part, a
task, an extension request, a proposed milestone, a round), ``EVENT_LABELS``,
``EVENT_FOR_ACTION`` (which permission fires which event), the routes and
success messages of the task page (workflow/views/tasks.py) and the notices the
services send (workflow/services.py).

``ACTION_RULES`` says *when* the actions that are not transitions (progress,
evidence, urge, edit) are open. ``refusal(action, obj)`` answers for both
kinds; ``permissions.can()`` (which buttons to show) and the services (which
enforce) both ask it, so the two cannot drift apart.

The Machines are built once at import and shared by every row
(``model=None``): a Machine per row costs seconds and megabytes per thousand
rows. Events are fired with ``fire(model, event, **context)``; with
``auto_transitions=False`` there is no ``to_<state>`` shortcut around the rules.
Guards raise ``TransitionRefused`` with a Chinese reason, so the user learns
why, not only that, an action was refused.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from flask import current_app, has_app_context
from sqlalchemy import bindparam, select
from transitions import Machine, MachineError

from models import ExtensionRequest, Milestone, ProgressRound, RoundPart, TaskPart
from workflow import storage
from workflow.extensions import db
from workflow.timeutil import today_local
# Plain strings, not TaskState members: transitions names an Enum state by its member name.
from workflow.vocabulary import (
    CLOSED, GRANTED, IN_PROGRESS, PART_STATES, PENDING_LEAD, PENDING_OFFICE, PLANNED, REFUSED, ROUND_CLOSED,
    ROUND_OPEN, SUBMITTED, TASK_STATES, VERIFIED, ExtensionState, MilestoneState, NotificationKind, RoundState,
    SubmissionOutcome, TaskState)


class TransitionRefused(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# ---------------------------------------------------------------- guards
# Each takes the model and the event's inputs and returns a refusal (Chinese)
# or None. They run inside the machine, at fire time.

def needs_statement(model, inputs) -> str | None:
    if not (inputs.get("statement") or "").strip():
        return "提交前请填写完成情况说明。"
    return None


def needs_evidence(model, inputs) -> str | None:
    if not model.pending_evidence and not inputs.get("carry"):
        if model.submissions:
            return "提交前请至少添加一项佐证材料（文件或文字），或勾选沿用以前提交的材料。"
        return "提交前请至少添加一项佐证材料（文件或文字）。"
    return None


def needs_something_new(model, inputs) -> str | None:
    # A resubmission after a return answers the return: handing in the same
    # statement with nothing new would only bounce back.
    latest = model.submissions[-1] if model.submissions else None
    if latest is None or latest.outcome != SubmissionOutcome.RETURNED:
        return None
    statement = (inputs.get("statement") or "").strip()
    if model.pending_evidence or statement != (latest.statement or "").strip():
        return None
    return ("这是退回后的重新提交：请添加新的佐证材料，或在完成情况说明中写明按退回意见所作的修改"
            "（与上次提交的说明相同，不能提交）。")


def evidence_files_present(model, inputs) -> str | None:
    # A file lost on disk (a failed disk, a hand-made clean-up) must not be
    # handed in as if it were there: the lead unit would verify nothing.
    handed_in = list(model.pending_evidence) + list(inputs.get("carry") or ())
    try:
        missing = [e.filename or "文件" for e in handed_in
                   if e.kind == "file" and not storage.file_present(e.content_sha256)]
    except OSError:   # the store itself did not answer: whether the files are there is unknown
        return "文件存储暂时无法访问，无法确认材料的文件是否完好，本次未提交。请稍后重试；如持续出现，请联系系统管理员。"
    if missing:
        return ("以下材料的文件在服务器上已丢失，请撤回（或不再沿用）后重新上传再提交："
                + "、".join(f"“{name}”" for name in missing))
    return None


def needs_reason(model, inputs) -> str | None:
    if not (inputs.get("reason") or "").strip():
        return "请填写理由。"
    return None


# Conditions: guards that read only the model, never the event's inputs. They
# run at fire time like any guard, and ``refusal`` asks them too, so that a
# button they forbid is not shown.

def not_yet_received(model) -> str | None:
    if model.received_at is not None:
        return "该任务已签收，无需重复签收。"
    return None


RECEIPT_FIRST = "请先签收该任务，再开始办理。"


def start_without_receipt_allowed() -> bool:
    return bool(current_app.config.get("START_WITHOUT_RECEIPT", True)) if has_app_context() else True


def received_if_required(model) -> str | None:
    # The office's setting (START_WITHOUT_RECEIPT): work may begin only after 签收.
    if model.received_at is None and not start_without_receipt_allowed():
        return RECEIPT_FIRST
    return None


def _on_model(condition: Callable) -> Callable:
    def guard(model, inputs) -> str | None:
        return condition(model)
    guard.__name__ = condition.__name__
    return guard


def _condition(guard: Callable) -> Callable:
    def condition(event) -> bool:
        message = guard(event.model, event.kwargs)
        if message:
            raise TransitionRefused(message)
        return True
    condition.__name__ = guard.__name__
    return condition


# ---------------------------------------------------------------- the table

# Who is told, by name; workflow/services.py resolves each to users.
PART_UNIT = "part_unit"                 # every user of the unit that does the part
LEAD_LEADERS = "lead_leaders"           # the leaders of the task's lead units (they verify)
PART_UNITS = "part_units"               # every unit with a part of the task
PART_AND_LEAD_UNITS = "part_and_lead_units"
OFFICE = "office"                       # the office's admins and staff


@dataclass(frozen=True)
class Notice:
    kind: NotificationKind
    to: str             # one of the recipient names above
    message: str        # format fields: {task} (its label), {unit} (the part's unit), {reason}, {date}


@dataclass(frozen=True)
class Event:
    subject: str                    # "part" or "task"
    trigger: str
    source: tuple[str, ...]
    dest: str
    action: str | None              # the permission it needs; None: only fired by another event
    label: str
    success: str = ""
    guards: tuple[Callable, ...] = ()
    inputs: tuple[str, ...] = ()    # what the event reads from its form
    notices: tuple[Notice, ...] = ()
    conditions: tuple[Callable, ...] = ()   # guards on the model alone: refusal() asks them too


EVENTS: tuple[Event, ...] = (
    # Reflexive: a received part is still planned, only acknowledged.
    Event("part", "receive", (PLANNED,), PLANNED, "part.receive", "签收", "已签收。",
          conditions=(not_yet_received,)),
    Event("part", "start", (PLANNED,), IN_PROGRESS, "part.start", "开始办理", "已开始办理。",
          conditions=(received_if_required,)),
    Event("part", "submit", (IN_PROGRESS,), SUBMITTED, "part.submit", "提交", "已提交，等待牵头单位核验。",
          guards=(needs_statement, needs_evidence, needs_something_new, evidence_files_present),
          inputs=("statement", "carry"),
          notices=(Notice(NotificationKind.SUBMITTED, LEAD_LEADERS, "{unit}已提交{task}的完成材料，请核验。"),)),
    Event("part", "verify", (SUBMITTED,), VERIFIED, "part.verify", "核验通过", "已核验通过。",
          notices=(Notice(NotificationKind.VERIFIED, PART_UNIT, "{task}（{unit}）已核验通过。"),)),
    Event("part", "return", (SUBMITTED,), IN_PROGRESS, "part.return", "退回", "已退回，并已通知承办单位。",
          guards=(needs_reason,), inputs=("reason",),
          notices=(Notice(NotificationKind.RETURNED, PART_UNIT, "{task}（{unit}）被退回：{reason}"),)),
    # Fired on every verified part when the office reopens the task.
    Event("part", "reopen", (VERIFIED,), IN_PROGRESS, None, "重新打开", guards=(needs_reason,), inputs=("reason",)),
    Event("task", "close", (VERIFIED,), CLOSED, "task.close", "办结", "任务已办结。",
          notices=(Notice(NotificationKind.CLOSED, PART_AND_LEAD_UNITS, "{task}已办结。"),)),
    Event("task", "reopen", (VERIFIED, CLOSED), IN_PROGRESS, "task.reopen", "重新打开",
          "任务已重新打开，并已通知各承办单位。", guards=(needs_reason,), inputs=("reason",),
          notices=(Notice(NotificationKind.REOPENED, PART_UNITS, "{task}已被办公室重新打开：{reason}"),)),

    # 延期申请 (an ExtensionRequest, asked by the part's unit: workflow/extension_services.py).
    # The lead unit's leader decides first, then the office; a refusal needs its reason.
    Event("extension", "approve", (PENDING_LEAD,), PENDING_OFFICE, "extension.approve", "同意并报办公室",
          "已同意，报办公室审批。",
          notices=(Notice(NotificationKind.EXTENSION, OFFICE,
                          "{unit}申请将{task}的完成时限延至{date}，牵头单位已同意，请审批。"),)),
    Event("extension", "decline", (PENDING_LEAD,), REFUSED, "extension.decline", "不同意延期",
          "已不同意该延期申请，并已通知申请单位。", guards=(needs_reason,), inputs=("reason",),
          notices=(Notice(NotificationKind.EXTENSION_DECIDED, PART_UNIT,
                          "{task}（{unit}）的延期申请未获牵头单位同意：{reason}"),)),
    Event("extension", "grant", (PENDING_OFFICE,), GRANTED, "extension.grant", "批准延期",
          "已批准延期，完成时限已调整。",
          notices=(Notice(NotificationKind.EXTENSION_DECIDED, PART_AND_LEAD_UNITS,
                          "{task}（{unit}）的延期申请已批准，完成时限调整为{date}。"),)),
    Event("extension", "refuse", (PENDING_OFFICE,), REFUSED, "extension.refuse", "不予延期",
          "已不予延期，并已通知申请单位和牵头单位。", guards=(needs_reason,), inputs=("reason",),
          notices=(Notice(NotificationKind.EXTENSION_DECIDED, PART_AND_LEAD_UNITS,
                          "{task}（{unit}）的延期申请未获办公室批准：{reason}"),)),

    # A milestone the part's unit proposed (the office sets its own directly): the lead unit decides.
    Event("milestone", "approve", (MilestoneState.PROPOSED.value,), MilestoneState.APPROVED.value,
          "milestone.approve", "确认节点", "已确认该进度节点。",
          notices=(Notice(NotificationKind.MILESTONE, PART_UNIT, "{task}（{unit}）的进度节点已确认。"),)),
    Event("milestone", "refuse", (MilestoneState.PROPOSED.value,), MilestoneState.REFUSED.value,
          "milestone.refuse", "不同意节点", "已不同意该进度节点，并已通知承办单位。",
          guards=(needs_reason,), inputs=("reason",),
          notices=(Notice(NotificationKind.MILESTONE, PART_UNIT, "{task}（{unit}）的进度节点未获同意：{reason}"),)),

    # 调度 (a ProgressRound: workflow/round_services.py): closing it produces its 调度通报.
    Event("round", "close", (ROUND_OPEN,), ROUND_CLOSED, "round.close", "结束调度并生成通报",
          "本轮调度已结束，调度通报正在生成。"),
)

EVENT_BY_KEY = {(e.subject, e.trigger): e for e in EVENTS}
EVENT_FOR_ACTION = {e.action: e for e in EVENTS if e.action}
# By trigger, for messages and the audit log; triggers of different subjects that share a
# name (reopen, approve, refuse) are told apart by ``EVENT_BY_KEY``.
EVENT_LABELS = {e.trigger: e.label for e in EVENTS if e.subject in ("part", "task")}


def transitions_for(subject: str) -> list[dict]:
    """The event table's rows for "part" or "task", as ``transitions`` takes them."""
    return [{"trigger": e.trigger, "source": list(e.source), "dest": e.dest,
             "conditions": [_condition(_on_model(c)) for c in e.conditions] + [_condition(g) for g in e.guards]}
            for e in EVENTS if e.subject == subject]


_COMMON = {"model": None, "auto_transitions": False, "send_event": True, "model_attribute": "state"}

# Each subject: its states (the first is where a new row starts) and its model.
SUBJECTS = {
    "part": (PART_STATES, TaskPart),
    "task": (TASK_STATES, None),       # anything that is not one of the others is a Task
    "extension": (ExtensionState.values(), ExtensionRequest),
    "milestone": (MilestoneState.values(), Milestone),
    "round": (RoundState.values(), ProgressRound),
}
MACHINES = {subject: Machine(states=list(states), initial=states[0], transitions=transitions_for(subject),
                             **_COMMON)
            for subject, (states, _model) in SUBJECTS.items()}
PART_MACHINE = MACHINES["part"]
TASK_MACHINE = MACHINES["task"]
STATE_VOCABULARY = {"part": TaskState, "task": TaskState, "extension": ExtensionState,
                    "milestone": MilestoneState, "round": RoundState}


def subject_of(model) -> str:
    for subject, (_states, cls) in SUBJECTS.items():
        if cls is not None and isinstance(model, cls):
            return subject
    return "task"


def machine_for(model) -> Machine:
    return MACHINES[subject_of(model)]


def can_fire(model, event: str) -> bool:
    """Whether ``event`` leaves the model's current state (guards not run)."""
    return event in machine_for(model).get_triggers(model.state)


def _state_refusal(model, label: str) -> str:
    state = STATE_VOCABULARY[subject_of(model)].label_of(model.state)
    return f"当前状态为“{state}”，不能执行“{label}”。"


def fire(model, event: str, **context) -> tuple[str, str]:
    """Run the event on the model; returns (from_state, to_state)."""
    machine = machine_for(model)
    source = model.state
    if event not in machine.events:
        raise TransitionRefused(f"未知的操作：{event}")
    try:
        machine.events[event].trigger(model, **context)
    except MachineError:
        raise TransitionRefused(_state_refusal(model, EVENT_BY_KEY[(subject_of(model), event)].label)) from None
    return source, model.state


# ---------------------------------------------------------------- when the other actions are open

def open_parts(task) -> list:
    """The parts a 催办 reaches: not yet submitted."""
    return [p for p in task.parts if p.state in (PLANNED, IN_PROGRESS)]


@dataclass(frozen=True)
class Rule:
    open: Callable[[object], bool]
    refusal: Callable[[object], str]


def late_extensions_allowed() -> bool:
    return bool(current_app.config.get("LATE_EXTENSIONS", False)) if has_app_context() else False


def _task(part):
    # Not ``part.task`` where the page loaded it already (see auth.permissions.task_of).
    from auth.permissions import task_of
    return task_of(part)


def extension_refusal(part) -> str | None:
    """延期申请 is open before the part's deadline (after it only if the office allows
    late requests), for a dated part not yet handed in, one request at a time."""
    if part.state not in (PLANNED, IN_PROGRESS):
        return f"当前状态为“{TaskState.label_of(part.state)}”，已提交或已核验的任务不能申请延期。"
    task = _task(part)
    if task.long_term:
        return "长期任务没有完成时限，无需申请延期。"
    deadline = part.deadline_in_force(task)
    if deadline is None:
        return "该任务尚未确定完成时限，不能申请延期；请联系办公室确定时限。"
    if any(e.state in ExtensionState.pending() for e in part.extensions):
        return "该任务已有一项延期申请正在审批，请等待审批结果。"
    if today_local() > deadline and not late_extensions_allowed():
        return (f"已超过完成时限（{deadline.isoformat()}），不能再申请延期。"
                "如确有特殊情况，请联系办公室。")
    return None


def milestone_refusal(part) -> str | None:
    if part.state not in (PLANNED, IN_PROGRESS):
        return f"当前状态为“{TaskState.label_of(part.state)}”，不能设置进度节点。"
    task = _task(part)
    if task.long_term or part.deadline_in_force(task) is None:
        return "长期任务或未定时限的任务按定期节点报送进展，不设进度节点。"
    return None


def open_round_entry(part):
    """The part's entry in an open round that it has not filed yet (the one due
    first), or None."""
    if part.id is None:
        return None
    return db.session.scalar(_open_entry_of_part(), {"part_id": part.id})


@functools.cache
def _open_entry_of_part():
    """Built once: the task page asks it for every part the user may file for."""
    return (select(RoundPart).join(ProgressRound).where(
        RoundPart.part_id == bindparam("part_id"), RoundPart.note_id.is_(None), ProgressRound.state == ROUND_OPEN)
        .order_by(ProgressRound.due_on, ProgressRound.id).limit(1))


def filing_refusal(part) -> str | None:
    """调度报送 is open for a part not yet handed in that an open round asks and
    that has not filed for it (a planned part files too, without starting)."""
    if part.state not in (PLANNED, IN_PROGRESS):
        return f"当前状态为“{TaskState.label_of(part.state)}”，已提交或已核验的任务无需报送调度进展。"
    if open_round_entry(part) is None:
        return "该任务没有待报送的调度（本轮已报送，或调度已结束）。"
    return None


ACTION_RULES: dict[str, Rule] = {
    "part.progress": Rule(lambda p: p.state == IN_PROGRESS,
                          lambda p: f"当前状态为“{TaskState.label_of(p.state)}”，只有推进中的任务可以填报进度。"
                                    + ("请先点击“开始办理”。" if p.state == PLANNED else "")),
    "part.evidence": Rule(lambda p: p.state == IN_PROGRESS,
                          lambda p: f"当前状态为“{TaskState.label_of(p.state)}”，不能添加或撤回材料。"
                                    + ("请先点击“开始办理”。" if p.state == PLANNED else "")),
    "task.urge": Rule(lambda t: bool(open_parts(t)), lambda t: "该任务已全部提交或办结，无需催办。"),
    "task.edit": Rule(lambda t: t.state not in (VERIFIED, CLOSED),
                      lambda t: "已核验或已办结的任务不能修改；如需修改，请先重新打开。"),
    "part.extend": Rule(lambda p: extension_refusal(p) is None, extension_refusal),
    "part.remind": Rule(lambda p: p.state == PLANNED and p.received_at is None,
                        lambda p: "该任务已签收或已开始办理，无需提醒签收。"),
    "milestone.set": Rule(lambda p: milestone_refusal(p) is None, milestone_refusal),
    "milestone.propose": Rule(lambda p: milestone_refusal(p) is None, milestone_refusal),
    "part.file": Rule(lambda p: filing_refusal(p) is None, filing_refusal),
}


def refusal(action: str, obj) -> str | None:
    """Why ``action`` is not open on ``obj`` in its current state, or None if it is.
    Guards that read the action's inputs (a reason, a statement) run when it fires."""
    event = EVENT_FOR_ACTION.get(action)
    if event is not None:
        if not can_fire(obj, event.trigger):
            return _state_refusal(obj, event.label)
        return next((why for why in (c(obj) for c in event.conditions) if why), None)
    rule = ACTION_RULES.get(action)
    if rule is not None and not rule.open(obj):
        return rule.refusal(obj)
    return None


def derived_task_state(parts) -> str:
    """A task follows its parts: planned until one starts, in progress while any
    is not yet submitted, submitted when all are submitted or verified,
    verified when all are verified."""
    states = [p.state for p in parts]
    if not states or all(s == PLANNED for s in states):
        return PLANNED
    if all(s == VERIFIED for s in states):
        return VERIFIED
    if all(s in (SUBMITTED, VERIFIED) for s in states):
        return SUBMITTED
    return IN_PROGRESS
