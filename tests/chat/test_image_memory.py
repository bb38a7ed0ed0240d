"""Memory of an image turn (issue 15 row 6): sending 5 images of 10 MB to the self-hosted model holds no copy of
the whole turn (base64 strings, JSON text, encoded body): at most a small piece beyond the images themselves.

The vLLM-shaped fake runs as its own process, so what tracemalloc counts here is the chat's side alone.
"""

from __future__ import annotations

import base64
import json
import os
import tracemalloc

from bench.processes import fake_model_server
from chatapp.conversation import ImageRef, Message
from chatapp.json_body import DataUrl, JsonBody
from chatapp.models.base import GenerationParams, ReplyStats
from chatapp.models.openai_compat import OpenAICompatModel

MB = 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_five_10_mb_images_are_sent_without_copies_of_the_turn():
    images = tuple(
        ImageRef(f"{n:032x}", "image/png", 10 * MB, PNG_SIGNATURE + os.urandom(10 * MB - 8)) for n in range(5)
    )
    prompt = [Message("user", "What is in these pictures?", images=images)]
    with fake_model_server(tokens_per_s=2000.0, reply_tokens=4) as url:
        model = OpenAICompatModel("Fake", url, "fake-model")
        tracemalloc.start()
        try:
            reply = "".join(model.stream(prompt, GenerationParams(max_tokens=8), ReplyStats()))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert reply.strip() == "tok1 tok2 tok3 tok4"  # the fake decoded all 5 images (it refuses bad base64)
    # Building the request as one text held ~4/3 of the images three times over (~200 MB here).
    assert peak < 4 * MB, f"sending the images allocated {peak / MB:.0f} MB beyond the images themselves"


def test_the_streamed_body_is_the_json_requests_would_have_sent():
    data = os.urandom(3 * 65_536 + 1)  # a piece boundary and a padded end
    payload = {"text": "héllo\u2028\x00", "url": DataUrl("image/gif", data), "n": [1.5, None, True]}
    body = JsonBody(payload)
    sent = b"".join(body)
    assert len(sent) == len(body)
    url = "data:image/gif;base64," + base64.b64encode(data).decode()
    assert json.loads(sent) == {"text": "héllo\u2028\x00", "url": url, "n": [1.5, None, True]}
