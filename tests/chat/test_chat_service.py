"""ChatService with in-process models: the orchestration rules, independent of any server."""

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from chatapp.chat import Ask, ChatService, ChatSession
from chatapp.inputs import InputError
from chatapp.models.base import ModelUnavailable, StreamCut
from chatapp.models.gemini import GeminiModel

# These tests run code in worker threads: an assert or error there must fail the test, not just warn.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


class ScriptedModel:
    """A ChatModel that replays chunks, then optionally raises; records prompts and whether it was closed.

    It keeps a reference to every stream it hands out (`streams`), so garbage collection can never close one
    behind the caller's back: a stream that is closed was closed explicitly."""

    def __init__(self, label, chunks=("Hel", "lo", "!"), error=None, delay=0.0):
        self.label, self.chunks, self.error, self.delay = label, chunks, error, delay
        self.prompts, self.closed, self.streams = [], False, []

    def stream(self, messages, params, stats):
        self.prompts.append(list(messages))
        self.streams.append(self._generate(stats))
        return self.streams[-1]

    def _generate(self, stats):
        try:
            for chunk in self.chunks:
                time.sleep(self.delay)
                yield chunk
            if self.error:
                raise self.error
            stats.tokens_in, stats.tokens_out, stats.finish_reason = 7, len(self.chunks), "stop"
        finally:
            self.closed = True

    def check(self):
        return None


class ListSaver:
    def __init__(self, ok=True):
        self.turns, self.ok = [], ok

    def save(self, turn):
        self.turns.append(turn)
        return self.ok


def service(*models, saver=None, **kwargs):
    return ChatService({m.label: m for m in models}, saver or ListSaver(), context_chars=10_000, **kwargs)


def run(svc, session, text, label):
    return list(svc.reply(session, Ask(text, label)))


def test_a_turn_streams_saves_once_and_keeps_context_across_models():
    gemma, gemini = ScriptedModel("Gemma"), ScriptedModel("Gemini", chunks=("Sure",))
    saver = ListSaver()
    svc = service(gemma, gemini, saver=saver, update_interval_s=0)
    session = ChatSession(owner="browser:1")
    updates = run(svc, session, "hi", "Gemma")
    assert [u.text for u in updates] == ["Hel", "Hello", "Hello!", "Hello!"]
    assert updates[-1].done and updates[-1].saved and updates[-1].notice is None
    run(svc, session, "and you?", "Gemini")
    assert [m.content for m in gemini.prompts[0]] == ["hi", "Hello!", "and you?"]
    assert [(t.index, t.user, t.assistant, t.model) for t in saver.turns] == [
        (0, "hi", "Hello!", "Gemma"),
        (1, "and you?", "Sure", "Gemini"),
    ]


def test_updates_are_coalesced():
    model = ScriptedModel("M", chunks=["x"] * 200)
    updates = run(service(model, update_interval_s=10), ChatSession(owner="o"), "hi", "M")
    assert len(updates) == 2  # the first token at once, then the final text
    assert updates[-1].text == "x" * 200


def test_unreachable_model_says_so_and_saves_nothing():
    saver = ListSaver()
    down = ScriptedModel("Gemma", chunks=(), error=ModelUnavailable("Gemma is still starting."))
    session = ChatSession(owner="o")
    (final,) = run(service(down, saver=saver), session, "hi", "Gemma")
    assert final.text == "" and final.notice == "Gemma is still starting."
    assert saver.turns == [] and session.messages == []


def test_a_cut_stream_keeps_the_partial_reply_and_saves_it():
    saver = ListSaver()
    cut = ScriptedModel("M", chunks=("part",), error=StreamCut("The reply was cut off."))
    final = run(service(cut, saver=saver), ChatSession(owner="o"), "hi", "M")[-1]
    assert (final.text, final.notice) == ("part", "The reply was cut off.")
    assert saver.turns[0].assistant == "part"


def test_stopping_closes_the_model_stream_and_saves_what_was_shown():
    saver = ListSaver()
    model = ScriptedModel("M", chunks=["a"] * 100, delay=0.001)
    updates = service(model, saver=saver, update_interval_s=0).reply(ChatSession(owner="o"), Ask("hi", "M"))
    shown = [next(updates).text for _ in range(3)]
    updates.close()
    # The model's stream is still referenced (model.streams), so only an explicit close() can have ended it.
    assert model.closed and model.streams[0].gi_frame is None
    assert saver.turns[0].assistant == shown[-1] == "aaa"


def test_unsaved_turn_is_reported_to_the_user():
    final = run(service(ScriptedModel("M"), saver=ListSaver(ok=False)), ChatSession(owner="o"), "hi", "M")[-1]
    assert final.saved is False and "not saved yet" in final.notice


