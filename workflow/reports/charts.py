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


# ------------------------------------------------------------------ 单位考核排名 (workflow/scores.py)

def _short(name: str, limit: int = 14) -> str:
    # The full name is in the table beside the chart.
    return name if len(name) <= limit else name[:limit - 1] + "…"


def score_bars(rows: list, title: str = "各单位考核得分") -> Markup:
    """A horizontal bar per unit: its score 0–100 (rows: scores.Figures, ranked)."""
    label_w, value_w = 190, 70
    bar_w = WIDTH - label_w - value_w
    row_h, top = 18, 18
    height = top + row_h * max(len(rows), 1) + 6
    body = [f'<text x="{label_w}" y="12" fill="#4a5568">0</text>',
            f'<text x="{label_w + bar_w}" y="12" text-anchor="end" fill="#4a5568">100</text>']
    for i, row in enumerate(rows):
        y = top + i * row_h
        body.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{escape(_short(str(row.name)))}</text>')
        body.append(f'<rect x="{label_w}" y="{y + 2}" width="{bar_w}" height="12" fill="#edf2f7"/>')
        if row.score is not None and row.score > 0:
            colour = "#38a169" if row.score >= 80 else "#d69e2e" if row.score >= 60 else "#e53e3e"
            body.append(f'<rect x="{label_w}" y="{y + 2}" width="{bar_w * row.score / 100.0:.2f}" height="12" '
                        f'fill="{colour}"/>')
        shown = f"{row.score:.1f}" if row.score is not None else "—"
        body.append(f'<text x="{label_w + bar_w + 6}" y="{y + 12}">{shown}</text>')
    if not rows:
        body.append(f'<text x="{label_w}" y="{top + 12}" fill="#4a5568">（无）</text>')
    return _svg(height, body, title)


CHAPTER_COLOURS = (("on_time", "#38a169", "按期完成"), ("finished_late", "#d69e2e", "逾期完成"),
                   ("still_overdue", "#e53e3e", "到期未完成"))


def chapter_bars(rows: list, title: str = "各章节按期完成与逾期") -> Markup:
    """A stacked bar per chapter of the parts due in the period: on time, finished late,
    still overdue (rows: scores.Figures), scaled to the largest chapter."""
    label_w, value_w = 190, 120
    bar_w = WIDTH - label_w - value_w
    row_h, top = 18, 24
    most = max((r.judged for r in rows), default=0)
    height = top + row_h * max(len(rows), 1) + 6
    body = []
    for i, (_, colour, label) in enumerate(CHAPTER_COLOURS):
        body.append(f'<rect x="{label_w + i * 110}" y="4" width="10" height="10" fill="{colour}"/>')
        body.append(f'<text x="{label_w + i * 110 + 14}" y="13">{escape(label)}</text>')
    for i, row in enumerate(rows):
        y = top + i * row_h
        body.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{escape(_short(str(row.name)))}</text>')
        x = float(label_w)
        for key, colour, _ in CHAPTER_COLOURS:
            n = getattr(row, key)
            if n and most:
                w = bar_w * n / most
                body.append(f'<rect x="{x:.2f}" y="{y + 2}" width="{w:.2f}" height="12" fill="{colour}"/>')
                x += w
        rate = f"{row.ontime_rate:.1f}%" if row.ontime_rate is not None else "—"
        body.append(f'<text x="{label_w + bar_w + 6}" y="{y + 12}">{rate}（逾期 {row.overdue}）</text>')
    if not rows:
        body.append(f'<text x="{label_w}" y="{top + 12}" fill="#4a5568">（无）</text>')
    return _svg(height, body, title)


TREND_COLOURS = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5")


def trend_line(months: list[str], series: list[tuple[str, list]], title: str = "考核得分月度趋势") -> Markup:
    """One line per series (name, a score or None per month) over the months; a month
    without a score breaks the line."""
    left, right, top, bottom = 36, 12, 28, 24
    plot_w, plot_h = WIDTH - left - right, 150
    height = top + plot_h + bottom
    step = plot_w / max(len(months) - 1, 1)
    body = []
    for v in (0, 50, 100):
        y = top + plot_h * (1 - v / 100)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        body.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#4a5568">{v}</text>')
    for i, month in enumerate(months):
        body.append(f'<text x="{left + i * step:.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                    f'fill="#4a5568" font-size="9">{escape(month[2:])}</text>')
    for n, (name, values) in enumerate(series):
        colour = TREND_COLOURS[n % len(TREND_COLOURS)]
        body.append(f'<rect x="{left + n * 160}" y="6" width="10" height="10" fill="{colour}"/>')
        body.append(f'<text x="{left + n * 160 + 14}" y="15">{escape(_short(str(name), 10))}</text>')
        runs: list[list[str]] = [[]]
        for i, v in enumerate(values):
            if v is None:
                runs.append([])
                continue
            x, y = left + i * step, top + plot_h * (1 - v / 100)
            runs[-1].append(f"{x:.1f},{y:.1f}")
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>')
        for run in runs:
            if len(run) > 1:
                body.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
    if not series:
        body.append(f'<text x="{left + 6}" y="{top + 20}" fill="#4a5568">（无）</text>')
    return _svg(height, body, title)
