"""Tests of the document parser (pure: no Flask, no database).

Expectations on the seed document were checked by hand against the repository's
copy of the seed, workflow/demo_data/zhoucun-2022-batch1.txt (line numbers below
are its lines).
"""
from __future__ import annotations

import io
import random
import re
import zipfile
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from tests.conftest import SEED_PATH
from workflow.importer.draft import Draft, DocumentError
from workflow.importer.parse import parse_bytes, parse_file, parse_text
from workflow.importer.units import parse_deadline, split_unit_list, split_units, tidy_spaces, unit_kind

SEED = SEED_PATH
FIXTURES = Path(__file__).parent / "fixtures"
CJK_SPACE = re.compile(r"[\u4e00-\u9fff，。；：、（）“”]\s+[\u4e00-\u9fff\d（）“”]")


@pytest.fixture(scope="module")
def seed_text() -> str:
    return SEED.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def seed(seed_text) -> Draft:
    return parse_text(seed_text)


def items_by_number(draft: Draft) -> dict:
    return {item.number: item for item in draft.items}


def tasks(item, kind):
    return [t for t in item.tasks if t.kind == kind]


def shape(draft: Draft):
    """What two parses of the same document must agree on."""
    return [(i.number, i.parent, i.chapter, i.policy_text, i.goal, i.explanation, i.owner_units,
             [(t.kind, t.seq, t.text, t.lead_units, t.responsible_units, t.sections, t.deadline,
               t.long_term, t.clause_source) for t in i.tasks]) for i in draft.items]


# =========================================================================== seed: structure

def test_front_matter(seed):
    assert seed.issuer == "区委统筹疫情防控和经济运行工作领导小组（指挥部）办公室"
    # The cover letter "关于印发《…》的通知" names the compilation; the plan is the compilation.
    assert seed.title == "周村区落实省2022年“稳中求进”高质量发展政策清单（第一批）实施方案汇编"
    assert seed.issued_on == date(2022, 4, 8)
    assert seed.batch == "第一批"
    assert seed.line_count == 1464
    # the table of contents stays in the preamble, verbatim
    assert "一、培育壮大有效需求\t4" in seed.preamble
    assert "共计 56 项，从 2022 年 1 月 1 日起实施。" in seed.preamble


def test_chapters_are_not_taken_from_the_toc(seed):
    assert [(c.number, c.title, c.source_line) for c in seed.chapters] == [
        (1, "培育壮大有效需求", 45), (2, "稳定经济运行", 398), (3, "加快新旧动能转换", 634),
        (4, "加快新型城镇化建设", 988), (5, "深化改革开放", 1126), (6, "强化社会民生保障", 1288)]
    chapter_of = {i.number: i.chapter for i in seed.items}
    assert (chapter_of["1"], chapter_of["17"], chapter_of["18"], chapter_of["19-5"],
            chapter_of["36-2"], chapter_of["37"], chapter_of["56"]) == (1, 1, 2, 2, 3, 4, 6)


def test_items_and_sub_items(seed):
    numbers = [i.number for i in seed.items]
    expected = [str(n) for n in range(1, 57)]
    expected[19:19] = [f"19-{k}" for k in range(1, 6)]
    expected[expected.index("36") + 1:expected.index("36") + 1] = ["36-1", "36-2"]
    assert numbers == expected
    items = items_by_number(seed)
    assert [items[n].parent for n in ("19", "19-1", "19-5", "36", "36-1", "36-2")] == \
        [None, "19", "19", None, "36", "36"]
    assert all(i.complete for i in seed.items)


def test_not_applicable_items(seed):
    not_applicable = {i.number for i in seed.items if not i.applicable}
    assert not_applicable == {"2", "8", "16", "17", "20", "22", "26", "33", "37", "48", "50"}
    item2 = items_by_number(seed)["2"]
    assert item2.explanation.startswith("此项目不涉及我市、区。原因：该项目建设投资不涉及我市、区")
    assert item2.goal is None and item2.tasks == [] and item2.owner_units == []
    assert item2.policy_leads == ["省财政厅", "省交通运输厅"]


def test_counts(seed):
    # 193 tasks: each 一是/二是/三是 of a measures paragraph is a measure of its own.
    kinds = Counter(t.kind for i in seed.items for t in i.tasks)
    assert kinds == {"task": 90, "measure": 103}


def test_an_enumeration_in_one_paragraph_is_one_measure_each(seed):
    """"一是…。" on one line and "二是…。三是…。四是…。" on the next: four measures, markers removed."""
    measures = [t.text for t in items_by_number(seed)["15"].tasks if t.kind == "measure"]
    assert len(measures) == 4
    assert measures[0].startswith("持续跟踪调度") and measures[2] == "积极争取各类创新试点。"
    assert not [m for m in measures if re.match(r"[一二三四五六七八九十]是", m)]


def test_an_enumeration_marker_inside_a_sentence_is_prose():
    from workflow.importer.parse import _enumerated

    assert _enumerated("一是甲。二是乙；三是丙。") == ["甲。", "乙；", "丙。"]
    assert _enumerated("要做到一是甲。二是乙。") is None          # not at the paragraph's start
    assert _enumerated("一是甲。三是丙。") == ["甲。三是丙。"]        # numbering must count on by one


