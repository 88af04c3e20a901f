"""The words the workflow stores, each with its Chinese label, in one place.

Every vocabulary is a ``StrEnum`` whose members are written ``NAME = "stored value", "标签"``.
A member *is* its stored string (``TaskState.PLANNED == "planned"``, the same hash, the same
JSON), so rows, audit details and code still comparing with plain strings are unchanged.
One lookup style for all of them: ``member.label``; ``Cls.label_of(value)`` for a value read
from a row; ``Cls.labels()`` for the value → label dict templates iterate over;
``Cls.values()`` for the plain strings (CHECK constraints, form validation).

No imports from the application: models, the importer and the reports all read from here.
"""
from __future__ import annotations

from enum import StrEnum


class Vocabulary(StrEnum):
    label: str

    def __new__(cls, value: str, label: str):
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    @classmethod
    def values(cls) -> tuple[str, ...]:
        # Plain str, not members: transitions names an Enum state by its member
        # name ("PLANNED"), and repr() of a member is not SQL.
        return tuple(m.value for m in cls)

    @classmethod
    def labels(cls) -> dict[str, str]:
        return {m.value: m.label for m in cls}

    @classmethod
    def label_of(cls, value: str | None) -> str:
        """The label of a stored value; a value this vocabulary does not know is shown as it is."""
        try:
            return cls(value).label
        except ValueError:
            return "" if value is None else str(value)

    @classmethod
    def sql_check(cls, column: str) -> str:
        """``column IN ('a', 'b')`` for a CheckConstraint on a column holding this vocabulary."""
        return sql_in(column, cls.values())


def sql_in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


# ------------------------------------------------------------------ tasks and parts

class TaskState(Vocabulary):
    """States of a task and of its parts (承办); the transitions are workflow/machine.py."""
    PLANNED = "planned", "计划"
    IN_PROGRESS = "in_progress", "推进中"
    SUBMITTED = "submitted", "已提交"
    VERIFIED = "verified", "已核验"
    CLOSED = "closed", "已办结"      # tasks only: the office closes a task, never a part


class TaskKind(Vocabulary):
    """The two lists of an item, in document order (工作任务 before 保障措施)."""
    TASK = "task", "工作任务"
    MEASURE = "measure", "保障措施"

    @property
    def short(self) -> str:
        """The one character of a task number: 19-任2, 19-保1."""
        return _TASK_KIND_SHORT[self]

    @property
    def rank(self) -> int:
        return _TASK_KIND_RANK[self]


_TASK_KIND_SHORT = {TaskKind.TASK: "任", TaskKind.MEASURE: "保"}
# Ranks looked up, not counted: the colour pass asks one per task (100k at a province's size).
_TASK_KIND_RANK = {kind: rank for rank, kind in enumerate(TaskKind)}


class ClauseSource(Vocabulary):
    """Where the importer took a task's 责任分工 and 完成时限 from (workflow/importer/parse.py)."""
    OWN = "own", "本条写明"
    SHARED = "shared", "与相邻条目共用"          # a later clause closes several entries
    OWNER = "owner", "未写明，按本项牵头单位"      # no clause: the item's owner leads


class DocumentShape(Vocabulary):
    """Which shape of the genre family the importer read (workflow/importer/)."""
    COMPILATION = "compilation", "实施方案汇编（第N项）"
    TASK_LIST = "task_list", "任务清单（正文分条）"
    TABLE = "table", "任务表格"


class NameDecision(Vocabulary):
    """What the office decided a name written in a document is (the import review)."""
    NEW = "new", "新建单位"
    ALIAS = "alias", "归入已有单位"
    SAME = "same", "与本文件中另一写法为同一单位"
    TEXT = "text", "不是单位（作为文字保留）"


class SubmissionOutcome(Vocabulary):
    """What became of one hand-in; ``pending`` until the lead unit decides."""
    PENDING = "pending", "待核验"
    RETURNED = "returned", "已退回"
    VERIFIED = "verified", "已核验"
    REOPENED = "reopened", "已重新打开"    # verified, then the office reopened the task

    @classmethod
    def decision_of(cls, value: str | None) -> str:
        """What the lead unit decided, as a submission's history says it ("" while pending)."""
        return _DECISIONS.get(value, "")


