"""Task lists in running text (workflow/importer/tasklist.py): structure, clauses, line coverage and
the documents that are no task list at all.

The two fixture documents are compared field by field in tests/test_fidelity.py; here the structure
the fidelity record does not carry (introductions, preamble, line ranges, clause sources, warnings)
and small documents written for one behaviour each."""
from __future__ import annotations

import re
from datetime import date

import pytest

from tests import fidelity
from workflow.importer.draft import StructureNotFound
from workflow.importer.parse import parse_bytes, parse_text

INLINE = fidelity.SHAPES / "tasklist-inline.txt"
LABELS = fidelity.SHAPES / "tasklist-labels.txt"


def _read(path):
    return parse_bytes(path.read_bytes(), path.name)


def _covered(draft, text: str) -> list[int]:
    """Non-blank lines that are in no chapter heading, item range, warning or preamble line."""
    lines = text.split("\n")
    first_body = min([c.source_line for c in draft.chapters if c.source_line]
                     + [i.source_lines[0] for i in draft.items])
    covered = set(range(1, first_body))
    covered |= {c.source_line for c in draft.chapters}
    for item in draft.items:
        covered |= set(range(item.source_lines[0], item.source_lines[1] + 1))
    covered |= {w.line for w in draft.warnings if w.line}
    preamble = {line.strip() for line in draft.preamble}
    return [n for n, line in enumerate(lines, 1)
            if line.strip() and n not in covered and line.strip() not in preamble]


def _list(*body: str, head: str = "关于印发《某县重点工作任务分工方案》的通知\n某县人民政府办公室\n2023年5月8日\n") -> str:
    return head + "\n".join(body) + "\n"


# =========================================================================== the fixtures

@pytest.mark.parametrize("path", [INLINE, LABELS], ids=["inline", "labels"])
def test_every_line_of_a_fixture_is_accounted_for(path):
    draft = _read(path)
    text = path.read_text(encoding="utf-8")
    assert draft.shape == "task_list"
    assert draft.line_count == len(text.split("\n"))
    assert _covered(draft, text) == []
    for item in draft.items:
        for task in item.tasks:
            assert set(task.source_lines) <= set(range(item.source_lines[0], item.source_lines[1] + 1))
    ranges = [i.source_lines for i in draft.items]
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))


def test_front_matter_of_the_inline_fixture():
    draft = _read(INLINE)
    assert draft.title == "南湖区2023年优化营商环境重点任务分工方案"
    assert draft.issuer == "南湖区人民政府办公室"
    assert draft.issued_on == date(2023, 2, 20)
    assert "各街道办事处，区政府各部门，各有关单位：" in draft.preamble


def test_groups_are_items_with_their_introduction_and_prose_chapters_are_preamble():
    draft = _read(INLINE)
    assert [i.number for i in draft.items] == ["1", "2", "3", "4", "5"]
    first = draft.items[0]
    assert first.subtitle == "提升政务服务效能"
    assert first.policy_text == "围绕企业和群众办事需求，推动政务服务从“能办”向“好办、快办”转变。"
    # The introduction is no task; the tasks are the four numbered entries.
    assert [t.text[:4] for t in first.tasks] == ["深化“一", "推行“一", "在各街道", "全面推行"]
    # 一、总体要求 is prose: no chapter of the plan, its heading and text in the preamble.
    assert [c.title for c in draft.chapters] == ["重点任务", "保障措施"]
    assert "一、总体要求" in draft.preamble
    assert any(line.startswith("坚持以市场主体需求为导向") for line in draft.preamble)
    assert not any("市场主体需求为导向" in t.text for i in draft.items for t in i.tasks)
    # The chapter of measures without groups is one item named like the chapter.
    last = draft.items[-1]
    assert (last.subtitle, last.chapter, last.policy_text) == ("保障措施", 3, "")
    assert {t.kind for t in last.tasks} == {"measure"} and [t.seq for t in last.tasks] == [1, 2, 3, 4]
    assert {t.kind for i in draft.items[:-1] for t in i.tasks} == {"task"}