# =========================================================================== seed: items

def test_item_1(seed):
    item = items_by_number(seed)["1"]
    assert item.policy_text.startswith("2022年，统筹财政资金和专项债券资金800亿元")
    assert item.policy_text.endswith("支持省级决策实施的重大“七网”项目。")    # clause kept out
    assert item.policy_leads == ["省发展改革委", "省财政厅"]
    # the goal is one paragraph broken over a blank line (lines 55/57)
    assert "市政公用设施网、新型基础设施网" in item.goal
    assert item.owner_units == ["区发展改革局"]
    assert [(c.name, c.phone) for c in item.contacts] == [("王迎新", "6195196")]
    assert item.source_lines == [47, 69]
    (task,) = tasks(item, "task")
    assert task.text.startswith("按照“资金跟着项目走”原则，逐项梳理2022年通过省市反馈")
    assert task.text.endswith("加大协调调度推进力度。")
    assert (task.lead_units, task.responsible_units, task.sections) == (
        ["区发展改革局"], ["区财政局"], ["商贸流通和社会事业科"])
    assert (task.deadline, task.deadline_text, task.long_term, task.clause_source) == (
        date(2022, 12, 31), "2022年12月", False, "own")
    assert task.source_lines == [61]
    m1, m2 = tasks(item, "measure")
    # only 责任单位 named: the item's owner leads, 区财政局 shares the work
    assert (m1.lead_units, m1.responsible_units, m1.sections) == (
        ["区发展改革局"], ["区财政局"], ["政府债务管理科"])
    assert m1.text.startswith("逐项梳理拟发行") and not m1.text.startswith("1")
    assert (m2.lead_units, m2.responsible_units, m2.seq) == (["区发展改革局"], [], 2)


def test_label_written_twice(seed):
    item = items_by_number(seed)["3"]
    (measure,) = tasks(item, "measure")
    assert measure.deadline == date(2022, 12, 31)
    assert any(w.code == "repeated_label" and w.item == "3" and w.line == 99 for w in seed.warnings)
    # a task broken over a blank line (lines 93/95) is one task
    (task,) = tasks(item, "task")
    assert task.source_lines == [93, 95]
    assert "引导企业对标先进" in task.text


def test_entry_without_clause_takes_the_next_one(seed):
    m1, m2 = tasks(items_by_number(seed)["4"], "measure")
    assert m1.clause_source == "shared" and m2.clause_source == "own"
    assert m1.lead_units == ["区工业和信息化局"] and m1.sections == ["信息化科"]
    assert m1.deadline == date(2022, 12, 31)
    assert m1.source_lines == [119]        # its own text; the clause is on m2's line
    t2 = tasks(items_by_number(seed)["7"], "task")[1]
    assert t2.clause_source == "shared" and t2.lead_units == ["区工业和信息化局"]


def test_clause_on_its_own_line_and_owner_without_qian_tou(seed):
    item = items_by_number(seed)["13"]
    assert item.owner_units == ["区人防办"]          # "（区人防办，联系人：…）"
    t1 = tasks(item, "task")[0]
    assert (t1.lead_units, t1.responsible_units, t1.sections) == (["区人防办"], ["区发展改革局"], ["价格科"])
    m1, m2 = tasks(item, "measure")
    for m in (m1, m2):
        assert m.clause_source == "shared"
        assert (m.lead_units, m.responsible_units) == (["区人防办"], ["区发展改革委", "区财政局"])
        assert 322 in m.source_lines
    assert m1.source_lines == [318, 322]


def test_long_term_and_collective_units(seed):
    item = items_by_number(seed)["15"]
    t1 = tasks(item, "task")[0]
    assert (t1.deadline, t1.long_term, t1.deadline_text) == (None, True, "长期")
    # the collective as this clause writes it (names.py merges it with 各镇（街道） on import)
    assert t1.responsible_units == ["各镇、街道", "周村经济开发区", "区统计局", "区发展改革局", "区财政局"]
    # the 保障措施 are two unnumbered paragraphs without any clause: the owner leads
    # 一是… on one line, 二是…三是…四是… on the next: four measures, the markers gone
    m1, m2, m3, m4 = tasks(item, "measure")
    assert m1.text == "持续跟踪调度镇（街道）发展状况，扎实开展统计工作。"
    assert m2.text.startswith("培育壮大商贸流通企业") and m4.text.startswith("加强对上衔接")
    assert [m.source_lines for m in (m2, m3, m4)] == [[374]] * 3
    for m in (m1, m2, m3, m4):
        assert (m.clause_source, m.lead_units, m.deadline) == ("owner", ["区商务局"], None)
    assert [w.line for w in seed.warnings if w.code == "missing_deadline" and w.item == "15"] == [372, 374, 374, 374]


