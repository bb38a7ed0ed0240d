"""What a person sees of a self-hosted (OpenAI-compatible) reply, each promise pinned by the observable result (the
reply text, the usage recorded, the sentence shown), against the fault-injecting vLLM-shaped server."""

from __future__ import annotations

from chatapp.models.openai_compat import OpenAICompatModel
from harness.fakes.openai_server import FakeOpenAIServer
from tests.models.helpers import ask, collect


def model_for(fake: FakeOpenAIServer, **kwargs) -> OpenAICompatModel:
    return OpenAICompatModel("Gemma Test", fake.base_url, fake.model, **kwargs)


def test_the_servers_completion_count_wins_over_the_deltas_counted(fake_openai):
    fake_openai.reply = "one two three four"
    fake_openai.completion_tokens = 9
    chunks, stats, error = collect(model_for(fake_openai), ask("count"))
    assert error is None and chunks == ["one", " two", " three", " four"]
    assert stats.tokens_out == 9
