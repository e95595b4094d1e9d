"""The speed-accuracy frontier of a qa-bench run: which systems no other system beats on both questions/s and F1,
and the chart of F1 against questions/s that lets a user pick a point on it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from spanqa.benchmarks.qa_bench.results import SystemResult


@dataclass(frozen=True)
class Point:
    name: str
    questions_per_second: float
    f1: float


def measured_points(results: Iterable[SystemResult]) -> list[Point]:
    """The systems that have both figures (a failed or unscored system has no place on the chart)."""
    points = []
    for result in results:
        speed, f1 = result.examples_per_second, result.f1
        if result.ok and speed is not None and f1 is not None and math.isfinite(speed) and math.isfinite(f1):
            points.append(Point(result.name, speed, f1))
    return points


def dominates(a: Point, b: Point) -> bool:
    """a is at least as fast and as accurate as b, and better in one of the two."""
    return (a.questions_per_second >= b.questions_per_second and a.f1 >= b.f1
            and (a.questions_per_second > b.questions_per_second or a.f1 > b.f1))  # fmt: skip


def pareto_frontier(points: Sequence[Point]) -> list[Point]:
    """The points no other point dominates, slowest first (so F1 falls along the list). Two systems with exactly
    the same figures are both on it: neither is better."""
    on_front = [point for point in points if not any(dominates(other, point) for other in points)]
    return sorted(on_front, key=lambda point: (point.questions_per_second, -point.f1, point.name))


def frontier_line(points: Sequence[Point]) -> str | None:
    """One Markdown line naming the frontier, slowest first; None when nothing was measured."""
    front = pareto_frontier(points)
    if not front:
        return None
    steps = " -> ".join(f"{point.name} ({point.questions_per_second:.1f} q/s, F1 {point.f1:.2f})" for point in front)
    return f"Speed-accuracy frontier (no other system is both faster and more accurate), slowest first: {steps}."


def frontier_path(chart: str | None, json_path: str | None) -> Path | None:
    """Where the chart goes: --frontier, else beside the --json report (bench.json -> bench.frontier.png)."""
    if chart:
        return Path(chart)
    if json_path:
        return Path(json_path).with_suffix(".frontier.png")
    return None


def label_offsets(anchors: Sequence[tuple[float, float]], names: Sequence[str], char_width: float = 5.2,
                  line_height: float = 10.5) -> list[tuple[float, float]]:
    """Offsets (in points, like `anchors`) for the labels of points, so that no two label boxes overlap: each label
    sits up and to the right of its point, and one that would cover a label already placed is raised a line at a
    time (systems with equal F1 and close speeds, such as several fp32 runtimes, would otherwise print on top of
    each other). Boxes are estimated from the name's length at 8-point type."""
    placed: list[tuple[float, float, float, float]] = []
    offsets: list[tuple[float, float]] = [(0.0, 0.0)] * len(anchors)
    for index in sorted(range(len(anchors)), key=lambda index: (anchors[index][1], anchors[index][0])):
        (x, y), width = anchors[index], char_width * len(names[index])
        dx, dy = 4.0, 3.0
        while any(x + dx < right and left < x + dx + width and y + dy < top and bottom < y + dy + line_height
                  for left, bottom, right, top in placed):  # fmt: skip
            dy += line_height
        placed.append((x + dx, y + dy, x + dx + width, y + dy + line_height))
        offsets[index] = (dx, dy)
    return offsets


def draw_frontier(results: Iterable[SystemResult], path: Path, title: str = "") -> list[Point]:
    """F1 against questions/s (log scale), one labelled point per measured system, the frontier as a step line;
    written as PNG to `path`. Returns the frontier."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    points = measured_points(results)
    if not points:
        raise ValueError("no system has both questions/s and F1; nothing to chart")
    front = pareto_frontier(points)
    names = {point.name for point in front}
    figure, axes = plt.subplots(figsize=(8, 5.5))
    # 'pre' steps: between two frontier points the better-F1 one can only be had at its own (lower) speed, so
    # the line holds the faster point's F1 back to the slower one's speed: the region no system reaches lies above.
    axes.step([p.questions_per_second for p in front], [p.f1 for p in front], where="pre", color="#2e9e5b",
              linewidth=1.6, label="frontier", zorder=1)  # fmt: skip
    axes.set_xscale("log")
    speeds = [point.questions_per_second for point in points]
    axes.set_xlim(min(speeds) / 1.4, max(speeds) * 1.8)  # room for the labels on the right
    f1s = [point.f1 for point in points]
    spread = max(max(f1s) - min(f1s), 1.0)
    axes.set_ylim(min(f1s) - 0.15 * spread, max(f1s) + 0.15 * spread)
    # Plain numbers on the log axis (1, 2, 5 per decade), not 2x10^1.
    axes.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axes.xaxis.set_minor_formatter(ticker.NullFormatter())
    axes.set_xlabel("questions per second (median pass, log scale)")
    axes.set_ylabel("F1")
    axes.set_title(title or "Speed-accuracy frontier")
    figure.tight_layout()  # before the labels are placed: it moves the axes, and the labels are placed in points
    to_points = 72.0 / figure.dpi
    anchors = [(x * to_points, y * to_points)
               for x, y in axes.transData.transform([(p.questions_per_second, p.f1) for p in points])]  # fmt: skip
    offsets = label_offsets(anchors, [point.name for point in points])
    for point, offset in zip(points, offsets):
        on = point.name in names
        axes.scatter(point.questions_per_second, point.f1, s=46 if on else 30, zorder=2,
                     color="#2e9e5b" if on else "#9e9e9e", edgecolor="black" if on else "none")  # fmt: skip
        leader = {"arrowprops": {"arrowstyle": "-", "color": "#9e9e9e", "linewidth": 0.6}} if offset[1] > 5 else {}
        axes.annotate(point.name, (point.questions_per_second, point.f1), xytext=offset, textcoords="offset points",
                      fontsize=8, fontweight="bold" if on else "normal", **leader)  # fmt: skip
    axes.grid(True, which="both", alpha=0.25)
    axes.legend(loc="lower left", fontsize=8)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return front