def test_item_19_and_its_sub_items(seed):
    items = items_by_number(seed)
    parent = items["19"]
    assert parent.policy_text.startswith("全面落实月销售额15万元以下的小规模纳税人免征增值税、小型微利企业减征所得税")
    assert parent.tasks == [] and parent.policy_leads == ["省财政厅", "省税务局"]
    sub = items["19-1"]
    assert sub.policy_text == "全面落实月销售额15万元以下的小规模纳税人免征增值税。"
    assert sub.goal == "加强对小规模纳税人提高起征点的政策宣传，做好精准纳税辅导，全面落实政策，进一步扶持小微企业发展。"
    ts, ms = tasks(sub, "task"), tasks(sub, "measure")
    assert len(ts) == 2 and len(ms) == 3
    assert all(t.clause_source == "shared" for t in ts + ms)
    assert [t.sections for t in ts] == [["税政一股"]] * 2
    assert [t.sections for t in ms] == [["税政二股"]] * 3
    assert ts[0].source_lines == [444, 448]
    # "…不折不扣落实到" / "位。" across a blank line
    assert ms[2].text.endswith("确保各项税收优惠政策不折不扣落实到位。")
    assert ms[2].source_lines == [456, 458, 460]
    assert [(c.name, c.phone) for c in items["19-2"].contacts] == [("张文超", "6431137"), ("宋宇", "6238089")]
    assert items["19-5"].tasks[0].deadline == date(2022, 1, 31)


def test_item_36_sub_items_share_the_parent_policy(seed):
    items = items_by_number(seed)
    assert items["36"].policy_text.startswith("大力发展总部经济")
    s1, s2 = items["36-1"], items["36-2"]
    assert (s1.subtitle, s2.subtitle) == ("内资企业部分", "外资企业部分")
    assert s1.policy_text == "" and s2.policy_text == ""
    (t1,) = tasks(s1, "task")
    assert (t1.clause_source, t1.lead_units) == ("owner", ["区发展改革局"])
    measures = tasks(s1, "measure")
    assert len(measures) == 3
    for m in measures:
        assert m.lead_units == ["区发展改革局", "区投资促进中心"]
        assert m.sections == ["国民经济综合科", "统计管理科"]
        assert m.deadline == date(2022, 12, 31)          # "完成时限：" / "2022年12月）" on the next line
        assert {964, 965, 966} <= set(m.source_lines)
    assert s2.owner_units == ["区商务局"] and len(s2.tasks) == 2


def test_clause_pieces_without_their_label(seed):
    items = items_by_number(seed)
    # "责任科室：工商贸易科；区住房和城乡建设局，责任科室：区公用事业服务中心" (item 14)
    t2 = tasks(items["14"], "task")[1]
    assert t2.responsible_units == ["区财政局", "区住房和城乡建设局"]
    assert t2.sections == ["投资发展科", "工商贸易科", "区公用事业服务中心"]
    # "…责任科室：动能转换推进科，2022年12月）" with the clause split over lines 740/742
    m3 = tasks(items["27"], "measure")[2]
    assert (m3.lead_units, m3.sections, m3.deadline) == (["区发展改革局"], ["动能转换推进科"], date(2022, 12, 31))
    # "区财政局，经济建设科" under 责任单位
    t1 = tasks(items["27"], "task")[0]
    assert t1.responsible_units == ["区科技局", "区财政局"]
    assert t1.sections == ["动能转换推进科", "综合管理科", "经济建设科"]


def test_contact_line_variants(seed):
    items = items_by_number(seed)
    assert [(c.name, c.phone) for c in items["25"].contacts] == [("许钰", "7878007"), ("赵文刚", "7878153")]
    assert [(c.name, c.phone) for c in items["35"].contacts] == [("姜楠", "6196858"), ("戴军", "6196068")]
    assert items["47"].owner_units == ["区发展改革局", "区商务局"]       # "…各司其责"
    assert [c.name for c in items["47"].contacts] == ["丛湘波", "马骏"]
    assert [(c.name, c.phone) for c in items["49"].contacts] == [("李雪", "6195135")]   # no 联系人 label
    assert items["56"].contacts[0].name == "刘晓辉"     # last line of the file, no newline


