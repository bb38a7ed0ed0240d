"""Issue 15 row 7 and the upload promise of issue 19: uploads are limited per caller in rate and in bytes kept on
the server's disk, and every file of a batch is judged by its content (the whole batch refused, its new files
deleted, when one is not an image)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from chatapp.uploads import MAX_HELD_BYTES, UPLOADS_PER_MINUTE, UploadRegistry
from harness.chat_process import ChatProcess, start_chat

TIMEOUT = 60
PNG = b"\x89PNG\r\n\x1a\n"
HTML = b"<html><form action=https://evil.example>" + b"x" * 100


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatProcess]:
    folder = tmp_path_factory.mktemp("uploads")
    # Gradio writes uploads under GRADIO_TEMP_DIR: the test reads the disk there.
    process = start_chat({"GRADIO_TEMP_DIR": str(folder / "gradio")}, folder)
    yield process
    process.stop(grace_s=3)


def on_disk(chat: ChatProcess) -> dict[str, bytes]:
    """Every file under Gradio's upload folder → its first bytes."""
    found = {}
    for root, _, files in os.walk(chat.env["GRADIO_TEMP_DIR"]):
        for name in files:
            path = Path(root, name)
            found[str(path)] = path.read_bytes()[:64]
    return found


def bytes_on_disk(chat: ChatProcess) -> int:
    return sum(os.path.getsize(p) for p in on_disk(chat))


def browser(chat: ChatProcess) -> requests.Session:
    http = requests.Session()
    assert http.get(f"{chat.url}/config", timeout=TIMEOUT).status_code == 200  # its browser-id cookie
    return http


def upload(http: requests.Session, chat: ChatProcess, *contents: bytes) -> requests.Response:
    files = [("files", (f"image{i}.png", data, "image/png")) for i, data in enumerate(contents)]
    return http.post(f"{chat.url}/gradio_api/upload", files=files, timeout=TIMEOUT)


def test_every_file_of_a_batch_is_judged_by_its_content(chat):
    http = browser(chat)
    for batch in ([PNG + b"first", HTML], [HTML, PNG + b"second"], [PNG + b"a", HTML, PNG + b"b"]):
        answer = upload(http, chat, *batch)
        assert answer.status_code == 415, (batch, answer.status_code)
        assert "/" not in answer.text.replace("PNG, JPEG, WebP", "")  # no server path in the refusal
    # Nothing of those batches stayed on the disk: neither the page nor the images sent beside it.
    assert not any(
        head.startswith((HTML[:10], PNG + b"first", PNG + b"second", PNG + b"a")) for head in on_disk(chat).values()
    )


def test_uploads_are_rate_limited_per_caller(chat):
    mallory = browser(chat)
    for attempt in range(UPLOADS_PER_MINUTE):
        assert upload(mallory, chat, PNG + f"rate {attempt}".encode()).status_code == 200, attempt
    refused = upload(mallory, chat, PNG + b"one too many")
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert not any(head.startswith(PNG + b"one too many") for head in on_disk(chat).values())
    # Someone else is not slowed down by mallory.
    assert upload(browser(chat), chat, PNG + b"alice's photo").status_code == 200


def test_bytes_kept_on_disk_are_bounded_per_caller(chat):
    mallory = browser(chat)
    before = bytes_on_disk(chat)
    image = 10 * 1024 * 1024 - 4096  # just under the 10 MB an image may be
    answers = []
    for batch in range(4):  # 4 batches of 5 images of ~10 MB: twice what one caller may keep
        contents = [PNG + f"{batch}-{i}".encode() + b"\0" * image for i in range(5)]
        answers.append(upload(mallory, chat, *contents).status_code)
    assert answers[:2] == [200, 200] and answers[2:] == [413, 413], answers
    # Sent in chunks, without a Content-Length to judge it by beforehand (Gradio would leave the partial files of
    # a body cut off by the cap behind): refused before a byte is written, within the room or not.
    for name, count in (("over the cap", 6), ("within the room", 1)):
        contents = [PNG + f"chunked {name} {i}".encode() + b"\0" * image for i in range(count)]
        files = [("files", (f"image{i}.png", data, "image/png")) for i, data in enumerate(contents)]
        body, content_type = requests.models.RequestEncodingMixin._encode_files(files, {})
        chunked = browser(chat).post(
            f"{chat.url}/gradio_api/upload",
            data=(body[i : i + (1 << 20)] for i in range(0, len(body), 1 << 20)),
            headers={"Content-Type": content_type},
            timeout=TIMEOUT,
        )
        assert chunked.status_code == 411, name
    kept = bytes_on_disk(chat) - before
    assert kept <= MAX_HELD_BYTES, kept
    # Another caller still has all of its own room.
    alice = browser(chat)
    assert upload(alice, chat, *[PNG + f"alice {i}".encode() + b"\0" * image for i in range(5)]).status_code == 200


def test_the_registry_holds_each_caller_to_its_bytes_frees_them_when_sent_and_expires_the_rest(tmp_path: Path):
    # Two uploads judged at once against the same room both pass the check before Gradio writes: the
    # registry is the last word once the files exist.
    uploads = UploadRegistry(max_held_bytes=1000, expire_s=60.0)

    def written(name: str, size: int) -> str:
        path = tmp_path / name / "image.png"
        path.parent.mkdir()
        path.write_bytes(PNG + b"\0" * (size - len(PNG)))
        return str(path)

    first, second, third = written("a", 600), written("b", 600), written("c", 300)
    assert uploads.add("mallory", [first]) and uploads.room("mallory") == 400
    assert not uploads.add("mallory", [second])
    assert not os.path.exists(second) and not uploads.owns("mallory", second)
    assert uploads.add("alice", [third])  # another caller's room is her own
    uploads.consume("mallory", first)  # sent with a message: deleted, and the room is back
    assert not os.path.exists(first) and uploads.room("mallory") == 1000
    uploads.expire(now=time.monotonic() + 61.0)  # never sent: deleted after the hour
    assert not os.path.exists(third) and not uploads.owns("alice", third) and uploads.room("alice") == 1000
