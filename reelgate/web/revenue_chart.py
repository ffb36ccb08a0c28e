"""The admin revenue page's chart: revenue, provider cost and margin per day, drawn as an inline SVG on the
server (no script, nothing the page's Content-Security-Policy has to allow)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Protocol

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 12, 28  # room for the axis labels
MICROS = Decimal(1_000_000)


class DayFigures(Protocol):
    key: str  # the day, YYYY-MM-DD
    revenue_micros: int
    provider_cost_micros: int
    margin_micros: int


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    y: float
    height: float


@dataclass(frozen=True)
class Day:
    label: str  # the day, for the bar's tooltip
    summary: str
    revenue: Bar
    cost: Bar


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    days: list[Day]
    margin_points: str  # the margin line's polyline points
    zero_y: float
    ticks: list[tuple[float, str]]  # (y, money) on the vertical axis
    labels: list[tuple[float, str]]  # (x, day) under the horizontal axis, a few of them
    left: int
    right_edge: int


def revenue_chart(per_day: Sequence[DayFigures], *, last_day: date, days: int = 30) -> Chart | None:
    """The last `days` days up to `last_day`, a day without charged jobs drawn as zero; None when no day
    has any figure (the page says so in words instead)."""
    by_day = {figures.key: figures for figures in per_day}
    span = [last_day - timedelta(days=days - 1 - i) for i in range(days)]
    rows = [_money(by_day.get(day.isoformat())) for day in span]
    if not any(any(row) for row in rows):
        return None
    top = max(max(revenue, cost, margin) for revenue, cost, margin in rows)
    bottom = min(0, min(margin for _, _, margin in rows))
    top = top if top > bottom else bottom + 1
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / days

    def y_of(value: Decimal) -> float:
        return round(TOP + float((top - value) / (top - bottom)) * plot_height, 1)

    zero = y_of(Decimal(0))
    drawn = []
    points = []
    for i, (day, (revenue, cost, margin)) in enumerate(zip(span, rows, strict=True)):
        x = LEFT + i * slot
        bar = slot * 0.38
        drawn.append(
            Day(
                label=day.isoformat(),
                summary=f"{day.isoformat()}: revenue {revenue}, provider cost {cost}, margin {margin}",
                revenue=Bar(round(x + slot * 0.1, 1), round(bar, 1), y_of(revenue), round(zero - y_of(revenue), 1)),
                cost=Bar(round(x + slot * 0.1 + bar, 1), round(bar, 1), y_of(cost), round(zero - y_of(cost), 1)),
            )
        )
        points.append(f"{round(x + slot / 2, 1)},{y_of(margin)}")
    ticks = [(y_of(value), f"{value:.2f}") for value in _ticks(bottom, top)]
    labels = [(round(LEFT + i * slot + slot / 2, 1), span[i].strftime("%d %b")) for i in range(0, days, 7)]
    return Chart(WIDTH, HEIGHT, drawn, " ".join(points), zero, ticks, labels, LEFT, WIDTH - RIGHT)


def _money(figures: DayFigures | None) -> tuple[Decimal, Decimal, Decimal]:
    if figures is None:
        return Decimal(0), Decimal(0), Decimal(0)
    return tuple(  # type: ignore[return-value]
        (Decimal(v) / MICROS).quantize(Decimal("0.01"))
        for v in (figures.revenue_micros, figures.provider_cost_micros, figures.margin_micros)
    )


def _ticks(bottom: Decimal, top: Decimal) -> list[Decimal]:
    step = (top - bottom) / 4
    return [bottom + step * i for i in range(5)]
