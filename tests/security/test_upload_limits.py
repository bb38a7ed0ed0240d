"""Issue 15 row 7 and the upload promise of issue 19: uploads are limited per caller in rate and in bytes kept on
the server's disk, and every file of a batch is judged by its content (the whole batch refused, its new files
deleted, when one is not an image)."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import ANY

import pytest
import requests

from chatapp.uploads import HANDLE, MAX_HELD_BYTES, UPLOADS_PER_MINUTE, UploadRegistry
from harness.chat_process import ChatProcess, start_chat
from tests.app.helpers import call, wait_until
from tests.security.conftest import CONTROLS

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


def file_data(path: str) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


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


# -- partial uploads (issue 15 row 7: nothing of a failed upload stays on the disk) ---------------------------


def files_left(chat: ChatProcess, before: dict[str, bytes]) -> list[str]:
    return sorted(set(on_disk(chat)) - set(before))


def multipart_head(name: str) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()


BOUNDARY = "front-door-test-boundary"


def raw_upload(chat: ChatProcess, http: requests.Session, declared: int) -> socket.socket:
    """An upload request sent by hand, its body still to come: what a client that goes away mid-way sent."""
    host, port = chat.url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    cookies = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    conn.sendall(
        (
            f"POST /gradio_api/upload HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: {cookies}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {declared}\r\n\r\n"
        ).encode()
    )
    return conn


def test_an_upload_cut_off_mid_body_leaves_nothing_on_disk(chat):
    http = browser(chat)
    before = on_disk(chat)
    conn = raw_upload(chat, http, declared=8 * 1024 * 1024)
    try:
        conn.sendall(multipart_head("cut.png") + PNG + b"cut off" + b"\0" * (2 * 1024 * 1024))
        # Gradio is writing the part to a temporary file: the client goes away before the rest of the body.
        wait_until(lambda: files_left(chat, before), TIMEOUT, "the partial upload on disk")
    finally:
        conn.close()
    wait_until(lambda: not files_left(chat, before), TIMEOUT, "the partial upload gone after the disconnect")
    # Nothing of it is charged to the caller either: its whole room is left.
    assert upload(http, chat, PNG + b"after the cut").status_code == 200


def test_a_complete_upload_gradio_refuses_or_cannot_finish_leaves_nothing_on_disk(chat):
    http = browser(chat)
    first = multipart_head("good.png") + PNG + b"written first" + b"\r\n"
    cases = {
        # A bad name after a good file: Gradio refuses the request after it wrote the first one.
        "bad name": first + multipart_head("..") + PNG + b"bad name\r\n" + f"--{BOUNDARY}--\r\n".encode(),
        # A body that ends inside a part: the part is never finished, nor answered.
        "unfinished part": first + multipart_head("unfinished.png") + PNG + b"unfinished",
    }
    for name, body in cases.items():
        before = on_disk(chat)
        answer = http.post(
            f"{chat.url}/gradio_api/upload",
            data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            timeout=TIMEOUT,
        )
        answered = answer.json() if answer.status_code == 200 else []
        # What stays is what the caller was answered (the finished good file), nothing else.
        assert [on_disk(chat)[p] for p in files_left(chat, before)] == [PNG + b"written first"] * len(answered), (
            name,
            answer.status_code,
            files_left(chat, before),
        )


# -- no server path reaches the client (issue 15 row 12) ---------------------------------------------------------


def test_uploads_are_answered_with_opaque_handles_that_only_their_uploader_can_use(chat):
    alice, mallory = browser(chat), browser(chat)
    before = on_disk(chat)
    answer = upload(alice, chat, PNG + b"alice's scan")
    assert answer.status_code == 200
    (handle,) = answer.json()
    (path,) = files_left(chat, before)
    # The answer names no folder of the server: neither the upload folder nor the file's path in it.
    assert chat.env["GRADIO_TEMP_DIR"] not in answer.text and path not in answer.text and "/tmp" not in answer.text
    assert HANDLE.match(handle) and handle.endswith("/image0.png"), handle
    # The page previews it by its handle; nobody else can, and the path itself is no longer a way in.
    assert alice.get(f"{chat.url}/gradio_api/file={handle}", timeout=TIMEOUT).content == PNG + b"alice's scan"
    assert mallory.get(f"{chat.url}/gradio_api/file={handle}", timeout=TIMEOUT).status_code == 404
    assert alice.get(f"{chat.url}/gradio_api/file={path}", timeout=TIMEOUT).status_code == 404
    # Mallory sending alice's handle as her image: answered like an expired upload, naming no path.
    refused = call(chat.url, "chat", [{"text": "whose?", "files": [file_data(handle)]}, *CONTROLS], http=mallory)
    assert refused.kind == "error" and "not one you uploaded here" in refused.value, refused
    assert path not in refused.value and "/tmp" not in refused.value
    assert on_disk(chat)[path] == PNG + b"alice's scan"  # alice's upload is intact


def test_no_answer_names_a_folder_of_the_server(chat):
    http = browser(chat)
    folders = [chat.env["GRADIO_TEMP_DIR"], os.getcwd(), str(Path(chat.env["CHAT_SQLITE_PATH"]).parent), "/tmp/"]
    answers = {path: http.get(chat.url + path, timeout=TIMEOUT).text for path in ("/", "/config", "/gradio_api/info")}
    # An error about a file the chat cannot use: Gradio's own message would name the path it resolved.
    answers["bad file"] = str(
        call(chat.url, "chat", [{"text": "x", "files": [file_data("../../etc/passwd")]}, *CONTROLS], http=http).value
    )
    for name, text in answers.items():
        assert not [folder for folder in folders if folder in text], name


def test_the_registry_answers_handles_maps_only_the_callers_own_back_and_forgets_them_once_sent(tmp_path: Path):
    uploads = UploadRegistry()
    path = tmp_path / "abc" / "photo.png"
    path.parent.mkdir()
    path.write_bytes(PNG)
    (handle,) = uploads.add("alice", [str(path)]) or []
    (mallorys,) = uploads.add("mallory", [str(path)]) or []  # the same bytes uploaded twice: two handles
    assert HANDLE.match(handle) and handle.endswith("/photo.png") and str(tmp_path) not in handle
    assert handle != mallorys and uploads.path_of("alice", handle) == str(path)
    assert uploads.path_of("mallory", handle) is None and uploads.path_of("alice", str(path)) is None

    def sent(owner: str, handle: str) -> str:
        body = {"data": [{"text": handle, "files": [{"path": handle, "meta": {"_type": "gradio.FileData"}}]}]}
        return json.loads(uploads.resolve(owner, json.dumps(body).encode()))["data"][0]

    # The file's path is mapped, the text (which only looks like a handle) is left alone.
    assert sent("alice", handle) == {"text": handle, "files": [{"path": str(path), "meta": ANY}]}
    theirs = sent("mallory", handle)["files"][0]["path"]  # someone else's handle: a path that holds nothing
    assert theirs != str(path) and not os.path.exists(theirs) and str(tmp_path) not in theirs
    uploads.consume("alice", str(path))
    assert uploads.path_of("alice", handle) is None and uploads.path_of("mallory", mallorys) == str(path)


def test_a_url_sent_as_a_files_path_never_reaches_gradio_which_would_fetch_it(tmp_path: Path):
    uploads = UploadRegistry()  # nothing uploaded yet: the rule holds from the first request
    for url in ("https://metadata.example/computeMetadata/v1/", "http://203.0.113.7/image.png", "HTTPS://x.example/a"):
        body = {"data": [{"text": url, "files": [{"path": url, "meta": {"_type": "gradio.FileData"}}]}]}
        sent = json.loads(uploads.resolve("mallory", json.dumps(body).encode()))["data"][0]
        assert sent["text"] == url  # message text is never rewritten
        path = sent["files"][0]["path"]
        assert "://" not in path and not os.path.exists(path), path
