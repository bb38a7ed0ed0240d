"""Firestore cost per turn and resume time, against Google's emulator.

A turn goes through the real send path (ChatService → RetryingStore → FirestoreStore) with an in-process model,
and every RPC the Firestore client sends is counted (harness/rpc_counter.py wraps the transport).
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

from chatapp.chat import ChatService, ChatSession
from chatapp.history.base import Turn
from chatapp.history.firestore import MESSAGES, SESSIONS, FirestoreStore
from chatapp.history.pending import RetryingStore
from chatapp.models.base import GenerationParams
from harness.firestore_emulator import FirestoreEmulator, find_emulator_jar
from harness.rpc_counter import RpcCounter

PROJECT = "demo-bench"


class _EchoModel:
    label = "echo"

    def stream(self, messages, params, stats) -> Iterator[str]:
        yield f"echo: {messages[-1].content}"

    def check(self) -> None:
        return None


def measure(turns: int = 50, resume_messages: int = 1000) -> dict[str, float]:
    jar = find_emulator_jar()
    if jar is None:
        raise RuntimeError("the Firestore emulator is missing: install the gcloud component cloud-firestore-emulator")
    with FirestoreEmulator(jar) as emulator:
        os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host  # read by the Firestore client itself
        store = FirestoreStore(project=PROJECT, database=f"bench-{uuid.uuid4().hex[:8]}")
        counter = RpcCounter(store.client)
        service = ChatService({"echo": _EchoModel()}, RetryingStore(store), context_chars=24_000)
        session = ChatSession(owner="browser:bench")
        for i in range(turns):
            for _ in service.reply(session, f"question {i}", "echo", GenerationParams()):
                pass
        commits, reads = counter.calls["commit"], counter.reads
        counter.reset()
        store.load_messages(session.session_id, session.owner)
        load_reads = counter.reads

        # Resume: a conversation of `resume_messages` messages (~600 characters each).
        owner, session_id = "browser:resume", uuid.uuid4().hex
        text = "lorem ipsum dolor sit amet " * 22
        for index in range(resume_messages // 2):
            store.save_turn(Turn(session_id, owner, index, text, text, "echo", datetime.now(UTC)))
        store_times, raw_times = [], []
        for _ in range(5):
            started = time.perf_counter()
            loaded = store.load_messages(session_id, owner)
            store_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            messages = store.client.collection(SESSIONS).document(session_id).collection(MESSAGES)
            raw = list(messages.order_by("seq").stream())
            raw_times.append(time.perf_counter() - started)
        assert len(loaded) == len(raw) == resume_messages
        store.close()
    return {
        "commits_per_turn": commits / turns,
        "reads_per_turn": reads / turns,
        "reads_per_load": load_reads,
        "resume_s": statistics.median(store_times),
        "raw_query_s": statistics.median(raw_times),
        "messages": resume_messages,
    }
