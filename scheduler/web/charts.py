"""Charts drawn on the server as inline SVG: nothing to download, nothing fetched by the
browser, readable without JavaScript. Each mark has a ``<title>`` (the browser's tooltip) with
its exact figures; colours and text come from CSS classes (``scheduler/overview.css``), so the
admin's light and dark themes both apply.

Every function takes plain data and returns safe markup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

#: Outcomes in the order they are stacked, each with its CSS class.
OUTCOME_CLASSES = {
    "succeeded": "ok",
    "retrying": "retrying",
    "failed": "failed",
    "timed_out": "timed-out",
    "lost": "lost",
    "cancelled": "cancelled",
    "skipped": "skipped",
    "missed": "missed",
}

WIDTH = 640
HEIGHT = 180
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 44, 8, 10, 22


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _svg(width: int, height: int, label: str, body: list[str], css: str = "") -> SafeString:
    return mark_safe(
        f'<svg class="chart {css}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>{''.join(body)}</svg>"
    )


def _rect(x: float, y: float, w: float, h: float, css: str, tip: str) -> str:
    return (
        f'<rect class="{css}" x="{_n(x)}" y="{_n(y)}" width="{_n(max(w, 0))}" '
        f'height="{_n(max(h, 0))}"><title>{escape(tip)}</title></rect>'
    )


def _text(x: float, y: float, text: str, css: str = "axis", anchor: str = "start") -> str:
    return (
        f'<text class="{css}" x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}">{escape(text)}</text>'
    )


def nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (axis top)."""
    if value <= 0:
        return 1.0
    power = 1.0
    while power * 10 <= value:
        power *= 10
    while power > value:
        power /= 10
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _y_axis(top: float, width: int, height: int, fmt: Callable[[float], str]) -> list[str]:
    plot_h = height - PAD_TOP - PAD_BOTTOM
    out = []
    for fraction in (0.0, 0.5, 1.0):
        if fraction == 0.5 and fmt(top * fraction) in (fmt(0), fmt(top)):
            continue  # a middle line that would read like an end (0.5 of 1 run)
        y = PAD_TOP + plot_h * (1 - fraction)
        out.append(
            f'<line class="grid" x1="{PAD_LEFT}" x2="{width - PAD_RIGHT}" '
            f'y1="{_n(y)}" y2="{_n(y)}"/>'
        )
        out.append(_text(PAD_LEFT - 4, y + 4, fmt(top * fraction), anchor="end"))
    return out


@dataclass(frozen=True)
class Column:
    """One x position: its axis label (may be empty), its tooltip heading, its values."""

    label: str
    title: str
    values: dict[str, float]


def stacked_bars(
    columns: Sequence[Column],
    keys: Sequence[str],
    label: str,
    *,
    classes: dict[str, str] = OUTCOME_CLASSES,
    key_names: dict[str, str] | None = None,
    fmt: Callable[[float], str] = lambda v: f"{v:,.0f}",
    width: int = WIDTH,
) -> SafeString:
    """Bars of ``keys`` stacked per column (runs per hour by outcome)."""
    names = key_names or {}
    top = nice_max(max((sum(c.values.get(k, 0) for k in keys) for c in columns), default=0))
    plot_w = width - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    slot = plot_w / max(len(columns), 1)
    body = _y_axis(top, width, HEIGHT, fmt)
    for i, column in enumerate(columns):
        x = PAD_LEFT + i * slot
        y = PAD_TOP + plot_h
        for key in keys:
            value = column.values.get(key, 0)
            if not value:
                continue
            h = plot_h * value / top
            y -= h
            tip = f"{column.title}: {fmt(value)} {names.get(key, key)}"
            body.append(
                _rect(x + slot * 0.1, y, slot * 0.8, h, f"bar {classes.get(key, key)}", tip)
            )
        if column.label:
            body.append(_text(x + slot / 2, HEIGHT - 6, column.label, anchor="middle"))
    return _svg(width, HEIGHT, label, body)


@dataclass(frozen=True)
class Row:
    label: str
    values: dict[str, float | None]
    tip: str = ""


