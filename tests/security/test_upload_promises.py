"""Uploads are the uploader's (`chatapp.uploads`, through the front door `chatapp.web`), checked in this process at
the HTTP boundary: every file of a batch judged by its content, a file served back only to its uploader, and the
per-caller rate; the registry's own accounting through its public interface."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from chatapp.gradio_compat import upload_folder
from chatapp.images import ALLOWED, MAX_IMAGE_BYTES
from chatapp.session_binding import SessionBinding
from chatapp.upload_gate import FULL, MAX_UPLOAD_ANSWER_BYTES, UploadGate
from chatapp.uploads import MAX_HELD_BYTES, UPLOADS_PER_MINUTE, UploadRegistry, all_images
from tests.security.inprocess import API, PNG, new_browser, run_apart, send, served

SIGNATURE = b"\x89PNG\r\n\x1a\n"  # 8 bytes
NOT_AN_IMAGE = f"Only {ALLOWED} images can be attached (judged by their content).\n"
SELF_HOSTED = "Gemma 4 31B QAT (self-hosted)"  # nothing listens at its URL here
HTML = b"<html><form action=https://evil.example>" + b"x" * 100


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with served(tmp_path_factory.mktemp("uploads"), {"CHAT_AUTH": "none"}) as client:
        yield client


def unique_png() -> bytes:
    return PNG + uuid.uuid4().bytes  # Gradio names a file by its content: a new one every time


def upload(chat: TestClient, cookie: str, *files: tuple[str, bytes]):
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    return send(chat, "POST", f"{API}/upload", files=parts, cookie=cookie)


def test_an_upload_is_served_back_to_its_uploader_only(chat):
    ada, bob = new_browser(chat), new_browser(chat)
    data = unique_png()
    answer = upload(chat, ada, ("mine.png", data))
    assert answer.status_code == 200, answer.text
    [path] = answer.json()
    served_back = send(chat, "GET", f"{API}/file={path}", cookie=ada)
    assert served_back.status_code == 200 and served_back.content == data
    refused = send(chat, "GET", f"{API}/file={path}", cookie=bob)
    assert (refused.status_code, refused.text) == (404, "No such file.\n")
    assert send(chat, "GET", f"{API}/file=/etc/hostname", cookie=ada).status_code == 404
    assert send(chat, "GET", f"{API}/file={path}x", cookie=ada).status_code == 404


@pytest.mark.parametrize("bad_at", [0, 1, 2])
def test_every_file_of_a_batch_is_judged_by_its_content(chat, bad_at: int):
    cookie = new_browser(chat)
    cache = Path(upload_folder())  # where Gradio writes every upload
    tag = uuid.uuid4().hex
    batch = [(f"{tag}-{i}.png", unique_png()) for i in range(3)]
    batch[bad_at] = (f"{tag}-{bad_at}.png", HTML)  # named and typed like an image, and not one
    refused = upload(chat, cookie, *batch)
    assert (refused.status_code, refused.text) == (415, NOT_AN_IMAGE)
    assert list(cache.rglob(f"{tag}-*")) == [], "the refused batch's files were left on disk"


def test_a_file_the_uploader_already_holds_is_kept_when_a_batch_is_refused(chat):
    cookie = new_browser(chat)
    data = unique_png()
    [held] = upload(chat, cookie, ("held.png", data)).json()  # a handle for the file Gradio wrote
    assert upload(chat, cookie, ("held.png", data), ("bad.png", HTML)).status_code == 415
    kept = send(chat, "GET", f"{API}/file={held}", cookie=cookie)
    assert kept.status_code == 200 and kept.content == data


def test_uploads_are_rate_limited_per_caller(chat):
    ada, bob = new_browser(chat), new_browser(chat)
    for n in range(UPLOADS_PER_MINUTE):
        # Refused ones count too: each request costs the server the write.
        data = HTML if n % 2 else unique_png()
        assert upload(chat, ada, (f"{n}.png", data)).status_code in (200, 415)
    refused = upload(chat, ada, ("late.png", unique_png()))
    assert (refused.status_code, refused.text) == (429, "Too many uploads: try again in a minute.\n")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert upload(chat, bob, ("bob.png", unique_png())).status_code == 200


def test_an_upload_must_declare_its_length(chat):
    cookie = new_browser(chat)
    boundary = "promises-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + unique_png()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    chunked = send(chat, "POST", f"{API}/upload", content=iter([body]), headers=headers, cookie=cookie)
    assert (chunked.status_code, chunked.text) == (411, "An upload must declare its Content-Length.\n")
    declared = send(chat, "POST", f"{API}/upload", content=body, headers=headers, cookie=cookie)
    assert declared.status_code == 200, declared.text


def multipart(*files: bytes) -> tuple[bytes, dict[str, str]]:
    """An upload body as a browser sends it, and its headers (so its exact length is known beforehand)."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{n}.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + data
        + b"\r\n"
        for n, data in enumerate(files)
    ]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