@pytest.mark.parametrize("line, owners, contacts", [
    ("（甲县发展改革局、甲县财政局牵头，联系人：周立、吴敏，联系电话：5550101、5550102）",
     ["甲县发展改革局", "甲县财政局"], [("周立", "5550101"), ("吴敏", "5550102")]),
    ("（甲县发展改革局牵头，联系人：周立，电话：5550101；吴敏，电话：5550102）",
     ["甲县发展改革局"], [("周立", "5550101"), ("吴敏", "5550102")]),
    ("（甲县发展改革局牵头，联系人：周立 5550101；吴敏 5550102）",
     ["甲县发展改革局"], [("周立", "5550101"), ("吴敏", "5550102")]),
    ("（甲县发展改革局牵头，联系人：周立（5550101）、吴敏（5550102））",
     ["甲县发展改革局"], [("周立", "5550101"), ("吴敏", "5550102")]),
    ("（甲县发展改革局牵头，联系人及电话：周立 5550101）", ["甲县发展改革局"], [("周立", "5550101")]),
    ("（甲县发展改革局牵头，联系人：周立，联系电话：0533-5550101，13805331234）",
     ["甲县发展改革局"], [("周立", "0533-5550101、13805331234")]),
    ("（牵头单位：甲县发展改革局；联系人：周立，电话：5550101）", ["甲县发展改革局"], [("周立", "5550101")]),
    # the owner written only with its contact
    ("（联系人：甲县发展改革局周立，联系电话：5550101）", ["甲县发展改革局"], [("周立", "5550101")]),
    ("（甲县发展改革局周立，联系电话：5550101）", ["甲县发展改革局"], [("周立", "5550101")]),
    ("（联系人：甲县发展改革局 周立，5550101；甲县财政局 吴敏，5550102）",
     ["甲县发展改革局", "甲县财政局"], [("周立", "5550101"), ("吴敏", "5550102")]),
    ("（甲县发展改革局联系人：周立，联系电话：5550101）", ["甲县发展改革局"], [("周立", "5550101")]),
    # shared ownership in other words
    ("（甲县发展改革局、甲县商务局分别牵头，联系人：周立，联系电话：5550101）",
     ["甲县发展改革局", "甲县商务局"], [("周立", "5550101")]),
    ("（甲县发展改革局、甲县商务局各负其责，联系人：周立，联系电话：5550101）",
     ["甲县发展改革局", "甲县商务局"], [("周立", "5550101")]),
])
def test_a_contact_line_as_offices_write_it(line, owners, contacts):
    """Two people, numbers beside the names, the owner only in front of its contact: the item keeps
    its owner units and every contact, and nothing is left unread."""
    doc = "\n".join(["第1项 测试政策", "（一）工作任务", "1.做好甲项工作。", "（牵头单位：甲县商务局，完成时限：2022年12月）",
                     line])
    item = parse_text(doc).items[0]
    assert item.owner_units == owners
    assert [(c.name, c.phone) for c in item.contacts] == contacts
    read = {"unplaced_fragment", "missing_owner", "not_a_unit", "missing_lead"}
    assert [w.message for w in parse_text(doc).warnings if w.code in read] == []


def test_a_generic_addressee_is_no_unit_and_kept_on_the_task(seed):
    t2 = tasks(items_by_number(seed)["51"], "task")[1]
    assert t2.responsible_units == [] and t2.addressees == ["有关部门按职责分工负责"]
    assert not [w for w in seed.warnings if w.code == "not_a_unit"]


def test_adjacent_entries_without_blank_line(seed):
    ts = tasks(items_by_number(seed)["55"], "task")
    assert [t.text for t in ts] == ["优先发展护理型养老床位，新增机构养老床位100张。",
                                    "落实奖补政策，鼓励机构收住失能老年人。",
                                    "规范提升社区老年人日间照料中心和农村幸福院，提高运营服务水平。"]
    assert [t.source_lines for t in ts] == [[1420, 1425], [1421, 1425], [1423, 1425]]


def test_responsible_unit_with_its_own_section(seed):
    item = items_by_number(seed)["56"]
    assert item.complete
    t1 = tasks(item, "task")[0]
    assert (t1.lead_units, t1.responsible_units) == (["区民政局"], ["区财政局"])
    assert t1.sections == ["社会救助服务中心", "慈善事业促进和社会工作科", "社会保障科"]
    assert t1.deadline == date(2022, 3, 31)
    assert len(tasks(item, "measure")) == 4
    # written with half-width commas: kept as written, the extraction spaces removed
    assert tasks(item, "measure")[0].text == "按照市级提高困难群众救助保障水平的方案,测算提标增补所需资金。"


def test_task_text_has_no_extraction_spaces(seed):
    for item in seed.items:
        for text in [item.policy_text, item.goal or "", item.explanation or ""] + [t.text for t in item.tasks]:
            assert not CJK_SPACE.search(text), (item.number, text)
            assert not re.match(r"^\d+\s*[.、．]", text)
    assert "购物体验 and 消费品质" in items_by_number(seed)["39"].goal   # Latin word: spaces kept
    # "1.\t2022\t年全区…": the entry number is not glued to the year
    assert tasks(items_by_number(seed)["42"], "task")[0].text.startswith("2022年全区计划实施新改建农村公路23.7公里")


# =========================================================================== seed: warnings

def test_stray_fragments_are_reported(seed):
    fragments = {w.line: w for w in seed.warnings if w.code == "unplaced_fragment"}
    assert set(fragments) == {482, 1402}
    assert "展。" in fragments[482].message and fragments[482].item == "19-2"
    assert fragments[1402].item == "54"


def test_duplicate_text(seed):
    duplicates = {(w.item, w.line): w.message for w in seed.warnings if w.code == "duplicate_text"}
    # item 34 (山东惠才卡) carries item 1's 七网 task, lightly edited
    assert "第1项 工作任务第1条" in duplicates[("34", 898)]
    assert "第8项 情况说明" in duplicates[("37", 990)] and "完全相同" in duplicates[("37", 990)]
    assert "第53项 保障措施第3条" in duplicates[("54", 1404)]
    assert not any(item == "1" for item, _ in duplicates)     # the original is not the copy