def hbars(
    rows: Sequence[Row],
    keys: Sequence[str],
    label: str,
    *,
    top: float | None = None,
    fmt: Callable[[float], str] = _n,
    classes: dict[str, str] | None = None,
    label_width: int = 200,
    caption: Callable[[Row], str] | None = None,
) -> SafeString:
    """A horizontal bar per row and key, drawn over each other (the first key widest: p95
    behind p50, or one bar of a rate)."""
    classes = classes or {}
    row_h = 22
    height = row_h * max(len(rows), 1) + 6
    width = WIDTH
    values = [v for row in rows for v in row.values.values() if v is not None]
    top = top if top is not None else nice_max(max(values, default=0))
    plot_w = width - label_width - 110
    body = []
    for i, row in enumerate(rows):
        y = 4 + i * row_h
        name = row.label if len(row.label) <= 30 else row.label[:29] + "…"
        body.append(
            f'<text class="label" x="0" y="{y + 14}">'
            f"<title>{escape(row.label)}</title>{escape(name)}</text>"
        )
        shown = []
        for key in keys:
            value = row.values.get(key)
            if value is None:
                continue
            w = plot_w * min(value / top, 1.0) if top else 0
            tip = row.tip or f"{row.label}: {key} {fmt(value)}"
            body.append(
                _rect(label_width, y + 3, w, row_h - 8, f"hbar {classes.get(key, key)}", tip)
            )
            shown.append(fmt(value))
        text = caption(row) if caption else " / ".join(shown)
        body.append(_text(label_width + plot_w + 6, y + 14, text, "value"))
    return _svg(width, height, label, body, "hchart")


def lines(
    points: Sequence[tuple[str, dict[str, float | None]]],
    keys: Sequence[str],
    label: str,
    *,
    fmt: Callable[[float], str] = _n,
    classes: dict[str, str] | None = None,
    every: int = 1,
) -> SafeString:
    """A line per key over the x positions (dispatch lag: average and worst per hour); a
    position without a value breaks the line."""
    classes = classes or {}
    values = [v for _, vs in points for v in vs.values() if v is not None]
    top = nice_max(max(values, default=0))
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    step = plot_w / max(len(points) - 1, 1)
    body = _y_axis(top, WIDTH, HEIGHT, fmt)
    for key in keys:
        path: list[str] = []
        pen_up = True
        for i, (name, vs) in enumerate(points):
            value = vs.get(key)
            if value is None:
                pen_up = True
                continue
            x = PAD_LEFT + i * step
            y = PAD_TOP + plot_h * (1 - min(value / top, 1.0))
            path.append(f"{'M' if pen_up else 'L'}{_n(x)},{_n(y)}")
            pen_up = False
            body.append(
                f'<circle class="dot {classes.get(key, key)}" cx="{_n(x)}" cy="{_n(y)}" r="2.5">'
                f"<title>{escape(name)}: {escape(key)} {escape(fmt(value))}</title></circle>"
            )
        if path:
            body.insert(0, f'<path class="line {classes.get(key, key)}" d="{" ".join(path)}"/>')
    for i, (name, _) in enumerate(points):
        if i % every == 0:
            body.append(_text(PAD_LEFT + i * step, HEIGHT - 6, name, anchor="middle"))
    return _svg(WIDTH, HEIGHT, label, body)


@dataclass(frozen=True)
class Spark:
    """One run of a sparkline: its height (duration), outcome class and tooltip."""

    value: float | None
    css: str
    tip: str


def sparkline(
    marks: Sequence[Spark],
    label: str,
    *,
    width: int = 400,
    height: int = 40,
    slots: int | None = None,
) -> SafeString:
    """A bar per run, oldest first, as tall as its duration and coloured by its outcome; a run
    without a duration (skipped, missed, still queued) is a short tick. With ``slots``, bars
    keep the width of that many and the newest sits at the right end, so a schedule with few
    runs does not get fat bars."""
    top = max((m.value for m in marks if m.value is not None), default=0) or 1.0
    slot = width / max(slots or len(marks), len(marks), 1)
    start = width - slot * len(marks)
    body = []
    for i, mark in enumerate(marks):
        h = max(height * (mark.value or 0) / top, 2.0) if mark.value is not None else 3.0
        x = start + i * slot + slot * 0.1
        body.append(_rect(x, height - h, slot * 0.8, h, f"bar {mark.css}", mark.tip))
    return _svg(width, height, label, body, "spark")
