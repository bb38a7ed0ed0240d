"""Thinking is shown as thinking or not at all: through ChatService, a model's thoughts (Gemini's thought
summaries, vLLM's `reasoning` deltas, from the fakes in their real wire shape) reach `Update.thinking` and
nowhere else: not the reply text, not the stored turn, not the next prompt. Thinking tokens still count."""

from __future__ import annotations

import pytest

from chatapp.chat import Ask, ChatService, ChatSession
from chatapp.models.base import GenerationParams
from chatapp.models.gemini import GeminiModel
from chatapp.models.openai_compat import OpenAICompatModel

SECRET = "SECRET-THOUGHT"
THOUGHTS = f"{SECRET} the person said hi, so I will greet them back warmly"


class ListSaver:
    def __init__(self):
        self.turns = []

    def save(self, turn):
        self.turns.append(turn)
        return True


@pytest.fixture(params=["gemini", "self-hosted"])
def thinking_model(request, fake_vertex, fake_openai):
    if request.param == "gemini":
        fake_vertex.thoughts, fake_vertex.reply = THOUGHTS, "Hello Ada, nice to meet you."
        return GeminiModel("Thinker", "gemini-3.8-flash")
    fake_openai.reasoning, fake_openai.reply = THOUGHTS, "Hello Ada, nice to meet you."
    return OpenAICompatModel("Thinker", fake_openai.base_url, "google/gemma-4-12b-it", timeout_s=10)


def test_thinking_reaches_only_the_thinking_field(thinking_model):
    saver = ListSaver()
    service = ChatService({"Thinker": thinking_model}, saver, context_chars=10_000, update_interval_s=0)
    session = ChatSession(owner="browser:1")
    updates = list(service.reply(session, Ask("hi", "Thinker", GenerationParams(max_tokens=64))))
    final = updates[-1]
    assert final.done and final.notice is None
    assert final.text == "Hello Ada, nice to meet you."
    assert final.thinking == THOUGHTS
    assert all(SECRET not in u.text for u in updates), "thinking leaked into the reply"
    assert any(u.thinking and not u.done for u in updates), "thinking was not shown while it streamed"
    [turn] = saver.turns
    assert SECRET not in turn.assistant and SECRET not in turn.user
    assert all(SECRET not in m.content for m in session.messages), "thinking would reach the next prompt"
    # Thinking is generated output: it counts (the fakes count one token per word).
    assert turn.usage.tokens_out == len(THOUGHTS.split()) + len(final.text.split())


def test_a_thinking_level_the_model_does_not_offer_is_refused_by_name():
    from chatapp.inputs import InputError, clean_thinking

    levels = ("low", "medium", "high")
    assert clean_thinking("high", levels) == "high"
    assert clean_thinking(None, levels) is None and clean_thinking("", levels) is None  # the model's default
    with pytest.raises(InputError, match=r'^Thinking must be one of: low, medium, high; got "ultra"\.$'):
        clean_thinking("ultra", levels)
    with pytest.raises(InputError, match="this model has no thinking levels"):
        clean_thinking("on", ())
