"""Concurrency and time-to-first-token through `/chat`, against a model server streaming at a fixed rate."""

from __future__ import annotations

import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from gradio_client import Client

from bench.processes import chat, fake_model_server

LABEL = "Bench model"


def _clients(url: str, n: int) -> list[Client]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _: Client(url, verbose=False), range(n)))


def _chat_once(client: Client, i: int) -> tuple[float, float]:
    """(time to first streamed text, total time) of one `/chat` call."""
    started = time.perf_counter()
    job = client.submit(f"Message {i}", LABEL, 0.7, 0.95, 256, "", api_name="/chat")
    first = None
    for output in job:
        if first is None and output:
            first = time.perf_counter() - started
    job.result()
    return first if first is not None else float("nan"), time.perf_counter() - started


def _wall(clients: list[Client]) -> tuple[float, list[float]]:
    barrier = threading.Barrier(len(clients))

    def one(i: int) -> tuple[float, float]:
        barrier.wait()
        return _chat_once(clients[i], i)

    started = time.perf_counter()
    with ThreadPoolExecutor(len(clients)) as pool:
        results = list(pool.map(one, range(len(clients))))
    return time.perf_counter() - started, [first for first, _ in results]


def _direct_first_token(base_url: str, n: int) -> list[float]:
    """Time to the first content chunk straight from the model server, n requests at once."""
    barrier = threading.Barrier(n)
    body = {"model": "fake-model", "stream": True, "messages": [{"role": "user", "content": "hi"}]}

    def one(_: int) -> float:
        with requests.Session() as session:
            barrier.wait()
            started = time.perf_counter()
            with session.post(f"{base_url}/chat/completions", json=body, stream=True, timeout=60) as response:
                for line in response.iter_lines():
                    if line.startswith(b"data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                        first = time.perf_counter() - started
                        break
                else:
                    first = float("nan")
                for _ in response.iter_lines():  # read to the end, as the app does
                    pass
            return first

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def concurrency(n: int = 32, tokens_per_s: float = 20.0, reply_tokens: int = 40) -> dict[str, float]:
    with (
        fake_model_server(tokens_per_s, reply_tokens) as model_url,
        chat(SELF_HOSTED_URL=model_url, SELF_HOSTED_LABEL=LABEL, SELF_HOSTED_MODEL="fake-model") as app,
    ):
        clients = _clients(app.url, n)
        _wall(clients[:1])  # warm-up: first-call costs (imports, thread pool) are not concurrency
        one, _ = _wall(clients[:1])
        many, _ = _wall(clients)
    return {"one_s": one, "many_s": many, "ratio": many / one, "n": n}


def first_token_overhead(n: int = 100, tokens_per_s: float = 20.0, reply_tokens: int = 20) -> dict[str, float]:
    with (
        fake_model_server(tokens_per_s, reply_tokens) as model_url,
        chat(SELF_HOSTED_URL=model_url, SELF_HOSTED_LABEL=LABEL, SELF_HOSTED_MODEL="fake-model") as app,
    ):
        direct = _direct_first_token(model_url, n)
        clients = _clients(app.url, n)
        _wall(clients[:1])
        _, through_app = _wall(clients)
    return {
        "direct_p50_ms": 1000 * statistics.median(direct),
        "direct_p95_ms": 1000 * percentile(direct, 95),
        "app_p50_ms": 1000 * statistics.median(through_app),
        "app_p95_ms": 1000 * percentile(through_app, 95),
        "overhead_p50_ms": 1000 * (statistics.median(through_app) - statistics.median(direct)),
        "overhead_p95_ms": 1000 * (percentile(through_app, 95) - percentile(direct, 95)),
        "n": n,
    }
