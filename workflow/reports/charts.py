"""Charts as inline SVG, drawn here from plain figures.

Every piece of text that reaches the SVG (unit names especially) goes through
markupsafe.escape; numbers are formatted by us. The result is Markup so the
template can place it without |safe on anything a user typed.
"""
from __future__ import annotations

from markupsafe import Markup, escape

from workflow.vocabulary import STATE_LABELS, TASK_STATES, TaskState

FONT = "Noto Sans CJK SC"
STATE_COLOURS = {
    TaskState.PLANNED: "#a0aec0", TaskState.IN_PROGRESS: "#3b82f6", TaskState.SUBMITTED: "#d69e2e",
    TaskState.VERIFIED: "#38a169", TaskState.CLOSED: "#2d3748",
}
WIDTH = 640  # CSS px: 169 mm, the A4 text width at our margins


def _svg(height: int, body: list[str], title: str) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="{FONT}" font-size="11" role="img">'
        f'<title>{escape(title)}</title>' + "".join(body) + "</svg>")


def state_distribution(by_state: dict[str, int]) -> Markup:
    """One stacked bar of all tasks by state, and a legend with counts and shares."""
    total = sum(by_state.values())
    body: list[str] = []
    x = 0.0
    bar_w = WIDTH - 2
    if total:
        for state in TASK_STATES:
            n = by_state.get(state, 0)
            if not n:
                continue
            w = bar_w * n / total
            body.append(f'<rect x="{1 + x:.2f}" y="4" width="{w:.2f}" height="26" fill="{STATE_COLOURS[state]}"/>')
            x += w
    else:
        body.append(f'<rect x="1" y="4" width="{bar_w}" height="26" fill="#edf2f7"/>')
    body.append(f'<rect x="1" y="4" width="{bar_w}" height="26" fill="none" stroke="#4a5568" stroke-width="0.5"/>')
    col = WIDTH / len(TASK_STATES)
    for i, state in enumerate(TASK_STATES):
        n = by_state.get(state, 0)
        share = 100.0 * n / total if total else 0.0
        lx = i * col
        body.append(f'<rect x="{lx + 2:.1f}" y="42" width="12" height="12" fill="{STATE_COLOURS[state]}"/>')
        body.append(f'<text x="{lx + 18:.1f}" y="52">{escape(STATE_LABELS[state])} {n}（{share:.1f}%）</text>')
    return _svg(62, body, "任务状态分布")


def unit_completion(rows: list[dict], name_key: str = "name") -> Markup:
    """A horizontal bar per unit: completion rate, with done/total and overdue."""
    label_w = 190
    value_w = 150
    bar_w = WIDTH - label_w - value_w
    row_h = 18
    top = 18
    height = top + row_h * max(len(rows), 1) + 6
    body = [f'<text x="{label_w}" y="12" fill="#4a5568">0%</text>',
            f'<text x="{label_w + bar_w}" y="12" text-anchor="end" fill="#4a5568">100%</text>']
    for i, row in enumerate(rows):
        y = top + i * row_h
        name = str(row[name_key])
        if len(name) > 14:  # the full name is in the table below the chart
            name = name[:13] + "…"
        body.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{escape(name)}</text>')
        body.append(f'<rect x="{label_w}" y="{y + 2}" width="{bar_w}" height="12" fill="#edf2f7"/>')
        w = bar_w * row["rate"] / 100.0
        if w > 0:
            body.append(f'<rect x="{label_w}" y="{y + 2}" width="{w:.2f}" height="12" fill="#38a169"/>')
        late = f"，逾期 {row['late']}" if row.get("late") else ""
        body.append(f'<text x="{label_w + bar_w + 6}" y="{y + 12}">{row["rate"]:.1f}%'
                    f'（{row["done"]}/{row["tasks"]}{late}）</text>')
    if not rows:
        body.append(f'<text x="{label_w}" y="{top + 12}" fill="#4a5568">（无）</text>')
    return _svg(height, body, "各牵头单位完成率")
