"""`make mutations-listed`: plant known bugs one at a time in a scratch copy and check that a test catches each.

Every entry of MUTATIONS breaks one promise the README makes (a failed save is never silent, stop closes the
upstream request, the reply says why it ended, one commit per turn, conversations belong to their owner…)
with a one-line change. For each, the script copies the working tree to a scratch directory once, swaps
that line, runs the entry's tests there, and restores the line: "killed" means a test failed, "survived"
means the suite did not notice and a test is missing. The real tree is never modified.

    python -m bench.mutations            # all of them, then a table; exit status 1 if any survived
    python -m bench.mutations --list     # names only
    python -m bench.mutations NAME...    # a few

To add one: a Mutation with a new name, the file, its exact original line (indentation included; it must
occur once in the file, or give `occurrence`), the replacement (may span lines) and the tests to run (pytest
arguments: files, node ids, -k/-m expressions). First the unmutated tree must pass all selected tests
(under CI=true, so a missing component fails instead of skipping and nothing survives by being skipped).
Not part of `make test`: it runs the selected tests once per mutation (minutes).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.scratch import copy_tree

TIMEOUT_S = 600  # a mutation that hangs the tests this long counts as killed (pytest-timeout fires sooner)


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]
    occurrence: int | None = None  # 1-based, only when `original` occurs more than once

    def apply(self, text: str) -> str:
        """`text` with the line replaced; ValueError if the line is missing or ambiguous."""
        lines = text.split("\n")
        hits = [i for i, line in enumerate(lines) if line == self.original]
        if not hits:
            raise ValueError(f"{self.file} no longer has the line {self.original.strip()!r}; update the entry")
        if self.occurrence is None and len(hits) > 1:
            raise ValueError(f"{self.file} has {len(hits)} lines {self.original.strip()!r}; set occurrence")
        if len(hits) < (self.occurrence or 1):
            raise ValueError(f"{self.file} has only {len(hits)} lines {self.original.strip()!r}")
        lines[hits[(self.occurrence or 1) - 1]] = self.replacement
        return "\n".join(lines)


PENDING = "chatapp/history/pending.py"
SQLITE = "chatapp/history/sqlite.py"
FIRESTORE = "chatapp/history/firestore.py"
PENDING_TESTS = ("tests/history/test_pending.py", "-m", "not integration")
CONTRACT_SQLITE = ("tests/history/test_contract.py", "-k", "sqlite")
CONTRACT_FIRESTORE = ("tests/history/test_contract.py", "-k", "firestore")

MUTATIONS = [
    # -- the retry queue: a failed save is never silent, never lost, never someone else's business ----------
    Mutation(
        "retry-drops-the-oldest-turn-on-a-transient-failure",
        PENDING,
        "                if exc.transient:",
        "                if exc.transient and turn is own:",
        PENDING_TESTS,
    ),
    Mutation(
        "close-skips-its-final-flush",
        PENDING,
        "        saved = self.flush(timeout)",
        "        saved = False",
        PENDING_TESTS,
    ),
    Mutation(
        "close-does-not-name-the-turns-it-lost",
        PENDING,
        '            log.error("history: turn %s#%d was never saved (store down at shutdown)", turn.session_id, '
        "turn.index)",
        "            pass",
        PENDING_TESTS,
    ),
    Mutation(
        "delete-drops-another-owners-queued-turns",
        PENDING,
        "            self._queue = [t for t in self._queue if not (t.session_id == session_id and t.owner == owner)]",
        "            self._queue = [t for t in self._queue if t.session_id != session_id]",
        PENDING_TESTS,
    ),
    Mutation(
        "truncate-drops-another-owners-queued-turns",
        PENDING,
        "                    t for t in self._queue if not (t.session_id == session_id and t.owner == owner and "
        "t.index >= turns)",
        "                    t for t in self._queue if not (t.session_id == session_id and t.index >= turns)",
        PENDING_TESTS,
    ),
    Mutation(
        "load-shows-another-owners-queued-turns",
        PENDING,
        "            queued = [t for t in self._queue if t.session_id == session_id and t.owner == owner]",
        "            queued = [t for t in self._queue if t.session_id == session_id]",
        PENDING_TESTS,
    ),
    # -- the stores: a conversation belongs to its owner ---------------------------------------------------
    Mutation(
        "sqlite-load-skips-the-owner-check",
        SQLITE,
        "                self._check_owner(conn, session_id, owner)",
        "                pass",
        CONTRACT_SQLITE,
    ),
    Mutation(
        "sqlite-delete-skips-the-owner-check",
        SQLITE,
        "            self._check_owner(conn, session_id, owner)",
        "            pass",
        CONTRACT_SQLITE,
        occurrence=1,
    ),
    Mutation(
        "sqlite-truncate-skips-the-owner-check",
        SQLITE,
        "            self._check_owner(conn, session_id, owner)",
        "            pass",
        CONTRACT_SQLITE,
        occurrence=2,
    ),
    Mutation(
        "sqlite-rename-skips-the-owner-check",
        SQLITE,
        "            self._check_owner(conn, session_id, owner)",
        "            pass",
        ("tests/history/test_manage.py", "-k", "sqlite"),
        occurrence=3,
    ),
    Mutation(
        "sqlite-saves-into-another-owners-conversation",
        SQLITE,
        "            if row is not None and row[0] is not None and row[0] != turn.owner:",
        "            if False:",
        ("tests/history/test_sqlite.py",),
    ),
    Mutation(
        "firestore-owner-check-ignores-the-owner",
        FIRESTORE,
        '        if not snap.exists or not owner or (snap.to_dict() or {}).get("owner") != owner:',
        "        if not snap.exists:",
        CONTRACT_FIRESTORE,
    ),
    Mutation(
        "firestore-load-skips-the-owner-check",
        FIRESTORE,
        '        ref = self._owned(session_id, owner, "loading a conversation")',
        "        ref = self._sessions.document(session_id)",
        CONTRACT_FIRESTORE,
    ),
    Mutation(
        "firestore-delete-skips-the-owner-check",
        FIRESTORE,
        '        self._delete(self._owned(session_id, owner, "deleting a conversation"))',
        "        self._delete(self._sessions.document(session_id))",
        CONTRACT_FIRESTORE,
    ),
    Mutation(
        "firestore-truncate-skips-the-owner-check",
        FIRESTORE,
        '        ref = self._owned(session_id, owner, "undoing a turn")',
        "        ref = self._sessions.document(session_id)",
        CONTRACT_FIRESTORE,
    ),
    # -- Firestore: one commit per turn; a half-done delete can be finished --------------------------------
    Mutation(
        "firestore-turn-in-two-commits",
        FIRESTORE,
        "        batch.set(session, head, merge=True)",
        "        session.set(head, merge=True)",
        ("tests/history/test_firestore.py::test_one_turn_is_exactly_one_commit_and_zero_reads",),
    ),
    Mutation(
        "firestore-deletes-the-session-before-its-messages",
        FIRESTORE,
        "            while True:",
        "            ref.delete(**opts)\n            while True:",
        ("tests/history/test_firestore.py::test_a_delete_stopped_halfway_can_be_finished_by_deleting_again",),
    ),
    # -- chat: stop closes the upstream request; concurrent replies are saved in turn order ----------------
    Mutation(
        "chat-stop-leaves-the-model-stream-open",
        "chatapp/chat.py",
        "                    close()  # closes the upstream request when we stop early",
        "                    pass",
        ("tests/chat/test_chat_service.py",),
    ),
    Mutation(
        "chat-stop-waits-for-the-first-token",
        "chatapp/chat.py",
        "            if stop is not None:  # an empty chunk shows only when it says the thinking grew (below)",
        "            if False:",
        ("tests/chat/test_stop_before_text.py",),
    ),
    Mutation(
        "chat-abandoned-first-token-wait-leaves-the-stream-open",
        "chatapp/first_chunk.py",
        "            _close(self._chunks)",
        "            pass",
        ("tests/chat/test_first_chunk.py", "tests/chat/test_stop_before_text.py"),
    ),
    Mutation(
        "page-stop-before-the-first-token-keeps-the-message-held",
        "chatapp/ui_handlers.py",
        "                    if update.done and update.stopped and not update.text.strip():",
        "                    if False:",
        ("tests/chat/test_stop_before_text.py",),
    ),
    Mutation(
        "chat-saves-without-the-conversation-lock",
        "chatapp/chat.py",
        "        with session.save_lock:",
        "        if True:",
        ("tests/chat/test_chat_service.py",),
    ),
    # -- models: stop closes the upstream request; the reply says why it ended -----------------------------
    Mutation(
        "openai-stop-leaves-the-response-open",
        "chatapp/models/openai_compat.py",
        "            response.close()",
        "            pass",
        ("tests/models/test_openai_compat.py",),
        occurrence=1,
    ),
    Mutation(
        "openai-stream-ending-early-taken-as-complete",
        "chatapp/models/openai_compat_stream.py",
        "    if not done and stats.finish_reason is None:",
        "    if False:",
        ("tests/models/test_openai_compat.py",),
    ),
    Mutation(
        "openai-aborted-reply-taken-as-complete",
        "chatapp/models/openai_compat_stream.py",
        "    if stats.finish_reason not in _COMPLETE and stats.finish_reason is not None:",
        "    if False:",
        ("tests/models/test_openai_compat.py",),
    ),
    Mutation(
        "gemini-stop-leaves-the-sdk-stream-open",
        "chatapp/models/gemini.py",
        "            chunks.close()",
        "            pass",
        ("tests/models/test_gemini.py",),
    ),
    Mutation(
        "gemini-no-finish-reason-taken-as-complete",
        "chatapp/models/gemini.py",
        "        if finish is None:",
        "        if False:",
        ("tests/models/test_gemini.py", "tests/chat/test_chat_service.py"),
    ),
    Mutation(
        "gemini-safety-after-text-taken-as-complete",
        "chatapp/models/gemini.py",
        "        if finish not in _COMPLETE:  # text came, then the model was stopped: keep it, say why",
        "        if False:",
        ("tests/models/test_gemini.py", "tests/chat/test_chat_service.py"),
    ),
    # -- the prompt: trimmed by whole turns, within budget ---------------------------------------------------
    Mutation(
        "trim-one-message-at-a-time",
        "chatapp/conversation.py",
        "        older = older[2:] if len(older) >= 2 else []",
        "        older = older[1:]",
        ("tests/chat/test_conversation.py",),
    ),
    Mutation(
        "trim-drops-a-turn-that-fits-exactly",
        "chatapp/conversation.py",
        "    while older and fixed + _size(older) > budget_chars:",
        "    while older and fixed + _size(older) >= budget_chars:",
        ("tests/chat/test_conversation.py",),
    ),
    # -- inputs: every range enforced ------------------------------------------------------------------------
    Mutation(
        "max-tokens-above-the-range-accepted",
        "chatapp/inputs.py",
        '    tokens = _number(max_tokens, "Max tokens", *MAX_TOKENS_RANGE)',
        '    tokens = _number(max_tokens, "Max tokens", MAX_TOKENS_RANGE[0], 1e9)',
        ("tests/chat/test_inputs.py",),
    ),
    Mutation(
        "temperature-range-widened",
        "chatapp/models/base.py",
        "TEMPERATURE_RANGE = (0.0, 2.0)",
        "TEMPERATURE_RANGE = (0.0, 5.0)",
        ("tests/chat/test_inputs.py",),
    ),
    Mutation(
        "top-p-zero-accepted",
        "chatapp/models/base.py",
        "TOP_P_RANGE = (0.01, 1.0)  # vLLM rejects top_p = 0",
        "TOP_P_RANGE = (0.0, 1.0)",
        ("tests/chat/test_inputs.py",),
    ),
    Mutation(
        "message-one-character-over-the-limit-accepted",
        "chatapp/inputs.py",
        "    if len(value) > limit:",
        "    if len(value) > limit + 1:",
        ("tests/chat/test_inputs.py",),
    ),
    # -- who is calling: the request decides, sessions belong to their caller, conversations to their owner --
    Mutation(
        "conversation-service-ignores-the-owner",
        "chatapp/conversations.py",
        "        return isinstance(session, ChatSession) and session.owner == owner",
        "        return isinstance(session, ChatSession)",
        ("tests/chat/test_conversations.py",),
    ),
    Mutation(
        "replayed-session-hash-accepted",
        "chatapp/session_binding.py",
        "        if not await self.owners.bind(key, caller):",
        "        if False:",
        ("tests/security/test_front_door.py", "-k", "replayed or stolen"),
    ),
    Mutation(
        "login-attempts-unlimited",
        "chatapp/login_gate.py",
        "        if wait is not None:",
        "        if False:",
        ("tests/security/test_front_door.py", "-k", "brute_force"),
    ),
    Mutation(
        "iap-issuer-not-checked",
        "chatapp/iap.py",
        '        if claims.get("iss") != ISSUER:',
        "        if False:",
        ("tests/security/test_iap_verifier.py",),
    ),
    Mutation(
        "iap-prefix-audience-accepts-any-suffix",
        "chatapp/iap.py",
        "            return audience.startswith(self.audience) and rest.isdigit()",
        "            return audience.startswith(self.audience)",
        ("tests/security/test_iap_verifier.py",),
    ),
    Mutation(
        "model-html-left-active",
        "chatapp/safe_markdown.py",
        '            out += [line[done:start], "&lt;"]',
        '            out += [line[done:start], "<"]',
        ("tests/chat/test_safe_markdown.py",),
    ),
    # -- images: an upload and an image are their owner's alone, and go with their turn or conversation ------
    Mutation(
        "upload-file-route-serves-anyones-upload",
        "chatapp/web.py",
        "            if not (self.uploads and (file := self.uploads.path_of(caller, name))):",
        "            if not (self.uploads and (file := name)):",
        ("tests/app/test_images.py", "-k", "upload_path"),
    ),
    Mutation(
        "chat-accepts-anyones-upload-path",
        "chatapp/ui_events.py",
        "        if self._registry is None or not all(self._registry.owns(owner, p) for p in paths):",
        "        if self._registry is None:",
        ("tests/app/test_images.py", "-k", "upload_path"),
    ),
    Mutation(
        "media-names-ignore-the-owner",
        "chatapp/media/base.py",
        '    return f"{owner_key(owner)}/{conversation_id}/{image_id}"',
        '    return f"{conversation_id}/{image_id}"',
        ("tests/media/test_local_store.py", "tests/media/test_gcs_store.py"),
    ),
    Mutation(
        "upload-content-not-checked",
        "chatapp/upload_gate.py",
        "                if not await anyio.to_thread.run_sync(all_images, paths, fresh):",
        "                if False:",
        ("tests/security/test_front_door.py", "-k", "uploads_take_images_only"),
    ),
    Mutation(
        "undo-keeps-the-turns-images",
        "chatapp/conversations.py",
        "            self.forget_images(owner, session, last.images)  # the turn is gone from the store: so are its "
        "images",
        "            pass",
        ("tests/chat/test_conversation_images.py",),
    ),
    Mutation(
        "delete-keeps-the-conversations-images",
        "chatapp/conversations.py",
        "        self._delete_media(owner, conversation_id)",
        "        pass",
        ("tests/chat/test_conversation_images.py",),
    ),
    Mutation(
        "send-overtaking-new-chat-joins-the-old-conversation",
        "chatapp/ui_handlers.py",
        "        tab = tab.after_switch(switch, SWITCH_WAIT_S if tab is state else 0)",
        "        pass",
        ("tests/chat/test_switch_then_send.py", "-k", "overtakes"),
    ),
    # -- Auto, usage and the daily limit ---------------------------------------------------------------------
    Mutation(
        "auto-finishes-a-cut-reply-with-gemini",
        "chatapp/models/auto.py",
        "                        yield from attempt  # from here on, a failure is the primary's to report: no fallback",
        "                        try:\n"
        "                            yield from attempt\n"
        "                        except ModelError:\n"
        "                            yield from self.fallback.stream(messages, params, stats)",
        ("tests/models/test_auto.py", "-k", "no_fallback"),
    ),
    # -- Gradio's sessions: a /call request's goes with its event, a named one stays ------------------------
    Mutation(
        "call-sessions-kept-until-evicted",
        "chatapp/server.py",
        "    gradio_compat.forget_call_sessions()  # what a `/call` request leaves in Gradio goes once it is read",
        "    pass",
        ("tests/app/test_call_sessions.py",),
    ),
    Mutation(
        "named-sessions-dropped-with-their-events",
        "chatapp/gradio_compat.py",
        "            calls = [event._id for event in events if event.session_hash == event._id]"
        "  # sessions made for one call",
        "            calls = [event.session_hash for event in events]",
        ("tests/app/test_call_sessions.py",),
    ),
    Mutation(
        "read-calls-keep-their-queues",
        "chatapp/gradio_compat.py",
        "            _forget_read_calls(self, calls)",
        "            pass",
        ("tests/app/test_call_sessions.py", "-k", "during"),
    ),
    Mutation(
        "call-queues-dropped-before-their-answer-is-read",
        "chatapp/gradio_compat.py",
        "        if queue.pending_event_ids_session.get(session_hash)"
        " and session_hash in queue.pending_messages_per_session:",
        "        if False:",
        ("tests/app/test_call_sessions.py", "-k", "during"),
    ),
    # -- Gradio's monitoring summary: never built, one event record kept -------------------------------------
    Mutation(
        "events-summarized-for-a-dashboard-nobody-reads",
        "chatapp/server.py",
        "    gradio_compat.skip_monitoring_summary(demo)",
        "    pass",
        ("tests/app/test_monitoring_summary.py",),
    ),
    Mutation(
        "summary-still-built-after-every-event",
        "chatapp/gradio_compat.py",
        "    queue.compute_analytics_summary = lambda records: queue.cached_event_analytics_summary",
        "    pass",
        ("tests/app/test_monitoring_summary.py",),
    ),
    Mutation(
        "bare-floor-summarizes-its-events",
        "bench/bare_gradio.py",
        "    gradio_compat.skip_monitoring_summary(demo)",
        "    pass",
        ("tests/app/test_monitoring_summary.py", "-k", "bare"),
    ),
    Mutation(
        "every-event-record-kept",
        "chatapp/gradio_compat.py",
        "    queue.ANALYTICS_MAX_EVENTS = 1",
        "    pass",
        ("tests/app/test_monitoring_summary.py",),
    ),
    # -- the light streaming route (POST /api/chat): the same promises as /chat ---------------------------
    Mutation(
        "light-route-trusts-a-conversation-id",
        "chatapp/api_stream.py",
        "        return self._conversations.resume(owner, conversation_id), ask",
        "        return ChatSession(owner=owner, session_id=conversation_id), ask",
        ("tests/security/test_api_stream.py", "-k", "another_callers"),
    ),
    Mutation(
        "light-route-ignores-a-client-that-went-away",
        "chatapp/api_stream.py",
        "                tasks.start_soon(watch)",
        "                pass",
        ("tests/security/test_api_stream.py", "-k", "goes_away"),
    ),
    Mutation(
        "light-route-waits-for-the-first-token-of-a-client-gone",
        "chatapp/api_stream.py",
        "            updates = self._conversations.reply(owner, session, ask, stop=lambda: latest.stopped)",
        "            updates = self._conversations.reply(owner, session, ask)",
        ("tests/security/test_api_stream.py", "-k", "before_the_first_token"),
    ),
    Mutation(
        "auto-waits-out-a-busy-self-hosted-model",
        "chatapp/models/auto.py",
        "        retry_budget_s=0.0,",
        "        retry_budget_s=12.0,",
        ("tests/models/test_auto.py", "-k", "registry"),
    ),
    Mutation(
        "daily-limit-not-checked",
        "chatapp/chat.py",
        "            hold = self.usage.reserve(session.owner, worst) if self.usage is not None else None",
        "            hold = None",
        ("tests/chat/test_usage.py",),
    ),
    Mutation(
        "firestore-usage-counter-overwritten-instead-of-incremented",
        FIRESTORE,
        '                "tokens": firestore.Increment(turn.usage.total),',
        '                "tokens": turn.usage.total,',
        ("tests/history/test_usage.py::test_with_usage_a_turn_is_still_one_commit_and_zero_reads",),
    ),
    # -- a turn never overwrites another: one copy per conversation on a replica, a place per turn --------
    Mutation(
        "a-copy-per-tab",
        "chatapp/conversations.py",
        "            held = self._open.setdefault((session.owner, session.session_id), session)",
        "            held = session",
        ("tests/chat/test_one_copy_per_conversation.py",),
    ),
    Mutation(
        "sqlite-turn-overwrites-the-turn-at-its-place",
        SQLITE,
        "        if reply is None:",
        "        if True:",
        CONTRACT_SQLITE,
    ),
    Mutation(
        "firestore-turn-overwrites-the-turn-at-its-place",
        FIRESTORE,
        "                batch.create(message, doc)  # refused (AlreadyExists) if any turn is there: nothing is "
        "written",
        "                batch.set(message, doc)",
        CONTRACT_FIRESTORE,
    ),
    Mutation(
        "sqlite-turn-saved-again-is-stored-twice",
        SQLITE,
        "        if tuple(reply) == (turn.assistant, at):",
        "        if False:",
        CONTRACT_SQLITE,
    ),
    Mutation(
        "undo-from-a-copy-that-missed-turns-deletes-them",
        SQLITE,
        "            if shown is not None and (stored := _stored_turns(conn, session_id)) > shown:",
        "            if False:",
        CONTRACT_SQLITE,
    ),
    Mutation(
        "retry-replaces-a-turn-it-did-not-take-back",
        SQLITE,
        "            replaces = turn.replaces and turn.index == _stored_turns(conn, turn.session_id) - 1",
        "            replaces = turn.replaces",
        CONTRACT_SQLITE,
    ),
    Mutation(
        "a-refused-undo-drops-the-queued-turns",
        PENDING,
        "            try:  # first: a store that refuses (TurnsChanged, an outage) leaves the queued turns queued too",
        "            self._queue = [t for t in self._queue if not (t.session_id == session_id and t.owner == owner "
        "and t.index >= turns)]\n            try:",
        PENDING_TESTS,
    ),
    Mutation(
        "usage-walks-every-count-on-each-read",
        "chatapp/usage.py",
        "        if today == self._swept:",
        "        if False:",
        ("tests/chat/test_usage.py",),
    ),
]


def run_tests(scratch: Path, tests: tuple[str, ...]) -> tuple[int | None, str]:
    """pytest's exit status (None on timeout) and the tail of its output."""
    env = {
        **os.environ,
        "PYTHONPATH": str(scratch),
        "PYTHONDONTWRITEBYTECODE": "1",  # no stale bytecode of a mutated file
        "CI": "true",  # a missing component fails rather than skips
    }
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--timeout=180", *tests]
    try:
        done = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {TIMEOUT_S} s"
    return done.returncode, (done.stdout + done.stderr)[-3000:]


