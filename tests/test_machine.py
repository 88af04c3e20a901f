"""The state machine on its own: the transition table, its guards, the task
state derived from its parts, and the one shared Machine (no database)."""
from __future__ import annotations

import gc
import itertools
import re

import pytest
from transitions import Machine

from models import Evidence, Submission, Task, TaskPart, User
from workflow import machine
from workflow.machine import PART_MACHINE, TASK_MACHINE, TransitionRefused, can_fire, derived_task_state, fire
from workflow.vocabulary import CLOSED, IN_PROGRESS, PART_STATES, PLANNED, STATE_LABELS, SUBMITTED, TASK_STATES, VERIFIED

CJK = re.compile(r"[\u4e00-\u9fff]")

# The table as the office described it (docs/permissions.md), written out
# here independently of workflow/machine.py.
PART_ALLOWED = {
    (PLANNED, "receive"): PLANNED,       # 签收: acknowledged, still planned
    (PLANNED, "start"): IN_PROGRESS,
    (IN_PROGRESS, "submit"): SUBMITTED,
    (SUBMITTED, "verify"): VERIFIED,
    (SUBMITTED, "return"): IN_PROGRESS,
    (VERIFIED, "reopen"): IN_PROGRESS,
}
TASK_ALLOWED = {
    (VERIFIED, "close"): CLOSED,
    (VERIFIED, "reopen"): IN_PROGRESS,
    (CLOSED, "reopen"): IN_PROGRESS,
}
PART_EVENTS = ("receive", "start", "submit", "verify", "return", "reopen")
TASK_EVENTS = ("close", "reopen")


def make_part(state: str, *, evidence: bool = True, submitted_by: int | None = 7) -> TaskPart:
    part = TaskPart(state=state)
    if evidence:
        part.evidence.append(Evidence(kind="text", text="已完成政策宣传3场，覆盖企业45家"))
    if submitted_by is not None:
        part.submissions.append(Submission(number=1, statement="已完成", submitted_by_id=submitted_by))
    return part


def satisfying_context(event: str) -> dict:
    """Everything the guards ask for, so only the table decides."""
    return {"user": User(id=99), "statement": "已按要求完成全部工作。", "reason": "佐证材料不完整，请补充活动照片"}


# ---------------------------------------------------------------- the table

@pytest.mark.parametrize("source,event", sorted(PART_ALLOWED))
def test_every_allowed_part_transition(source, event):
    part = make_part(source)
    assert can_fire(part, event)
    assert fire(part, event, **satisfying_context(event)) == (source, PART_ALLOWED[(source, event)])
    assert part.state == PART_ALLOWED[(source, event)]


@pytest.mark.parametrize("source,event", sorted(TASK_ALLOWED))
def test_every_allowed_task_transition(source, event):
    task = Task(state=source)
    assert can_fire(task, event)
    assert fire(task, event, **satisfying_context(event)) == (source, TASK_ALLOWED[(source, event)])
    assert task.state == TASK_ALLOWED[(source, event)]


PART_REFUSED = [(s, e) for s in PART_STATES for e in PART_EVENTS if (s, e) not in PART_ALLOWED]
TASK_REFUSED = [(s, e) for s in TASK_STATES for e in TASK_EVENTS if (s, e) not in TASK_ALLOWED]


def test_the_refused_lists_are_not_empty():
    # 4 states × 6 events − 6 allowed; 5 states × 2 events − 3 allowed
    assert len(PART_REFUSED) == 18 and len(TASK_REFUSED) == 7


@pytest.mark.parametrize("source,event", PART_REFUSED)
def test_every_disallowed_part_event_is_refused_in_chinese(source, event):
    part = make_part(source)
    assert not can_fire(part, event)
    with pytest.raises(TransitionRefused) as info:
        fire(part, event, **satisfying_context(event))
    message = info.value.message
    assert CJK.search(message)
    assert STATE_LABELS[source] in message and machine.EVENT_LABELS[event] in message
    assert part.state == source


@pytest.mark.parametrize("source,event", TASK_REFUSED)
def test_every_disallowed_task_event_is_refused_in_chinese(source, event):
    task = Task(state=source)
    assert not can_fire(task, event)
    with pytest.raises(TransitionRefused) as info:
        fire(task, event, **satisfying_context(event))
    assert CJK.search(info.value.message) and STATE_LABELS[source] in info.value.message
    assert task.state == source


@pytest.mark.parametrize("event", ["close", "to_verified", "approve", "verified"])
def test_events_a_part_does_not_have_are_refused(event):
    part = make_part(SUBMITTED)
    with pytest.raises(TransitionRefused) as info:
        fire(part, event, **satisfying_context(event))
    assert CJK.search(info.value.message)
    assert part.state == SUBMITTED


@pytest.mark.parametrize("event", ["receive", "start", "submit", "verify", "return"])
def test_part_only_events_are_refused_on_a_task(event):
    task = Task(state=IN_PROGRESS)
    with pytest.raises(TransitionRefused):
        fire(task, event, **satisfying_context(event))
    assert task.state == IN_PROGRESS


