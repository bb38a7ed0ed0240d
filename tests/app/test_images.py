"""Images through a running chat: sent to both models, stored outside the history, shown again on resume, and
kept to the person who uploaded them. Each attack test asserts what the victim's data looks like afterwards.

Every simulated client is one cookie jar (with CHAT_AUTH=none the browser-id cookie is the credential)."""

from __future__ import annotations

import base64
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from gradio_client import Client, handle_file

from chatapp.media.base import owner_key
from chatapp.web import MAX_BODY_BYTES
from harness.chat_process import ChatProcess
from harness.fakes.openai_server import FakeOpenAIServer, image_parts
from harness.fakes.vertex_server import FakeVertexServer, inline_images, inline_mime_type
from tests.app.helpers import FAKE_LABEL, GEMINI_LABEL, call, chat, client, new_session, owner_of, sqlite_path
from tests.media.images import GIF, HTML_AS_PNG, PNG


@pytest.fixture(scope="module")
def app(start_app: Any, app_env: dict[str, str]) -> ChatProcess:
    return start_app(app_env)


def media_dir(app: ChatProcess) -> Path:
    path = sqlite_path(app)
    return path.with_name(f"{path.stem}.media")


def upload(app: ChatProcess, session: str, *files: tuple[str, bytes]) -> list[str]:
    answer = client(session).post(
        f"{app.url}/gradio_api/upload", files=[("files", (name, data, "image/png")) for name, data in files], timeout=30
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def on_server(app: ChatProcess, handle: str) -> list[Path]:
    """The files behind an upload handle (`<random>/<file name>`: the server's path is never answered)."""
    folder = Path(app.env.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir(), "gradio"))
    return list(folder.glob(f"incoming-*/*/{handle.rpartition('/')[2]}"))


def file_data(path: str) -> dict[str, Any]:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def conversation(app: ChatProcess, session: str) -> dict[str, Any]:
    listed = call(app.url, "conversations", [], session).value[0]
    assert len(listed) == 1, listed
    return listed[0]


def test_gradio_client_sends_an_image_that_both_models_see_and_resume_shows(
    app: ChatProcess, fake_model: FakeOpenAIServer, fake_gemini: tuple[FakeVertexServer, dict[str, str]], tmp_path
) -> None:
    picture = tmp_path / "dot.png"
    picture.write_bytes(PNG)
    api = Client(app.url, verbose=False)
    try:
        message = {"text": "What is in this picture?", "files": [handle_file(str(picture))]}
        reply = api.predict(message, FAKE_LABEL, 0.7, 0.95, 64, "", api_name="/chat")
        assert reply == "You said: What is in this picture? [images in context: 1]"
        sent = image_parts(fake_model.chat_requests()[-1])
        assert [p["image_url"]["url"].split(",")[0] for p in sent] == ["data:image/png;base64"]

        # Switching to Gemini keeps the earlier image in context, as an inline part.
        reply = api.predict("Still there?", GEMINI_LABEL, 0.7, 0.95, 64, "", api_name="/chat")
        assert reply.endswith("[images in context: 1]"), reply
        inline = inline_images(fake_gemini[0].requests[-1]["body"])
        assert [(inline_mime_type(d), base64.b64decode(d["data"])) for d in inline] == [("image/png", PNG)]

        (listed,) = api.predict(api_name="/conversations")
        messages = api.predict(listed["id"], api_name="/resume")
        assert messages[0]["images"][0]["mime_type"] == "image/png"
        assert messages[0]["images"][0]["size"] == len(PNG)
    finally:
        api.close()


def test_an_image_is_stored_beside_the_history_not_in_it_and_served_to_its_owner_only(app: ChatProcess) -> None:
    alice, mallory = new_session(), new_session()
    (path,) = upload(app, alice, (f"dot-{uuid.uuid4().hex}.png", PNG))
    assert on_server(app, path)
    assert call(app.url, "chat", [{"text": "hi", "files": [file_data(path)]}, FAKE_LABEL, 0.7, 0.95, 64, ""], alice)
    assert not on_server(app, path), "the uploaded temporary file was kept after it was stored"
    conv = conversation(app, alice)
    (image,) = call(app.url, "resume", [conv["id"]], alice).value[0][0]["images"]
    stored = media_dir(app) / owner_key(owner_of(alice)) / conv["id"] / image["id"]
    assert stored.read_bytes() == PNG
    raw = sqlite_path(app).read_bytes()
    assert PNG[8:40] not in raw, "image bytes ended up in the history file"

    url = f"{app.url}/media/{conv['id']}/{image['id']}"
    mine = client(alice).get(url, timeout=10)
    assert (mine.status_code, mine.content, mine.headers["content-type"]) == (200, PNG, "image/png")
    client(mallory).get(app.url, timeout=10)  # mallory has a browser id of her own
    assert client(mallory).get(url, timeout=10).status_code == 404
    assert requests.get(url, timeout=10).status_code == 404  # a new browser: a new owner, nothing of alice's
    assert stored.read_bytes() == PNG