def test_unknown_model_is_an_input_error():
    with pytest.raises(InputError, match='Unknown model "GPT"'):
        run(service(ScriptedModel("M")), ChatSession(owner="o"), "hi", "GPT")


def test_a_crashing_provider_becomes_a_message():
    broken = ScriptedModel("M", chunks=(), error=KeyError("choices"))
    final = run(service(broken), ChatSession(owner="o"), "hi", "M")[-1]
    assert "failed unexpectedly (KeyError)" in final.notice


def test_one_log_line_per_turn_without_content_by_default(caplog):
    caplog.set_level(logging.INFO, logger="chatapp.turns")
    run(service(ScriptedModel("M")), ChatSession(owner="o", session_id="s1"), "secret words", "M")
    (record,) = [json.loads(r.message) for r in caplog.records if r.name == "chatapp.turns"]
    assert record["session"] == "s1" and record["model"] == "M" and record["saved"] is True
    assert record["tokens_in"] == 7 and record["tokens_out"] == 3 and record["latency_s"] >= 0
    assert "secret words" not in caplog.text


def test_retry_replaces_the_last_turn_at_the_same_index():
    saver = ListSaver()
    svc = service(ScriptedModel("M"), saver=saver)
    session = ChatSession(owner="o")
    run(svc, session, "q1", "M")
    run(svc, session, "q2", "M")
    assert session.drop_last_turn().content == "q2"
    run(svc, session, "q2", "M")
    assert [t.index for t in saver.turns] == [0, 1, 1]


def test_a_turn_the_store_refuses_for_good_is_reported_without_a_retry_promise():
    from chatapp.history.base import StoreError

    class RefusingSaver:
        def save(self, turn):
            raise StoreError("the user message is too large", transient=False)

    session = ChatSession(owner="o")
    final = run(service(ScriptedModel("M"), saver=RefusingSaver()), session, "hi", "M")[-1]
    assert final.saved is False
    assert "could not be saved: the user message is too large" in final.notice
    assert "retried" not in final.notice


def test_update_interval_stretches_with_streams_in_flight():
    svc = service(ScriptedModel("M"))
    assert svc._interval() == pytest.approx(0.04)
    svc._active = 32
    assert svc._interval() == pytest.approx(0.16)
    svc._active = 500
    assert svc._interval() == pytest.approx(0.5)


def test_concurrent_replies_of_one_conversation_are_saved_in_turn_order():
    """Two replies of one conversation finishing together (a double send, an API client submitting twice):
    the second turn is saved only after the first, so the store never sees turn 1 before turn 0 (its
    turn count would go backwards)."""
    first_save_started, second_saved = threading.Event(), threading.Event()

    class SlowFirstSaver(ListSaver):
        def __init__(self):
            super().__init__()
            self.completed = []

        def save(self, turn):
            if turn.index == 0:
                first_save_started.set()
                # A slow commit. Without the lock, turn 1 is saved meanwhile and ends this wait early.
                second_saved.wait(timeout=1.0)
            self.turns.append(turn)
            self.completed.append(turn.index)
            if turn.index == 1:
                second_saved.set()
            return True

    saver = SlowFirstSaver()
    svc = service(ScriptedModel("M"), saver=saver)
    session = ChatSession(owner="o")
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(run, svc, session, "one", "M")
        assert first_save_started.wait(30)
        run(svc, session, "two", "M")
        first.result()

    assert saver.completed == [0, 1]
    assert [(t.index, t.user) for t in saver.turns] == [(0, "one"), (1, "two")]
    assert [m.content for m in session.messages] == ["one", "Hello!", "two", "Hello!"]


# -- real model clients against the wire-faithful fakes ------------------------------------------------------
REPLY = "one two three four five six seven eight nine ten eleven twelve"


@pytest.mark.parametrize(
    ("mode", "kept", "why"),
    [
        ("no_finish", REPLY, "stopped before finishing the reply"),
        ("safety_after_text", "one two three four five six", "stopped mid-reply because its safety filters"),
    ],
)
def test_a_gemini_reply_cut_short_is_kept_saved_and_explained(fake_vertex, mode, kept, why):
    fake_vertex.mode, fake_vertex.reply = mode, REPLY
    saver = ListSaver()
    session = ChatSession(owner="o")

    final = run(service(GeminiModel("Gemini", "gemini-3.8-flash"), saver=saver), session, "hi", "Gemini")[-1]

    assert final.done and final.text == kept
    assert final.notice is not None and why in final.notice
    assert [(t.user, t.assistant) for t in saver.turns] == [("hi", kept)]
    assert [m.content for m in session.messages] == ["hi", kept]