def test_label_lines_are_the_task_own_clause_and_a_group_clause_is_shared():
    draft = _read(LABELS)
    first, second = draft.items[0], draft.items[1]
    assert first.policy_text == "坚决扛牢粮食安全政治责任，确保粮食面积、产量只增不减。"
    assert [t.clause_source for t in first.tasks] == ["own"] * 4
    # （1）–（3） and then one bracketed clause: shared by the three; （4） has its label lines.
    assert [t.clause_source for t in second.tasks] == ["shared", "shared", "shared", "own"]
    clause_line = next(n for n, line in enumerate(LABELS.read_text(encoding="utf-8").split("\n"), 1)
                       if line.startswith("（牵头单位：县农业农村局；责任单位：县商务局"))
    assert all(clause_line in t.source_lines for t in second.tasks[:3])
    # The label lines of a task are in its source lines.
    assert len(first.tasks[0].source_lines) == 4
    # Numbering restarts in every group: seq too.
    assert [t.seq for i in draft.items for t in i.tasks][:8] == [1, 2, 3, 4, 1, 2, 3, 4]


def test_prose_chapters_and_a_prose_measures_chapter_are_no_tasks():
    draft = _read(LABELS)
    assert [(c.number, c.title) for c in draft.chapters] == [(3, "重点任务")]
    for heading in ("一、总体要求", "二、工作目标", "四、保障措施"):
        assert heading in draft.preamble
    assert any(line.startswith("（一）加强组织领导。") for line in draft.preamble)
    assert sum(len(i.tasks) for i in draft.items) == 20
    assert not [w for w in draft.warnings if w.code in ("missing_lead", "unplaced_fragment")]


def test_a_leader_is_a_person_and_other_offices_label_words_are_read():
    draft = _read(LABELS)
    rural = draft.items[2]
    assert rural.tasks[0].leaders == ["县政府副县长陈志远"]
    assert "县政府副县长陈志远" not in rural.tasks[0].lead_units + rural.tasks[0].responsible_units
    # 牵头责任单位 / 协同单位 / 时限要求
    assert rural.tasks[1].lead_units == ["市生态环境局云溪分局"]
    assert rural.tasks[1].responsible_units == ["县住房和城乡建设局", "县水利局"]
    assert rural.tasks[1].deadline == date(2023, 11, 30)


# =========================================================================== small documents

def test_a_task_without_clause_warns_missing_lead_and_keeps_its_neighbours():
    draft = parse_text(_list(
        "一、重点任务",
        "1.建设县级数字经济产业园。（牵头单位：县工信局；完成时限：2023年12月）",
        "2.开展数字技能培训，全年培训500人次。",
        "3.培育省级专精特新企业3家。（牵头部门：县科技局；完成时限：2023年10月底前）",
    ))
    item = draft.items[0]
    assert item.subtitle == "重点任务"
    orphan = item.tasks[1]
    assert orphan.text == "开展数字技能培训，全年培训500人次。"
    # The next task's inline clause is its own, not borrowed backwards.
    assert orphan.lead_units == [] and orphan.clause_source == "owner" and orphan.deadline_text is None
    assert item.tasks[2].lead_units == ["县科技局"] and item.tasks[2].clause_source == "own"
    [missing] = [w for w in draft.warnings if w.code == "missing_lead"]
    assert missing.line == 6 and missing.item == "1"
    assert re.search(r"[\u4e00-\u9fff]", missing.message)


def test_a_document_without_structure_says_what_it_found():
    text = "\n".join(["县政府办公室", "关于做好夏季防汛工作的通知"] + ["各单位要高度重视，认真落实各项工作。"] * 6
                     + ["一、压实防汛责任", "各乡镇要落实属地责任。", "二、加强隐患排查", "对重点部位开展拉网式排查。"])
    with pytest.raises(StructureNotFound) as refused:
        parse_text(text)
    message = refused.value.message
    assert message.startswith("未识别到任务结构：共 12 行")
    assert "一级标题（一、）2 个" in message and "二级标题（（一））0 个" in message
    assert "带“牵头单位”的分工 0 处" in message and "编号条目 0 条" in message
    assert "Word 或 Excel" in message
    found = refused.value.found
    assert "共 12 行" in found and "一级标题（一、）2 个" in found and "编号条目（1. / （1） / 1、）0 条" in found
    assert "一级标题：压实防汛责任、加强隐患排查" in found


