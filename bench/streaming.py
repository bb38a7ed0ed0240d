"""Concurrency and time-to-first-token through `/chat`, against a model server streaming at a fixed rate: the
chat's Gradio route, the chat's light route (`POST /api/chat`, chatapp.api_stream) and the bare Gradio app of
the same shape (bench.bare_gradio), in the same run.

Calls use Gradio's documented REST form of the `/chat` endpoint (POST /gradio_api/call/chat, then its event
stream) rather than `gradio_client`: 32 or 100 gradio_client instances in the benchmark's own process cost more
CPU than the server under test on a 2-core machine, and would be measured instead of it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from bench.bare_gradio import bare_gradio
from bench.processes import chat, fake_model_server, wait_http
from chatapp.defaults import CHAT_CONCURRENCY

LABEL = "Bench model"
MODEL = "fake-model"
TOKENS_PER_S = 20.0  # the model server's rate
# CHAT_CONCURRENCY for the measured apps: room for the 100 streams of `first_token_overhead` at once (with the
# default 64 the rest would queue, a capacity figure, not streaming overhead); 32 at once fit either way.
ROOM = 100


def _chat_once(url: str, i: int, tokens: int) -> tuple[float, float]:
    """(time to first streamed text, total time) of one `/chat` call asking for a reply of `tokens` tokens."""
    started = time.perf_counter()
    body = {"data": [f"Message {i}", LABEL, 0.7, 0.95, tokens, ""]}
    first = float("nan")
    with requests.Session() as session:
        event_id = session.post(f"{url}/gradio_api/call/chat", json=body, timeout=60).json()["event_id"]
        event = b""
        with session.get(f"{url}/gradio_api/call/chat/{event_id}", stream=True, timeout=120) as stream:
            for line in stream.iter_lines():
                if line.startswith(b"event:"):
                    event = line[6:].strip()
                elif event == b"error":
                    raise RuntimeError(f"/chat failed: {line!r}")
                elif (
                    first != first and event == b"generating" and line.startswith(b"data:") and json.loads(line[5:])[0]
                ):
                    first = time.perf_counter() - started
    return first, time.perf_counter() - started


def _light_once(url: str, i: int, tokens: int) -> tuple[float, float]:
    """The same through the chat's light route: one POST, NDJSON lines back."""
    started = time.perf_counter()
    body = {"message": f"Message {i}", "model": LABEL, "temperature": 0.7, "top_p": 0.95, "max_tokens": tokens}
    first = float("nan")
    with requests.Session() as session, session.post(f"{url}/api/chat", json=body, stream=True, timeout=120) as answer:
        if answer.status_code != 200:
            raise RuntimeError(f"/api/chat failed: {answer.status_code} {answer.text[:200]}")
        for line in answer.iter_lines():
            if first != first and line.startswith(b'{"delta"'):
                first = time.perf_counter() - started
            elif line.startswith(b'{"done"') and json.loads(line)["notice"]:
                raise RuntimeError(f"/api/chat failed: {line!r}")
    return first, time.perf_counter() - started


# What each measured app is: its base URL's key in `_apps` and the call that times one reply through it.
ROUTES: dict[str, tuple[str, Callable[[str, int, int], tuple[float, float]]]] = {
    "chat": ("chat", _chat_once),  # the chat through Gradio's /chat
    "light": ("chat", _light_once),  # the same chat process through /api/chat
    "bare": ("bare", _chat_once),  # the bare Gradio app
}
# Every order of the routes: first_token_overhead's rounds take them in turn.
ORDERS = list(itertools.permutations(ROUTES))


def _direct_once(base_url: str, _: int, tokens: int) -> tuple[float, float]:
    """The same measure straight from the model server, read to the end as the app reads it."""
    body = {"model": MODEL, "stream": True, "max_tokens": tokens, "messages": [{"role": "user", "content": "hi"}]}
    started = time.perf_counter()
    first = float("nan")
    with (
        requests.Session() as session,
        session.post(f"{base_url}/chat/completions", json=body, stream=True, timeout=60) as response,
    ):
        for line in response.iter_lines():
            if (
                first != first
                and line.startswith(b"data: {")
                and json.loads(line[6:])["choices"][0]["delta"].get("content")
            ):
                first = time.perf_counter() - started
    return first, time.perf_counter() - started


def _run(
    call: Callable[[str, int, int], tuple[float, float]], url: str, n: int, spread_s: float = 0.0, tokens: int = 256
) -> tuple:
    """Run n calls, all released at once (spread_s=0) or arriving evenly over spread_s; (wall, firsts). Replies
    are `tokens` long where the model server follows max_tokens (bench.fake_model)."""
    barrier = threading.Barrier(n)

    def one(i: int) -> tuple[float, float]:
        barrier.wait()
        time.sleep(spread_s * i / n)
        return call(url, i, tokens)

    started = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n)))
    return time.perf_counter() - started, [first for first, _ in results]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@contextlib.contextmanager
