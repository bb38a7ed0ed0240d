"""What the front door (`chatapp.web.Guard`) costs per request and per streamed chunk, in-process, against an
ASGI app that answers at once: the Guard's own work, with no network or Gradio in the way.

    python -m bench.guard_cost          # prints microseconds per request / per streamed chunk
"""

from __future__ import annotations

import asyncio
import time

from chatapp.browser_id import BrowserIds
from chatapp.uploads import UploadRegistry
from chatapp.web import Guard

CHUNKS = 2000


async def inner(scope, receive, send) -> None:
    chunks = CHUNKS if scope["path"] == "/gradio_api/queue/data" else 1
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    for i in range(chunks):
        await send({"type": "http.response.body", "body": b"data: x\n\n", "more_body": i < chunks - 1})


def scope(path: str, query: bytes, cookie: str) -> dict:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(b"host", b"127.0.0.1"), (b"cookie", cookie.encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 7860),
        "scheme": "http",
        "root_path": "",
    }


async def run(app, path: str, query: bytes, cookie: str, n: int) -> float:
    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    start = time.perf_counter()
    for _ in range(n):
        await app(scope(path, query, cookie), receive, send)
    return (time.perf_counter() - start) / n


async def _measure(scale: float) -> dict[str, float]:
    ids = BrowserIds(b"k" * 32)
    cookie = f"hybrid-chat-browser={ids.mint()}"
    guard = Guard(inner, mode="none", browser_ids=ids, uploads=UploadRegistry())
    figures = {}
    for name, path, query, n in [
        ("request", "/config", b"", max(1, round(5000 * scale))),
        ("stream", "/gradio_api/queue/data", b"session_hash=s", max(1, round(50 * scale))),
    ]:
        figures[f"{name}_bare_s"] = await run(inner, path, query, cookie, n)
        figures[f"{name}_guarded_s"] = await run(guard, path, query, cookie, n)
    figures["chunk_added_s"] = (figures["stream_guarded_s"] - figures["stream_bare_s"]) / CHUNKS
    return figures


def measure(scale: float = 1.0) -> dict[str, float]:
    """Seconds per request (`request_*`), per 2,000-chunk stream (`stream_*`) and added per chunk, bare and
    guarded, from one run; `scale` times the default number of requests and streams."""
    return asyncio.run(_measure(scale))


def main() -> None:
    f = measure()
    for name in ("request", "stream"):
        bare, guarded = f[f"{name}_bare_s"], f[f"{name}_guarded_s"]
        per = f"{(guarded - bare) * 1e6:.1f} µs per request"
        if name == "stream":
            per += f", {f['chunk_added_s'] * 1e6:.3f} µs per streamed chunk"
        print(f"{name}: bare {bare * 1e6:.1f} µs, guarded {guarded * 1e6:.1f} µs: the Guard adds {per}")


if __name__ == "__main__":
    main()