_DECISIONS = {SubmissionOutcome.RETURNED: "退回", SubmissionOutcome.VERIFIED: "核验通过",
              SubmissionOutcome.REOPENED: "核验通过（后重新打开）"}


class NotificationKind(Vocabulary):
    """Inbox messages (one row per recipient)."""
    ASSIGNED = "assigned", "新任务"
    SUBMITTED = "submitted", "待核验"
    RETURNED = "returned", "被退回"
    URGED = "urged", "催办"
    VERIFIED = "verified", "已核验"
    CLOSED = "closed", "已办结"
    REOPENED = "reopened", "重新打开"
    RECEIPT_RESET = "receipt_reset", "请重新签收"
    RECEIPT_REMIND = "receipt_remind", "签收提醒"
    ROUND_OPENED = "round_opened", "调度通知"
    EXTENSION = "extension", "延期申请"
    EXTENSION_DECIDED = "extension_decided", "延期审批结果"
    MILESTONE = "milestone", "进度节点"
    REPORT = "report", "报告"
    LOGIN_ALERT = "login_alert", "登录异常"
    # Sent by the reminder sweep (workflow/reminders.py), not by a person.
    DUE_REMIND = "due_remind", "到期提醒"
    OVERDUE_REMIND = "overdue_remind", "逾期提醒"
    FILING_REMIND = "filing_remind", "报送提醒"
    CHECKPOINT_REMIND = "checkpoint_remind", "节点提醒"
    ESCALATED = "escalated", "督办"
    BULLETIN = "bulletin", "通报"


# ------------------------------------------------------------------ notices beyond the inbox

class Channel(Vocabulary):
    """Where a notice reaches a person (workflow/notices/). The inbox always."""
    INBOX = "inbox", "站内消息"
    EMAIL = "email", "电子邮件"
    ROBOT = "robot", "单位工作群机器人"

    @classmethod
    def outside(cls) -> tuple[str, ...]:
        """The channels that leave the app, delivered by the worker."""
        return (cls.EMAIL.value, cls.ROBOT.value)


class DeliveryStatus(Vocabulary):
    PENDING = "pending", "待发送"
    SENDING = "sending", "发送中"
    SENT = "sent", "已发送"
    FAILED = "failed", "发送失败"


class RobotKind(Vocabulary):
    """Group robots whose webhook format Luoshi speaks (workflow/notices/channels.py)."""
    WECOM = "wecom", "企业微信"
    DINGTALK = "dingtalk", "钉钉"


# ------------------------------------------------------------------ reminders and escalation

class ReminderKind(Vocabulary):
    """What a reminder rule watches (workflow/reminders.py, docs/reminders.md)."""
    DEADLINE = "deadline", "完成时限"
    RECEIPT = "receipt", "签收"
    FILING = "filing", "调度报送"
    CHECKPOINT = "checkpoint", "长期任务节点"


class EscalationState(Vocabulary):
    """督办: raised after repeated reminders; 通报 names it in a bulletin."""
    OPEN = "open", "督办中"
    BULLETIN = "bulletin", "已通报"
    RESOLVED = "resolved", "已解除"

    @classmethod
    def active(cls) -> tuple[str, ...]:
        return (cls.OPEN.value, cls.BULLETIN.value)


class JobStatus(Vocabulary):
    """A background job's row (the reminder sweep)."""
    QUEUED = "queued", "排队中"
    RUNNING = "running", "进行中"
    DONE = "done", "已完成"
    FAILED = "failed", "失败"


# ------------------------------------------------------------------ the office's rhythm

class RoundKind(Vocabulary):
    """调度: a progress round the office opens (workflow/round_services.py)."""
    MONTHLY = "monthly", "月调度"
    WEEKLY = "weekly", "周调度"
    ADHOC = "adhoc", "专项调度"


