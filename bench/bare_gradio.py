"""The Gradio floor: a bare Gradio app of the chat's shape, measured beside the chat by `make bench`.

One streaming endpoint, `/chat`, with the same inputs as the chat's (message, model, temperature, top_p, max
tokens, system prompt, per-tab state), the same model client (`OpenAICompatModel`), the same coalescing of
updates (`chatapp.chat`'s interval constants) and Gradio set up as the chat sets it up (mounted on FastAPI,
same queue and thread sizes, no monitoring summary after each event, the matplotlib probe skipped, no
per-session copy of the page for deep links, what a `/call` request leaves in Gradio dropped once its answer is
read), served by uvicorn with the same options.
None of the chat's own per-request work: no Guard, no identity, no session binding, no usage, no conversation or
store.
What the chat measures above this app is ours; the rest is Gradio.

    python -m bench.bare_gradio --port 7999 --model-url http://127.0.0.1:8011/v1 --model fake-model
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from bench.processes import ROOT, wait_http
from chatapp.defaults import CHAT_CONCURRENCY
from harness.support import free_port


def build(model_url: str, model_id: str, concurrency: int) -> Any:
    import gradio as gr
    import uvicorn  # noqa: F401  (imported by main; here so a missing install fails before the model loads)
    from fastapi import FastAPI

    from chatapp import gradio_compat
    from chatapp.chat import MAX_INTERVAL_S, PER_STREAM_S, UPDATE_INTERVAL_S
    from chatapp.conversation import Message
    from chatapp.models.base import GenerationParams, ReplyStats
    from chatapp.models.openai_compat import OpenAICompatModel

    model = OpenAICompatModel("Bench model", model_url, model_id, max_connections=concurrency)  # as the chat builds it
    active = [0]
    lock = threading.Lock()

    def interval() -> float:  # chatapp.ChatService._interval, same constants
        return min(max(UPDATE_INTERVAL_S, active[0] * PER_STREAM_S), MAX_INTERVAL_S)

    def chat(message, label, temperature, top_p, max_tokens, system_prompt, state) -> Iterator[tuple[str, Any]]:
        params = GenerationParams(float(temperature), float(top_p), int(max_tokens))
        with lock:
            active[0] += 1
        try:
            reply, last = "", 0.0
            for chunk in model.stream([Message("user", str(message))], params, ReplyStats()):
                reply += chunk
                now = time.monotonic()
                if chunk and (reply == chunk or now - last >= interval()):
                    last = now
                    yield reply, (state if reply == chunk else gr.skip())  # the state set once, as the chat does
            yield reply, state
        finally:
            with lock:
                active[0] -= 1

    with gr.Blocks() as demo:
        state = gr.State()
        inputs = [gr.JSON(visible=False), gr.Textbox(visible=False), gr.Number(visible=False),
                  gr.Number(visible=False), gr.Number(visible=False), gr.Textbox(visible=False)]  # fmt: skip
        reply = gr.Textbox(visible=False)
        gr.Button(visible=False).click(chat, [*inputs, state], [reply, state], api_name="chat", preprocess=False)
    demo.queue(default_concurrency_limit=concurrency, max_size=concurrency * 16)
    gradio_compat.skip_monitoring_summary(demo)
    gradio_compat.set_thread_count(demo, max(40, concurrency + 16))
    gradio_compat.skip_matplotlib_probe()
    gradio_compat.skip_session_config()
    gradio_compat.forget_call_sessions()
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return gr.mount_gradio_app(app, demo, path="/", ssr_mode=False, enable_monitoring=False, mcp_server=False)


@contextlib.contextmanager
def bare_gradio(model_url: str, model_id: str, concurrency: int = CHAT_CONCURRENCY, wait: bool = True) -> Iterator[str]:
    """The bare app in its own process on a free port; yields its URL (wait=False: at once, so the caller can
    start another server meanwhile and wait for `{url}/healthz` itself)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.bare_gradio", "--port", str(port), "--model-url", model_url,
         "--model", model_id, "--concurrency", str(concurrency)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        if wait:
            wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=180)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--concurrency", type=int, default=CHAT_CONCURRENCY)
    args = parser.parse_args()
    app = build(args.model_url, args.model, args.concurrency)
    gc.freeze()  # as `python -m chatapp` does before it serves
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", proxy_headers=False)


if __name__ == "__main__":
    main()
