"""Gemini through google-genai, on Vertex AI (Application Default Credentials) or with an API key: the model's
life cycle (its client, the status check's model lookup) and one reply's stream.

Where the rest lives: gemini_client (which endpoint and credentials, from the SDK's environment), gemini_request
(options, generation config, contents), gemini_errors (what each failure is called).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from google import genai
from google.genai import errors, types

from chatapp import defaults
from chatapp.conversation import Message
from chatapp.models import gemini_errors
from chatapp.models.base import GenerationParams, ModelError, ModelUnavailable, ReplyStats, StreamCut
from chatapp.models.gemini_client import HOW_TO_CONFIGURE, api_key, make_client, needs_project_lookup, vertex_mode
from chatapp.models.gemini_errors import EMPTY_BECAUSE, retired_sentence, retry_delay
from chatapp.models.gemini_request import gemini_options, request_config, request_contents

log = logging.getLogger(__name__)

# Finish reasons of a reply that ended normally; every other one (SAFETY, OTHER, …) cut it short. Gemini sends
# the finish reason on the last chunk only, so a stream that ends without one was cut too.
_COMPLETE = {"STOP", "MAX_TOKENS"}
# How long a model lookup (does GEMINI_MODEL exist?) is trusted; the status check runs every 10 s.
LOOKUP_TTL_S = 600.0
LOOKUP_RETRY_S = 30.0  # after a lookup that could not be made (network, quota)
LOOKUP_TIMEOUT_S = 5.0


class GeminiModel:
    def __init__(
        self,
        label: str,
        model_id: str,
        *,
        location: str = "global",
        timeout_s: float = defaults.CHAT_REQUEST_TIMEOUT_S,
        retry_budget_s: float = 12.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`location` is used in Vertex mode only (the API-key endpoint has none)."""
        self.label = label
        self.model_id = model_id
        self.location = location
        self.options = gemini_options(model_id)
        self.timeout_s = timeout_s
        self.retry_budget_s = retry_budget_s
        self._clock = clock
        # The last lookup of model_id: (when to look again, None = it exists, else why it cannot be used).
        self._lookup: tuple[float, str | None] | None = None
        self._retired = False
        # Created on first use and kept: the client owns the connection pool, and a Client that is
        # garbage-collected closes its transport under any stream still reading from it.
        self._client: genai.Client | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"GeminiModel({self.label!r}, {self.model_id!r})"

    @property
    def vertex(self) -> bool:
        """Whether requests go to Vertex AI (in `location`) rather than the Gemini API (API key)."""
        return vertex_mode()

    @property
    def configured(self) -> bool:
        """Whether credentials are set in the environment at all (no network call, unlike check())."""
        return vertex_mode() or api_key() is not None

    # -- ChatModel ---------------------------------------------------------------------------------------
    def check(self) -> str | None:
        problem = self._config_problem()
        if problem:
            return f"not configured: {problem}"
        return self.lookup()

    def lookup(self) -> str | None:
        """Ask Gemini whether `model_id` exists (the SDK's models.get: `GET /v1beta1/publishers/google/models/M`
        on Vertex, `GET /v1beta/models/M` with an API key). None when it does or when we cannot tell (a 403 may only
        mean the identity may call the model but not read its card); the answer is kept for LOOKUP_TTL_S."""
        now = self._clock()
        if self._lookup is not None and now < self._lookup[0]:
            return self._lookup[1]
        found: str | None = None
        again = LOOKUP_TTL_S
        try:
            config = types.GetModelConfig(http_options=types.HttpOptions(timeout=int(LOOKUP_TIMEOUT_S * 1000)))
            self._get_client().models.get(model=self.model_id, config=config)
        except errors.ClientError as exc:
            if exc.code == 404:
                # Vertex looks base models up without a location: this 404 is about the id alone.
                found = retired_sentence(self.model_id)
            elif exc.code in (401, 403):
                log.warning("%s: cannot look up %s (HTTP %s: %s)", self.label, self.model_id, exc.code, exc.message)
            else:
                found = f"model lookup refused (HTTP {exc.code} {exc.status or ''}: {exc.message})"
                again = LOOKUP_RETRY_S
        except ModelError as exc:
            found, again = str(exc), LOOKUP_RETRY_S
        except Exception as exc:  # server errors, network: say so, look again soon
            found, again = f"not reachable ({type(exc).__name__}: {str(exc)[:120]})", LOOKUP_RETRY_S
        self._retired = found is not None and found.startswith("retired")
        self._lookup = (now + again, found)
        return found

    def stream(self, messages: Sequence[Message], params: GenerationParams, stats: ReplyStats) -> Iterator[str]:
        if self._retired:  # the status check found the id gone: say so at once instead of a 404 per message
            raise ModelUnavailable(f"{self.label}: {retired_sentence(self.model_id)}.")
        client = self._get_client()
        system, contents = request_contents(messages)
        first, chunks = self._open(client, contents, request_config(self.options, params, system))
        try:
            yield from self._read(first, chunks, params, stats)
        finally:
            # On GeneratorExit (stop) this unwinds the SDK's generators down to the HTTP response, which
            # closes the connection so Gemini stops generating (and billing) for us. Explicitly: whoever
            # still holds the SDK stream would otherwise keep the request open until garbage collection.
            chunks.close()

    # -- client ------------------------------------------------------------------------------------------
    def _where(self) -> str | None:
        return self.location if self.vertex else None

    def _config_problem(self) -> str | None:
        """Why Gemini cannot be used with this environment, judged without any network call."""
        if vertex_mode():
            # Without a project the SDK asks Application Default Credentials for one; try that once.
            if needs_project_lookup() and self._client is None:
                try:
                    self._get_client()
                except ModelError as exc:
                    return str(exc)
            return None
        if not api_key():
            return f"no credentials; {HOW_TO_CONFIGURE}"
        return None

    def _get_client(self) -> genai.Client:
        with self._lock:
            if self._client is None:
                self._client = make_client(self.label, self.location, self.timeout_s)
            return self._client

    # -- request -----------------------------------------------------------------------------------------
    def _open(
        self, client: genai.Client, contents: list[types.Content], config: types.GenerateContentConfig
    ) -> tuple[types.GenerateContentResponse | None, Iterator[types.GenerateContentResponse]]:
        """Start the stream and pull its first chunk (the HTTP status arrives with it), retrying 429s.
        Returns that first chunk (None for an empty stream) and the SDK stream, which the caller closes."""
        started = time.monotonic()
        deadline = started + self.retry_budget_s
        backoff = 1.0
        while True:
            chunks = client.models.generate_content_stream(model=self.model_id, contents=contents, config=config)
            try:
                first = next(chunks, None)
            except errors.ClientError as exc:
                chunks.close()
                if exc.code != 429:
                    raise self._failure(exc, received=False) from exc
                wait = retry_delay(exc) or backoff
                if time.monotonic() + wait > deadline:
                    waited = time.monotonic() - started
                    tried = f"retried for {waited:.0f} s" if waited >= 1 else "asked to wait longer"
                    raise ModelError(
                        f"{self.label} quota is exhausted (429 {exc.status or ''}: {exc.message}); {tried}. "
                        "Try again in a minute or switch models."
                    ) from exc
                log.info("%s answered 429; retrying in %.1f s", self.label, wait)
                time.sleep(wait)
                backoff = min(backoff * 2, 8.0)
                continue
            except Exception as exc:
                chunks.close()
                raise self._failure(exc, received=False) from exc
            return first, chunks

    def _read(
        self,
        first: types.GenerateContentResponse | None,
        rest: Iterator[types.GenerateContentResponse],
        params: GenerationParams,
        stats: ReplyStats,
    ) -> Iterator[str]:
        received = False
        finish: str | None = None
        try:
            for chunk in itertools.chain([first] if first is not None else [], rest):
                feedback = chunk.prompt_feedback
                if feedback and feedback.block_reason:
                    reason = _name(feedback.block_reason)
                    # Vertex's message is a sentence of its own: its full stop would double ours.
                    message = (feedback.block_reason_message or "").rstrip(".")
                    detail = f": {message}" if message else ""
                    raise ModelError(f"{self.label} refused the prompt ({reason}){detail}. Rephrase and try again.")
                if usage := chunk.usage_metadata:
                    stats.tokens_in = usage.prompt_token_count or stats.tokens_in
                    # Thinking tokens are generated (and billed) output too, though never shown.
                    out = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
                    stats.tokens_out = out or stats.tokens_out
                for candidate in (chunk.candidates or [])[:1]:
                    if candidate.finish_reason:
                        finish = _name(candidate.finish_reason)
                    for part in (candidate.content.parts if candidate.content else None) or []:
                        if not part.text:
                            continue
                        if part.thought:  # a thought summary: thinking, never the answer
                            stats.thinking += part.text
                            yield ""
                        else:
                            received = True
                            yield part.text
        except ModelError:
            raise
        except Exception as exc:
            raise self._failure(exc, received) from exc
        stats.finish_reason = {"STOP": "stop", "MAX_TOKENS": "length"}.get(finish or "", (finish or "").lower() or None)
        if finish is None:
            raise StreamCut(f"{self.label} stopped before finishing the reply (the stream ended early).")
        if not received:
            raise ModelError(self._empty_reason(finish, params))
        if finish not in _COMPLETE:  # text came, then the model was stopped: keep it, say why
            because = EMPTY_BECAUSE.get(finish, f"of finish reason {finish}")
            raise StreamCut(f"{self.label} stopped mid-reply because {because}.")

    # -- errors (worded in gemini_errors) ------------------------------------------------------------------
    def _empty_reason(self, finish: str, params: GenerationParams) -> str:
        limit = request_config(self.options, params).max_output_tokens
        return gemini_errors.empty_reason(
            self.label, finish, limit, params.max_tokens, bool(self.options.thinking_levels)
        )

    def _failure(self, exc: BaseException, received: bool) -> ModelError:
        return gemini_errors.failure(
            exc, received, label=self.label, model_id=self.model_id, where=self._where(), timeout_s=self.timeout_s
        )


def _name(value: Any) -> str:
    return str(getattr(value, "name", value))
