"""`make bench`: every figure beside its baseline from the same run, and whether it meets its goal."""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime

from bench import firestore, images, layers, startup, streaming


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


def main() -> int:
    rows: list[tuple[str, str, str, str, bool | None]] = []

    def row(what: str, figure: str, baseline: str, goal: str, met: bool | None = None) -> None:
        rows.append((what, figure, baseline, goal, met))
        print(f"  measured: {what}: {figure}", file=sys.stderr, flush=True)

    # The chat through Gradio's /chat and through its light route (/api/chat, chatapp.api_stream), beside the
    # bare Gradio app of its shape (bench.bare_gradio), same run: the floor of the Gradio route is Gradio's.
    c = streaming.concurrency()
    bare = c["bare"]
    for route, name in (("chat", "/chat (Gradio)"), ("light", "/api/chat (light route)")):
        ours = c[route]
        row(
            f"{ours['n']} chats at once through {name} ÷ one chat",
            f"{ours['ratio']:.2f}× ({ours['many_s']:.2f} s)",
            f"bare Gradio {bare['ratio']:.2f}× ({bare['many_s']:.2f} s); one chat {ours['one_s']:.2f} s",
            "≤ 1.15×",
            ours["ratio"] <= 1.15,
        )
    t = streaming.first_token_overhead()
    for pattern, label, goal_p50, goal_p95 in (
        ("steady", "100 streams in flight", 50, 250),
        ("burst", "100 streams started at one instant", 500, None),
    ):
        floor = t[pattern]["bare"]
        goal = f"p50 ≤ {goal_p50} ms" + (f", p95 ≤ {goal_p95} ms" if goal_p95 else "")
        for route, name in (("chat", "/chat (Gradio)"), ("light", "/api/chat (light route)")):
            f = t[pattern][route]
            row(
                f"first-token overhead, {label}, {name} (p50 / p95)",
                f"{f['overhead_p50_ms']:.0f} / {f['overhead_p95_ms']:.0f} ms",
                f"bare Gradio {floor['overhead_p50_ms']:.0f} / {floor['overhead_p95_ms']:.0f} ms; "
                f"model server direct {f['direct_p50_ms']:.0f} / {f['direct_p95_ms']:.0f} ms",
                goal,
                f["overhead_p50_ms"] <= goal_p50 and (goal_p95 is None or f["overhead_p95_ms"] <= goal_p95),
            )
    for layer, f in layers.measure().items():
        row(
            f"per-request layer: {layer} (in-process)",
            f"{f['s'] * 1e6:.2f} µs ({f['ratio']:.1f}×)",
            f"no-op {f['noop_s'] * 1e6:.2f} µs",
            "–",
        )
    im = images.image_turn_overhead()
    row(
        "a turn with a 1 MB image ÷ a text turn (upload + /chat, median)",
        f"{im['ratio']:.2f}× (+{im['overhead_ms']:.0f} ms)",
        f"text turn {im['text_s'] * 1000:.0f} ms",
        "≤ +250 ms",
        im["overhead_ms"] <= 250,
    )
    fs = firestore.measure()
    row(
        "Firestore RPCs per turn, usage accounting and a daily limit on (emulator)",
        f"{fs['commits_per_turn']:.2f} commits ({fs['writes_per_commit']:.0f} writes each), "
        f"{fs['reads_per_turn']:.2f} reads",
        f"resuming that session: {fs['reads_per_load']} reads; usage counter read once per person: "
        f"{fs['usage_reads_page_load']} at page load, {fs['usage_reads_cold_api_turn']} in an API client's first turn",
        "3 commits, 1 read (the turn; the reservation's read + write; its release)",
        fs["commits_per_turn"] == 3 and fs["reads_per_turn"] == 1,
    )
    row(
        f"resume a {fs['messages']:,}-message conversation (emulator)",
        f"{fs['resume_s']:.3f} s",
        f"raw query of the same documents {fs['raw_query_s']:.3f} s",
        "≤ 0.5 s",
        fs["resume_s"] <= 0.5,
    )
    s = startup.chat_startup()
    row(
        "start-up: process start to /healthz 200",
        f"{s['startup_s']:.2f} s",
        f"`import gradio` {s['import_gradio_s']:.2f} s",
        "–",
    )
    p = startup.pulumi_program()
    row(
        "Pulumi program under mocks (make plan)",
        f"{p['program_s']:.2f} s",
        f"importing the SDKs {p['import_sdks_s']:.2f} s",
        "–",
    )

    print(f"\nhybrid-chat benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}\n")
    print("| measure | figure | baseline (same run) | goal | met |")
    print("|---|---|---|---|---|")
    for what, figure, baseline, goal, met in rows:
        verdict = "–" if met is None else "yes" if met else "NO"
        print(f"| {what} | {figure} | {baseline} | {goal} | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
