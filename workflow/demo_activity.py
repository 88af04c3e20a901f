"""Demo activity: a realistic, repeatable spread of work over the seed plan.

Everything is played through workflow/services.py as the demo users
(u{id:02d}.staff / u{id:02d}.leader, office), so the demo shows exactly what
real use produces: audit chain, notifications, submissions, evidence files.
The same seed always gives the same activity (random.Random(2022), rows
visited in id order). The caller commits once.
"""
from __future__ import annotations

import heapq
import random
import struct
import zlib
from collections import Counter
from datetime import date, datetime, time, timedelta

from sqlalchemy import exists, select
from sqlalchemy.orm import selectinload

from models import Evidence, ProgressNote, Submission, Task, TaskPart, User
from workflow import extension_services, machine, notices, pace, reminder_services, reminders, round_services, \
    services
from workflow.extensions import db
from workflow.timeutil import played_at, utcnow
from workflow.vocabulary import ROUND_OPEN, RoundKind, TaskState

SEED = 2022
# The story runs from the plan's issue to the demo clock's day (scripts/run.sh sets
# LUOSHI_TODAY to it): April to September 2022, in China Standard Time.
PLAN_START = date(2022, 4, 8)
CLOCK_DAY = date(2022, 9, 30)
CST_OFFSET = timedelta(hours=8)
PLAN_MOMENT = datetime(2022, 4, 8, 9, 0) - CST_OFFSET
END = datetime.combine(CLOCK_DAY, time(18)) - CST_OFFSET

# What happens to one part, and how often (weights). Many stay untouched or
# in progress, so that the late list and the urge button have work to show.
SCENARIOS = [
    ("untouched", 12),
    ("started", 9),
    ("working", 42),
    ("submitted", 12),
    ("returned", 6),
    ("resubmitted", 5),
    ("verified", 15),
]

PROGRESS_NOTES = [
    "已完成政策宣传{a}场，覆盖企业{b}家",
    "召开专题推进会{a}次，研究解决具体问题{c}个",
    "已摸排符合条件的企业{b}家，建立工作台账",
    "已兑现奖补资金{m}万元，惠及市场主体{b}家",
    "制定工作方案，明确责任科室和时间节点",
    "会同相关部门开展联合督导{a}次，督促整改问题{c}个",
    "已受理申报材料{b}份，完成初审{c}份",
    "通过政务网站、微信公众号发布政策解读{a}篇，阅读量{r}次",
    "走访企业{b}家，收集意见建议{c}条，已逐条建立台账",
    "组织业务培训{a}期，培训工作人员{b}人次",
    "与区财政局对接资金拨付流程，已完成{a}批次拨付",
    "完成申报系统填报和审核，已报送市级主管部门",
]

EVIDENCE_TEXTS = [
    "活动照片{a}张、签到表{a}份已存档备查",
    "工作台账已更新至最新，共登记企业{b}家",
    "相关会议纪要已印发（周政办纪〔2022〕{c}号）",
    "政策宣传推文{a}篇，已在区政府网站和“周村发布”公众号发布",
    "资金拨付明细表已经区财政局复核，共计{m}万元",
    "已形成专题工作报告，报区政府分管领导审阅",
]

FILES = [
    ("工作台账.pdf", "pdf"),
    ("政策宣传活动照片.png", "png"),
    ("会议纪要.pdf", "pdf"),
    ("奖补资金拨付明细.pdf", "pdf"),
    ("现场督导照片.png", "png"),
    ("企业签到表.png", "png"),
]

STATEMENTS = [
    "已按要求完成该项任务。{note}。相关台账、照片等佐证材料已上传，请核验。",
    "本单位已落实该项任务：{note}，完成年度目标。佐证材料见附件。",
    "经自查，该项任务已全部完成。{note}，后续将纳入常态化管理。",
]

RESUBMIT_STATEMENTS = [
    "已按退回意见补充材料：{fix}。{note}，请再次核验。",
    "根据核验意见已整改完毕：{fix}，请核验。",
]

RETURN_REASONS = [
    ("佐证材料不完整，请补充活动照片", "补充活动照片{a}张"),
    ("完成情况说明过于简略，请补充企业数量、资金金额等具体数据", "补充完成情况的具体数据"),
    ("台账数据与统计部门口径不一致，请核实后重新提交", "已与区统计局核对台账数据"),
    ("缺少资金拨付凭证，请补充", "补充资金拨付凭证"),
    ("佐证材料未加盖单位公章，请补充盖章版", "补充加盖公章的材料"),
]