def test_no_shortcut_around_the_rules():
    part, task = make_part(PLANNED), Task(state=PLANNED)
    for state in TASK_STATES:
        for obj in (PART_MACHINE, TASK_MACHINE, part, task):
            assert not hasattr(obj, f"to_{state}"), (obj, state)
    assert not any(name.startswith("to_") for name in PART_MACHINE.events)
    assert not any(name.startswith("to_") for name in TASK_MACHINE.events)
    # The rows do not carry trigger methods either: fire() is the only way.
    for event in PART_EVENTS:
        assert not hasattr(part, event), event
    assert set(PART_MACHINE.events) == set(PART_EVENTS)
    assert set(TASK_MACHINE.events) == set(TASK_EVENTS)


# ---------------------------------------------------------------- guards

def test_submit_needs_a_statement():
    for statement in (None, "", "   \n "):
        part = make_part(IN_PROGRESS, submitted_by=None)
        with pytest.raises(TransitionRefused) as info:
            fire(part, "submit", user=User(id=1), statement=statement)
        assert "完成情况说明" in info.value.message
        assert part.state == IN_PROGRESS


def test_submit_needs_evidence():
    part = make_part(IN_PROGRESS, evidence=False, submitted_by=None)
    with pytest.raises(TransitionRefused) as info:
        fire(part, "submit", user=User(id=1), statement="已完成")
    assert "佐证材料" in info.value.message
    assert part.state == IN_PROGRESS
    part.evidence.append(Evidence(kind="text", text="活动照片5张"))
    assert fire(part, "submit", user=User(id=1), statement="已完成") == (IN_PROGRESS, SUBMITTED)


# Nobody verifies their own submission: a rule of who, tested in tests/test_events.py.


@pytest.mark.parametrize("model,source,event", [
    ("part", SUBMITTED, "return"), ("part", VERIFIED, "reopen"),
    ("task", VERIFIED, "reopen"), ("task", CLOSED, "reopen"),
])
def test_return_and_reopen_need_a_reason(model, source, event):
    for reason in (None, "", "  "):
        obj = make_part(source) if model == "part" else Task(state=source)
        with pytest.raises(TransitionRefused) as info:
            fire(obj, event, user=User(id=1), reason=reason)
        assert "理由" in info.value.message
        assert obj.state == source
    obj = make_part(source) if model == "part" else Task(state=source)
    assert fire(obj, event, user=User(id=1), reason="台账数据有误")[1] == IN_PROGRESS


# ---------------------------------------------------------------- derived task state

@pytest.mark.parametrize("states,expected", [
    ((), PLANNED),
    ((PLANNED,), PLANNED),
    ((PLANNED, PLANNED, PLANNED), PLANNED),
    ((IN_PROGRESS,), IN_PROGRESS),
    ((PLANNED, IN_PROGRESS), IN_PROGRESS),
    ((PLANNED, SUBMITTED), IN_PROGRESS),       # a part not yet started keeps the task open
    ((PLANNED, VERIFIED), IN_PROGRESS),
    ((SUBMITTED,), SUBMITTED),
    ((SUBMITTED, VERIFIED), SUBMITTED),
    ((VERIFIED, SUBMITTED, SUBMITTED), SUBMITTED),
    ((IN_PROGRESS, VERIFIED, VERIFIED), IN_PROGRESS),
    ((VERIFIED,), VERIFIED),
    ((VERIFIED, VERIFIED, VERIFIED), VERIFIED),
])
def test_derived_task_state_examples(states, expected):
    assert derived_task_state([TaskPart(state=s) for s in states]) == expected


def test_derived_task_state_over_every_combination():
    for n in range(1, 5):
        for states in itertools.product(PART_STATES, repeat=n):
            got = derived_task_state([TaskPart(state=s) for s in states])
            if all(s == VERIFIED for s in states):
                assert got == VERIFIED, states
            elif all(s in (SUBMITTED, VERIFIED) for s in states):
                assert got == SUBMITTED, states
            elif all(s == PLANNED for s in states):
                assert got == PLANNED, states
            else:
                assert got == IN_PROGRESS, states
            # The order of the parts never matters.
            assert derived_task_state([TaskPart(state=s) for s in reversed(states)]) == got


# ---------------------------------------------------------------- one Machine for all rows

def _machines() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, Machine))


def test_one_shared_machine_for_every_row():
    parts = [make_part(PLANNED, submitted_by=None) for _ in range(1000)]
    before = _machines()
    models_before = list(PART_MACHINE.models)
    for part in parts:
        fire(part, "start")
        fire(part, "submit", user=User(id=1), statement="已完成")
    assert all(p.state == SUBMITTED for p in parts)
    assert _machines() == before
    # The machine holds no reference to the rows it ran on (the memory and
    # time this saves are measured in bench/machine_bench.py).
    assert list(PART_MACHINE.models) == models_before
