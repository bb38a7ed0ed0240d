"""What an image may be (by content), how many a message and a prompt carry, and how each model is sent them."""

from __future__ import annotations

import base64
import json

import pytest

from chatapp.conversation import PROMPT_IMAGES, ImageRef, Message, build_prompt
from chatapp.images import MAX_IMAGE_BYTES, MAX_IMAGES_PER_MESSAGE, check_image, read_images, sniff
from chatapp.inputs import InputError
from chatapp.json_body import JsonBody
from chatapp.models.gemini_request import message_parts
from chatapp.models.openai_compat_request import wire_message
from tests.media.images import GIF, HTML_AS_PNG, JPEG, PNG, WEBP


@pytest.mark.parametrize(
    ("data", "mime"), [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp")]
)
def test_each_accepted_type_is_recognised_by_its_content(data: bytes, mime: str) -> None:
    assert sniff(data) == mime
    assert check_image(data).mime_type == mime


@pytest.mark.parametrize(
    "data",
    [
        HTML_AS_PNG,
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"%PDF-1.7",
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
        b"\x89PN",
    ],
)
def test_anything_else_is_refused_whatever_its_name(tmp_path, data: bytes) -> None:
    disguised = tmp_path / "holiday.png"
    disguised.write_bytes(data)
    with pytest.raises(InputError, match="not a PNG, JPEG, WebP or GIF image"):
        read_images([str(disguised)])


def test_an_image_over_10_mb_is_refused_before_it_is_read(tmp_path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(PNG + b"\0" * (MAX_IMAGE_BYTES - len(PNG) + 1))
    with pytest.raises(InputError, match="at most 10 MB"):
        read_images([str(big)])
    exactly = tmp_path / "exactly.png"
    exactly.write_bytes(PNG + b"\0" * (MAX_IMAGE_BYTES - len(PNG)))
    assert read_images([str(exactly)])[0].mime_type == "image/png"


def test_at_most_five_images_a_message(tmp_path) -> None:
    paths = []
    for n in range(MAX_IMAGES_PER_MESSAGE + 1):
        path = tmp_path / f"{n}.gif"
        path.write_bytes(GIF)
        paths.append(str(path))
    assert len(read_images(paths[:MAX_IMAGES_PER_MESSAGE])) == MAX_IMAGES_PER_MESSAGE
    with pytest.raises(InputError, match="at most 5 images; this one has 6"):
        read_images(paths)


def test_a_vanished_upload_is_a_sentence_not_a_traceback(tmp_path) -> None:
    with pytest.raises(InputError, match="attach it again"):
        read_images([str(tmp_path / "gone.png")])


def _ref(n: int, data: bytes = PNG) -> ImageRef:
    return ImageRef(f"{n:032x}", "image/png", len(data), data)


def test_a_prompt_carries_the_newest_five_images_and_names_the_older_ones() -> None:
    history = []
    for turn in range(4):
        history += [
            Message("user", f"look {turn}", images=(_ref(2 * turn), _ref(2 * turn + 1))),
            Message("assistant", "ok"),
        ]
    prompt = build_prompt(history, "and this?", images=(_ref(99),))
    sent = [i.id for m in prompt for i in m.images]
    assert len(sent) == PROMPT_IMAGES
    assert sent == [f"{n:032x}" for n in (4, 5, 6, 7, 99)]
    assert prompt[0].content.startswith("[2 earlier images not shown again]")
    assert prompt[2].content.startswith("[2 earlier images not shown again]")
    assert prompt[4].content == "look 2"


def test_an_image_only_message_is_a_user_turn() -> None:
    prompt = build_prompt([], "", images=(_ref(1),))
    assert prompt == [Message("user", "", images=(_ref(1),))]


def test_self_hosted_gets_base64_data_urls_never_a_url_to_fetch() -> None:
    message = wire_message(Message("user", "what is it?", images=(_ref(1), ImageRef("a" * 32, "image/gif", 1, GIF))))
    wire = json.loads(b"".join(JsonBody(message)))  # the bytes sent: images are encoded while the body is written
    assert wire == {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is it?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}},
            {"type": "image_url", "image_url": {"url": "data:image/gif;base64," + base64.b64encode(GIF).decode()}},
        ],
    }
    assert wire_message(Message("user", "plain")) == {"role": "user", "content": "plain"}


def test_gemini_gets_inline_image_parts() -> None:
    parts = message_parts(Message("user", "what is it?", images=(_ref(1),)))
    assert parts[0].text == "what is it?"
    assert parts[1].inline_data.data == PNG
    assert parts[1].inline_data.mime_type == "image/png"
    assert [p.text for p in message_parts(Message("user", "", images=(_ref(1),)))] == [None]


def test_stored_references_are_checked_before_use() -> None:
    assert ImageRef.from_dict({"id": "a" * 32, "mime_type": "image/png", "size": 3}) == ImageRef(
        "a" * 32, "image/png", 3
    )
    for bad in (None, "x", {"id": 1, "mime_type": "image/png", "size": 3}, {"id": "a", "mime_type": "image/png"}):
        assert ImageRef.from_dict(bad) is None
