"""Token counts from each provider's own stream: vLLM's usage chunk, Gemini's usage metadata, llama.cpp's
lack of either (the chat then estimates; see chatapp.chat.cost)."""

from __future__ import annotations

import pytest

from chatapp.models.auto import AutoModel
from chatapp.models.gemini import GeminiModel
from chatapp.models.openai_compat import OpenAICompatModel
from tests.models.helpers import ask, collect


def test_vllm_usage_comes_from_the_final_chunk_without_choices(fake_openai):
    fake_openai.reply = "one two three"
    model = OpenAICompatModel("Fake vLLM", fake_openai.base_url, fake_openai.model)
    _, stats, error = collect(model, ask("count to three"))
    assert error is None
    # The fake counts words: 3 in the prompt + 4 for the template, 3 generated.
    assert (stats.tokens_in, stats.tokens_out) == (7, 3)
    assert fake_openai.chat_requests()[-1]["stream_options"] == {"include_usage": True}


def test_the_servers_usage_wins_over_counting_chunks(fake_openai):
    fake_openai.reply = "one two three"
    fake_openai.completion_tokens = 11  # its tokenizer split the reply finer than the 3 deltas it streamed
    model = OpenAICompatModel("Fake vLLM", fake_openai.base_url, fake_openai.model)
    chunks, stats, error = collect(model, ask("count to three"))
    assert error is None and len(chunks) == 3
    assert (stats.tokens_in, stats.tokens_out) == (7, 11)


def test_gemini_counts_thinking_as_output_and_takes_the_last_usage(fake_vertex):
    fake_vertex.reply = "one two three four five six seven"
    fake_vertex.thoughts_tokens = 25
    model = GeminiModel("Fake Gemini", "gemini-3.8-flash")
    chunks, stats, error = collect(model, ask("count"))
    assert error is None and len(chunks) == 3  # usage on every chunk, counts only on the last
    assert stats.tokens_out == 7 + 25
    assert stats.tokens_in and stats.tokens_in > 0


@pytest.mark.integration
def test_llama_cpp_sends_no_usage_and_auto_answers_with_it(llama_server, fake_vertex):
    local = OpenAICompatModel("SmolLM2", llama_server.base_url, llama_server.model, retry_budget_s=0.0)
    auto = AutoModel("Auto", local, GeminiModel("Fake Gemini", "gemini-3.8-flash"))
    chunks, stats, error = collect(auto, ask("What is the capital of France?"))
    assert error is None and "paris" in "".join(chunks).lower()
    assert stats.answered_by == "SmolLM2" and fake_vertex.generate_requests() == []
    # llama-cpp-python's server ignores stream_options.include_usage: no prompt count, and the reply's is
    # the number of deltas (one token each), counted by the client.
    assert stats.tokens_in is None and stats.tokens_out == len(chunks)
