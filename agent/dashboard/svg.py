"""Charts as inline SVG text: bars (stacked or not), a rate line, a funnel. Pure: numbers in.

Hand-written rather than a plotting library: four chart shapes, no JavaScript, nothing to
download, and the page stays one self-contained file (``voice-agent report --html``). Each
chart draws in its own coordinates (``viewBox``) and the page sizes it to the width of its
box (``width: 100%``), so it shrinks on a phone instead of overflowing. Colours are SVG
attributes, not ``style`` attributes (the pages' Content-Security-Policy allows only their
own stylesheet); fonts come from that stylesheet. Every piece of text is escaped, and each
bar and point carries a ``<title>`` (the browser shows it on hover) with its exact figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 520
"""Chart width in its own units. The stylesheet sets 16-unit text, 22 on a narrow screen
(about 15 px on a 390-px phone); the margins leave room for the larger size."""
HEIGHT = 260
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 14, 36
"""The margins around the plot: y-axis labels left, x-axis labels below."""
GRID = "#d9dde3"
AXIS_TEXT = "#4a5360"


@dataclass(frozen=True)
class Bar:
    label: str
    """Under the bar on the x axis; "" for none (labels are thinned out by the caller)."""
    tip: str
    """The bar's exact figures, shown on hover."""
    parts: tuple[tuple[str, float], ...]
    """(colour, value) stacked from the bottom."""


@dataclass(frozen=True)
class Point:
    label: str
    tip: str
    value: float | None
    """From 0 to 1; None: no value that day (the line has a gap)."""


@dataclass(frozen=True)
class Stage:
    label: str
    value: int
    share: str
    """What the bar's end says after the count, e.g. "81% of asked"."""


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def _n(value: float) -> str:
    """A coordinate, short: 12.0 → "12", 12.345 → "12.35"."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _open(chart_id: str, title: str, height: float) -> list[str]:
    return [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {_n(height)}" role="img" '
        f'aria-labelledby="{esc(chart_id)}-title" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{esc(chart_id)}-title">{esc(title)}</title>',
    ]


def nice_top(largest: float) -> tuple[float, float]:
    """The axis top and tick step for values up to ``largest``: a 1-2-5 step, four ticks
    or fewer, whole numbers (counts) for a top below 4."""
    if largest <= 0:
        return 1.0, 1.0
    raw = largest / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if raw <= m * power)
    step = max(step, 1.0)
    return step * math.ceil(largest / step), step


def _y_axis(top: float, step: float, plot_h: float, fmt: str = "{:g}") -> list[str]:
    lines = []
    ticks = round(top / step)
    for i in range(ticks + 1):
        value = step * i
        y = TOP + plot_h - plot_h * value / top
        lines.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_n(y)}" y2="{_n(y)}" stroke="{GRID}" '
            'stroke-width="1"/>'
        )
        lines.append(
            f'<text x="{LEFT - 6}" y="{_n(y + 5)}" text-anchor="end" fill="{AXIS_TEXT}">'
            f"{esc(fmt.format(value))}</text>"
        )
    return lines


def _x_label(x: float, label: str) -> str:
    return (
        f'<text x="{_n(x)}" y="{HEIGHT - 10}" text-anchor="middle" fill="{AXIS_TEXT}">'
        f"{esc(label)}</text>"
    )


def bar_chart(chart_id: str, title: str, bars: Sequence[Bar]) -> str:
    """Bars side by side, each a stack of parts, on a 0-based count axis."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top, step = nice_top(max((sum(v for _, v in bar.parts) for bar in bars), default=0))
    out = _open(chart_id, title, HEIGHT) + _y_axis(top, step, plot_h)
    slot = plot_w / max(len(bars), 1)
    width = max(slot * 0.72, 0.5)
    for i, bar in enumerate(bars):
        x = LEFT + slot * i + (slot - width) / 2
        out.append(f"<g><title>{esc(bar.tip)}</title>")
        # An invisible full-height target, so an empty or thin bar still shows its title.
        out.append(
            f'<rect x="{_n(LEFT + slot * i)}" y="{TOP}" width="{_n(slot)}" height="{_n(plot_h)}" '
            'fill="transparent"/>'
        )
        base = float(TOP + plot_h)
        for colour, value in bar.parts:
            if value <= 0:
                continue
            h = plot_h * value / top
            base -= h
            out.append(
                f'<rect x="{_n(x)}" y="{_n(base)}" width="{_n(width)}" height="{_n(h)}" '
                f'fill="{esc(colour)}"/>'
            )
        out.append("</g>")
        if bar.label:
            out.append(_x_label(LEFT + slot * (i + 0.5), bar.label))
    out.append("</svg>")
    return "".join(out)


def rate_line(chart_id: str, title: str, points: Sequence[Point], colour: str) -> str:
    """A line over 0–100 %, broken where a point has no value; a dot at every value."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    out = _open(chart_id, title, HEIGHT) + _y_axis(1.0, 0.25, plot_h, "{:.0%}")
    slot = plot_w / max(len(points), 1)
    path: list[str] = []
    dots: list[str] = []
    pen_down = False
    for i, point in enumerate(points):
        x = LEFT + slot * (i + 0.5)
        if point.label:
            out.append(_x_label(x, point.label))
        if point.value is None:
            pen_down = False
            continue
        y = TOP + plot_h * (1 - min(max(point.value, 0.0), 1.0))
        path.append(f"{'L' if pen_down else 'M'}{_n(x)} {_n(y)}")
        pen_down = True
        dots.append(
            f'<circle cx="{_n(x)}" cy="{_n(y)}" r="4" fill="{esc(colour)}">'
            f"<title>{esc(point.tip)}</title></circle>"
        )
    if path:
        out.append(
            f'<path d="{" ".join(path)}" fill="none" stroke="{esc(colour)}" stroke-width="2.5" '
            'stroke-linejoin="round"/>'
        )
    out.extend(dots)
    out.append("</svg>")
    return "".join(out)


ROW = 56
"""Height of one funnel stage: its label line, then its bar."""


def funnel(chart_id: str, title: str, stages: Sequence[Stage], colour: str) -> str:
    """One bar per stage, each as long as its share of the first stage."""
    height = ROW * len(stages) + 6
    out = _open(chart_id, title, height)
    first = max(stages[0].value if stages else 0, 1)
    usable = WIDTH - 2
    for i, stage in enumerate(stages):
        y = ROW * i
        w = usable * min(stage.value / first, 1.0)
        out.append(f"<g><title>{esc(f'{stage.label}: {stage.value} ({stage.share})')}</title>")
        out.append(
            f'<text x="1" y="{_n(y + 18)}" fill="{AXIS_TEXT}">{esc(stage.label)}</text>'
            f'<text x="{WIDTH - 1}" y="{_n(y + 18)}" text-anchor="end" class="strong">'
            f"{esc(stage.value)} · {esc(stage.share)}</text>"
        )
        out.append(
            f'<rect x="1" y="{_n(y + 26)}" width="{_n(usable)}" height="22" fill="{GRID}"/>'
            f'<rect x="1" y="{_n(y + 26)}" width="{_n(max(w, 0))}" height="22" '
            f'fill="{esc(colour)}"/>'
        )
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)
