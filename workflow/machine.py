"""The one definition of states and transitions.

Two `transitions` Machines, built once at import and shared by every row
(``model=None``): a Machine per row costs seconds and megabytes per thousand
rows. Events are fired with ``fire(model, event, **context)``; with
``auto_transitions=False`` there is no ``to_<state>`` shortcut around the rules.

Guards raise ``TransitionRefused`` with a Chinese reason, so the user learns
why, not only that, an action was refused.
"""
from __future__ import annotations

from transitions import Machine, MachineError

from .states import CLOSED, IN_PROGRESS, PART_STATES, PLANNED, STATE_LABELS, SUBMITTED, TASK_STATES, VERIFIED


class TransitionRefused(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


EVENT_LABELS = {
    "start": "开始办理", "submit": "提交", "verify": "核验通过", "return": "退回",
    "reopen": "重新打开", "close": "办结",
}


def _needs_statement(event) -> bool:
    if not (event.kwargs.get("statement") or "").strip():
        raise TransitionRefused("提交前请填写完成情况说明。")
    return True


def _needs_evidence(event) -> bool:
    if not event.model.evidence:
        raise TransitionRefused("提交前请至少添加一项佐证材料（文件或文字）。")
    return True


def _evidence_files_present(event) -> bool:
    # A file lost on disk (a failed disk, a hand-made clean-up) must not be
    # handed in as if it were there: the lead unit would verify nothing.
    from workflow import storage

    missing = [e.filename or "文件" for e in event.model.pending_evidence
               if e.kind == "file" and not storage.file_present(e.content_sha256)]
    if missing:
        raise TransitionRefused("以下材料的文件在服务器上已丢失，请撤回后重新上传再提交："
                                + "、".join(f"“{name}”" for name in missing))
    return True


def _needs_reason(event) -> bool:
    if not (event.kwargs.get("reason") or "").strip():
        raise TransitionRefused("请填写理由。")
    return True


def _not_own_submission(event) -> bool:
    user = event.kwargs.get("user")
    latest = event.model.submissions[-1] if event.model.submissions else None
    if user is not None and latest is not None and latest.submitted_by_id == user.id:
        raise TransitionRefused("不能核验自己提交的材料，请由牵头单位的其他负责人核验。")
    return True


PART_TRANSITIONS = [
    {"trigger": "start", "source": PLANNED, "dest": IN_PROGRESS},
    {"trigger": "submit", "source": IN_PROGRESS, "dest": SUBMITTED, "conditions": [_needs_statement, _needs_evidence, _evidence_files_present]},
    {"trigger": "verify", "source": SUBMITTED, "dest": VERIFIED, "conditions": [_not_own_submission]},
    {"trigger": "return", "source": SUBMITTED, "dest": IN_PROGRESS, "conditions": [_needs_reason]},
    {"trigger": "reopen", "source": VERIFIED, "dest": IN_PROGRESS, "conditions": [_needs_reason]},
]

TASK_TRANSITIONS = [
    {"trigger": "close", "source": VERIFIED, "dest": CLOSED},
    {"trigger": "reopen", "source": [VERIFIED, CLOSED], "dest": IN_PROGRESS, "conditions": [_needs_reason]},
]

_COMMON = {"model": None, "initial": PLANNED, "auto_transitions": False, "send_event": True,
           "model_attribute": "state"}
PART_MACHINE = Machine(states=list(PART_STATES), transitions=PART_TRANSITIONS, **_COMMON)
TASK_MACHINE = Machine(states=list(TASK_STATES), transitions=TASK_TRANSITIONS, **_COMMON)


def machine_for(model) -> Machine:
    from models import TaskPart

    return PART_MACHINE if isinstance(model, TaskPart) else TASK_MACHINE


def can_fire(model, event: str) -> bool:
    """Whether ``event`` leaves the model's current state (guards not run)."""
    return event in machine_for(model).get_triggers(model.state)


def fire(model, event: str, **context) -> tuple[str, str]:
    """Run the event on the model; returns (from_state, to_state)."""
    machine = machine_for(model)
    source = model.state
    if event not in machine.events:
        raise TransitionRefused(f"未知的操作：{event}")
    try:
        machine.events[event].trigger(model, **context)
    except MachineError:
        raise TransitionRefused(
            f"当前状态为“{STATE_LABELS.get(source, source)}”，不能执行“{EVENT_LABELS.get(event, event)}”。") from None
    return source, model.state


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