def test_warning_codes_on_the_seed(seed):
    assert Counter(w.code for w in seed.warnings) == {
        "duplicate_text": 11, "missing_deadline": 8, "unplaced_fragment": 2, "repeated_label": 1}
    assert all(re.search(r"[\u4e00-\u9fff]", w.message) for w in seed.warnings)


def test_every_line_is_accounted_for(seed, seed_text):
    """Nothing is dropped silently: every non-blank line is in the preamble, a chapter
    heading, an item's line range, or a warning."""
    first_body = min([c.source_line for c in seed.chapters] + [i.source_lines[0] for i in seed.items])
    covered = set(range(1, first_body))
    covered |= {c.source_line for c in seed.chapters}
    for item in seed.items:
        covered |= set(range(item.source_lines[0], item.source_lines[1] + 1))
        for task in item.tasks:
            assert set(task.source_lines) <= set(range(item.source_lines[0], item.source_lines[1] + 1))
    covered |= {w.line for w in seed.warnings if w.line}
    covered |= set(seed.removed)        # page furniture removed before parsing
    lines = seed_text.split("\n")
    missing = [n for n, line in enumerate(lines, 1) if line.strip() and n not in covered]
    assert missing == []
    # the preamble holds exactly the non-blank front-matter lines
    assert len(seed.preamble) == sum(1 for line in lines[:first_body - 1] if line.strip())
    # item ranges do not overlap and are in order
    ranges = [i.source_lines for i in seed.items]
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))


# =========================================================================== units.py

@pytest.mark.parametrize("text, expected", [
    ("2022年12月", (date(2022, 12, 31), False, True)),
    ("2022 年 2 月", (date(2022, 2, 28), False, True)),
    ("2022年6月底", (date(2022, 6, 30), False, True)),
    ("6月底前", (date(2022, 6, 30), False, True)),
    ("2023年6月底前", (date(2023, 6, 30), False, True)),
    ("2022年年底", (date(2022, 12, 31), False, True)),
    ("2021年底前", (date(2021, 12, 31), False, True)),
    ("年底前", (date(2022, 12, 31), False, True)),
    ("年底", (date(2022, 12, 31), False, True)),
    ("2022年12月31日", (date(2022, 12, 31), False, True)),
    ("２０２２年１１月", (date(2022, 11, 30), False, True)),
    ("二〇二二年九月", (date(2022, 9, 30), False, True)),
    ("2022年第一季度", (date(2022, 3, 31), False, True)),
    ("2022年上半年", (date(2022, 6, 30), False, True)),
    ("2022年3月至6月", (date(2022, 6, 30), False, True)),
    # the forms other offices write (issue 11)
    ("三季度末", (date(2022, 9, 30), False, True)),
    ("三季度末前", (date(2022, 9, 30), False, True)),
    ("上半年", (date(2022, 6, 30), False, True)),
    ("2022年内", (date(2022, 12, 31), False, True)),
    ("2023年3月31日", (date(2023, 3, 31), False, True)),
    ("2023年3月31日前", (date(2023, 3, 31), False, True)),
    ("2022.12", (date(2022, 12, 31), False, True)),
    ("2022.6.15", (date(2022, 6, 15), False, True)),
    ("2022-09", (date(2022, 9, 30), False, True)),
    ("即时", (None, True, True)),
    ("立即", (None, True, True)),
    ("立行立改", (None, True, True)),
    ("每月5日前", (None, True, True)),
    ("每季度末", (None, True, True)),
    ("长期", (None, True, True)),
    ("长期坚持", (None, True, True)),
    ("持续推进", (None, True, True)),
    ("常态化", (None, True, True)),
    ("", (None, False, False)),
    (None, (None, False, False)),
    ("视情况而定", (None, False, False)),
    ("2022年13月", (None, False, False)),
])
def test_parse_deadline(text, expected):
    assert parse_deadline(text, 2022) == expected


def test_a_recurring_deadline_keeps_its_rhythm_as_written():
    """每月5日前 is long-term; its wording is what the monthly checkpoint reads."""
    from workflow.pace import checkpoint_day
    when, long_term, ok = parse_deadline("每月5日前报送上月进展", 2022)
    assert (when, long_term, ok) == (None, True, True)
    assert checkpoint_day("每月5日前报送上月进展") == 5


@pytest.mark.parametrize("sentence, proposed", [
    ("力争2023年10月底前完成全部改造任务", "2023年10月底前"),
    ("三季度末前出台实施细则", "三季度末前"),
    ("上半年前完成摸底", "上半年前"),
    ("2022年底完成验收", "2022年底"),
    ("到2025年，全区覆盖率达到90%", None),      # a target year, not a deadline
    ("完善长效机制", None),
])
def test_a_deadline_inside_the_sentence_is_found_for_the_review(sentence, proposed):
    from workflow.importer.units import propose_deadline
    assert propose_deadline(sentence, 2022) == proposed


def test_deadline_without_year_needs_a_default():
    assert parse_deadline("年底", None) == (None, False, False)


