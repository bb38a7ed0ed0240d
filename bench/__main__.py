"""`make bench`: every figure beside its baseline from the same run, and whether it meets its goal.

python -m bench            # the full sizes (tens of minutes on 2 cores)
python -m bench --quick    # every measurement with tiny sizes (few calls, one round, short replies): the
                           # same code paths and the same tables, figures meaningless; tests/test_bench.py
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import UTC, datetime
from typing import Any

from bench import firestore, goals, images, layers, startup, streaming

# Keyword arguments per measurement: {} is each function's own defaults (the full bench).
QUICK: dict[str, dict[str, Any]] = {
    "servers": {"tokens_per_s": 50.0},
    "concurrency": {"n": 4, "reply_tokens": 5, "rounds": 1},
    "first_token_overhead": {"n": 4, "reply_tokens": 5, "spread_s": 0.1, "rounds": 1},
    "layers": {"n": 200},
    "images": {"turns": 2},
    "firestore": {"turns": 2, "resume_messages": 10},
    "startup": {"rounds": 1},
}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks every row runs, not its figure")
    sizes = QUICK if parser.parse_args(argv).quick else {}
    rows: list[tuple[str, str, str, str, bool | None]] = []

    def row(what: str, figure: str, baseline: str, goal: str, met: bool | None = None) -> None:
        rows.append((what, figure, baseline, goal, met))
        print(f"  measured: {what}: {figure}", file=sys.stderr, flush=True)

    # The chat through Gradio's /chat and through its light route (/api/chat, chatapp.api_stream), beside the
    # bare Gradio app of its shape (bench.bare_gradio) and the model server direct, same run: issue 16's rows.
    with streaming.servers(**sizes.get("servers", {})) as up:
        c = streaming.concurrency(**sizes.get("concurrency", {}), on=up)
        print(f"  measured: {c['chat']['n']} chats at once ÷ one: {c}", file=sys.stderr, flush=True)
        t = streaming.first_token_overhead(**sizes.get("first_token_overhead", {}), on=up)
        print(f"  measured: first-token overhead: {t}", file=sys.stderr, flush=True)
    streaming_rows = goals.streaming_rows(c, t)
    for layer, f in layers.measure(**sizes.get("layers", {})).items():
        row(
            f"per-request layer: {layer} (in-process)",
            f"{f['s'] * 1e6:.2f} µs ({f['ratio']:.1f}×)",
            f"no-op {f['noop_s'] * 1e6:.2f} µs",
            "–",
        )
    im = images.image_turn_overhead(**sizes.get("images", {}))
    row(
        "a turn with a 1 MB image ÷ a text turn (upload + /chat, median)",
        f"{im['ratio']:.2f}× (+{im['overhead_ms']:.0f} ms)",
        f"text turn {im['text_s'] * 1000:.0f} ms",
        "≤ +250 ms",
        im["overhead_ms"] <= 250,
    )
    fs = firestore.measure(**sizes.get("firestore", {}))
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
    s = startup.chat_startup(**sizes.get("startup", {}))
    row(
        "start-up: process start to /healthz 200",
        f"{s['startup_s']:.2f} s",
        f"`import gradio` {s['import_gradio_s']:.2f} s",
        "–",
    )
    p = startup.pulumi_program(**sizes.get("startup", {}))
    row(
        "Pulumi program under mocks (make plan)",
        f"{p['program_s']:.2f} s",
        f"importing the SDKs {p['import_sdks_s']:.2f} s",
        "–",
    )

    quick = " (--quick: tiny sizes, figures meaningless)" if sizes else ""
    print(f"\nhybrid-chat benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}{quick}\n")  # fmt: skip
    print("\n".join(goals.render(streaming_rows)) + "\n")
    print("| measure | figure | baseline (same run) | goal | met |")
    print("|---|---|---|---|---|")
    for what, figure, baseline, goal, met in rows:
        verdict = "–" if met is None else "yes" if met else "NO"
        print(f"| {what} | {figure} | {baseline} | {goal} | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