def test_a_prose_only_document_is_refused_with_its_headings_counted():
    text = _list("一、指导思想", "以习近平新时代中国特色社会主义思想为指导。", "二、基本原则",
                 "（一）坚持问题导向。聚焦群众急难愁盼。", "（二）坚持系统观念。统筹推进各项工作。",
                 "三、组织保障", "各单位要加强领导，确保取得实效。")
    with pytest.raises(StructureNotFound) as refused:
        parse_text(text)
    assert "一级标题（一、）3 个" in refused.value.message
    assert "二级标题（（一））2 个" in refused.value.message
    assert "二级标题（（一））2 个" in refused.value.found


def test_item_lines_without_items_are_counted_in_what_was_found():
    """第N项 lines with nothing of an item under them: neither shape fits, and the office is told
    what was found, the 第N项 lines included."""
    text = _list("某县工作安排", "第1项", "第2项", "第3项")
    with pytest.raises(StructureNotFound) as refused:
        parse_text(text)
    assert "以“第N项”开头的行 3 行，但其下没有可识别的政策原文、落实目标或工作任务" in refused.value.found


def test_numbered_entries_without_any_clause_are_no_task_list():
    text = _list("一、会议安排", "1.会议时间：2023年5月12日上午9:00。", "2.会议地点：县政府三楼会议室。",
                 "3.参会人员：各单位主要负责同志。")
    with pytest.raises(StructureNotFound) as refused:
        parse_text(text)
    assert "编号条目 3 条" in refused.value.message and "分工 0 处" in refused.value.message


def test_a_detail_in_another_numbering_style_stays_in_its_task():
    draft = parse_text(_list(
        "一、重点任务",
        "（一）推进城市更新",
        "1.实施老旧小区改造。",
        "（1）完成32个小区改造；",
        "（2）同步加装电梯20部。",
        "（牵头单位：县住建局；责任单位：各街道；完成时限：2023年11月底前）",
        "2.打通城区断头路5条。（牵头单位：县交通运输局；完成时限：2023年12月）",
    ))
    [item] = draft.items
    assert [t.text for t in item.tasks] == ["实施老旧小区改造。\n（1）完成32个小区改造；\n（2）同步加装电梯20部。",
                                            "打通城区断头路5条。"]
    assert item.tasks[0].clause_source == "own" and item.tasks[0].lead_units == ["县住建局"]
    assert item.tasks[0].source_lines == [6, 7, 8, 9]


def test_a_group_written_as_one_paragraph_with_its_clause_is_one_task():
    draft = parse_text(_list(
        "一、重点任务",
        "（一）加快项目建设。全年实施重点项目120个，完成投资200亿元。",
        "（牵头单位：县发展改革局；完成时限：2023年12月底前）",
        "（二）扩大消费需求",
        "1.举办汽车家电促消费活动4场。（牵头单位：县商务局；完成时限：2023年10月）",
    ))
    first, second = draft.items
    assert first.subtitle == "加快项目建设" and first.policy_text == ""
    [task] = first.tasks
    # The task is the paragraph as written from its heading on.
    assert task.text == "加快项目建设。全年实施重点项目120个，完成投资200亿元。" and task.lead_units == ["县发展改革局"]
    assert task.source_lines == [5, 6] and task.clause_source == "own"
    assert second.tasks[0].lead_units == ["县商务局"]


