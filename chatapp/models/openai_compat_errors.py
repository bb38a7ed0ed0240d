"""What a person reads when an OpenAI-compatible server fails: its error bodies and HTTP statuses, and requests'
nested exceptions, turned into short reasons and ModelError sentences; Retry-After for 429s."""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from urllib3.exceptions import ReadTimeoutError

from chatapp.models.base import ModelError, ModelUnavailable

# Statuses a load balancer or a loading server answers while the model is not serving yet.
NOT_READY = {502, 503, 504}


def unknown_sentence(model_id: str) -> str:
    return f"retired or unknown model id {model_id}: set SELF_HOSTED_MODEL (gemmaModel)"


def no_images_sentence(label: str, exc: ModelError) -> str:
    """What a person reads when a model refused a prompt with images (a text-only model, or too many)."""
    return (
        f"{label} could not take the images of this conversation; it may not read images at all. "
        f"Switch to a model that does (Gemma 3, Gemini), or start a new conversation for text only. ({exc})"
    )


def http_error(label: str, model_id: str, status: int, reason: str) -> ModelError:
    """A refused request (any status but 200, 429 and a context overflow), with the server's `reason`."""
    if status in NOT_READY:
        return ModelUnavailable(
            f"{label} is still starting (HTTP {status}: {reason}); switch to another model or try "
            "again in a few minutes."
        )
    if status in (401, 403):
        return ModelError(f"{label} refused the request (HTTP {status}: {reason}); check its credentials.")
    if status == 404:  # vLLM: "The model `X` does not exist."
        return ModelError(f"{label}: {unknown_sentence(model_id)} (HTTP 404: {reason}).")
    if 400 <= status < 500:
        return ModelError(f"{label} rejected the request (HTTP {status}): {reason}")
    return ModelError(f"{label} failed with a server error (HTTP {status}): {reason}")


def error_message(body: Any) -> str | None:
    """The reason in an OpenAI (`{"error": {"message"}}`), vLLM (`{"message"}`) or FastAPI (`{"detail"}`) body."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str) and error:
        return error
    if body.get("message"):
        return str(body["message"])
    detail = body.get("detail")
    if isinstance(detail, list):  # FastAPI validation errors
        return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail) if detail else None


def response_reason(response: requests.Response) -> str:
    """The server's reason for a refused request: its error body's message, else its text or status line."""
    try:
        text = response.text
    except requests.RequestException:
        return response.reason or "no reason given"
    try:
        message = error_message(json.loads(text))
    except ValueError:
        message = None
    message = message or text.strip() or response.reason or "no reason given"
    return message[:500]


def retry_after(response: requests.Response) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), if present and sane."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds)


def is_read_timeout(exc: BaseException) -> bool:
    # requests re-raises a mid-body read timeout as a ConnectionError wrapping urllib3's ReadTimeoutError.
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return True
    return any(isinstance(arg, ReadTimeoutError) for arg in exc.args)


def describe(exc: BaseException) -> str:
    """A short human reason from requests' nested exceptions instead of a urllib3 repr."""
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "host name not found"),
        ("nodename nor servname", "host name not found"),
        ("Temporary failure in name resolution", "host name not found"),
        ("timed out", "timed out"),
        ("Connection reset", "connection reset"),
        ("Response ended prematurely", "connection closed mid-response"),
        ("IncompleteRead", "connection closed mid-response"),
        ("RemoteDisconnected", "server closed the connection"),
    ):
        if needle in text:
            return reason
    return text[:200]
