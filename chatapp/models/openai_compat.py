"""The self-hosted slot: any OpenAI-compatible server (vLLM in the cloud, llama.cpp or Ollama locally).

The server applies the model's chat template, so we only send role/content messages; building the prompt
text ourselves is what let users forge turns in the old app.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError

from chatapp import defaults
from chatapp.conversation import Message
from chatapp.json_body import DataUrl, JsonBody
from chatapp.models.base import GenerationParams, ModelError, ModelOptions, ModelUnavailable, ReplyStats, StreamCut
from chatapp.models.context_window import ContextTooLong, context_overflow
from chatapp.models.sse import sse_data

log = logging.getLogger(__name__)
JSON = {"Content-Type": "application/json"}

# finish_reason values of a reply that ended as the model meant it to (or at the max tokens limit).
_COMPLETE = {"stop", "length", "tool_calls", "function_call"}
_CUT_BECAUSE = {
    "abort": "the server aborted the request (restarting or scaling down?); try again",
    "content_filter": "its content filter stopped the reply",
}

# How `check` begins a reason that means "down or starting" (chatapp.models.waking reads it as asleep).
NOT_REACHABLE = "not reachable"
STILL_STARTING = "still starting"

# Statuses a load balancer or a loading server answers while the model is not serving yet.
_NOT_READY = {502, 503, 504}

# Model ids whose chat template takes `enable_thinking` (Gemma 4's, served by vLLM with `--reasoning-parser
# gemma4`): for these the page offers Thinking off/on; thinking then streams as `delta.reasoning`.
_THINKING_TEMPLATES = ("gemma-4",)


def self_hosted_options(model_id: str) -> ModelOptions:
    thinks = any(name in model_id.lower() for name in _THINKING_TEMPLATES)
    return ModelOptions(thinking_levels=("off", "on"), thinking="off") if thinks else ModelOptions()


def unknown_sentence(model_id: str) -> str:
    return f"retired or unknown model id {model_id}: set SELF_HOSTED_MODEL (gemmaModel)"


class OpenAICompatModel:
    def __init__(
        self,
        label: str,
        base_url: str,
        model_id: str,
        *,
        timeout_s: float = defaults.CHAT_REQUEST_TIMEOUT_S,
        connect_timeout_s: float = 5.0,
        retry_budget_s: float = 12.0,
        max_connections: int = defaults.CHAT_CONCURRENCY,
    ) -> None:
        """`timeout_s` is the longest silence tolerated (before the first byte or between chunks);
        `retry_budget_s` bounds the total time spent waiting out 429s before reporting them."""
        self.label = label
        self.base_url = base_url.rstrip("/")
        self.model_id = model_id
        self.options = self_hosted_options(model_id)
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.retry_budget_s = retry_budget_s
        # One pooled session for all users: a connection per concurrent stream, reused across turns.
        # pool_block=False: a burst beyond the pool opens extra connections instead of queueing behind streams.
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max_connections, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def __repr__(self) -> str:
        return f"OpenAICompatModel({self.label!r}, {self.base_url!r}, {self.model_id!r})"

    # -- ChatModel ---------------------------------------------------------------------------------------
    def stream(self, messages: Sequence[Message], params: GenerationParams, stats: ReplyStats) -> Iterator[str]:
        payload: dict[str, Any] = {
            "model": self.model_id,
            "messages": [wire_message(m) for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            # Sent even when unchanged: servers' own defaults differ (llama.cpp 0.8, vLLM the model's config).
            "temperature": self.options.temperature if params.temperature is None else params.temperature,
            "top_p": self.options.top_p if params.top_p is None else params.top_p,
            "max_tokens": params.max_tokens,
        }
        if self.options.level(params) == "on":
            payload["chat_template_kwargs"] = {"enable_thinking": True}
        # A text-only server refuses images in its own way (llama-cpp-python: HTTP 500 without a stream, an
        # empty 200 stream with one; vLLM: 400): with images in the prompt, any failure before the first token
        # (other than "not reachable") is explained as that, with the server's words kept.
        with_images = any(m.images for m in messages)
        try:
            response = self._open(payload)
        except ModelError as exc:
            if (explained := self._explained(exc, with_images)) is exc:
                raise
            raise explained from exc
        received = False
        try:
            try:
                for chunk in self._read(response, stats, params.max_tokens):
                    received = received or bool(chunk)
                    yield chunk
            except _EmptyStream:
                # llama.cpp's Python server answers a prompt over its window with a 200 and an empty stream (the
                # error is raised inside its stream); asking again without streaming gets the reason as a 400.
                # The first request is closed first: until then the server may still hold its model lock for it.
                response.close()  # (closed again below: harmless)
                explained = self._why_empty(payload, params.max_tokens)
                if explained is None:
                    raise
                raise explained from None
        except ModelError as exc:
            # A stream that ended abnormally may leave its connection in the pool although the server closed it
            # (llama-cpp-python does, after a failure inside a stream): the next turn would get "connection
            # reset". Idle connections are cheap to reopen; streams in flight are not in the pool.
            for adapter in self._session.adapters.values():
                adapter.poolmanager.clear()
            if received or (explained := self._explained(exc, with_images)) is exc:
                raise
            raise explained from exc
        finally:
            # Also runs on GeneratorExit (the user pressed stop): closing the socket is what tells the
            # server to stop generating; returning it to the pool half-read would keep the server busy.
            response.close()

    def check(self) -> str | None:
        try:
            response = self._session.get(f"{self.base_url}/models", timeout=(2.0, 2.0))
        except requests.RequestException as exc:
            return f"{NOT_REACHABLE} ({_describe(exc)})"
        with response:
            if response.status_code in _NOT_READY:
                return f"{STILL_STARTING} (HTTP {response.status_code})"
            if response.status_code != 200:
                return f"HTTP {response.status_code}: {_reason(response)}"
            served = served_models(response)
            if served is not None and self.model_id not in served:
                listed = ", ".join(served[:5]) or "nothing"
                return f"{unknown_sentence(self.model_id)} (the server serves {listed})"
            return None

    def _explained(self, exc: ModelError, with_images: bool) -> ModelError:
        """A failure before the first token, said as what it most likely was when images were sent (the model
        cannot read them); "not reachable" and a context overflow keep their own sentence."""
        if with_images and not isinstance(exc, ModelUnavailable | ContextTooLong):
            return ModelError(no_images_sentence(self.label, exc))
        return exc

    def _why_empty(self, payload: dict[str, Any], max_tokens: int) -> ModelError | None:
        """The context overflow an empty stream hid, if that is what it was (one short non-streamed request)."""
        probe = {key: value for key, value in payload.items() if key not in ("stream", "stream_options")}
        try:
            # A fresh connection: the server may have dropped the pooled one the empty stream came on.
            response = requests.post(
                f"{self.base_url}/chat/completions",
                data=JsonBody(probe | {"max_tokens": 1}),
                headers=JSON,
                timeout=(self.connect_timeout_s, self.timeout_s),
            )
        except requests.RequestException:
            return None
        with response:
            if response.status_code != 400:
                return None
            return context_overflow(self.label, _reason(response), max_tokens)

    # -- request -----------------------------------------------------------------------------------------
    def _open(self, payload: dict[str, Any]) -> requests.Response:
        """POST the request, waiting out 429s within the retry budget; return a 200 streaming response."""
        started = time.monotonic()
        deadline = started + self.retry_budget_s
        backoff = 1.0
        while True:
            response = self._post(payload)
            if response.status_code == 200:
                return response
            reason = _reason(response)
            response.close()
            if response.status_code != 429:
                if response.status_code == 400 and (
                    too_long := context_overflow(self.label, reason, payload["max_tokens"])
                ):
                    raise too_long
                raise self._http_error(response.status_code, reason)
            wait = _retry_after(response) or backoff
            if time.monotonic() + wait > deadline:
                waited = time.monotonic() - started
                tried = (
                    f"and still was after retrying for {waited:.0f} s" if waited >= 1 else "and asked to wait longer"
                )
                raise ModelError(f"{self.label} is busy (HTTP 429: {reason}) {tried}; try again in a minute.")
            log.info("%s answered 429; retrying in %.1f s", self.label, wait)
            time.sleep(wait)
            backoff = min(backoff * 2, 8.0)

    def _post(self, payload: dict[str, Any]) -> requests.Response:
        url = f"{self.base_url}/chat/completions"
        try:
            body = JsonBody(payload)
            return self._session.post(
                url, data=body, headers=JSON, stream=True, timeout=(self.connect_timeout_s, self.timeout_s)
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise ModelUnavailable(
                f"{self.label} did not accept a connection within {self.connect_timeout_s:g} s; it may be "
                "down or still starting. Switch to another model or try again in a few minutes."
            ) from exc
        except requests.exceptions.ReadTimeout as exc:
            raise ModelError(f"{self.label} did not start answering within {self.timeout_s:g} s.") from exc
        except requests.ConnectionError as exc:
            raise ModelUnavailable(
                f"{self.label} is not reachable ({_describe(exc)}); it is probably still starting. "
                "Switch to another model or try again in a few minutes."
            ) from exc
        except requests.RequestException as exc:
            raise ModelError(f"Could not send the request to {self.label}: {_describe(exc)}") from exc

    def _http_error(self, status: int, reason: str) -> ModelError:
        if status in _NOT_READY:
            return ModelUnavailable(
                f"{self.label} is still starting (HTTP {status}: {reason}); switch to another model or try "
                "again in a few minutes."
            )
        if status in (401, 403):
            return ModelError(f"{self.label} refused the request (HTTP {status}: {reason}); check its credentials.")
        if status == 404:  # vLLM: "The model `X` does not exist."
            return ModelError(f"{self.label}: {unknown_sentence(self.model_id)} (HTTP 404: {reason}).")
        if 400 <= status < 500:
            return ModelError(f"{self.label} rejected the request (HTTP {status}): {reason}")
        return ModelError(f"{self.label} failed with a server error (HTTP {status}): {reason}")

    # -- response ----------------------------------------------------------------------------------------
    def _read(self, response: requests.Response, stats: ReplyStats, max_tokens: int) -> Iterator[str]:
        received = False  # any text yet: decides between "cut" (keep it) and a plain failure
        events = 0  # data lines of any kind: none at all is an empty stream
        done = False
        deltas = 0
        try:
            # chunk_size=None: hand over bytes as they arrive instead of waiting to fill a buffer.
            for data in sse_data(response.iter_content(chunk_size=None)):
                events += 1
                if data.strip() == "[DONE]":
                    done = True
                    break
                event = _parse(data)
                if event is None:
                    # One bad line costs at most one token; cutting the reply would throw away a stream that
                    # is otherwise fine. If the stream really broke, the missing finish_reason reports it.
                    log.warning("%s sent a malformed stream line; skipped: %.200r", self.label, data)
                    continue
                if "error" in event:
                    message = _error_message(event) or "unknown error"
                    if not received and (too_long := context_overflow(self.label, message, max_tokens)):
                        raise too_long  # vLLM found the overflow after answering 200
                    cls = StreamCut if received else ModelError
                    raise cls(f"{self.label} failed while answering: {message}")
                if usage := event.get("usage"):
                    stats.tokens_in = usage.get("prompt_tokens", stats.tokens_in)
                    stats.tokens_out = usage.get("completion_tokens", stats.tokens_out)
                for choice in event.get("choices") or []:
                    if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                        continue
                    if reason := choice.get("finish_reason"):
                        stats.finish_reason = reason
                    delta = choice.get("delta") or {}
                    # vLLM's reasoning parsers stream thinking as `reasoning` (`reasoning_content` before
                    # vLLM PR #33402): thinking, never the answer.
                    thought = delta.get("reasoning") or delta.get("reasoning_content")
                    if isinstance(thought, str) and thought:
                        stats.thinking += thought
                        deltas += 1
                        yield ""
                    text = delta.get("content")
                    if isinstance(text, str) and text:
                        received = True
                        deltas += 1
                        yield text
        except requests.RequestException as exc:
            if _is_read_timeout(exc):
                raise StreamCut(f"{self.label} went silent for {self.timeout_s:g} s; the reply was cut off.") from exc
            raise StreamCut(f"The connection to {self.label} broke mid-reply ({_describe(exc)}).") from exc
        if stats.tokens_out is None and deltas:
            # Servers that ignore include_usage (llama.cpp) send one token per delta: a fair estimate.
            stats.tokens_out = deltas
        if not done and stats.finish_reason is None:
            ended = f"{self.label} stopped before finishing the reply (the stream ended early)."
            raise _EmptyStream(ended) if events == 0 else StreamCut(ended)
        if stats.finish_reason not in _COMPLETE and stats.finish_reason is not None:
            # vLLM ends a request its engine aborted (shutdown, scale-down) with finish_reason "abort" and a
            # normal [DONE]; OpenAI-style servers use "content_filter". Neither is a whole reply.
            because = _CUT_BECAUSE.get(stats.finish_reason, f"of finish reason {stats.finish_reason!r}")
            cls = StreamCut if received else ModelError
            raise cls(f"{self.label} stopped mid-reply because {because}.")


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


def no_images_sentence(label: str, exc: ModelError) -> str:
    """What a person reads when a model refused a prompt with images (a text-only model, or too many)."""
    return (
        f"{label} could not take the images of this conversation; it may not read images at all. "
        f"Switch to a model that does (Gemma 3, Gemini), or start a new conversation for text only. ({exc})"
    )


def served_models(response: requests.Response) -> list[str] | None:
    """The model ids of a `GET /v1/models` answer (`{"data": [{"id": …}]}`), or None when it is not that shape."""
    try:
        body = response.json()
    except ValueError:
        return None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return None
    return [str(card["id"]) for card in data if isinstance(card, dict) and "id" in card]


class _EmptyStream(StreamCut):
    """A 200 whose stream ended before any event: `stream` asks the server why."""


def _parse(data: str) -> dict[str, Any] | None:
    try:
        event = json.loads(data)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _error_message(body: Any) -> str | None:
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


def _reason(response: requests.Response) -> str:
    try:
        text = response.text
    except requests.RequestException:
        return response.reason or "no reason given"
    try:
        message = _error_message(json.loads(text))
    except ValueError:
        message = None
    message = message or text.strip() or response.reason or "no reason given"
    return message[:500]


def _retry_after(response: requests.Response) -> float | None:
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


def _is_read_timeout(exc: BaseException) -> bool:
    # requests re-raises a mid-body read timeout as a ConnectionError wrapping urllib3's ReadTimeoutError.
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return True
    return any(isinstance(arg, ReadTimeoutError) for arg in exc.args)


def _describe(exc: BaseException) -> str:
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
