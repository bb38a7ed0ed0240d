"""Issue 16's four streaming rows as `make bench` judges them: each route's figure beside the bare-Gradio floor
and the model server direct, from the same run, and a verdict per route.

A verdict is "yes" when the figure meets its goal; "at floor" when the bare Gradio app of the same shape
(bench.bare_gradio) is itself above the goal and our figure is within FLOOR_MARGIN of it (the rest is Gradio's,
measured); "NO" otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

FLOOR_MARGIN = 1.10  # "the floor and our figure within 10% of each other"
# The routes judged, in the table's order: ROUTES' keys in bench.streaming, and how the table names them.
ROUTES = {"chat": "/chat (Gradio)", "light": "/api/chat (light route)"}


def verdict(ours: float, floor: float, goal: float) -> str:
    if ours <= goal:
        return "yes"
    if floor > goal and ours <= FLOOR_MARGIN * floor:
        return "at floor"
    return "NO"


@dataclass(frozen=True)
class Row:
    what: str
    goal: float
    unit: str  # a ratio's sign, or " ms"
    ours: dict[str, float]  # by route
    floor: float
    direct: float | None  # the model server's own figure; None when it has none

    def figure(self, value: float) -> str:
        # Ratios to three decimals: the verdict compares unrounded figures, and a ratio of 1.154 printed as
        # 1.15 beside a goal of 1.15 would read as a goal met.
        return f"{value:.3f}×" if self.unit == "×" else f"{value:,.0f} ms"

    def verdicts(self) -> dict[str, str]:
        return {route: verdict(value, self.floor, self.goal) for route, value in self.ours.items()}


def streaming_rows(c: dict, t: dict) -> list[Row]:
    """From `bench.streaming.concurrency()` (c) and `first_token_overhead()` (t) of one run."""
    n = c["chat"]["n"]
    rows = [
        Row(f"{n} chats at once ÷ one", 1.15, "×", {r: c[r]["ratio"] for r in ROUTES}, c["bare"]["ratio"],
            c["direct"]["ratio"]),
    ]  # fmt: skip
    steady, burst = t["steady"], t["burst"]
    for what, pattern, key, goal in (
        ("first-token overhead, 100 streams in flight, p50", steady, "p50", 50.0),
        ("same, p95", steady, "p95", 250.0),
        ("first-token overhead, 100 started at one instant, p50", burst, "p50", 500.0),
    ):
        rows.append(
            Row(
                what,
                goal,
                " ms",
                {r: pattern[r][f"overhead_{key}_ms"] for r in ROUTES},
                pattern["bare"][f"overhead_{key}_ms"],
                pattern["chat"][f"direct_{key}_ms"],  # one direct measurement per pattern, shared by the routes
            )
        )
    return rows


def render(rows: list[Row]) -> list[str]:
    """The rows as a markdown table: goal, floor, direct, then each route's figure and verdict."""
    head = "| streaming (issue 16) | goal | bare Gradio (floor) | model server direct |"
    head += "".join(f" {name} | met |" for name in ROUTES.values())
    lines = [head, "|---" * (4 + 2 * len(ROUTES)) + "|"]
    for row in rows:
        direct = "–" if row.direct is None else row.figure(row.direct)
        cells = [row.what, f"≤ {row.figure(row.goal)}", row.figure(row.floor), direct]
        verdicts = row.verdicts()
        for route in ROUTES:
            cells += [row.figure(row.ours[route]), verdicts[route]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
