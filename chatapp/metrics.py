"""Prometheus metrics of the chat: what each turn did, how fast, and what is still waiting to be saved.

Served by prometheus_client's own HTTP server on CHAT_METRICS_PORT, a port of its own: metrics never pass
through the public front door (Gateway/IAP), and only the cluster's Managed Prometheus collectors may reach
that port (the stack's NetworkPolicy). Labels are the model's menu label, so their number is bounded by the
configured models, never by user input (ChatService.model rejects unknown labels before anything is counted).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Enum, Gauge, Histogram, start_http_server

# Time to first token: a loaded GPU answers in well under a second, a cold or queued one in tens of seconds.
FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
# Whole replies: a few seconds for a short answer, minutes for max_tokens at a slow model.
REPLY_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)

TURNS = Counter(
    "chat_turns",
    "Chat turns finished, by model and outcome (ok, cut, error, stopped, empty).",
    ["model", "outcome"],
)
FIRST_TOKEN = Histogram(
    "chat_time_to_first_token_seconds",
    "Seconds from the request to the model until the first text of the reply.",
    ["model"],
    buckets=FIRST_TOKEN_BUCKETS,
)
REPLY_DURATION = Histogram(
    "chat_reply_duration_seconds",
    "Seconds from the request to the model until the reply ended (whatever the outcome).",
    ["model"],
    buckets=REPLY_BUCKETS,
)
TOKENS = Counter(
    "chat_tokens",
    "Tokens as reported by the model: direction=in (prompt) or out (reply).",
    ["model", "direction"],
)
# The wake signal for a self-hosted model scaled to zero (stack/gemma_scaling.py queries it by this name): it
# counts demand, not answers, so it rises while the model server is asleep and Auto answers with Gemini. No
# labels: the series exists from the chat's start at 0, so the first turn after a scrape shows as an increase.
SELF_HOSTED_WANTED = Counter(
    "chat_self_hosted_wanted",
    "Turns that wanted the self-hosted model: chosen directly, or through Auto (whichever model then answered).",
)
# How long the self-hosted server took to wake from zero, from the first turn that wanted it while it was down to
# its first healthy answer or status check (chatapp.models.waking): seconds to tens of minutes on GPUs.
WAKE_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 420.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0)
SELF_HOSTED_WAKE = Histogram(
    "chat_self_hosted_wake_seconds",
    "Seconds the self-hosted model server took to wake up, as this replica waited for it.",
    buckets=WAKE_BUCKETS,
)
WAKE_STATES = ("unknown", "ready", "asleep", "waking", "failing")
SELF_HOSTED_STATE = Enum(
    "chat_self_hosted_state",
    "The self-hosted model server as this replica sees it: asleep (down, nobody asked), waking (asked), ready, "
    "failing (reachable but erring) or unknown (not checked yet).",
    states=list(WAKE_STATES),
)
STREAMS_IN_FLIGHT = Gauge("chat_streams_in_flight", "Replies being streamed right now.", ["model"])
UNSAVED_TURNS = Gauge("chat_unsaved_turns", "Turns kept in memory because the history store did not take them yet.")
# What became of those turns: saved by a retry, or dropped because the store refused them for good (an alert:
# a person was told "not saved yet, will retry" and the retry can never succeed).
LATE_SAVES = Counter("chat_turns_saved_late", "Turns the history store took on a retry, after the reply ended.")
DROPPED_TURNS = Counter("chat_turns_dropped", "Queued turns the history store refused for good (never saved).")


def record_turn(
    model: str,
    outcome: str,
    duration_s: float,
    first_token_s: float | None,
    tokens_in: int | None,
    tokens_out: int | None,
) -> None:
    """Count one finished turn. Token counts are only added when the model reported them."""
    TURNS.labels(model, outcome).inc()
    REPLY_DURATION.labels(model).observe(duration_s)
    if first_token_s is not None:
        FIRST_TOKEN.labels(model).observe(first_token_s)
    if tokens_in:
        TOKENS.labels(model, "in").inc(tokens_in)
    if tokens_out:
        TOKENS.labels(model, "out").inc(tokens_out)


def watch_unsaved(count: Callable[[], int]) -> None:
    """Read the number of unsaved turns at each scrape, from the one place that owns it (the retrying store)."""
    UNSAVED_TURNS.set_function(count)


def count_late_save(_turn: object) -> None:
    LATE_SAVES.inc()


def count_dropped_turn(_turn: object, _error: object) -> None:
    DROPPED_TURNS.inc()


def serve(host: str, port: int) -> None:
    """Serve /metrics from a daemon thread; port 0 means metrics are off."""
    if port:
        start_http_server(port, addr=host)
