"""The customer report's charts, as SVG text that HTML e-mail, the browser and the PDF embed inline.

Only where a person would rather look than read: SLA attainment over the weeks, and first responses against
their targets. Every number a chart shows is also in the report's tables and in the CSV, so a mail client
that drops inline SVG loses no figure.

The SVG is deterministic (fixed hash salt, no date, ids prefixed per chart so two charts can share one HTML
page), keeps its text as text (`svg.fonttype = none`: searchable, translatable, sharp) and says what it
shows (`<title>` and `aria-label`). No data → a chart that says so, never an empty frame or an error.
"""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from markupsafe import escape

from release_requests.reports.figures import nearest_rank
from release_requests.reports.schemas import RequestRow, WeekAttainment

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LABELS = {
    "en": {
        "attainment_title": "SLA attainment per week",
        "attainment_axis": "attainment, %",
        "week_of": "week of",
        "response_title": "First response time against the target, per severity",
        "response_axis": "minutes",
        "severity": "Severity {0}",
        "target": "target {0} min",
        "median": "p50 {0}",
        "no_data": "No data for this period",
    },
    "ru": {
        "attainment_title": "Соблюдение SLA по неделям",
        "attainment_axis": "соблюдение, %",
        "week_of": "неделя с",
        "response_title": "Время первого ответа и целевое время, по важности",
        "response_axis": "минуты",
        "severity": "Важность {0}",
        "target": "цель {0} мин",
        "median": "p50 {0}",
        "no_data": "Нет данных за период",
    },
}

MET, BREACHED, NEUTRAL, TARGET = "#2a6fb0", "#c0392b", "#7f8c8d", "#c0392b"
LABELLED_WEEKS = 16  # a quarter and a bit: more weeks than this and labels would overlap
MAX_POINTS = 150  # per severity: more responses than this are drawn as a box
WIDTH = 6.4  # inches: fits A4 between the PDF's margins and a 600 px e-mail column (scaled)

# matplotlib's rcParams are process-wide: one chart at a time, so a concurrent render (the API answers in
# threads) cannot restore someone else's settings half-way through ours
_LOCK = threading.Lock()


def attainment_chart(weeks: list[WeekAttainment], *, language: str) -> str:
    """Bars of met ÷ (met + breached) per week on a 0–100 axis, each labelled with its value; a week with
    nothing met or breached shows "—" (no bar: there is nothing to divide). Past a quarter's worth of weeks
    the bars lose their value labels and every few weeks their date, which would otherwise overlap."""
    t = LABELS[language]
    if not any(w.attainment_pct is not None for w in weeks):
        return _no_data("attainment", t["attainment_title"], t)

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        positions = range(len(weeks))
        values = [w.attainment_pct or 0.0 for w in weeks]
        ax.bar(positions, values, color=MET, width=0.7)
        labelled = len(weeks) <= LABELLED_WEEKS
        for x, week in zip(positions, weeks, strict=True):
            if labelled or week.attainment_pct is None:
                label = "—" if week.attainment_pct is None else f"{week.attainment_pct:.1f}%"
                ax.text(x, (week.attainment_pct or 0.0) + 2, label, ha="center", va="bottom", fontsize=7)
        ax.set_ylim(0, 112)
        ax.set_yticks([0, 25, 50, 75, 100])
        ax.set_ylabel(t["attainment_axis"])
        every = math.ceil(len(weeks) / LABELLED_WEEKS)
        ticks = list(positions)[::every]
        ax.set_xticks(ticks, [weeks[i].week_start.isoformat() for i in ticks], rotation=45, ha="right")
        ax.set_xlabel(t["week_of"])
        ax.spines[["top", "right"]].set_visible(False)

    return _svg("attainment", t["attainment_title"], draw, height=2.8)


