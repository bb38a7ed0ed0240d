"""Every server's words for a prompt over the window become one explanation; other 400s are left alone."""

from __future__ import annotations

import pytest

from chatapp.models.context_window import ContextTooLong, context_overflow


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (  # vLLM, text only
            "This model's maximum context length is 8192 tokens. However, your request has 9100 input tokens. "
            "Please reduce the length of the input messages.",
            "at most 8,192 tokens at once, and this request has 9,100",
        ),
        (  # vLLM with images
            "The decoder prompt (length 9000) is longer than the maximum model length of 8192. Make sure that "
            "`max_model_len` is no smaller than the number of text tokens plus multimodal tokens.",
            "at most 8,192 tokens at once, and this request has 9,000",
        ),
        (  # llama-cpp-python
            "This model's maximum context length is 4096 tokens. However, you requested 18936 tokens (18920 in "
            "the messages, 16 in the completion). Please reduce the length of the messages or completion.",
            "at most 4,096 tokens at once, and this request has 18,920",
        ),
        (  # llama.cpp's own server: no numbers
            "the request exceeds the available context size, try increasing it",
            "too long for M's context window",
        ),
    ],
)
def test_overflow_messages_name_the_limit_and_what_to_do(reason: str, expected: str):
    error = context_overflow("M", reason, 512)
    assert isinstance(error, ContextTooLong)
    assert expected in str(error) and "Shorten the message" in str(error)


def test_room_for_the_reply_is_a_different_advice():
    reason = (
        "'max_tokens' or 'max_completion_tokens' is too large: 2048. This model's maximum context length is "
        "4096 tokens and your request has 3000 input tokens (2048 > 4096 - 3000)."
    )
    error = context_overflow("M", reason, 2048)
    assert error is not None and 'Lower "Max tokens"' in str(error) and "already takes 3,000" in str(error)


@pytest.mark.parametrize("reason", ["top_p must be in (0, 1], got 0.0.", "messages: field required", ""])
def test_other_bad_requests_are_not_overflows(reason: str):
    assert context_overflow("M", reason, 512) is None