def test_groups_written_as_tasks_with_their_clause_inline():
    draft = parse_text(_list(
        "一、扩大有效投资",
        "（一）实施工业技改项目50个。（牵头单位：县工信局；完成时限：2023年12月）",
        "（二）新开工重点项目30个，完成投资80亿元。（牵头单位：县发展改革局；",
        "责任单位：县自然资源局；完成时限：2023年9月底前）",
    ))
    assert [i.subtitle for i in draft.items] == ["实施工业技改项目50个", "新开工重点项目30个，完成投资80亿元"]
    assert [[t.text for t in i.tasks] for i in draft.items] == [["实施工业技改项目50个。"],
                                                              ["新开工重点项目30个，完成投资80亿元。"]]
    second = draft.items[1].tasks[0]
    assert second.responsible_units == ["县自然资源局"] and second.source_lines == [6, 7]


def test_a_chapter_of_numbered_principles_is_prose():
    draft = parse_text(_list(
        "一、基本原则",
        "1.坚持系统谋划。统筹发展和安全。",
        "2.坚持问题导向。聚焦企业反映强烈的问题。",
        "二、重点任务",
        "1.清理规范涉企收费。（牵头单位：县发展改革局；完成时限：2023年6月底前）",
    ))
    assert [c.title for c in draft.chapters] == ["重点任务"]
    [item] = draft.items
    assert [t.text for t in item.tasks] == ["清理规范涉企收费。"]
    assert "1.坚持系统谋划。统筹发展和安全。" in draft.preamble and "一、基本原则" in draft.preamble
    assert not [w for w in draft.warnings if w.code == "missing_lead"]


def test_the_first_unit_leads_when_the_document_says_so():
    body = ["一、重点任务", "1.开展消防安全专项整治。（责任单位：县消防救援大队、县应急局、各乡镇（街道））"]
    said = parse_text(_list(*body, head="关于印发《某县安全生产工作分工方案》的通知\n各责任单位中排在第一位的为牵头单位。\n"))
    task = said.items[0].tasks[0]
    assert task.lead_units == ["县消防救援大队"] and task.responsible_units == ["县应急局", "各乡镇（街道）"]
    # Without the document saying so, nobody is made the lead.
    silent = parse_text(_list(*body)).items[0].tasks[0]
    assert silent.lead_units == [] and silent.responsible_units == ["县消防救援大队", "县应急局", "各乡镇（街道）"]


def test_numbering_across_the_document_and_a_wrapped_clause():
    draft = parse_text(_list(
        "一、稳增长",
        "1、推动规上工业增加值增长6%。（牵头单位：县工信局；",
        "责任单位：各乡镇（街道）；完成时限：2023年12月）",
        "二、保障举措",
        "2、建立重点任务月调度机制。（牵头单位：县政府办公室；完成时限：每月5日前）",
    ))
    first, second = draft.items
    assert (first.chapter, second.chapter) == (1, 2)
    assert first.tasks[0].text == "推动规上工业增加值增长6%。"
    assert first.tasks[0].responsible_units == ["各乡镇（街道）"] and first.tasks[0].source_lines == [5, 6]
    assert second.tasks[0].kind == "measure" and second.tasks[0].seq == 1 and second.tasks[0].long_term


def test_a_clause_written_without_labels():
    draft = parse_text(_list(
        "一、重点任务",
        "1.建设城市智慧停车平台。（县住房和城乡建设局牵头，县公安局交警大队、县城市管理局配合）",
        "2.开展城乡环境综合整治。（各乡镇（街道）牵头，县直有关部门按职责分工负责）",
        "3.办好“村晚”等群众文化活动。（由政府牵头）（牵头单位：县文化和旅游局）",
        "4.完善公共法律服务体系（每年评估一次）。（牵头单位：县司法局）",
    ))
    first, second, third, fourth = draft.items[0].tasks
    assert first.lead_units == ["县住房和城乡建设局"]
    assert first.responsible_units == ["县公安局交警大队", "县城市管理局"]
    assert first.text == "建设城市智慧停车平台。"
    assert second.lead_units == ["各乡镇（街道）"] and second.addressees == ["县直有关部门按职责分工负责"]
    # A bracket that names no body stays in the text; the labelled clause after it is read.
    assert third.text == "办好“村晚”等群众文化活动。（由政府牵头）" and third.lead_units == ["县文化和旅游局"]
    assert fourth.text == "完善公共法律服务体系（每年评估一次）。"


