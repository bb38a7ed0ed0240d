"""A prompt with images, as each kind of server takes it or refuses it: the real llama.cpp server (SmolLM2 has
no vision), a vLLM-shaped server serving a text-only model, and one that sees them."""

from __future__ import annotations

import base64

import pytest

from chatapp.conversation import ImageRef, Message
from chatapp.models.base import GenerationParams
from chatapp.models.openai_compat import OpenAICompatModel
from harness.fakes.openai_server import image_parts
from tests.media.images import PNG
from tests.models.helpers import collect

GREEDY = GenerationParams(temperature=0.0, top_p=1.0, max_tokens=8)
PICTURE = [Message("user", "What is in this picture?", images=(ImageRef("a" * 32, "image/png", len(PNG), PNG),))]


@pytest.mark.integration
def test_llama_cpp_without_vision_gets_a_sentence_and_still_answers_text(llama_server):
    model = OpenAICompatModel("SmolLM2 (llama.cpp)", llama_server.base_url, llama_server.model)
    chunks, _, error = collect(model, PICTURE, GREEDY)
    assert chunks == []
    assert error is not None
    assert str(error).startswith("SmolLM2 (llama.cpp) could not take the images of this conversation")
    assert "Switch to a model that does" in str(error)
    # The server is fine afterwards: the text path works.
    chunks, _, error = collect(model, [Message("user", "Say hello.")], GREEDY)
    assert error is None and "".join(chunks).strip()


def test_a_text_only_vllm_model_gets_the_same_sentence(fake_openai):
    fake_openai.vision = False
    model = OpenAICompatModel("Text model", fake_openai.base_url, fake_openai.model)
    _, _, error = collect(model, PICTURE, GREEDY)
    assert str(error).startswith("Text model could not take the images")
    assert "is not a multimodal model" in str(error)


def test_the_image_travels_as_a_base64_data_url(fake_openai):
    model = OpenAICompatModel("Vision model", fake_openai.base_url, fake_openai.model)
    chunks, _, error = collect(model, PICTURE, GREEDY)
    assert error is None
    assert "".join(chunks).startswith("You said: What is in this picture? [images")  # cut by max_tokens
    (part,) = image_parts(fake_openai.chat_requests()[-1])
    assert part["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
