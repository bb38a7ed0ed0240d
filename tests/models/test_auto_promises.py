"""Auto's promises that its other tests leave open: the page shows the self-hosted model's controls for Auto, and
a failed attempt's thoughts never reach the fallback's reply."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from chatapp.conversation import Message
from chatapp.models.auto import AutoModel
from chatapp.models.base import GENERIC_OPTIONS, GenerationParams, ReplyStats, options_of
from chatapp.models.openai_compat import OpenAICompatModel
from tests.models.helpers import ask, collect
from tests.models.test_auto_scripted import DOWN, Scripted

GEMMA = "google/gemma-4-31b-it-qat-w4a16-ct"


def test_auto_offers_the_self_hosted_models_controls():
    gemma = OpenAICompatModel("Gemma", "http://127.0.0.1:9/v1", GEMMA)
    assert options_of(gemma) != GENERIC_OPTIONS, "a model with options of its own (else this shows nothing)"
    assert options_of(AutoModel("Auto", gemma, Scripted("Gemini"))) == options_of(gemma)


class ThinksThenFails:
    """A self-hosted model that streams some reasoning and then fails before any text."""

    label = "P"

    def stream(self, messages: Sequence[Message], params: GenerationParams, stats: ReplyStats) -> Iterator[str]:
        stats.thinking = "Let me think about the secret plan"
        raise DOWN
        yield ""  # a generator, as the real clients are

    def check(self) -> str | None:
        return None


def test_a_failed_attempts_thoughts_are_not_the_fallbacks():
    chunks, stats, error = collect(AutoModel("Auto", ThinksThenFails(), Scripted("F", ["Sure"])), ask("hi"))
    assert (chunks, error, stats.answered_by) == (["Sure"], None, "F")
    assert stats.thinking == "", "the failed attempt's reasoning was shown with the fallback's answer"
