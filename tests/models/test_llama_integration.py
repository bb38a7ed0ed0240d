"""OpenAICompatModel against the real llama.cpp server running SmolLM2-135M-Instruct.

Assertions stay loose on purpose: a 135M model at temperature 0 is deterministic but not clever, so the
tests check what the plumbing guarantees (streaming, context and system prompt reaching the model) through
answers even a tiny model gets right.
"""

from __future__ import annotations

import time

import pytest

from chatapp.conversation import Message
from chatapp.models.base import GenerationParams, ReplyStats
from chatapp.models.context_window import ContextTooLong
from chatapp.models.openai_compat import OpenAICompatModel
from tests.models.helpers import ask, collect

pytestmark = pytest.mark.integration

GREEDY = GenerationParams(temperature=0.0, top_p=1.0, max_tokens=48)


@pytest.fixture(scope="module")
def smollm(llama_server) -> OpenAICompatModel:
    return OpenAICompatModel("SmolLM2 135M (local llama.cpp)", llama_server.base_url, llama_server.model)


def test_check_reports_ready(smollm):
    assert smollm.check() is None


def test_reply_streams_in_several_chunks(smollm):
    chunks, stats, error = collect(smollm, ask("What is the capital of France?"), GREEDY)
    assert error is None
    assert len(chunks) >= 3, chunks
    assert "paris" in "".join(chunks).lower()
    assert stats.finish_reason in ("stop", "length") and stats.tokens_out


def test_earlier_turns_are_used(smollm):
    history = [
        Message("user", "My name is Alice."),
        Message("assistant", "Nice to meet you, Alice!"),
        Message("user", "What is my name?"),
    ]
    chunks, _, error = collect(smollm, history, GREEDY)
    assert error is None and "alice" in "".join(chunks).lower()
    # Without the earlier turns the model cannot know it.
    chunks, _, _ = collect(smollm, ask("What is my name?"), GREEDY)
    assert "alice" not in "".join(chunks).lower()


def test_system_prompt_is_applied(smollm):
    question = "Hello, who are you?"
    pirate_words = ("arr", "aye", "matey", "ahoy", "pirate", "captain", "sea")
    plain, _, _ = collect(smollm, ask(question), GREEDY)
    assert not any(w in "".join(plain).lower() for w in pirate_words), plain
    chunks, _, error = collect(
        smollm, [Message("system", "You are a pirate. Always say 'Arr'."), Message("user", question)], GREEDY
    )
    assert error is None and any(w in "".join(chunks).lower() for w in pirate_words), chunks


def test_stop_closes_the_request_and_the_server_serves_the_next_one(smollm):
    stream = smollm.stream(ask("Write a long story about a dragon."), GenerationParams(0.0, 1.0, 400), ReplyStats())
    next(stream)
    stream.close()
    started = time.monotonic()
    chunks, _, error = collect(smollm, ask("What is the capital of France?"), GREEDY)
    # Had the first request kept generating 400 tokens, this one would have queued behind it for seconds.
    assert error is None and "paris" in "".join(chunks).lower()
    assert time.monotonic() - started < 4


def test_a_prompt_over_the_window_names_the_limit(smollm, llama_server):
    """The real server's own overflow answer (n_ctx 4096): the person learns the limit and what to do."""
    too_long = " ".join(f"item{i}" for i in range(4000))  # ~12,000 tokens for SmolLM2's tokenizer
    chunks, _, error = collect(smollm, ask(too_long), GREEDY)
    assert chunks == [] and isinstance(error, ContextTooLong), error
    text = str(error)
    assert f"too long for {smollm.label}" in text and "at most 4,096 tokens" in text
    assert "Shorten the message" in text and "ended early" not in text
    # The server is fine afterwards: the next, short request is answered.
    chunks, _, error = collect(smollm, ask("What is the capital of France?"), GREEDY)
    assert error is None and chunks
