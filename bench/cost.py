"""`make bench`'s cost row: L4 GPU hours per week with and without scale to zero, for an office-hours week of a
few people. A MODEL of the bill, not a measurement of one.

The week: three people on weekdays, each in two blocks (09:00 to 12:00 and 13:00 to 18:00), sending a message that
wants Gemma (chosen or through Auto) every 2 to 20 minutes, seeded so every run replays the same turns. It has
the shape of the workload the README assumes; it is not a recording of real use.

The scaling rule is the stack's KEDA rule (stack/gemma_scaling.py): a turn wakes the server (the GPU is counted
from that moment: node creation, image, weights, engine all bill), which stays up until a whole idle window
(`gemmaIdleMinutes`) has passed without a turn, plus KEDA's cooldown and one polling interval. Turns in the first
`wake` seconds of each wake-up are answered by Gemini (Auto) instead.

Two wake-up times: the documented GKE estimate (chatapp.models.waking.DOCUMENTED_WAKE_S, not measured on GKE),
and one measured here by the chat itself, the real chat process with its llama.cpp server started by the
stand-in autoscaler (harness.autoscaler) on the chat's wake counter, read back from the chat's histogram
`chat_self_hosted_wake_seconds`. The local one is a CPU model of 98 MB, seconds, not a GPU cold start.

    python -m bench.cost            prints the table (markdown)
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from chatapp.models.waking import DOCUMENTED_WAKE_S
from harness.autoscaler import StandInAutoscaler, llama_server
from harness.chat_process import start_chat
from harness.support import free_port
from scripts.local_model import DEFAULT_ALIAS
from stack.config import DEFAULTS
from stack.gemma_scaling import COOLDOWN_S, POLLING_S
from stack.presets import DEFAULT_PRESET, PRESETS

WEEK_S = 7 * 24 * 3600
PEOPLE = 3
BLOCKS_H = ((9, 12), (13, 18))  # office hours, weekdays
GAP_S = (120, 1200)  # between one person's messages
SEED = 18
# List price of the default preset's node (2 L4s with its g2 machine, on demand, us-central1), per hour:
# approximate, checked 2026-12-06 against the figure the README uses; the bill depends on region and discounts.
NODE_DOLLARS_PER_H = 2.0


def week_of_turns(seed: int = SEED) -> list[float]:
    """Seconds from Monday 00:00 of every turn that wanted the self-hosted model, sorted."""
    rng = random.Random(seed)
    turns = []
    for day in range(5):
        for start_h, end_h in BLOCKS_H:
            for _ in range(PEOPLE):
                at = (day * 24 + start_h) * 3600 + rng.uniform(0, 600)  # people arrive within 10 minutes
                while at < (day * 24 + end_h) * 3600:
                    turns.append(at)
                    at += rng.uniform(*GAP_S)
    return sorted(turns)


@dataclass(frozen=True)
class Week:
    pod_hours: float
    wake_ups: int
    turns: int
    answered_by_gemini: int  # turns that came while the server was waking


def replay(turns: list[float], idle_s: float, wake_s: float) -> Week:
    """KEDA's rule over `turns`: up from a turn while down, down once idle_s + cooldown + a poll passed."""
    hold_s = idle_s + COOLDOWN_S + POLLING_S
    up_s, wakes, meanwhile = 0.0, 0, 0
    up_since = down_at = None
    for at in turns:
        if up_since is None or down_at is None or at >= down_at:
            if up_since is not None and down_at is not None:
                up_s += down_at - up_since
            up_since, wakes = at, wakes + 1
        if at < up_since + wake_s:
            meanwhile += 1
        down_at = at + hold_s
    if up_since is not None and down_at is not None:
        up_s += down_at - up_since
    return Week(up_s / 3600, wakes, len(turns), meanwhile)


