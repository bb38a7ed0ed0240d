"""What an attached image may be (`chatapp.images`), to the byte: every accepted signature, the size limit's
boundary, and the sentence the person reads when a file is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatapp.images import MAX_IMAGE_BYTES, check_image, read_images, sniff
from chatapp.inputs import InputError

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "data, mime",
    [
        (b"GIF87a", "image/gif"),  # the older GIF version too
        (b"GIF89a", "image/gif"),
        (b"RIFF\0\0\0\0WEBP", "image/webp"),  # exactly the 12 bytes that say so
        (b"RIFF\0\0\0\0WEB", None),
    ],
)
def test_each_signature_at_its_shortest(data: bytes, mime: str | None) -> None:
    assert sniff(data) == mime


def test_the_sentences_a_refused_image_gets() -> None:
    with pytest.raises(InputError) as refused:
        check_image(PNG + b"\0" * MAX_IMAGE_BYTES)
    assert str(refused.value) == "the image is 10.5 MB; an image may be at most 10 MB."
    with pytest.raises(InputError) as refused:
        check_image(b"")
    assert str(refused.value) == "the image is empty."


def test_a_file_is_named_in_its_refusal(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(PNG + b"\0" * MAX_IMAGE_BYTES)
    with pytest.raises(InputError) as refused:
        read_images([str(big)])
    assert str(refused.value) == "'big.png' is 10.5 MB; an image may be at most 10 MB."
    long = tmp_path / ("n" * 120 + ".txt")
    long.write_bytes(b"hello")
    with pytest.raises(InputError) as refused:
        read_images([str(long)])
    name = repr(long.name)[:80]
    assert str(refused.value) == f"{name} is not a PNG, JPEG, WebP or GIF image (judged by its content, not its name)."


def test_an_image_of_exactly_the_limit_is_read_whole(tmp_path: Path) -> None:
    exact = tmp_path / "exact.png"
    exact.write_bytes(PNG + b"\0" * (MAX_IMAGE_BYTES - len(PNG)))
    [image] = read_images([str(exact)])
    assert len(image.data) == MAX_IMAGE_BYTES and image.mime_type == "image/png"
