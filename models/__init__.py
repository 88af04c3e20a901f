"""All models, by domain. Import from here: ``from models import Task``.

Every name below is a re-export (hence the noqa). UnitKind and TaskKind live in
workflow/vocabulary.py; they stay importable from here for the imports that
still use this path (tests).
"""
from .org import Role, Section, Unit, UnitAlias, UnitKind, User  # noqa: F401
from .plan import (  # noqa: F401
    Chapter,
    Contact,
    Item,
    Plan,
    Task,
    TaskKind,
    TaskPart,
    task_lead_units,
    task_responsible_units,
    task_sections,
)
from .audit import AuditEntry, AuditHead  # noqa: F401,E402
from .evidence import Evidence, Notification, ProgressNote, Submission  # noqa: F401,E402
from .report import ReportArchive  # noqa: F401,E402
from .rhythm import ExtensionRequest, Milestone, ProgressRound, RoundPart  # noqa: F401,E402
from .security import RateLimitCounter  # noqa: F401,E402
from .notice import Delivery, WorkerBeat  # noqa: F401,E402
from .reminder import Escalation, Reminder, ReminderRule, RoundSchedule, SweepRun  # noqa: F401,E402
from .colour import ColourSnapshot  # noqa: F401,E402