def response_chart(rows: list[RequestRow], *, language: str) -> str:
    """One panel per severity, because the targets differ a hundredfold (30 minutes to 8 business hours):
    each first response (minutes on the SLA clock) as a point — blue within its target, red over it — with
    the target as a dashed line and the median (nearest rank, as the report's p50) marked. A severity with
    more responses than points can show apart draws a box instead (p25–p75, whiskers p10–p90), which keeps
    the SVG small whatever the period."""
    t = LABELS[language]
    answered = sorted(
        (r for r in rows if r.first_response_minutes is not None),
        key=lambda r: (r.severity, r.received_at, r.request_id),
    )
    if not answered:
        return _no_data("response", t["response_title"], t)
    by_severity: dict[int, list[RequestRow]] = {}
    for row in answered:
        by_severity.setdefault(row.severity, []).append(row)

    def draw(fig: Figure) -> None:
        axes = fig.subplots(1, len(by_severity), squeeze=False)[0]
        for ax, (severity, group) in zip(axes, by_severity.items(), strict=True):
            minutes = [r.first_response_minutes or 0.0 for r in group]
            q = {p: nearest_rank(minutes, p / 100) for p in (10, 25, 50, 75, 90)}
            if len(group) <= MAX_POINTS:
                # a fixed spread instead of random jitter: the same rows always draw the same picture
                xs = [((i * 0.618034) % 1 - 0.5) * 0.5 for i in range(len(group))]
                colours = [MET if m <= r.target_minutes else BREACHED for m, r in zip(minutes, group, strict=True)]
                ax.scatter(xs, minutes, c=colours, s=14, alpha=0.8, linewidths=0)
                ax.plot([-0.3, 0.3], [q[50], q[50]], color="#333333", linewidth=1.5)
            else:
                box = {"med": q[50], "q1": q[25], "q3": q[75], "whislo": q[10], "whishi": q[90], "fliers": []}
                ax.bxp([box], positions=[0], widths=0.4, showfliers=False, medianprops={"color": "#333333"})
            for target in sorted({r.target_minutes for r in group}):
                ax.axhline(target, color=TARGET, linestyle="--", linewidth=1)
                ax.text(0.48, target, t["target"].format(target), color=TARGET, fontsize=7, ha="right", va="bottom")
            ax.text(-0.48, q[50], t["median"].format(f"{q[50]:.1f}"), fontsize=7, ha="left", va="bottom")
            ax.set_xlim(-0.5, 0.5)
            ax.set_ylim(0, max(*minutes, *(r.target_minutes for r in group)) * 1.15)
            ax.set_xticks([])
            ax.set_title(t["severity"].format(severity), fontsize=9)
            ax.spines[["top", "right"]].set_visible(False)
        axes[0].set_ylabel(t["response_axis"])

    return _svg("response", t["response_title"], draw, height=2.6)


def _no_data(name: str, title: str, t: dict[str, str]) -> str:
    def draw(fig: Figure) -> None:
        fig.text(0.5, 0.5, t["no_data"], ha="center", va="center", fontsize=10, color=NEUTRAL)

    return _svg(name, f"{title}: {t['no_data']}", draw, height=0.8)


def _svg(name: str, title: str, draw: Callable[[Figure], None], *, height: float) -> str:
    # imported here: matplotlib takes about half a second to load; `relreq --help`, the API's start and
    # every report without a chart must not pay it
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    settings = {"svg.fonttype": "none", "svg.hashsalt": name, "font.family": "DejaVu Sans", "font.size": 8}
    out = io.StringIO()
    with _LOCK, matplotlib.rc_context(settings):
        fig = Figure(figsize=(WIDTH, height), layout="constrained")
        FigureCanvasSVG(fig)  # no pyplot: the figure gets its own SVG canvas, no global backend is chosen
        draw(fig)
        fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    return _inline(out.getvalue(), name, title)


def _inline(svg: str, name: str, title: str) -> str:
    """matplotlib's file → an element for an HTML page: no XML prolog, ids unique to this chart, scalable to
    its container, named for screen readers, and styled by presentation attributes (`fill="…"`) instead of
    `style` — an HTML page's CSS (a stylesheet `*{…}`, WeasyPrint's validator) must not see SVG's properties."""
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r'<defs>\s*<style type="text/css">[^<]*</style>\s*</defs>\s*', "", svg, count=1)
    svg = re.sub(r' style="([^"]*)"', _attributes, svg)
    svg = re.sub(r'\b(id="|url\(#|href="#)', rf"\g<1>{name}-", svg)
    label = escape(title)
    root = (
        f'<svg role="img" aria-label="{label}" style="width: 100%; height: auto" '
        'stroke-linejoin="round" stroke-linecap="butt" '  # what matplotlib's stylesheet set for every shape
    )
    return svg.replace("<svg ", root, 1).replace(">", f"><title>{label}</title>", 1)


def _attributes(style: re.Match[str]) -> str:
    declarations = (d.split(":", 1) for d in style.group(1).split(";") if d.strip())
    return "".join(f' {prop.strip()}="{value.strip()}"' for prop, value in declarations)
