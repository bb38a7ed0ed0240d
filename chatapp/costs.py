"""What a turn costs in tokens: the worst case reserved before a request, and the cost counted after it."""

from __future__ import annotations

from chatapp.conversation import Message
from chatapp.history.base import Usage
from chatapp.models.base import GENERIC_OPTIONS, GenerationParams, ModelOptions, ReplyStats


def estimate_tokens(chars: int) -> int:
    """~4 characters per token: the usual rule of thumb for English text with these tokenizers."""
    return max(1, -(-chars // 4))


# The most one image costs in a prompt, for reserving a request's worst case: Gemini 3's default (high) media
# resolution gives an image up to 1,120 tokens (Google's media-resolution page, checked 2026-12-06).
IMAGE_TOKENS = 1120


def worst_case(prompt: list[Message], params: GenerationParams, options: ModelOptions = GENERIC_OPTIONS) -> int:
    """The most a request is expected to cost: its prompt's estimate, its images, and a full-length reply with
    all the thinking its level may spend (thinking is billed as output)."""
    chars = sum(len(m.content) for m in prompt)
    return estimate_tokens(chars) + IMAGE_TOKENS * sum(len(m.images) for m in prompt) + options.max_output(params)


def cost(stats: ReplyStats, prompt: list[Message], reply: str) -> Usage:
    """What a reply cost: the provider's counts, or estimates where it gave none."""
    tokens_in = stats.tokens_in
    tokens_out = stats.tokens_out
    return Usage(
        tokens_in if tokens_in is not None else estimate_tokens(sum(len(m.content) for m in prompt)),
        # Thinking is generated output too (and billed as such), though it is never stored.
        tokens_out if tokens_out is not None else estimate_tokens(len(reply) + len(stats.thinking)),
        estimated=tokens_in is None or tokens_out is None,
    )
