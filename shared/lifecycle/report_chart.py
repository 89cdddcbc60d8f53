"""The DPO report's drawings, as inline SVG made on the server: no script and no external resource, so the page
keeps its strict Content-Security-Policy, and it prints as it shows. Each drawing carries its numbers as text
(an `aria-label`); the page adds a table of them beside it."""

from __future__ import annotations

from html import escape
from typing import Any

# The series a dataset's activity chart draws, one row of bars each (each with its own scale, so that a few
# erasures stay visible next to thousands of captures), and their colours.
CHART_SERIES = (
    ("captured", "Captured", "#1f5fa8"),
    ("delivered", "Delivered", "#2e7d32"),
    ("purged", "Expired and purged", "#6a3d9a"),
    ("erased", "Erased", "#b34700"),
)
NEAR_LIMIT = 0.9  # the oldest record's age past this share of the retention turns its bar red
WIDTH, ROW, LABEL, BAR_AREA = 640, 34, 150, 440


def activity_chart(dataset: str, days: list[dict[str, Any]]) -> str:
    """Per day of the window, one bar per series; the label says every total and the busiest day."""
    slot = BAR_AREA / max(len(days), 1)
    rows, said = [], []
    for number, (key, name, colour) in enumerate(CHART_SERIES):
        values = [int(day[key]) for day in days]
        top, total = max(values, default=0), sum(values)
        said.append(f"{name.lower()} {total} in all, at most {top} a day")
        base = number * ROW + ROW - 6
        bars = "".join(
            f'<rect x="{LABEL + i * slot + 1:.1f}" y="{base - _height(v, top):.1f}" width="{slot - 2:.1f}" '
            f'height="{_height(v, top):.1f}" fill="{colour}"/>'
            for i, v in enumerate(values)
            if v
        )
        rows.append(
            f'<text x="0" y="{base - 8}" font-size="12">{name}</text>'
            f'<text x="0" y="{base + 4}" font-size="11" fill="#444">{total} in all</text>'
            f'<line x1="{LABEL}" y1="{base}" x2="{LABEL + BAR_AREA}" y2="{base}" stroke="#999"/>{bars}'
            f'<text x="{LABEL + BAR_AREA + 6}" y="{base - 14}" font-size="11" fill="#444">max {top}</text>'
        )
    height = len(CHART_SERIES) * ROW + 18
    first, last = (days[0]["date"], days[-1]["date"]) if days else ("", "")
    axis = (
        f'<text x="{LABEL}" y="{height - 2}" font-size="11" fill="#444">{escape(first)}</text>'
        f'<text x="{LABEL + BAR_AREA}" y="{height - 2}" font-size="11" fill="#444" text-anchor="end">'
        f"{escape(last)}</text>"
    )
    label = f"Activity of dataset {dataset} per day from {first} to {last}: " + "; ".join(said) + "."
    return (
        f'<svg class="chart" role="img" aria-label="{escape(label)}" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">{"".join(rows)}{axis}</svg>'
    )


def _height(value: int, top: int) -> float:
    return 0.0 if not top else max(1.5, (ROW - 12) * value / top)


def retention_bar(used: float) -> str:
    """The oldest record's age as a share of the retention period; red past NEAR_LIMIT. Decorative: the cell
    says the same in words."""
    share = min(max(used, 0.0), 1.0)
    colour = "#c62828" if used > NEAR_LIMIT else "#1f5fa8"
    return (
        f'<svg class="bar" aria-hidden="true" viewBox="0 0 100 10" width="100" height="10">'
        f'<rect width="100" height="10" fill="#e6e6e6"/><rect width="{share * 100:.1f}" height="10" fill="{colour}"/>'
        "</svg>"
    )
