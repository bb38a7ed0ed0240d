"""Firestore cost per turn and resume time, against Google's emulator.

A turn goes through the real send path (ChatService → RetryingStore → FirestoreStore) with an in-process model,
and every RPC the Firestore client sends is counted (harness/rpc_counter.py wraps the transport). Usage
accounting is on with a daily limit (CHAT_DAILY_TOKENS), as in production: the person's counter is read once
when the page loads (as the UI does), each turn's Increment rides in the turn's one commit, and the limit adds
the reservation every replica sees (chatapp.usage: one read + one conditional write) and its release (one write).
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

from chatapp.chat import Ask, ChatService, ChatSession
from chatapp.history.base import Turn
from chatapp.history.firestore import MESSAGES, SESSIONS, FirestoreStore
from chatapp.history.pending import RetryingStore
from chatapp.usage import DailyUsage
from harness.firestore_emulator import FirestoreEmulator, find_emulator_jar
from harness.rpc_counter import RpcCounter

PROJECT = "demo-bench"


class _EchoModel:
    label = "echo"

    def stream(self, messages, params, stats) -> Iterator[str]:
        stats.tokens_in, stats.tokens_out = 20, 5  # as a provider's usage report would
        yield f"echo: {messages[-1].content}"

    def check(self) -> None:
        return None


def measure(turns: int = 50, resume_messages: int = 1000) -> dict[str, float]:
    jar = find_emulator_jar()
    if jar is None:
        raise RuntimeError("the Firestore emulator is missing: install the gcloud component cloud-firestore-emulator")
    with FirestoreEmulator(jar) as emulator:
        os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host  # read by the Firestore client itself
        emulator.warm_up()  # cold JVM code: its first calls would measure the emulator, not the chat
        store = FirestoreStore(project=PROJECT, database=f"bench-{uuid.uuid4().hex[:8]}")
        counter = RpcCounter(store.client)
        history = RetryingStore(store)
        usage = DailyUsage(history.tokens_used, limit=10**9, shared=store)  # as the chat runs it
        service = ChatService({"echo": _EchoModel()}, history, context_chars=24_000, usage=usage)
        session = ChatSession(owner="browser:bench")
        usage.summary(session.owner)  # the page load shows usage today: the one read of the counter
        page_load_reads = counter.reads
        counter.reset()
        for i in range(turns):
            for _ in service.reply(session, Ask(f"question {i}", "echo")):
                pass
        commits, reads = counter.calls["commit"], counter.reads
        writes = sum(len(request["writes"]) for name, request in counter.requests if name == "commit")
        assert usage.used(session.owner) == turns * 25 == store.tokens_used(session.owner, datetime.now(UTC).date())
        counter.reset()
        # An API client's first message, with no page load before it: the counter is read on the send path once.
        for _ in service.reply(ChatSession(owner="browser:api"), Ask("question", "echo")):
            pass
        cold_reads = counter.reads
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
        "writes_per_commit": writes / max(commits, 1),
        "usage_reads_page_load": page_load_reads,
        "usage_reads_cold_api_turn": cold_reads,
        "reads_per_load": load_reads,
        "resume_s": statistics.median(store_times),
        "raw_query_s": statistics.median(raw_times),
        "messages": resume_messages,
    }
