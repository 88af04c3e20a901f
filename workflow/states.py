"""State names and their Chinese labels (the machine itself is workflow/machine.py)."""

PLANNED = "planned"
IN_PROGRESS = "in_progress"
SUBMITTED = "submitted"
VERIFIED = "verified"
CLOSED = "closed"

STATE_LABELS = {
    PLANNED: "计划",
    IN_PROGRESS: "推进中",
    SUBMITTED: "已提交",
    VERIFIED: "已核验",
    CLOSED: "已办结",
}
PART_STATES = (PLANNED, IN_PROGRESS, SUBMITTED, VERIFIED)
TASK_STATES = PART_STATES + (CLOSED,)