def test_a_caller_keeps_at_most_its_bytes_on_disk_to_the_byte(chat):
    """Two uploads leave exactly one small upload's room: that one passes, anything more is refused before Gradio
    writes a byte; another caller's room is untouched."""
    cookie = new_browser(chat)
    small, headers = multipart(unique_png() + b"\0" * 4096)  # longer than the second upload's multipart framing
    size = MAX_IMAGE_BYTES - 4096
    first = [unique_png() + b"\0" * (size - len(PNG) - 16) for _ in range(5)]
    left = MAX_HELD_BYTES - sum(map(len, first)) - len(small)  # for the second upload: 6 files
    second = [unique_png() + b"\0" * (left // 6 - len(PNG) - 16) for _ in range(6)]
    second[0] += b"\0" * (left - sum(map(len, second)))
    for files in (first, second):
        body, kind = multipart(*files)
        answer = send(chat, "POST", f"{API}/upload", content=body, headers=kind, cookie=cookie)
        assert answer.status_code == 200, answer.text[:200]
    exact = send(chat, "POST", f"{API}/upload", content=small, headers=headers, cookie=cookie)
    assert exact.status_code == 200, "exactly the room that is left"
    one_more, headers = multipart(unique_png())
    full = send(chat, "POST", f"{API}/upload", content=one_more, headers=headers, cookie=cookie)
    assert full.status_code == 413
    assert full.text.startswith("Too many images are waiting to be sent")
    # Past the room once Gradio has written it (what two uploads of one caller racing each other come to; here a
    # Content-Length that says less than the body, which the in-process transport delivers whole): 413, and the
    # file it wrote is deleted, not held.
    tag = uuid.uuid4().hex
    late, headers = multipart(unique_png() + b"\0" * 65536)  # more than the framing the room was judged with
    late = late.replace(b'filename="0.png"', f'filename="{tag}.png"'.encode())
    over = send(chat, "POST", f"{API}/upload", content=late, headers={**headers, "content-length": "0"}, cookie=cookie)
    assert (over.status_code, over.text) == (413, FULL + "\n")
    assert list(Path(upload_folder()).rglob(f"{tag}.png")) == [], "a refused upload's file was left on disk"
    assert upload(chat, new_browser(chat), ("other.png", unique_png())).status_code == 200


# -- the gate, in front of an app whose answer no caller can shape ---------------------------------------------
# A caller cannot make Gradio's upload route answer anything but a list of paths, in one body message; these
# stand in for a Gradio whose answer changed (an upgrade, a middleware that chunks it) and check what the caller
# then gets from the gate.

CALLER = "browser:gate-test"


def upload_scope() -> dict:
    """The scope of CALLER's 100-byte upload, as the layers before the gate leave it."""
    return {
        "type": "http",
        "method": "POST",
        "path": f"{API}/upload",
        "query_string": b"",
        "headers": [(b"content-length", b"100")],
        "state": {"caller": CALLER},
    }


def through_gate(tmp_path: Path, status: int, chunks: list[bytes]) -> tuple[int, bytes, UploadRegistry]:
    """What a caller receives from the upload gate (status, body) when the app behind it writes a PNG and answers
    `status` with `chunks` as its body messages (a last message without a `body` key, which ASGI allows)."""
    uploads = UploadRegistry()
    gate = UploadGate(uploads, SessionBinding())
    scope = upload_scope()

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "more_body": False})

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[dict] = []

    async def send_(message: dict) -> None:
        sent.append(message)

    run_apart(gate, app, Request(scope), scope, receive, send_)
    [start] = [m for m in sent if m["type"] == "http.response.start"]
    return start["status"], b"".join(m.get("body", b"") for m in sent[1:]), uploads