def measured_wake_s(timeout_s: float = 180.0) -> float:
    """One wake-up from zero as the chat records it: a turn on the self-hosted model while nothing serves it,
    the stand-in autoscaler starting llama.cpp on the chat's counter, the chat's histogram afterwards."""
    port = free_port()
    label = "Local model"
    with tempfile.TemporaryDirectory(prefix="bench-cost-") as workdir:
        env = {
            "SELF_HOSTED_URL": f"http://127.0.0.1:{port}/v1",
            "SELF_HOSTED_MODEL": DEFAULT_ALIAS,
            "SELF_HOSTED_LABEL": label,
        }
        chat = start_chat(env, Path(workdir))
        try:
            server = llama_server(port, Path(workdir) / "llama.log")
            with StandInAutoscaler(chat.metrics_url, server, wake_delay_s=0.0, idle_s=60.0):
                http = requests.Session()
                body = {"data": ["hello", label, 0.7, 0.95, 8, ""]}
                event = http.post(f"{chat.url}/gradio_api/call/chat", json=body, timeout=60).json()["event_id"]
                http.get(f"{chat.url}/gradio_api/call/chat/{event}", timeout=60).close()
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    count, total = _wake_histogram(chat.metrics_url)
                    if count:
                        return total / count
                    time.sleep(0.5)
        finally:
            chat.stop()
    raise RuntimeError(f"the chat recorded no wake-up within {timeout_s:g} s")


def _wake_histogram(metrics_url: str) -> tuple[float, float]:
    text = requests.get(metrics_url, timeout=5).text
    values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    return values.get("chat_self_hosted_wake_seconds_count", 0.0), values.get("chat_self_hosted_wake_seconds_sum", 0.0)


def table(local_wake_s: float | None) -> str:
    turns = week_of_turns()
    idle_min = int(DEFAULTS["gemmaIdleMinutes"])
    gpus = PRESETS[DEFAULT_PRESET].gpus
    rows = [("always on (`gemmaIdleMinutes=0`)", "–", Week(WEEK_S / 3600, 0, len(turns), 0))]
    wakes = [(f"{DOCUMENTED_WAKE_S / 60:.0f} min, documented GKE estimate (not measured)", DOCUMENTED_WAKE_S)]
    if local_wake_s is not None:
        wakes.append((f"{local_wake_s:.1f} s, measured here by the chat (llama.cpp on CPU, not a GPU)", local_wake_s))
    for what, wake_s in wakes:
        rows.append((f"scale to zero (`gemmaIdleMinutes={idle_min}`)", what, replay(turns, idle_min * 60, wake_s)))
    lines = [
        f"GPU hours per week, a model: {PEOPLE} people, weekdays {BLOCKS_H[0][0]:02d}–{BLOCKS_H[0][1]}h and "
        f"{BLOCKS_H[1][0]}–{BLOCKS_H[1][1]}h, a message every {GAP_S[0] // 60}–{GAP_S[1] // 60} min "
        f"(synthetic, seed {SEED}: {len(turns)} turns); preset {DEFAULT_PRESET} ({gpus} L4 per pod)",
        "",
        "| workload | wake-up | Gemma pod h / week | L4 GPU h / week | node at ~$2/h (list) "
        "| wake-ups | turns answered by Gemini while waking |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, what, week in rows:
        lines.append(
            f"| {name} | {what} | {week.pod_hours:.1f} | {week.pod_hours * gpus:.0f} | "
            f"~${week.pod_hours * NODE_DOLLARS_PER_H:.0f} | {week.wake_ups} | "
            f"{week.answered_by_gemini} of {week.turns} |"
        )
    return "\n".join(lines)


def main() -> int:
    try:
        local = measured_wake_s()
    except Exception as exc:  # llama.cpp missing or too slow here: the documented estimate still makes the row
        print(f"  no local wake-up measured ({exc}); the documented estimate only", file=sys.stderr)
        local = None
    print(table(local))
    return 0


if __name__ == "__main__":
    sys.exit(main())
