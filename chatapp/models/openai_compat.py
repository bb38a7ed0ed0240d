"""The self-hosted slot: any OpenAI-compatible server (vLLM in the cloud, llama.cpp or Ollama locally): the
pooled connection, one reply's request (429s waited out, failures explained) and the status check.

Where the rest lives: openai_compat_request (options and the request body), openai_compat_stream (reading the
reply's events), openai_compat_errors (what each failure is called).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from chatapp import defaults
from chatapp.conversation import Message
from chatapp.json_body import JsonBody
from chatapp.models.base import GenerationParams, ModelError, ModelUnavailable, ReplyStats
from chatapp.models.context_window import ContextTooLong, context_overflow
from chatapp.models.openai_compat_errors import (
    NOT_READY,
    describe,
    http_error,
    no_images_sentence,
    response_reason,
    retry_after,
    unknown_sentence,
)
from chatapp.models.openai_compat_request import chat_payload, self_hosted_options
from chatapp.models.openai_compat_stream import EmptyStream, read_reply

log = logging.getLogger(__name__)
JSON = {"Content-Type": "application/json"}

# How `check` begins a reason that means "down or starting" (chatapp.models.waking reads it as asleep).
NOT_REACHABLE = "not reachable"
STILL_STARTING = "still starting"


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
        payload = chat_payload(self.model_id, self.options, messages, params)
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
                for chunk in read_reply(response, stats, params.max_tokens, self.label, self.timeout_s):
                    received = received or bool(chunk)
                    yield chunk
            except EmptyStream:
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
            return f"{NOT_REACHABLE} ({describe(exc)})"
        with response:
            if response.status_code in NOT_READY:
                return f"{STILL_STARTING} (HTTP {response.status_code})"
            if response.status_code != 200:
                return f"HTTP {response.status_code}: {response_reason(response)}"
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
            return context_overflow(self.label, response_reason(response), max_tokens)

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
            reason = response_reason(response)
            response.close()
            if response.status_code != 429:
                if response.status_code == 400 and (
                    too_long := context_overflow(self.label, reason, payload["max_tokens"])
                ):
                    raise too_long
                raise http_error(self.label, self.model_id, response.status_code, reason)
            wait = retry_after(response) or backoff
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
                f"{self.label} is not reachable ({describe(exc)}); it is probably still starting. "
                "Switch to another model or try again in a few minutes."
            ) from exc
        except requests.RequestException as exc:
            raise ModelError(f"Could not send the request to {self.label}: {describe(exc)}") from exc


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