URGE_MESSAGES = [
    "该任务已超过完成时限，请于本周五前报送进展情况。",
    "请抓紧推进，按时提交完成情况说明和佐证材料。",
]

# The office's monthly rounds: (opens, due, closes or None: still open at the clock, title, instructions).
ROUNDS = [
    (date(2022, 6, 1), date(2022, 6, 5), date(2022, 6, 12), "2022年5月调度", "请于6月5日前报送5月工作进展，附相关佐证。"),
    (date(2022, 8, 1), date(2022, 8, 5), date(2022, 8, 12), "2022年7月调度", "请于8月5日前报送7月工作进展。"),
    (date(2022, 9, 26), date(2022, 10, 8), None, "2022年9月调度", "请于10月8日前报送9月及三季度工作进展。"),
]

EXTENSION_REASONS = [
    "上级资金尚未下达，项目申报需待市级评审结果，申请延期。",
    "受疫情影响现场工作暂停约一个月，申请相应延长完成时限。",
    "涉及企业较多、材料审核量大，需增加一轮复核，申请延期。",
]
DECLINE_REASON = "该任务为年度重点任务，时限不宜调整，请倒排工期、加快推进。"
REFUSE_REASON = "该任务须与全市同步完成，不予延期；请制定赶超措施并按月报送。"

REOPEN_REASON = "复核发现佐证材料中的企业名单与台账不一致，请重新核实后提交。"


# ---------------------------------------------------------------- tiny real files

