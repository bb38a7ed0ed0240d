"""Images on Firestore: messages hold small references, never bytes, so a conversation with 20 images stays far
below Firestore's 1 MiB document limit, a turn is still one commit with no read, and resume gets them back."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from chatapp.media.local import LocalMediaStore
from harness.rpc_counter import READS, RpcCounter
from tests.history.conftest import make_turn
from tests.media.images import PNG

pytestmark = pytest.mark.integration

CONVERSATION = "c" * 32
# A phone photo: the largest image accepted is 10 MB; the reference does not grow with it.
PHOTO = PNG + b"\0" * (3 * 1024 * 1024)


def test_a_conversation_with_20_images_keeps_every_document_far_below_1_mib(firestore_store, tmp_path):
    media = LocalMediaStore(tmp_path / "media")
    refs = [media.put("alice", CONVERSATION, PHOTO, "image/png") for _ in range(20)]
    rpcs = RpcCounter(firestore_store.client)
    for index in range(4):  # five images per message, the most a message may carry
        turn = replace(make_turn(index, session_id=CONVERSATION), user_images=tuple(refs[5 * index : 5 * index + 5]))
        firestore_store.save_turn(turn)
    assert dict(rpcs.calls) == {"commit": 4}
    assert not set(rpcs.calls) & READS

    session = firestore_store.client.collection("chat_sessions").document(CONVERSATION)
    docs = [snap.to_dict() for snap in session.collection("messages").stream()]
    largest = max(len(json.dumps(doc, default=str).encode()) for doc in docs)
    assert largest < 2_000, f"a message document takes {largest} bytes"  # 1 MiB is 1,048,576

    loaded = firestore_store.load_messages(CONVERSATION, "alice")
    assert [i for m in loaded for i in m.images] == refs
    assert all(media.get("alice", CONVERSATION, r.id) == PHOTO for r in refs[:1])