def answer_of(text: str, size: int) -> list[bytes]:
    """`text` (JSON) padded with whitespace to `size` bytes, in two body messages."""
    body = text.encode()
    body = body[:1] + b" " * (size - len(body)) + body[1:]
    return [body[: size // 2], body[size // 2 :]]


def test_the_gate_judges_the_whole_answer_however_it_is_chunked_up_to_its_cap(tmp_path: Path):
    image = written(tmp_path, "a", PNG)
    status, body, uploads = through_gate(tmp_path, 200, answer_of(json.dumps([image]), MAX_UPLOAD_ANSWER_BYTES))
    assert status == 200, body[:200]
    [handle] = json.loads(body)
    assert image not in body.decode() and uploads.path_of(CALLER, handle) == image


@pytest.mark.parametrize(
    "answer",
    [
        b"not json",
        b'{"files": ["/etc/passwd"]}',
        b"[1]",
        b'"/etc/passwd"',
        "over the cap",
    ],
)
def test_an_upload_answer_the_gate_does_not_understand_is_refused_never_passed_on(tmp_path: Path, answer):
    image = written(tmp_path, "a", PNG)
    chunks = answer_of(json.dumps([image]), MAX_UPLOAD_ANSWER_BYTES + 1) if answer == "over the cap" else [answer]
    status, body, _ = through_gate(tmp_path, 200, chunks)
    assert (status, body) == (502, b"The upload's answer was not understood.\n")


def test_an_upload_the_app_never_answered_passes_nothing_on(tmp_path: Path):
    """The client went away before Gradio answered: nothing to judge, nothing sent, no error."""
    scope = upload_scope()
    sent: list[dict] = []

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        pass

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send_(message: dict) -> None:
        sent.append(message)

    gate = UploadGate(UploadRegistry(), SessionBinding())
    assert run_apart(gate, app, Request(scope), scope, receive, send_) is None
    assert sent == []


def test_the_apps_own_refusal_of_an_upload_reaches_the_caller_unchanged(tmp_path: Path):
    refusal = b'{"detail": "There was an error parsing the body"}'
    assert through_gate(tmp_path, 400, [refusal])[:2] == (400, refusal)


# -- the registry, through its public interface -------------------------------------------------------------


def written(folder: Path, name: str, data: bytes) -> str:
    path = folder / name / "image.png"
    path.parent.mkdir()
    path.write_bytes(data)
    return str(path)


def test_all_images_judges_every_file_and_deletes_only_the_new_ones(tmp_path: Path):
    image, page = written(tmp_path, "a", PNG), written(tmp_path, "b", HTML)
    other = written(tmp_path, "c", PNG)
    assert all_images([image, other], [image, other])
    assert os.path.exists(image) and os.path.exists(other)
    assert not all_images([image, page, other], [page, other])
    assert os.path.exists(image) and not os.path.exists(page) and not os.path.exists(other)
    assert all_images([str(tmp_path / "missing.png")], []) is False


def test_the_room_is_exact_and_shared_files_are_charged_to_each_holder(tmp_path: Path):
    uploads = UploadRegistry(max_held_bytes=100, expire_s=60.0)
    first = written(tmp_path, "a", SIGNATURE + b"\0" * 52)  # 60 bytes
    assert uploads.room("ada") == 100
    assert uploads.add("ada", [first]) and uploads.room("ada") == 40
    assert uploads.add("ada", [first]) and uploads.room("ada") == 40, "the same file is not charged twice"
    assert uploads.add("bob", [first]) and uploads.room("bob") == 40 and uploads.owns("bob", first)
    exact = written(tmp_path, "b", SIGNATURE + b"\0" * 32)  # 40 bytes: exactly the room left
    assert uploads.add("ada", [exact]) and uploads.room("ada") == 0
    uploads.consume("ada", first)
    assert os.path.exists(first), "bob still holds it"
    assert not uploads.owns("ada", first) and uploads.owns("bob", first) and uploads.room("ada") == 60
    uploads.consume("ada", first)  # twice: nothing more is given back
    assert uploads.room("ada") == 60
    uploads.consume("carol", first)  # not hers: nothing happens
    assert uploads.owns("bob", first)
    uploads.consume("bob", first)
    assert not os.path.exists(first) and not os.path.exists(os.path.dirname(first)), "its folder goes too"
    assert not uploads.owns("bob", 42)


def test_a_path_that_vanished_counts_as_empty_and_the_oldest_are_forgotten_first(tmp_path: Path):
    uploads = UploadRegistry(capacity=2, max_held_bytes=1000, expire_s=60.0)
    paths = [written(tmp_path, name, PNG) for name in "abc"]
    assert uploads.add("ada", [str(tmp_path / "gone.png")]) and uploads.room("ada") == 1000
    for path in paths:
        assert uploads.add("ada", [path])
    assert not uploads.owns("ada", paths[0]) and not os.path.exists(paths[0]), "the oldest went"
    assert uploads.owns("ada", paths[2]) and uploads.room("ada") == 1000 - 2 * len(PNG)


def test_uploads_expire_after_their_hour_and_not_before(tmp_path: Path):
    uploads = UploadRegistry(max_held_bytes=1000, expire_s=60.0)
    path = written(tmp_path, "a", PNG)
    (handle,) = uploads.add("ada", [path]) or []
    start = time.monotonic()
    uploads.expire(now=start + 59.0)
    assert uploads.owns("ada", path) and os.path.exists(path) and uploads.path_of("ada", handle) == path
    uploads.expire(now=start + 61.0)
    assert not uploads.owns("ada", path) and not os.path.exists(path) and uploads.room("ada") == 1000
    assert uploads.path_of("ada", handle) is None  # its handle is forgotten with it


def within(seconds: float, action: Callable[[], object]) -> object:
    """`action()`, failing (not hanging) if it does not return in time: the registry's loops must end."""
    done: list[object] = []
    worker = threading.Thread(target=lambda: done.append(action()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert done, f"{action} did not return within {seconds} s"
    return done[0]


def test_forgetting_and_expiring_end_and_delete_what_they_drop(tmp_path: Path):
    uploads = UploadRegistry(capacity=1, max_held_bytes=1000, expire_s=60.0)
    first, second = written(tmp_path, "a", SIGNATURE), written(tmp_path, "b", SIGNATURE)
    assert within(10, lambda: uploads.add("ada", [first])) is not None
    assert within(10, lambda: uploads.add("ada", [second])) is not None
    assert not os.path.exists(first) and os.path.exists(second)
    within(10, lambda: uploads.expire(now=time.monotonic() + 61.0))
    assert not os.path.exists(second)


def test_expiring_deletes_the_old_files_and_keeps_the_young(tmp_path: Path):
    uploads = UploadRegistry(max_held_bytes=1000, expire_s=60.0)
    old, young = written(tmp_path, "a", SIGNATURE), written(tmp_path, "b", SIGNATURE)
    uploads.add("ada", [old])
    added_old = time.monotonic()  # at or after the old one's time
    while (before_young := time.monotonic()) <= added_old:
        pass  # the clock's next tick: the young one is strictly younger
    uploads.add("ada", [young])
    uploads.expire(now=added_old + 60.0)
    assert not os.path.exists(old) and not uploads.owns("ada", old)
    assert os.path.exists(young) and uploads.owns("ada", young)
    assert before_young > added_old


def test_a_caller_may_fill_exactly_its_room_with_its_first_upload(tmp_path: Path):
    uploads = UploadRegistry(max_held_bytes=40, expire_s=60.0)
    exact = written(tmp_path, "a", SIGNATURE + b"\0" * 32)
    assert uploads.add("bob", [exact]) is not None and uploads.room("bob") == 0
    over = written(tmp_path, "b", SIGNATURE)
    assert uploads.add("bob", [over]) is None and not os.path.exists(over)


def test_releasing_leaves_exactly_what_is_still_held(tmp_path: Path):
    uploads = UploadRegistry(max_held_bytes=1000, expire_s=60.0)
    one, ten = written(tmp_path, "a", b"\x89"), written(tmp_path, "b", SIGNATURE + b"\0\0")
    vanished = str(tmp_path / "gone" / "image.png")  # held at 0 bytes
    assert uploads.add("ada", [one, ten, vanished])
    uploads.consume("ada", ten)
    assert uploads.room("ada") == 999, "the one byte still held"
    uploads.consume("ada", one)
    assert uploads.room("ada") == 1000
    uploads.consume("ada", vanished)  # nothing left to give back: no error either
    assert uploads.room("ada") == 1000 and not uploads.owns("ada", vanished)


def test_a_file_that_cannot_be_read_is_not_an_image_and_its_removal_is_quiet(tmp_path: Path):
    missing = str(tmp_path / "missing.png")
    assert all_images([missing], [missing]) is False


def _gradio_upload(writes: list[str], answers: list[str], fails: bool = False):
    """Stands for Gradio's `upload_fn(request, upload_dir, ...)`: writes `writes` into the folder it is given,
    answers `answers` (as output files), or fails after writing, as a client gone mid-body makes it."""

    async def upload_fn(request: object, upload_dir: str, *args: object, **kwargs: object):
        assert (request, args, kwargs) == ("request", ("more",), {"limit": 1})  # passed on as they came
        for name in writes:
            (Path(upload_dir) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(upload_dir) / name).write_bytes(PNG)
        if fails:
            raise ConnectionResetError("the client went away mid-body")
        return [os.path.join(upload_dir, name) for name in answers], [], []

    return upload_fn


def test_each_upload_request_writes_into_a_folder_of_its_own_and_a_failed_one_leaves_nothing(tmp_path: Path):
    from chatapp.uploads import INCOMING, own_folder
    from tests.security.inprocess import run_apart

    ok = own_folder(_gradio_upload(["a/a.png", "b/b.png", "c/part.tmp"], ["a/a.png", "b/b.png"]))
    answered, _, _ = run_apart(ok, "request", str(tmp_path), "more", limit=1)
    (folder,) = tmp_path.iterdir()
    assert folder.name.startswith(INCOMING) and len(folder.name) == len(INCOMING) + 16
    assert answered == [str(folder / "a/a.png"), str(folder / "b/b.png")]
    kept = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert kept == ["a/a.png", "b/b.png"]  # a part it did not answer (cut off before its end) is gone
    again, _, _ = run_apart(ok, "request", str(tmp_path), "more", limit=1)
    assert len(list(tmp_path.iterdir())) == 2 and os.path.dirname(os.path.dirname(again[0])) != str(folder)

    failed = own_folder(_gradio_upload(["d/d.png", "e/part.tmp"], [], fails=True))
    with pytest.raises(ConnectionResetError):
        run_apart(failed, "request", str(tmp_path), "more", limit=1)
    assert sorted(tmp_path.iterdir()) == sorted({folder, Path(os.path.dirname(os.path.dirname(again[0])))})


def test_sending_a_requests_uploads_deletes_its_folder_once_empty_and_only_then(tmp_path: Path):
    from chatapp.uploads import INCOMING

    registry = UploadRegistry()
    request = tmp_path / f"{INCOMING}0123456789abcdef"  # own_folder's folder; Gradio's per-file folders inside
    paths = []
    for name in ("a", "b"):
        (request / name).mkdir(parents=True)
        (request / name / f"{name}.png").write_bytes(PNG)
        paths.append(str(request / name / f"{name}.png"))
    handles = registry.add("ada", paths)
    assert handles is not None and registry.path_of("ada", handles[0]) == paths[0]
    assert registry.path_of("ada", [handles[0]]) is None  # not a handle at all (a list in an event's JSON)
    registry.consume("ada", paths[0])
    assert sorted(os.listdir(request)) == ["b"]  # the other upload of the request stays, with its folder
    registry.consume("ada", paths[1])
    assert not request.exists()


def event_answer(chat: TestClient, api_name: str, event_id: str, cookie: str) -> tuple[str, str]:
    """The last SSE event of a `/gradio_api/call/<api_name>/<event_id>` stream: its name and its data."""
    chat.cookies.clear()
    last = ("", "")
    with chat.stream("GET", f"{API}/call/{api_name}/{event_id}", headers={"cookie": cookie}) as answer:
        assert answer.status_code == 200
        name = ""
        for line in answer.iter_lines():
            if line.startswith("event:"):
                name = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                last = (name, line.partition(":")[2].strip())
    return last


def test_a_message_names_its_images_by_the_handles_the_uploader_was_answered(chat):
    """The chat maps the caller's handle in the event's body back to the file (the front door rewrites the body
    before Gradio reads it): the message is taken with its image."""
    cookie = new_browser(chat)
    [handle] = upload(chat, cookie, ("cat.png", unique_png())).json()
    message = {"text": "what is this?", "files": [{"path": handle, "meta": {"_type": "gradio.FileData"}}]}
    started = send(
        chat, "POST", f"{API}/call/chat", json={"data": [message, SELF_HOSTED, 0.7, 0.95, 64, ""]}, cookie=cookie
    )
    assert started.status_code == 200, started.text
    event, data = event_answer(chat, "chat", started.json()["event_id"], cookie)
    # The turn went to the model with its image (nothing listens there: it says so), not refused for it.
    assert event == "complete" and "attach it again" not in data, (event, data)
    assert SELF_HOSTED in data, data