@pytest.mark.parametrize("text, units, rejected", [
    # A collective is one addressee, kept as written (names.py merges its spellings later).
    ("区财政局，各镇、街道，周村经济开发区", ["区财政局", "各镇、街道", "周村经济开发区"], []),
    ("区 财政局、区民政局;区残联", ["区财政局", "区民政局", "区残联"], []),
    ("各镇（街道）、各镇办、各镇街", ["各镇（街道）", "各镇办", "各镇街"], []),
    ("各区、县级市，各县（市、区）人民政府", ["各区、县级市", "各县（市、区）人民政府"], []),
    ("各有关区、县级市；各乡镇、街道", ["各有关区、县级市", "各乡镇、街道"], []),
    ("各镇，街道办事处、市直各有关单位", ["各镇，街道办事处"], ["市直各有关单位"]),
    ("各镇(街道),区统计局", ["各镇（街道）", "区统计局"], []),
    ("有关部门按职责分工负责", [], ["有关部门按职责分工负责"]),
    ("区民政局、区直有关部门", ["区民政局"], ["区直有关部门"]),
])
def test_split_units(text, units, rejected):
    assert split_unit_list(text) == (units, rejected)
    assert split_units(text) == units


@pytest.mark.parametrize("name, kind", [
    ("区委统筹疫情防控和经济运行工作领导小组（指挥部）办公室", "office"),
    ("区财政局", "bureau"), ("区发展改革委", "bureau"), ("区人防办", "bureau"),
    ("市生态环境局周村分局", "branch"), ("区公安分局", "branch"),
    ("区投资促进中心", "center"), ("区农业技术服务中心", "center"),
    ("周村经济开发区", "town"), ("王村镇", "town"), ("青年路街道", "town"),
    ("各镇（街道）", "group"), ("区残联", "other"),
])
def test_unit_kind(name, kind):
    assert unit_kind(name) == kind


def test_tidy_spaces():
    assert tidy_spaces("完成时限：2022 年 12 月）") == "完成时限：2022年12月）"
    assert tidy_spaces("(牵头单位:\t区民政局,\t责任科室:\t社会救助服务中心") == "(牵头单位:区民政局,责任科室:社会救助服务中心"
    assert tidy_spaces("“全省一朵云 2.0”提升工") == "“全省一朵云2.0”提升工"


# =========================================================================== inputs

def test_encodings_parse_identically(seed, seed_text):
    assert shape(parse_bytes(seed_text.encode("gb18030"), "seed.txt")) == shape(seed)
    assert shape(parse_bytes(b"\xef\xbb\xbf" + seed_text.encode("utf-8"), "seed.txt")) == shape(seed)
    assert shape(parse_file(SEED)) == shape(seed)


def test_docx_round_trip(seed, seed_text, tmp_path):
    from docx import Document
    document = Document()
    for line in seed_text.split("\n"):
        document.add_paragraph(line)
    path = tmp_path / "seed.docx"
    document.save(path)
    draft = parse_file(path)
    assert [i.number for i in draft.items] == [i.number for i in seed.items]
    assert [len(i.tasks) for i in draft.items] == [len(i.tasks) for i in seed.items]
    assert shape(draft) == shape(seed)
    assert draft.title == seed.title and draft.issued_on == seed.issued_on


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    return buffer.getvalue()


MEETING_NOTICE = """关于召开2022年第一季度经济运行分析会议的通知

各镇、街道，区有关部门：
经研究，定于2022年4月12日上午9:00在区政府三楼会议室召开第一季度经济运行分析会议。
一、参会人员：各单位主要负责同志。
二、会议内容：通报一季度经济运行情况，安排部署下一阶段重点工作。
请各单位于4月11日前报送参会人员名单。

区委办公室
2022年4月8日
"""


@pytest.mark.parametrize("data", [
    b"",
    b"   \n\n\t  \r\n",
    random.Random(7).randbytes(4000),
    _zip_bytes(),
    b"%PDF-1.4 binary",
    MEETING_NOTICE.encode("utf-8"),
    "第一章 山雨欲来\n\n那天夜里，风很大。他推开门，看见院子里站着一个人。\n".encode("gb18030"),
], ids=["empty", "whitespace", "binary", "zip-not-docx", "pdf", "meeting-notice", "novel"])
def test_malformed_inputs_raise_a_chinese_error(data):
    with pytest.raises(DocumentError) as error:
        parse_bytes(data, "upload.bin")
    assert re.search(r"[\u4e00-\u9fff]", error.value.message)


def test_truncated_document(seed_text):
    lines = seed_text.split("\n")
    # ends after item 56's first two tasks: no clause for them yet, no 保障措施, no contact
    draft = parse_text("\n".join(lines[:1450]))
    last = draft.items[-1]
    assert last.number == "56" and not last.complete
    assert [t.clause_source for t in last.tasks] == ["owner", "owner"]
    (warning,) = [w for w in draft.warnings if w.code == "truncated"]
    assert warning.item == "56" and "缺少联系人行" in warning.message
    assert all(i.complete for i in draft.items[:-1])
    # ends right after a （三）工作任务 heading
    draft = parse_text("\n".join(lines[:1446]))
    assert not draft.items[-1].complete and "工作任务没有条目" in draft.warnings[-1].message
    # ends inside a sub-item
    draft = parse_text("\n".join(lines[:961]))
    assert draft.items[-1].number == "36-1" and not draft.items[-1].complete