def first_failure(output: str) -> str:
    """The test pytest reported failing first (its short summary line), without the module path."""
    for line in output.splitlines():
        if match := re.match(r"(?:FAILED|ERROR) (\S+::.+?)(?: - |$)", line):
            test = match.group(1).rpartition("/")[2]
            return test if len(test) <= 100 else test.partition("[")[0] + "[…]"
    return "(timed out)" if "timed out" in output else ""


def main() -> int:
    parser = argparse.ArgumentParser(description="Plant known bugs one at a time and check a test catches each.")
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="print the mutation names and exit")
    args = parser.parse_args()
    if args.list:
        print("\n".join(m.name for m in MUTATIONS))
        return 0
    known = {m.name: m for m in MUTATIONS}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown mutation(s) {', '.join(unknown)}; see --list")
    chosen = [known[n] for n in args.names] or MUTATIONS

    with tempfile.TemporaryDirectory(prefix="hybrid-chat-mutations-") as tmp:
        scratch = Path(tmp)
        copy_tree(scratch)
        for mutation in chosen:  # a stale entry is reported before anything slow runs
            mutation.apply((scratch / mutation.file).read_text())
        for tests in dict.fromkeys(m.tests for m in chosen):  # each distinct selection once
            print(f"  baseline  {' '.join(tests)}", file=sys.stderr, flush=True)
            status, output = run_tests(scratch, tests)
            if status != 0:
                print(output, file=sys.stderr)
                print("the unmutated tree fails these tests: fix them first; no mutation was tried", file=sys.stderr)
                return 2

        rows = []
        for mutation in chosen:
            path = scratch / mutation.file
            original = path.read_text()
            path.write_text(mutation.apply(original))
            started = time.monotonic()
            try:
                status, output = run_tests(scratch, mutation.tests)
            finally:
                path.write_text(original)
            # 1 = a test failed; None = hung (counts as caught); 2-5 = pytest could not run the selection.
            verdict = "killed" if status in (1, None) else "survived" if status == 0 else f"error ({status})"
            seconds = time.monotonic() - started
            caught_by = first_failure(output) if verdict == "killed" else ""
            rows.append((mutation, verdict, caught_by, seconds))
            print(f"  {verdict:9} {mutation.name} ({seconds:.0f} s) {caught_by}", file=sys.stderr, flush=True)
            if verdict.startswith("error"):
                print(output, file=sys.stderr)

    print("\n| mutation | file | result | first test that caught it | seconds |\n|---|---|---|---|---|")
    for mutation, verdict, caught_by, seconds in rows:
        print(f"| {mutation.name} | {mutation.file} | {verdict} | {caught_by} | {seconds:.0f} |")
    killed = sum(verdict == "killed" for _, verdict, _, _ in rows)
    print(f"\n{killed} of {len(rows)} mutations killed.")
    return 0 if killed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
