"""Overhead of a turn with an image over a text turn, through the running chat (the real send path).

A text turn is one `/chat` call. An image turn is what a client does for one: upload the image (Gradio's upload
route, through the chat's owner bookkeeping), then `/chat` with it, which checks it, stores it in the media
folder and sends it to the model base64-encoded. Same client, same model server (a fast fake), same run.
"""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.processes import chat, fake_model_server

LABEL = "Bench model"
MODEL = "fake-model"
# A phone photo after the browser's upload: ~1 MB of incompressible bytes behind a PNG signature.
PHOTO = b"\x89PNG\r\n\x1a\n" + os.urandom(1024 * 1024)


def _turn(session: requests.Session, url: str, message: object) -> float:
    started = time.perf_counter()
    body = {"data": [message, LABEL, 0.7, 0.95, 16, ""]}
    event_id = session.post(f"{url}/gradio_api/call/chat", json=body, timeout=60).json()["event_id"]
    text = session.get(f"{url}/gradio_api/call/chat/{event_id}", timeout=60).text
    if "event: error" in text:
        raise RuntimeError(f"/chat failed: {text[-300:]}")
    return time.perf_counter() - started


def _image_turn(session: requests.Session, url: str, i: int) -> float:
    started = time.perf_counter()
    answer = session.post(f"{url}/gradio_api/upload", files=[("files", (f"photo-{i}.png", PHOTO))], timeout=60)
    answer.raise_for_status()
    (path,) = answer.json()
    message = {"text": f"Message {i}", "files": [{"path": path, "meta": {"_type": "gradio.FileData"}}]}
    _turn(session, url, message)
    return time.perf_counter() - started


def image_turn_overhead(turns: int = 20) -> dict[str, float]:
    with (
        fake_model_server(tokens_per_s=2000.0, reply_tokens=8) as model_url,
        chat(SELF_HOSTED_URL=model_url, SELF_HOSTED_MODEL=MODEL, SELF_HOSTED_LABEL=LABEL) as app,
    ):
        text_s, image_s = [], []
        for i in range(turns):  # interleaved, each in a new conversation, so drift hits both alike
            with requests.Session() as session:
                text_s.append(_turn(session, app.url, f"Message {i}"))
            with requests.Session() as session:
                image_s.append(_image_turn(session, app.url, i))
    text, image = statistics.median(text_s), statistics.median(image_s)
    return {"text_s": text, "image_s": image, "ratio": image / text, "overhead_ms": (image - text) * 1000}


def _kib(pid: int, field: str) -> int:
    """A line of /proc/<pid>/status in KiB (VmRSS: resident now; VmHWM: the peak resident so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def _big_image_turn(url: str, i: int, images: int, size: int) -> None:
    with requests.Session() as session:
        photo = b"\x89PNG\r\n\x1a\n" + os.urandom(size - 8)
        files = [("files", (f"photo-{i}-{n}.png", photo)) for n in range(images)]
        answer = session.post(f"{url}/gradio_api/upload", files=files, timeout=300)
        answer.raise_for_status()
        paths = answer.json()
        message = {"text": f"Message {i}", "files": [{"path": p, "meta": {"_type": "gradio.FileData"}} for p in paths]}
        _turn(session, url, message)


def image_turn_memory(clients: int = 8, images: int = 5, size: int = 10 * 1024 * 1024, rounds: int = 2) -> dict:
    """The chat process's resident memory (MiB) before, at its peak during, and after `rounds` of `clients`
    concurrent turns that each carry `images` images of `size` bytes (issue 15 row 6: 8 turns of 5 images of 10 MB)."""
    with (
        fake_model_server(tokens_per_s=2000.0, reply_tokens=8) as model_url,
        chat(SELF_HOSTED_URL=model_url, SELF_HOSTED_MODEL=MODEL, SELF_HOSTED_LABEL=LABEL) as app,
    ):
        pid = app.process.pid
        _turn(requests.Session(), app.url, "warm up")
        before = _kib(pid, "VmRSS")
        for r in range(rounds):
            with ThreadPoolExecutor(clients) as pool:
                list(
                    pool.map(lambda i: _big_image_turn(app.url, i, images, size), range(r * clients, (r + 1) * clients))
                )
        peak, after = _kib(pid, "VmHWM"), _kib(pid, "VmRSS")
    return {"before_mib": before / 1024, "peak_mib": peak / 1024, "after_mib": after / 1024}


if __name__ == "__main__":
    print({k: round(v) for k, v in image_turn_memory().items()})