# =========================================================================== another office

def test_other_office_wording():
    """第一项 / 一、政策原文 / 主要任务 / 保障举措 / 牵头部门 / 配合单位 / 完成时间 /
    时间节点 / （1） 1） １． numbering / 3-1 and ４－１ sub-items / a page number inside a
    paragraph / a clause without brackets / Chinese-numeral dates."""
    draft = parse_file(FIXTURES / "other_office.txt")
    assert draft.issuer == "某某县稳经济促发展工作专班办公室"
    assert draft.issued_on == date(2023, 3, 15) and draft.batch == "第二批"
    assert [(c.number, c.title) for c in draft.chapters] == [(1, "扩大有效投资"), (2, "稳定市场主体")]
    items = items_by_number(draft)
    assert list(items) == ["1", "2", "3", "3-1", "3-2", "4-1"]
    assert not items["2"].applicable

    t1, t2, t3 = tasks(items["1"], "task")
    assert t1.text == "建立重点项目库，实行动态管理，每季度更新一次。"     # across the page number
    assert (t1.lead_units, t1.responsible_units, t1.deadline) == (
        ["县发展改革局"], ["县财政局", "各镇街"], date(2023, 6, 30))
    assert (t2.clause_source, t2.sections, t2.deadline) == ("shared", ["投资科"], date(2023, 12, 31))
    assert t3.clause_source == "shared"
    m1, m2 = tasks(items["1"], "measure")
    assert (m1.lead_units, m1.responsible_units, m1.long_term) == (["县发展改革局"], ["县财政局"], True)
    assert (m2.deadline, m2.deadline_text) == (None, "视上级安排")

    assert items["3-1"].subtitle == "增值税部分" and items["3-1"].policy_text == ""
    (m,) = tasks(items["3-1"], "measure")
    assert (m.text, m.lead_units, m.deadline) == ("强化考核督导，落实落细各项政策。", ["县税务局"], date(2023, 9, 30))
    assert [t.text for t in tasks(items["3-2"], "task")] == ["精准推送优惠政策。", "开展“一对一”辅导。"]
    assert tasks(items["3-2"], "task")[0].deadline == date(2023, 9, 30)
    assert [(c.name, c.phone) for c in items["3-2"].contacts] == [("赵强", "7654322"), ("孙丽", "7654323")]
    assert items["4-1"].parent == "4" and items["4-1"].policy_leads == ["省人力资源社会保障厅"]

    codes = {(w.code, w.line) for w in draft.warnings}
    assert codes == {("bad_deadline", 42), ("number_sequence", 100)}   # 县直有关部门按职责分工负责: an addressee
    # the page number "- 2 -" is removed before parsing (furniture.py), not warned about
    assert draft.removed == {29: "page_number"}


# =========================================================================== warning kinds

def _other_office_with(old: str, new: str) -> Draft:
    text = (FIXTURES / "other_office.txt").read_text(encoding="utf-8")
    assert old in text
    return parse_text(text.replace(old, new, 1))


def test_a_deadline_not_written_is_its_own_kind_not_an_unreadable_one():
    from workflow.importer.load import WARNING_LABELS

    measure = "2）加强调度通报，定期通报项目进展。"
    clause = "（牵头部门：县发展改革局，完成时间：视上级安排）"
    # No clause at all (the last entry, so no later clause covers it): the owner leads, no deadline is written.
    draft = _other_office_with(measure + clause, measure)
    [w] = [w for w in draft.warnings if w.line == 42]
    assert (w.code, WARNING_LABELS[w.code]) == ("missing_deadline", "未写明完成时限")
    # A clause that names units but no deadline: not written either.
    draft = _other_office_with(measure + clause, measure + "（牵头部门：县发展改革局）")
    [w] = [w for w in draft.warnings if w.line == 42]
    assert w.code == "missing_deadline" and "未写明完成时限" in w.message
    # A deadline that is written but cannot be read keeps its own kind.
    draft = parse_file(FIXTURES / "other_office.txt")
    [w] = [w for w in draft.warnings if w.line == 42]
    assert (w.code, WARNING_LABELS[w.code]) == ("bad_deadline", "时限无法识别") and "视上级安排" in w.message
    assert WARNING_LABELS["missing_deadline"] != WARNING_LABELS["bad_deadline"]