def test_another_persons_upload_path_is_neither_served_nor_accepted(app: ChatProcess) -> None:
    alice, mallory = new_session(), new_session()
    (path,) = upload(app, alice, (f"secret-{uuid.uuid4().hex}.png", PNG))
    client(mallory).get(app.url, timeout=10)
    # Reading it back through Gradio's file route: only its uploader may.
    assert client(alice).get(f"{app.url}/gradio_api/file={path}", timeout=10).content == PNG
    assert client(mallory).get(f"{app.url}/gradio_api/file={path}", timeout=10).status_code == 404
    assert client(mallory).get(f"{app.url}/gradio_api/file/{path}", timeout=10).status_code == 404
    # Nor any other file of the server, nor a URL for it to fetch.
    for other in ("/etc/passwd", str(sqlite_path(app)), "http://127.0.0.1:1/x"):
        assert client(alice).get(f"{app.url}/gradio_api/file={other}", timeout=10).status_code == 404

    # Sending alice's upload as mallory's image: refused like an expired upload, nothing stored for mallory.
    result = chat(app.url, {"text": "what is this?", "files": [file_data(path)]}, session_hash=mallory)
    assert "not one you uploaded here" in result.error
    assert call(app.url, "conversations", [], mallory).value[0] == []
    assert not (media_dir(app) / owner_key(owner_of(mallory))).exists()
    # Alice's upload is intact and still hers to send.
    assert on_server(app, path)
    sent = chat(app.url, {"text": "mine", "files": [file_data(path)]}, session_hash=alice)
    assert sent.reply.endswith("[images in context: 1]")


def test_a_file_that_is_not_an_image_is_refused_by_its_content_and_not_kept(app: ChatProcess) -> None:
    alice = new_session()
    (kept,) = upload(app, alice, ("dot.png", PNG))
    name = f"cat-{uuid.uuid4().hex}.png"
    refused = client(alice).post(
        f"{app.url}/gradio_api/upload", files=[("files", (name, HTML_AS_PNG, "image/png"))], timeout=30
    )
    assert refused.status_code == 415
    assert "Only PNG, JPEG, WebP or GIF images" in refused.text
    # Gradio keeps uploads as <upload folder>/<seeded hash>/<name>: the refused one is not there.
    assert list(Path(kept).parent.parent.glob(f"*/{name}")) == []
    assert call(app.url, "conversations", [], alice).value[0] == []


def test_at_most_five_images_per_message(app: ChatProcess) -> None:
    alice = new_session()
    paths = upload(app, alice, *[(f"{n}.gif", GIF + bytes([n])) for n in range(6)])
    result = chat(app.url, {"text": "six", "files": [file_data(p) for p in paths]}, session_hash=alice)
    assert "at most 5 images" in result.error
    assert call(app.url, "conversations", [], alice).value[0] == []


def test_the_body_cap_is_raised_for_uploads_only(app: ChatProcess) -> None:
    alice = new_session()
    nine_mb = PNG + b"\0" * (9 * 1024 * 1024)
    assert len(upload(app, alice, ("big.png", nine_mb))) == 1
    too_big = client(alice).post(
        f"{app.url}/gradio_api/upload", files=[("files", ("huge.png", nine_mb + b"\0" * 2 * 1024 * 1024))], timeout=60
    )
    assert too_big.status_code == 413
    elsewhere = client(alice).post(
        f"{app.url}/gradio_api/queue/join",
        data=b"{" + b" " * (MAX_BODY_BYTES + 1) + b"}",
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert elsewhere.status_code == 413


def test_deleting_a_conversation_and_undoing_a_turn_delete_their_images(app: ChatProcess) -> None:
    alice = new_session()
    for text in ("first", "second"):
        (path,) = upload(app, alice, (f"{text}.png", PNG + text.encode()))
        assert chat(app.url, {"text": text, "files": [file_data(path)]}, session_hash=alice).kind == "complete"
    conv = conversation(app, alice)
    folder = media_dir(app) / owner_key(owner_of(alice)) / conv["id"]
    assert len(list(folder.iterdir())) == 2
    assert call(app.url, "delete", [conv["id"]], alice).value[0] == {"deleted": conv["id"]}
    assert not folder.exists()
