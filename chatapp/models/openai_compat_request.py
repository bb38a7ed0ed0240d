"""What a request to an OpenAI-compatible server sends: the options a model id offers the page, and the chat
completion body (messages, sampling, thinking).

The server applies the model's chat template, so we only send role/content messages; building the prompt
text ourselves is what let users forge turns in the old app.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chatapp.conversation import Message
from chatapp.json_body import DataUrl
from chatapp.models.base import GenerationParams, ModelError, ModelOptions

# Model ids whose chat template takes `enable_thinking` (Gemma 4's, served by vLLM with `--reasoning-parser
# gemma4`): for these the page offers Thinking off/on; thinking then streams as `delta.reasoning`.
_THINKING_TEMPLATES = ("gemma-4",)


def self_hosted_options(model_id: str) -> ModelOptions:
    thinks = any(name in model_id.lower() for name in _THINKING_TEMPLATES)
    return ModelOptions(thinking_levels=("off", "on"), thinking="off") if thinks else ModelOptions()


def chat_payload(
    model_id: str, options: ModelOptions, messages: Sequence[Message], params: GenerationParams
) -> dict[str, Any]:
    """The streaming `POST /chat/completions` body."""
    payload: dict[str, Any] = {
        "model": model_id,
        "messages": [wire_message(m) for m in messages],
        "stream": True,
        "stream_options": {"include_usage": True},
        # Sent even when unchanged: servers' own defaults differ (llama.cpp 0.8, vLLM the model's config).
        "temperature": options.temperature if params.temperature is None else params.temperature,
        "top_p": options.top_p if params.top_p is None else params.top_p,
        "max_tokens": params.max_tokens,
    }
    if options.level(params) == "on":
        payload["chat_template_kwargs"] = {"enable_thinking": True}
    return payload


def wire_message(message: Message) -> dict[str, Any]:
    """One message as the OpenAI chat API takes it: plain text, or text and `image_url` parts whose URL is a
    base64 `data:` URL of the bytes. Never an http(s) URL: vLLM fetches those itself (a way into the cluster's
    network for whoever controls the URL)."""
    if not message.images:
        return {"role": message.role, "content": message.content}
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
    for image in message.images:
        if image.data is None:
            raise ModelError("An image of this conversation could not be read; attach it again.")
        # Encoded while the request is sent (JsonBody), never held whole: see chatapp.json_body.
        parts.append({"type": "image_url", "image_url": {"url": DataUrl(image.mime_type, image.data)}})
    return {"role": message.role, "content": parts}