def test_a_contact_line_gives_the_item_its_owner_and_contacts():
    draft = parse_text(_list(
        "一、重点任务",
        "（一）优化营商环境",
        "1.开展营商环境评价。（责任单位：县司法局；完成时限：2023年9月）",
        "（县发展改革局牵头，联系人：周敏，联系电话：6801234）",
    ))
    [item] = draft.items
    assert item.owner_units == ["县发展改革局"] and [(c.name, c.phone) for c in item.contacts] == [("周敏", "6801234")]
    # A clause naming only 责任单位: the item's owner leads.
    assert item.tasks[0].lead_units == ["县发展改革局"] and item.tasks[0].responsible_units == ["县司法局"]


def test_a_sentence_deadline_is_proposed_never_taken():
    draft = parse_text(_list("一、重点任务", "1.力争2023年9月底前建成县城污水处理厂二期。（牵头单位：县水务局）"))
    task = draft.items[0].tasks[0]
    assert task.deadline is None and task.deadline_text is None
    assert task.deadline_proposal == "2023年9月底前"


def test_text_after_a_closed_task_is_reported_not_dropped():
    draft = parse_text(_list("一、重点任务", "1.开展安全生产大检查。（牵头单位：县应急局；完成时限：2023年6月）",
                             "各单位要于每月底前报送工作进展。"))
    [warning] = [w for w in draft.warnings if w.code == "unplaced_fragment"]
    assert warning.line == 6 and "各单位要于每月底前报送工作进展" in warning.message
    assert [t.text for t in draft.items[0].tasks] == ["开展安全生产大检查。"]


def test_the_seed_is_still_a_compilation(seed_bytes):
    seed = parse_bytes(seed_bytes, "seed.txt")
    assert seed.shape == "compilation" and len(seed.items) > 50


# =========================================================================== robustness

def test_a_long_wrapped_task_parses_in_linear_time():
    """50,000 lines of one open paragraph: a quadratic join (re-reading the paragraph on every line)
    takes minutes here; the linear one well under a second per MB."""
    import time

    doc = ("关于印发《某县重点任务分工方案》的通知\n一、重点任务\n1.推进" + "\n".join(["重点项目建设，"] * 50000)
           + "。（牵头单位：县发展改革局；完成时限：2023年12月）\n")
    started = time.perf_counter()
    draft = parse_text(doc)
    assert time.perf_counter() - started < 10
    [task] = draft.items[0].tasks
    assert task.lead_units == ["县发展改革局"] and len(task.source_lines) == 50000
    # A run of 50,000 label lines is one clause, joined once.
    doc = "关于印发《某县重点任务分工方案》的通知\n一、重点任务\n1.推进重点项目建设。\n" + "牵头单位：县发展改革局\n" * 50000
    started = time.perf_counter()
    [task] = parse_text(doc).items[0].tasks
    assert time.perf_counter() - started < 10
    assert task.lead_units == ["县发展改革局"] and len(task.source_lines) == 50001


def test_damaged_task_lists_give_a_review_or_a_chinese_message():
    """Seeded mutations of both fixtures (shuffled, truncated, thinned lines, stray marks, a huge
    line, stray structure): never a traceback; a refusal says, in Chinese, what it found."""
    import random

    from workflow.importer.draft import DocumentError

    texts = [p.read_text(encoding="utf-8") for p in (INLINE, LABELS)]
    rng = random.Random(11)
    strays = ["（牵头单位：）", "牵头单位：", "牵头领导：", "（一）", "1.", "一、", "（", "）（牵头单位：县局）",
              "联系人：", "完成时限：完成时限："]
    outcomes = {"draft": 0, "refused": 0}
    for _ in range(400):
        lines = rng.choice(texts).split("\n")
        op = rng.randrange(6)
        if op == 0:
            rng.shuffle(lines)
        elif op == 1:
            lines = lines[:rng.randrange(len(lines))]
        elif op == 2:
            chars = list("\n".join(lines))
            for _ in range(rng.randrange(1, 30)):
                chars[rng.randrange(len(chars))] = rng.choice("　（）():：、。12一四")
            lines = "".join(chars).split("\n")
        elif op == 3:
            at = rng.randrange(len(lines))
            lines[at] *= 300
        elif op == 4:
            lines = [line for line in lines if rng.random() < 0.7]
        else:
            lines.insert(rng.randrange(len(lines)), rng.choice(strays))
        try:
            draft = parse_text("\n".join(lines))
        except DocumentError as refused:
            assert re.search(r"[\u4e00-\u9fff]", refused.message)
            outcomes["refused"] += 1
        else:
            assert draft.shape == "task_list" and any(i.tasks for i in draft.items)
            outcomes["draft"] += 1
    assert outcomes["draft"] and outcomes["refused"]


