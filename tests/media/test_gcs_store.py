"""The Cloud Storage media store through the real google-cloud-storage client, against a fake speaking the
JSON API wire format (harness.fakes.gcs_server). A real bucket is not reachable from tests: the stack's
bucket and its IAM binding are checked under Pulumi mocks instead."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatapp.media.base import MediaError, MediaNotFound, owner_key
from chatapp.media.gcs import GcsMediaStore
from harness.fakes.gcs_server import FakeGcsServer
from tests.media.images import GIF, PNG

CONV = "c" * 32


@pytest.fixture
def gcs(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGcsServer]:
    with FakeGcsServer(("media-bucket",)) as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        yield server


def test_put_get_and_delete_through_the_json_api(gcs: FakeGcsServer) -> None:
    media = GcsMediaStore("media-bucket")
    ref = media.put("user:ada", CONV, PNG, "image/png")
    name = f"{owner_key('user:ada')}/{CONV}/{ref.id}"
    assert gcs.objects[("media-bucket", name)] == ("image/png", PNG)
    assert media.get("user:ada", CONV, ref.id) == PNG
    media.delete("user:ada", CONV, [ref.id, "f" * 32])  # a missing one is fine
    assert gcs.objects == {}
    with pytest.raises(MediaNotFound):
        media.get("user:ada", CONV, ref.id)


def test_another_owner_reaches_nothing_and_a_conversation_delete_takes_its_prefix_only(gcs: FakeGcsServer) -> None:
    media = GcsMediaStore("media-bucket")
    mine = [media.put("user:ada", CONV, PNG, "image/png"), media.put("user:ada", CONV, GIF, "image/gif")]
    other = media.put("user:ada", "d" * 32, GIF, "image/gif")
    with pytest.raises(MediaNotFound):
        media.get("user:eve", CONV, mine[0].id)
    media.delete_conversation("user:eve", CONV)
    assert len(gcs.objects) == 3
    media.delete_conversation("user:ada", CONV)
    assert [name for _, name in gcs.objects] == [f"{owner_key('user:ada')}/{'d' * 32}/{other.id}"]


def test_a_failing_bucket_is_a_media_error_with_a_reason(gcs: FakeGcsServer) -> None:
    with pytest.raises(MediaError, match="could not store the image in bucket no-such-bucket"):
        GcsMediaStore("no-such-bucket").put("user:ada", CONV, PNG, "image/png")