def test_every_warning_and_problem_kind_the_importer_writes_has_a_chinese_label():
    """The codes are read from the importer's source (every warn/DraftWarning/problem call), so a new
    kind without a label fails here rather than showing as an English code in the review."""
    from workflow.importer.load import PROBLEM_LABELS, WARNING_LABELS

    source = "\n".join(p.read_text(encoding="utf-8")
                       for p in (Path(__file__).parent.parent / "workflow" / "importer").glob("*.py"))
    warnings = set(re.findall(r"(?:\bwarn|DraftWarning)\(\s*\"([a-z_]+)\"", source))
    problems = set(re.findall(r"\bproblem\(\s*\"([a-z_]+)\"", source))
    assert {"number_mismatch", "missing_deadline", "bad_deadline", "duplicate_text"} <= warnings
    assert "bad_deadline_value" in problems
    assert warnings - set(WARNING_LABELS) == set() and problems - set(PROBLEM_LABELS) == set()
    for label in list(WARNING_LABELS.values()) + list(PROBLEM_LABELS.values()):
        assert re.fullmatch(r"[\u4e00-\u9fff]+", label), label


# =========================================================================== titles over several lines

def _front(seed_text: str, start: str) -> str:
    """The seed from ``start`` on (the cover letter left out)."""
    return seed_text[seed_text.index(start):]


def test_a_cover_page_title_keeps_every_line_and_the_batch(seed_text):
    """No cover letter: the title is the cover page's, set over three lines and a paragraph of its own."""
    draft = parse_text(_front(seed_text, "**周村区落实省"))
    assert draft.title == "周村区落实省“稳中求进”高质量发展政策清单（第一批）实施方案汇编"
    assert draft.batch == "第一批"
    # The issuer printed under the title on the cover is not part of it.
    assert "办公室" not in draft.title


def test_two_batches_have_two_titles(seed_text):
    cover = _front(seed_text, "**周村区落实省")
    first = parse_text(cover)
    second = parse_text(cover.replace("(第一批)", "(第二批)", 1))
    assert second.title == first.title.replace("第一批", "第二批") and second.title != first.title
    assert (first.batch, second.batch) == ("第一批", "第二批")


@pytest.mark.parametrize("lines, title", [
    # the cover letter's title wrapped inside 《》
    (["关于印发《周村区落实省“稳中求进”高质量发展政策清单", "（第二批）实施方案汇编》的通知"],
     "周村区落实省“稳中求进”高质量发展政策清单（第二批）实施方案汇编"),
    # the batch on a line of its own, without brackets, after a blank line
    (["某某县落实省稳中求进政策清单", "", "第三批"], "某某县落实省稳中求进政策清单第三批"),
    # the batch in the same line: nothing to add, and the issuer below stays out
    (["某某县落实省稳中求进政策清单（第二批）实施方案", "", "某某县人民政府办公室", "2023年3月"],
     "某某县落实省稳中求进政策清单（第二批）实施方案"),
])
def test_title_lines_of_the_genre(seed_text, lines, title):
    body = _front(seed_text, "目 录")
    draft = parse_text("\n".join(lines) + "\n\n" + body)
    assert draft.title == title


def test_other_offices_label_words_and_a_leader_who_is_a_person():
    from workflow.importer.parse import _parse_clause
    from workflow.importer.units import canon

    for written, leads, resp, leaders, deadline in [
        ("（牵头责任单位：县发展改革局；协同责任单位：县财政局、县自然资源局；牵头领导：副县长张某某；"
         "时限要求：2023年6月底前）", ["县发展改革局"], ["县财政局", "县自然资源局"], ["副县长张某某"], "2023年6月底前"),
        ("（主责部门：市商务局；协同单位：市市场监管局；责任领导：李某、王某；完成时间：2023年9月）",
         ["市商务局"], ["市市场监管局"], ["李某", "王某"], "2023年9月"),
        ("（牵头部门：区教育局；协同部门：区财政局；分管领导：赵某；时间节点：年底前）",
         ["区教育局"], ["区财政局"], ["赵某"], "年底前"),
    ]:
        clause = _parse_clause(canon(written), written, [1])
        assert (clause.leads, clause.resp, clause.leaders, clause.deadline_text) == (leads, resp, leaders, deadline)
        assert not clause.unplaced and not clause.rejected
        assert not set(clause.leaders) & set(clause.leads + clause.resp)   # a person is never a unit


def test_every_unit_and_contact_of_the_seed_is_as_the_document_writes_it(seed, seed_text):
    """Issue 11: every unit name the seed's draft holds (after the in-document merges) is written in the
    document, and every person named after 联系人 in a contact line is a contact of its item — none lost,
    none invented. The people are read here by a rule of their own, not the parser's."""
    from workflow.importer.names import merge_spellings
    from workflow.importer.load import written_unit_names

    squashed = re.sub(r"\s+", "", seed_text)
    canonical = merge_spellings(written_unit_names(seed))
    names = {canonical.get(n, n) for n in written_unit_names(seed)}
    assert len(names) >= 30
    assert sorted(n for n in names if n not in squashed) == []

    people = []
    for line in seed_text.splitlines():
        line = line.strip()
        if line.startswith(("（", "(")) and "联系" in line and "牵头单位：" not in line and "责任单位：" not in line:
            for m in re.finditer(r"联系人：([^，；,;：）)]+)", line):
                people += [p for p in re.split(r"[、/]", m[1].strip()) if p]
    contacts = [c.name for i in seed.items for c in i.contacts]
    assert len(people) >= 45
    assert sorted(set(people) - set(contacts)) == []
    assert all(c in squashed for c in contacts)