# =========================================================================== through the review

@pytest.mark.parametrize("path", [INLINE, LABELS], ids=["inline", "labels"])
def test_a_task_list_goes_through_the_review_and_is_written_as_read(app, path):
    from sqlalchemy import func, select

    from models import Chapter, Item, Plan, Task
    from workflow.extensions import db
    from workflow.importer import service

    with app.app_context():
        rv = service.review_upload(path.read_bytes(), path.name)
        assert rv.accepted, rv.problems
        assert "任务清单（正文分条）" in rv.as_text()
        plan = service.confirm(rv)
        assert db.session.get(Plan, plan.id).shape == "task_list"
        counted = lambda model: db.session.scalar(  # noqa: E731
            select(func.count()).select_from(model).where(model.plan_id == plan.id))
        assert counted(Chapter) == len(rv.draft.chapters)
        assert counted(Item) == len(rv.draft.items)
        tasks = db.session.scalar(select(func.count()).select_from(Task).join(Item, Task.item_id == Item.id)
                                  .where(Item.plan_id == plan.id))
        assert tasks == sum(len(i.tasks) for i in rv.draft.items) == 20


def test_a_list_under_stacked_issuers_with_parts_and_the_date_at_its_end():
    text = "\n".join([
        "中共江宁市委办公室",
        "江宁市人民政府办公室",
        "江宁市2023年市政府工作报告重点任务分解清单",
        "",
        "为确保各项目标任务落到实处，现将重点任务分解如下。",
        "第一部分 扩大内需",
        "1、实施重大项目攻坚行动，全年完成固定资产投资增长8%。（牵头领导：王海明；主责单位：市发展和改革委员会；"
        "协同责任单位：市自然资源和规划局、市住房和城乡建设局；完成时间：2023年12月）",
        "2、开展“惠民消费季”活动。（牵头部门：市商务局；配合单位：市财政局；时限要求：2023年上半年）",
        "第二部分 改善民生",
        "（一）办好民生实事",
        "1、新增普惠性托位2000个。（主责单位：市卫生健康委员会；完成时间：年底前）",
        "联系人：李娜，联系电话：0512-66668888",
        "第三部分 组织保障",
        "各牵头单位要细化措施，于每季度末报送进展。",
        "江宁市人民政府办公室",
        "2023年2月1日",
    ])
    draft = parse_text(text)
    assert draft.title == "江宁市2023年市政府工作报告重点任务分解清单"
    assert draft.issuer == "中共江宁市委办公室江宁市人民政府办公室"
    assert draft.issued_on == date(2023, 2, 1)
    assert [(c.number, c.title) for c in draft.chapters] == [(1, "扩大内需"), (2, "改善民生")]
    first, second = draft.items
    assert first.subtitle == "扩大内需" and second.subtitle == "办好民生实事"
    big = first.tasks[0]
    assert big.leaders == ["王海明"] and big.lead_units == ["市发展和改革委员会"]
    assert big.responsible_units == ["市自然资源和规划局", "市住房和城乡建设局"]
    assert first.tasks[1].deadline == date(2023, 6, 30)
    assert second.tasks[0].deadline == date(2023, 12, 31)
    assert [(c.name, c.phone) for c in second.contacts] == [("李娜", "0512-66668888")]
    assert "第三部分 组织保障" in draft.preamble and "2023年2月1日" in draft.preamble
    assert _covered(draft, text) == []