def make_pdf(title: str) -> bytes:
    """A valid one-page PDF (correct xref offsets) showing ``title`` (ASCII)."""
    safe = title.replace("\\", "").replace("(", "").replace(")", "")
    stream = (b"0.85 0.1 0.1 RG 4 w 40 40 515 762 re S\n"
              b"BT /F1 20 Tf 72 760 Td (Luoshi demo evidence) Tj ET\n"
              b"BT /F1 12 Tf 72 730 Td (" + safe.encode("ascii") + b") Tj ET\n")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def make_png(seed: int, width: int = 48, height: int = 32) -> bytes:
    """A valid RGB PNG: diagonal stripes in colours derived from ``seed``."""
    rng = random.Random(seed)
    colours = [bytes(rng.randrange(256) for _ in range(3)) for _ in range(3)]
    rows = b"".join(
        b"\x00" + b"".join(colours[((x + y) // 6) % 3] for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


# ---------------------------------------------------------------- the play

def already_played() -> bool:
    """Any trace of work means the activity (or real use) already happened."""
    return bool(db.session.scalar(select(
        exists().where(TaskPart.state != TaskState.PLANNED) | exists().where(TaskPart.received_at.is_not(None))
        | exists(select(Submission.id)) | exists(select(ProgressNote.id)) | exists(select(Evidence.id)))))


class _Player:
    def __init__(self, rng: random.Random, receipts: random.Random):
        self.rng = rng
        # Receipts draw from their own stream, so that the rest of the activity
        # stays what it was before receipts existed.
        self.receipts = receipts
        self.users = {u.username: u for u in db.session.scalars(select(User))}
        self.office = self.users["office"]
        self.stats: Counter = Counter()
        self.files = 0
        self.paces: dict[int, float] = {}
        self.open_entries: dict[int, object] = {}     # part id → its entry in the open round
        self.extended: set[int] = set()
        self.closed: list = []

    # who
    def staff(self, unit):
        return self.users[f"u{unit.id:02d}.staff"]

    def leader(self, unit):
        return self.users[f"u{unit.id:02d}.leader"]

    def numbers(self) -> dict:
        r = self.rng
        return {"a": r.randint(2, 9), "b": r.randint(12, 160), "c": r.randint(3, 24),
                "m": r.choice([12.5, 36, 48.6, 85, 120, 236.4, 310]), "r": r.randint(800, 12000)}

    def note(self) -> str:
        return self.rng.choice(PROGRESS_NOTES).format(**self.numbers())

    # what
    def receive(self, part, chance: float) -> None:
        if self.receipts.random() < chance:
            services.receive_part(part, self.receipts.choice([self.staff(part.unit), self.leader(part.unit)]))
            self.stats["签收"] += 1

    def start(self, part):
        user = self.rng.choice([self.staff(part.unit), self.leader(part.unit)])
        services.start_part(part, user)
        self.stats["开始办理"] += 1

    def evidence(self, part, files: int, texts: int) -> None:
        user = self.staff(part.unit)
        for _ in range(texts):
            services.add_text_evidence(part, user, self.rng.choice(EVIDENCE_TEXTS).format(**self.numbers()))
            self.stats["文字材料"] += 1
        for _ in range(files):
            name, kind = self.rng.choice(FILES)
            self.files += 1
            if kind == "pdf":
                data = make_pdf(f"Task {part.task_id} / part {part.id} / file {self.files}")
            else:
                data = make_png(SEED * 1000 + self.files)
            services.add_file_evidence(part, user, data, name, description=f"{part.unit.name}{name.rsplit('.', 1)[0]}")
            self.stats["文件材料"] += 1

    def submitter(self, part):
        # A leader submitting for a lead unit could then verify nobody's work but
        # their own; staff submit there, leaders of other units sometimes do.
        if any(u.id == part.unit_id for u in part.task.lead_units) or self.rng.random() < 0.7:
            return self.staff(part.unit)
        return self.leader(part.unit)

    def submit(self, part, note: str, resubmit_fix: str | None = None) -> None:
        if resubmit_fix:
            statement = self.rng.choice(RESUBMIT_STATEMENTS).format(fix=resubmit_fix, note=note)
        else:
            statement = self.rng.choice(STATEMENTS).format(note=note)
        services.submit_part(part, self.submitter(part), statement=statement)
        self.stats["提交"] += 1

    def verifier(self, part):
        submitted_by = part.submissions[-1].submitted_by_id
        for unit in part.task.lead_units:
            leader = self.leader(unit)
            if leader.id != submitted_by:
                return leader
        return None

    def decide(self, part, event: str) -> tuple[str, str] | None:
        verifier = self.verifier(part)
        if verifier is None:
            return None
        if event == "verify":
            services.verify_part(part, verifier)
            self.stats["核验通过"] += 1
            return None
        reason, fix = self.rng.choice(RETURN_REASONS)
        services.return_part(part, verifier, reason=reason)
        self.stats["退回"] += 1
        return reason, fix.format(**self.numbers())

    # when
    def at(self, day: date, hour_from: int = 9, hour_to: int = 17) -> datetime:
        """A working moment of ``day`` (China Standard Time), as stored: naive UTC."""
        local = datetime.combine(day, time(hour_from)) + timedelta(
            minutes=self.rng.randint(0, (hour_to - hour_from) * 60))
        return local - CST_OFFSET

    def later(self, moment: datetime, days_from: int, days_to: int) -> datetime:
        return self.at((moment + CST_OFFSET).date() + timedelta(days=self.rng.randint(days_from, days_to)))

    def pace_of(self, unit) -> float:
        """How closely a unit keeps to planned progress (some lag, some run ahead):
        one draw per unit, so that units differ, as they do."""
        if unit.id not in self.paces:
            self.paces[unit.id] = self.rng.choice([0.45, 0.7, 0.85, 0.95, 1.0, 1.0, 1.05, 1.1])
        return self.paces[unit.id]

    def target(self, part, moment: datetime) -> int:
        """The percentage a unit reports on ``moment``: its pace times the line's."""
        task = part.task
        day = (moment + CST_OFFSET).date()
        deadline = task.deadline if task.deadline and task.deadline > PLAN_START else day + timedelta(days=120)
        planned = pace.planned_progress(PLAN_START, deadline, day)
        wobble = self.rng.randint(-8, 8)
        return max(part.progress or 0, min(95, round(planned * self.pace_of(part.unit)) + wobble, 95), 5)

    # the story of one part: a generator that yields the moment of its next step
    def part_story(self, part, scenario: str):
        received = self.later(PLAN_MOMENT, 1, 16)
        if scenario == "untouched":
            # Some units have acknowledged their part, others not yet: the office's 待签收 list.
            if self.receipts.random() < 0.5:
                yield received
                self.receive(part, 1.0)
            return
        yield received
        # Most units 签收 before they start; with START_WITHOUT_RECEIPT=0 every one must.
        self.receive(part, 0.9 if machine.start_without_receipt_allowed() else 1.0)
        yield self.later(received, 0, 20)
        self.start(part)
        if scenario == "started":
            if self.rng.random() < 0.4:
                yield self.later(received, 25, 60)
                self.report(part)
            return
        # Monthly reports from May; the story's last step decides how many there are.
        finish = {"working": END, "submitted": self.at(date(2022, 9, self.rng.randint(1, 26))),
                  "returned": self.at(date(2022, 8, self.rng.randint(1, 25))),
                  "resubmitted": self.at(date(2022, 7, self.rng.randint(1, 20))),
                  "verified": self.at(date(2022, self.rng.randint(5, 8), self.rng.randint(1, 25)))}[scenario]
        month = 5
        note = ""
        while month <= 9:
            moment = self.report_moment(part, month)
            month += 1
            if moment is None:
                continue
            if moment >= finish:
                break
            yield moment
            note = self.report(part)
        if not note:
            yield self.later(finish, -10, -3)
            note = self.report(part)
        if scenario == "working":
            if self.rng.random() < 0.6:
                self.evidence(part, files=self.rng.randint(0, 1), texts=1)
            return
        yield finish
        self.evidence(part, files=1 + (self.rng.random() < 0.25), texts=int(self.rng.random() < 0.4))
        self.submit(part, note)
        if scenario == "submitted":
            return
        decided = self.later(finish, 2, 9)
        if scenario in ("returned", "resubmitted") or (scenario == "verified" and self.rng.random() < 0.2):
            yield decided
            returned = self.decide(part, "return")
            if returned is None or scenario == "returned":
                return
            _, fix = returned
            # The unit answers the return with new evidence, then hands in again.
            yield self.later(decided, 4, 15)
            self.evidence(part, files=1, texts=self.rng.randint(0, 1))
            self.submit(part, self.report(part), resubmit_fix=fix)
            if scenario == "resubmitted":
                return
            decided = self.later(decided, 18, 30)
        yield decided
        self.decide(part, "verify")
        # The office closes most verified tasks a few days later.
        if part.task.state == TaskState.VERIFIED and self.rng.random() < 0.7:
            yield self.later(decided, 2, 10)
            if part.task.state == TaskState.VERIFIED:
                services.close_task(part.task, self.rng.choice([self.office, self.users.get("office2", self.office)]))
                self.closed.append(part.task)
                self.stats["办结"] += 1

    def report(self, part) -> str:
        """A progress entry; while a round asks this part for one, it is the round's filing."""
        text = self.note()
        entry = self.open_entries.pop(part.id, None)
        if entry is not None and entry.round.state == ROUND_OPEN:
            round_services.file_round(entry, self.staff(part.unit), self.target(part, utcnow()), text)
            self.stats["调度报送"] += 1
        else:
            services.record_progress(part, self.staff(part.unit), self.target(part, utcnow()), text)
            self.stats["进度填报"] += 1
        return text

    def report_moment(self, part, month: int) -> datetime | None:
        """When the part reports in ``month``: during a round of that month most file
        by its due date, some a few days late, a few not at all (None)."""
        for opens, due, closes, _title, _text in ROUNDS:
            if opens.month == month:
                draw = self.rng.random()
                if closes is None:
                    # The round still open on the clock's day: about half have filed.
                    return self.at(opens + timedelta(days=self.rng.randint(1, 4))) if draw < 0.5 else None
                if draw < 0.72:
                    return self.at(opens + timedelta(days=self.rng.randint(1, max(1, (due - opens).days))))
                if draw < 0.88:
                    return self.at(due + timedelta(days=self.rng.randint(1, max(1, (closes - due).days - 1))))
                return None
        return self.at(date(2022, month, self.rng.randint(1, 27)))

    # the office's rounds, extension requests and milestones
    def round_story(self, plan):
        for opens, due, closes, title, text in ROUNDS:
            yield self.at(opens, 9, 10)
            round_ = round_services.open_round(plan, self.office, kind=RoundKind.MONTHLY, title=title, due_on=due,
                                               instructions=text)
            self.open_entries.update({e.part_id: e for e in round_.entries})
            self.stats["发起调度"] += 1
            if closes is None:
                continue
            yield self.at(closes, 16, 17)
            round_services.close_round(round_, self.office)
            self.open_entries = {k: e for k, e in self.open_entries.items() if e.round_id != round_.id}
            self.stats["结束调度"] += 1

    def candidates(self, tasks, *, before: date | None = None, after: date | None = None):
        """Parts in progress of a task with a lead unit (its leader decides; staff
        ask), with a deadline in (after, before], in document order."""
        for task in tasks:
            if task.long_term or task.deadline is None:
                continue
            if before and task.deadline > before or after and task.deadline <= after:
                continue
            for part in task.parts:
                if part.state == TaskState.IN_PROGRESS and part.id not in self.extended and task.lead_units:
                    yield part

    def lead_leader(self, part):
        return self.leader(part.task.lead_units[0])

    def extension_story(self, tasks):
        """延期申请 as they happen: granted (before and after a deadline the office
        let slip), refused by the office, declined by the lead unit, and two still
        waiting — one for the lead unit, one for the office."""
        plans = [
            # (asked on, the deadline window, new deadline, outcome)
            (date(2022, 6, 20), (date(2022, 6, 1), date(2022, 7, 31)), date(2022, 10, 12), "granted"),
            (date(2022, 8, 16), (date(2022, 12, 1), date(2022, 12, 31)), date(2023, 3, 31), "granted"),
            (date(2022, 8, 22), (date(2022, 12, 1), date(2022, 12, 31)), date(2023, 6, 30), "refused"),
            (date(2022, 9, 5), (date(2022, 12, 1), date(2022, 12, 31)), date(2023, 2, 28), "declined"),
            (date(2022, 9, 20), (date(2022, 12, 1), date(2022, 12, 31)), date(2023, 1, 31), "with_office"),
            (date(2022, 9, 27), (date(2022, 12, 1), date(2022, 12, 31)), date(2023, 3, 15), "with_lead"),
        ]
        for asked, (after, before), new_deadline, outcome in plans:
            yield self.at(asked)
            # The one that ends granted despite a red: the unit furthest behind.
            pool = list(self.candidates(tasks, before=before, after=after - timedelta(days=1)))
            if not pool:
                continue
            part = min(pool, key=lambda p: (p.progress, p.id)) if outcome == "granted" else self.rng.choice(pool)
            self.extended.add(part.id)
            request = extension_services.request_extension(
                part, self.staff(part.unit), new_deadline, self.rng.choice(EXTENSION_REASONS))
            self.stats["延期申请"] += 1
            if outcome == "with_lead":
                continue
            yield self.later(utcnow(), 1, 2)
            if outcome == "declined":
                extension_services.decline_extension(request, self.lead_leader(part), reason=DECLINE_REASON)
                continue
            extension_services.approve_extension(request, self.lead_leader(part))
            if outcome == "with_office":
                continue
            yield self.later(utcnow(), 1, 3)
            if outcome == "granted":
                extension_services.grant_extension(request, self.office)
                self.stats["批准延期"] += 1
            else:
                extension_services.refuse_extension(request, self.office, reason=REFUSE_REASON)

    def milestone_story(self, tasks):
        """The office sets a front-loaded line for two parts; a unit proposes one,
        its lead unit approves."""
        yield self.at(date(2022, 5, 10))
        pool = list(self.candidates(tasks, before=date(2022, 12, 31), after=date(2022, 11, 30)))
        for part in pool[:2]:
            extension_services.set_milestones(part, self.office, [(date(2022, 6, 30), 40, "完成摸底和方案制定"),
                                                                  (date(2022, 9, 30), 80, "主体工作基本完成")])
            self.stats["进度节点"] += 1
        if len(pool) > 2:
            part = pool[2]
            milestone = extension_services.propose_milestone(part, self.staff(part.unit), date(2022, 8, 31), 60,
                                                             "完成资金拨付")
            yield self.later(utcnow(), 1, 3)
            extension_services.approve_milestone(milestone, self.lead_leader(part))
            self.stats["进度节点"] += 1

    def office_story(self, tasks):
        """The office, late in the story: reopens one closed task on review, urges
        two that are behind."""
        yield self.at(date(2022, 9, 28))
        if self.closed:
            services.reopen_task(self.rng.choice(self.closed), self.office, reason=REOPEN_REASON)
            self.stats["重新打开"] += 1
        yield self.at(date(2022, 9, 29))
        behind = [t for t in tasks if any(p.state in (TaskState.PLANNED, TaskState.IN_PROGRESS) for p in t.parts)]
        for task in self.rng.sample(behind, min(2, len(behind))):
            services.urge(task, self.office, self.rng.choice(URGE_MESSAGES))
            self.stats["催办"] += 1

    def reminder_story(self, plan):
        """The daily sweep over the story's last two weeks (08:30 each morning), so
        that reminders add up and the units that ignored them are under 督办; and
        the office's monthly schedule, set on the 28th (it opens October's round)."""
        day = CLOCK_DAY - timedelta(days=14)
        while day < CLOCK_DAY:
            yield datetime.combine(day, time(8, 30)) - CST_OFFSET
            row = reminders.run_sweep(day, "scheduler")
            self.stats["自动提醒"] += row.reminders
            self.stats["督办"] += row.escalations
            if day == date(2022, 9, 28):
                reminder_services.add_schedule(self.office, plan, kind=RoundKind.MONTHLY.value, day=1, due_days=5,
                                               instructions="每月1日发起，5日前报送上月进展。")
            day += timedelta(days=1)

    def play(self) -> Counter:
        # Everything the services will walk, loaded up front: a lazy load per
        # row would cost more than the activity itself.
        parts = selectinload(Task.parts)
        tasks = db.session.scalars(select(Task).order_by(Task.id).options(
            selectinload(Task.item), selectinload(Task.lead_units), parts.selectinload(TaskPart.unit),
            parts.selectinload(TaskPart.submissions), parts.selectinload(TaskPart.evidence),
            parts.selectinload(TaskPart.progress_notes),
        )).all()
        names = [name for name, _ in SCENARIOS]
        weights = [weight for _, weight in SCENARIOS]
        stories = []
        for task in tasks:
            # Parts of one task tend to move together: one draw per task, and
            # each further part keeps it or draws its own.
            scenario = self.rng.choices(names, weights)[0]
            for part in sorted(task.parts, key=lambda p: p.id):
                if self.rng.random() < 0.4:
                    scenario = self.rng.choices(names, weights)[0]
                stories.append(self.part_story(part, scenario))
        stories.append(self.office_story(tasks))
        stories.append(self.round_story(tasks[0].item.plan))
        stories.append(self.extension_story(tasks))
        stories.append(self.milestone_story(tasks))
        stories.append(self.reminder_story(tasks[0].item.plan))
        self.run(stories)

        states = Counter(t.state for t in tasks)
        self.stats["任务：计划"] = states.get(TaskState.PLANNED, 0)
        self.stats["任务：推进中"] = states.get(TaskState.IN_PROGRESS, 0)
        self.stats["任务：已提交"] = states.get(TaskState.SUBMITTED, 0)
        self.stats["任务：已核验"] = states.get(TaskState.VERIFIED, 0)
        self.stats["任务：已办结"] = states.get(TaskState.CLOSED, 0)
        return self.stats

    def run(self, stories) -> None:
        """Play every story's steps in the order of their moments, each at its moment
        (``timeutil.played_at``), so that the audit trail, the inbox and every date
        read like April to September 2022. A step due after the story's end is not played."""
        queue = []
        for n, story in enumerate(stories):
            self._advance(queue, n, story, None)
        while queue:
            moment, n, story = heapq.heappop(queue)
            self._advance(queue, n, story, moment)

    @staticmethod
    def _advance(queue, n, story, moment) -> None:
        try:
            if moment is None:
                upcoming = next(story)
            else:
                with played_at(moment):
                    upcoming = next(story)
        except StopIteration:
            return
        # A step is never before the one that came before it in its own story.
        upcoming = max(upcoming, moment) if moment is not None else upcoming
        if upcoming <= END:
            heapq.heappush(queue, (upcoming, n, story))


def play_activity(seed: int = SEED) -> dict[str, int] | None:
    """Play the demo activity; None (and nothing done) if any activity exists.
    Flushes through the services; the caller commits."""
    if already_played():
        return None
    # The history's notices reached the inbox in 2022; none is e-mailed or posted now.
    with notices.inbox_only():
        return dict(_Player(random.Random(seed), random.Random(seed + 1)).play())


def describe(summary: dict[str, int] | None) -> str:
    if not summary:
        return "演示活动：已存在办理记录，未重复生成。"
    return "演示活动：" + "，".join(f"{key} {value}" for key, value in summary.items())