def _apps(model_url: str, concurrency: int | None = None) -> Iterator[dict[str, str]]:
    """The chat and the bare Gradio app of its shape (`bench.bare_gradio`), both up, against one model server."""
    extra = {"CHAT_CONCURRENCY": str(concurrency)} if concurrency else {}
    # Both start at once (each spends seconds importing Gradio): the bare app's wait comes after the chat's.
    with (
        bare_gradio(model_url, MODEL, concurrency or CHAT_CONCURRENCY, wait=False) as bare,
        chat(SELF_HOSTED_URL=model_url, SELF_HOSTED_LABEL=LABEL, SELF_HOSTED_MODEL=MODEL, **extra) as app,
    ):
        wait_http(f"{bare}/healthz", timeout_s=180)
        yield {"chat": app.url, "bare": bare}


@dataclass(frozen=True)
class Servers:
    """A model server streaming at a fixed rate, replies as long as each request's max_tokens, and the apps in
    front of it (`apps`: `_apps`), shared by the measurements of one run."""

    model_url: str
    apps: dict[str, str]
    tokens_per_s: float


@contextlib.contextmanager
def servers(tokens_per_s: float = TOKENS_PER_S, concurrency: int = ROOM) -> Iterator[Servers]:
    with fake_model_server(tokens_per_s, None) as model_url, _apps(model_url, concurrency) as apps:
        yield Servers(model_url, apps, tokens_per_s)


@contextlib.contextmanager
def _given_or_own(given: Servers | None, tokens_per_s: float) -> Iterator[Servers]:
    if given is not None:
        yield given
    else:
        with servers(tokens_per_s) as own:
            yield own


def _rotated(names: list[str], i: int) -> list[str]:
    """Round i's order: `names` rotated by i, so over len(names) rounds each target runs once in each place."""
    k = i % len(names)
    return names[k:] + names[:k]


def concurrency(
    n: int = 32, tokens_per_s: float = TOKENS_PER_S, reply_tokens: int = 40, rounds: int = 8, on: Servers | None = None
) -> dict[str, dict[str, float]]:
    """Wall time of n chats sent at once ÷ wall time of one; medians of `rounds` rounds, for each route of
    ROUTES and for the model server direct (`direct`: n of its streams at once ÷ one, read as the app reads
    them), rounds interleaved so all see the same machine, in an order rotated each round (8: every target
    twice in each place, so no route always runs right after the same one). `on`: servers already up (their
    rate is used)."""
    figures: dict[str, dict[str, float]] = {}
    with _given_or_own(on, tokens_per_s) as up:
        targets = {name: (up.apps[app], call) for name, (app, call) in ROUTES.items()}
        targets["direct"] = (up.model_url, _direct_once)
        for url, call in targets.values():
            _run(call, url, n, tokens=reply_tokens)  # warm-up: the first burst also starts worker threads
        times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in targets}
        for i in range(rounds):
            for name in _rotated(list(targets), i):
                url, call = targets[name]
                times[name][0].append(_run(call, url, 1, tokens=reply_tokens)[0])
                times[name][1].append(_run(call, url, n, tokens=reply_tokens)[0])
    for name, (ones, manys) in times.items():
        one, many = statistics.median(ones), statistics.median(manys)
        figures[name] = {"one_s": one, "many_s": many, "ratio": many / one, "n": n}
    return figures


def first_token_overhead(
    n: int = 100,
    tokens_per_s: float = TOKENS_PER_S,
    reply_tokens: int = 100,
    spread_s: float = 2.5,
    rounds: int = 6,
    on: Servers | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Time to first token through the app minus straight from the model server, same arrivals, p50/p95, for
    each route of ROUTES (`figures[pattern][route]`): the median over `rounds` rounds, each with its own direct
    measurement. One burst's p50 alone swings by ±30% on 2 cores (the chat's ÷ the floor's, round by round on
    the same servers, ran from 0.81 to 1.89), so: 6 rounds, through every order of the routes, each route
    after each other one (and first, after the direct burst) equally often, so what ran just before weighs
    on all alike.

    "steady": n streams arriving over `spread_s` while earlier ones still stream (each lasts
    reply_tokens / tokens_per_s = 5 s), so about n are in flight at the end; "burst": all n at the same instant.
    """
    figures: dict[str, dict[str, dict[str, float]]] = {}
    with _given_or_own(on, tokens_per_s) as up:
        for app, call in ROUTES.values():
            _run(call, up.apps[app], n, tokens=reply_tokens)  # warm-up, as above
        for name, spread in (("steady", spread_s), ("burst", 0.0)):
            seen: dict[str, list[dict[str, float]]] = {route: [] for route in ROUTES}
            for i in range(rounds):
                _, direct = _run(_direct_once, up.model_url, n, spread, reply_tokens)
                for route in ORDERS[i % len(ORDERS)]:
                    app, call = ROUTES[route]
                    _, through_app = _run(call, up.apps[app], n, spread, reply_tokens)
                    seen[route].append(
                        {
                            "direct_p50_ms": 1000 * statistics.median(direct),
                            "direct_p95_ms": 1000 * percentile(direct, 95),
                            "overhead_p50_ms": 1000 * (statistics.median(through_app) - statistics.median(direct)),
                            "overhead_p95_ms": 1000 * (percentile(through_app, 95) - percentile(direct, 95)),
                        }
                    )
            figures[name] = {
                route: {key: statistics.median(r[key] for r in runs) for key in runs[0]} | {"rounds": len(runs)}
                for route, runs in seen.items()
            }
    return figures