class RoundState(Vocabulary):
    OPEN = "open", "报送中"
    CLOSED = "closed", "已结束"


class ExtensionState(Vocabulary):
    """延期申请: the lead unit's leader decides first, then the office."""
    PENDING_LEAD = "pending_lead", "待牵头单位审核"
    PENDING_OFFICE = "pending_office", "待办公室审批"
    GRANTED = "granted", "已批准"
    REFUSED = "refused", "未批准"

    @classmethod
    def pending(cls) -> tuple[str, ...]:
        return (cls.PENDING_LEAD.value, cls.PENDING_OFFICE.value)


class MilestoneState(Vocabulary):
    """A planned-progress point (date → %): set by the office, or proposed by the
    doing unit and approved by the lead unit (workflow/extension_services.py)."""
    PROPOSED = "proposed", "待牵头单位确认"
    APPROVED = "approved", "已确认"
    REFUSED = "refused", "未同意"


class WarningLevel(Vocabulary):
    """红黄蓝 (workflow/pace.py, docs/warnings.md), worst first."""
    RED = "red", "红色预警"
    YELLOW = "yellow", "黄色预警"
    BLUE = "blue", "蓝色预警"

    @property
    def rank(self) -> int:
        return _WARNING_RANK[self]


_WARNING_RANK = {level: rank for rank, level in enumerate(WarningLevel)}


# ------------------------------------------------------------------ organisation

class UnitKind(Vocabulary):
    OFFICE = "office", "办公室"        # 指挥部办公室
    BUREAU = "bureau", "局/委/办"
    BRANCH = "branch", "分局"
    CENTER = "center", "中心"
    TOWN = "town", "镇/街道"           # 镇、街道、开发区
    GROUP = "group", "集合单位"         # 各镇（街道）: a collective addressee
    OTHER = "other", "其他"


# ------------------------------------------------------------------ reports

class ReportKind(Vocabulary):
    OVERALL = "overall", "总体进展报告"
    UNIT = "unit", "单位报告"
    ITEM = "item", "事项详情报告"
    ROUND = "round", "调度通报"
    BULLETIN = "bulletin", "督办通报"


class ReportStatus(Vocabulary):
    PENDING = "pending", "排队中"
    RUNNING = "running", "生成中"
    DONE = "done", "已完成"
    FAILED = "failed", "失败"

    @classmethod
    def working(cls) -> tuple[str, ...]:
        """Queued or rendering: not finished yet."""
        return (cls.PENDING.value, cls.RUNNING.value)


# ------------------------------------------------------------------ states as plain strings

# Plain strings (see Vocabulary.values): machine.py hands these to transitions.
PLANNED = TaskState.PLANNED.value
IN_PROGRESS = TaskState.IN_PROGRESS.value
SUBMITTED = TaskState.SUBMITTED.value
VERIFIED = TaskState.VERIFIED.value
CLOSED = TaskState.CLOSED.value

# The extension request's and the round's states, for their machines.
PENDING_LEAD = ExtensionState.PENDING_LEAD.value
PENDING_OFFICE = ExtensionState.PENDING_OFFICE.value
GRANTED = ExtensionState.GRANTED.value
REFUSED = ExtensionState.REFUSED.value
ROUND_OPEN = RoundState.OPEN.value
ROUND_CLOSED = RoundState.CLOSED.value

STATE_LABELS = TaskState.labels()
PART_STATES = (PLANNED, IN_PROGRESS, SUBMITTED, VERIFIED)
TASK_STATES = TaskState.values()


# Audit actions that change nothing a report shows; everything else (including
# actions added later that this list does not know) counts as a data change
# (workflow/reports/archive.py: a report's input head; workflow/colours.py).
NON_DATA_ACTIONS = ("login", "login_failed", "login_locked", "account_locked", "login_alert", "logout",
                    "password_changed", "report_generated", "reminder_sent", "reminder_rule_changed",
                    "round_scheduled", "round_schedule_changed", "notice_settings_changed",
                    "unit_robot_changed")
