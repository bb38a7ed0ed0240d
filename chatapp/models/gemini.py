"""Gemini through google-genai, on Vertex AI (Application Default Credentials) or with an API key.

Configuration is the SDK's own environment (GOOGLE_GENAI_USE_VERTEXAI, GOOGLE_CLOUD_PROJECT,
GOOGLE_CLOUD_LOCATION, GEMINI_API_KEY / GOOGLE_API_KEY, GOOGLE_VERTEX_BASE_URL / GOOGLE_GEMINI_BASE_URL).
One SDK quirk shapes `_make_client`: `genai.Client()` picks the base-URL override from the `vertexai`
*argument*, not from GOOGLE_GENAI_USE_VERTEXAI, so with only environment variables GOOGLE_VERTEX_BASE_URL
is ignored in Vertex mode (requests go to Google). We therefore resolve Vertex mode, project and location
from those same variables and pass them explicitly, which is otherwise exactly what the SDK would do.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from google import genai
from google.auth import exceptions as auth_errors
from google.genai import errors, types

from chatapp import defaults
from chatapp.conversation import Message
from chatapp.models.base import GenerationParams, ModelError, ModelOptions, ModelUnavailable, ReplyStats, StreamCut
from chatapp.models.transport_errors import CONNECT_ERRORS, TIMEOUT_ERRORS, TRANSPORT_ERRORS

log = logging.getLogger(__name__)

HOW_TO_CONFIGURE = (
    "set GEMINI_API_KEY (an API key from Google AI Studio), or GOOGLE_GENAI_USE_VERTEXAI=true with "
    "GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION and Application Default Credentials "
    "(`gcloud auth application-default login`, or Workload Identity on GKE)"
)

# Why a reply can end with no text, in words for the chat.
_EMPTY_BECAUSE = {
    "SAFETY": "its safety filters blocked the reply",
    "RECITATION": "the reply would have recited copyrighted material",
    "BLOCKLIST": "the reply contained blocked terms",
    "PROHIBITED_CONTENT": "the reply was judged prohibited content",
    "SPII": "the reply would have contained sensitive personal information",
    "IMAGE_SAFETY": "its safety filters blocked the reply",
    "LANGUAGE": "the reply's language is not supported",
    "MALFORMED_FUNCTION_CALL": "it produced a malformed function call",
    "MODEL_ARMOR": "Model Armor blocked the reply",
}
# Finish reasons of a reply that ended normally; every other one (SAFETY, OTHER, …) cut it short. Gemini sends
# the finish reason on the last chunk only, so a stream that ends without one was cut too.
_COMPLETE = {"STOP", "MAX_TOKENS"}

# Thinking levels per Gemini 3.x family, and the one the model uses when none is sent (checked 2026-12-06 on
# Google's model pages: 3.8 Flash LOW/MEDIUM/HIGH, default MEDIUM; 3.5 Flash adds MINIMAL). A 3.x id not listed
# gets LOW/HIGH, the levels every Gemini 3 model has taken. A level equal to the default is never sent.
_THINKING: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("gemini-3.8-flash", ("low", "medium", "high"), "medium"),
    ("gemini-3.5-flash", ("minimal", "low", "medium", "high"), "medium"),
)
_THINKING_3X = (("low", "high"), "high")
# max_output_tokens counts thinking and answer together, so a request asks for Max tokens (the answer) plus
# this much room for the level's thinking; unused room costs nothing.
THINKING_ROOM = {"minimal": 1024, "low": 4096, "medium": 8192, "high": 16384}
# How long a model lookup (does GEMINI_MODEL exist?) is trusted; the status check runs every 10 s.
LOOKUP_TTL_S = 600.0
LOOKUP_RETRY_S = 30.0  # after a lookup that could not be made (network, quota)
LOOKUP_TIMEOUT_S = 5.0


def gemini_options(model_id: str) -> ModelOptions:
    """Google's own defaults (temperature 1.0, top-p 0.95), so an untouched control sends nothing; Gemini 3.x
    adds its thinking levels. Google: "For Gemini 3+, we strongly recommend keeping temperature, top_p, top_k at
    their default values"."""
    match = re.match(r"gemini-(\d+)", model_id)
    if match is None or int(match.group(1)) < 3:
        return ModelOptions(temperature=1.0, top_p=0.95)
    versions = [(lv, d) for prefix, lv, d in _THINKING if model_id == prefix or model_id.startswith(f"{prefix}-0")]
    levels, default = versions[0] if versions else _THINKING_3X
    return ModelOptions(
        temperature=1.0,
        top_p=0.95,
        thinking_levels=levels,
        thinking=default,
        thinking_room=THINKING_ROOM,
        note="Gemini 3 works best at its default temperature and top-p: they are sent only if you change them.",
    )


def retired_sentence(model_id: str, location: str | None = None) -> str:
    """What the model list and each message say about an id Gemini does not know. On Vertex a model that is not
    served in the location answers the same 404, so a regional location is named too."""
    sentence = f"retired or unknown model id {model_id}: set GEMINI_MODEL (geminiModel)"
    if location and location != "global":
        sentence += f", or it is not served in {location}: set GOOGLE_CLOUD_LOCATION (geminiLocation), e.g. global"
    return sentence


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name)
    return None if value is None else value.strip().lower() in ("true", "1")


def _vertex_mode() -> bool:
    # The SDK lets GOOGLE_GENAI_USE_ENTERPRISE win over GOOGLE_GENAI_USE_VERTEXAI; mirror that.
    enterprise = _env_flag("GOOGLE_GENAI_USE_ENTERPRISE")
    return bool(enterprise if enterprise is not None else _env_flag("GOOGLE_GENAI_USE_VERTEXAI"))


def _api_key() -> str | None:
    return (os.environ.get("GOOGLE_API_KEY") or os.environ.get("GEMINI_API_KEY") or "").strip() or None


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
        return _vertex_mode()

    @property
    def configured(self) -> bool:
        """Whether credentials are set in the environment at all (no network call, unlike check())."""
        return _vertex_mode() or _api_key() is not None

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
        system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content.strip())
        contents = [
            types.Content(role="model" if m.role == "assistant" else "user", parts=_parts(m))
            for m in messages
            if m.role != "system"
        ]
        config = self.config(params, system or None)
        first, chunks = self._open(client, contents, config)
        try:
            yield from self._read(first, chunks, params, stats)
        finally:
            # On GeneratorExit (stop) this unwinds the SDK's generators down to the HTTP response, which
            # closes the connection so Gemini stops generating (and billing) for us. Explicitly: whoever
            # still holds the SDK stream would otherwise keep the request open until garbage collection.
            chunks.close()

    def config(self, params: GenerationParams, system: str | None = None) -> types.GenerateContentConfig:
        """The request's settings: temperature and top-p only when changed from the model's defaults; for a
        thinking model a thinking level (never with thinking_budget, which Gemini 3 refuses with a 400 when both
        are set), thought summaries, and max_output_tokens with room for the thinking on top of Max tokens."""
        options = self.options
        temperature = params.temperature if params.temperature != options.temperature else None
        top_p = params.top_p if params.top_p != options.top_p else None
        thinking = None
        max_output = params.max_tokens
        if options.thinking_levels:
            level = options.level(params)
            thinking = types.ThinkingConfig(
                include_thoughts=True, thinking_level=types.ThinkingLevel(level.upper()) if level else None
            )
            max_output = options.max_output(params)
        return types.GenerateContentConfig(
            system_instruction=system,
            temperature=temperature,
            top_p=top_p,
            max_output_tokens=max_output,
            thinking_config=thinking,
        )

    # -- client ------------------------------------------------------------------------------------------
    def _where(self) -> str | None:
        return self.location if self.vertex else None

    def _config_problem(self) -> str | None:
        """Why Gemini cannot be used with this environment, judged without any network call."""
        if _vertex_mode():
            # Without a project the SDK asks Application Default Credentials for one; try that once.
            if not (os.environ.get("GOOGLE_CLOUD_PROJECT") or _api_key()) and self._client is None:
                return self._try_client()
            return None
        if not _api_key():
            return f"no credentials; {HOW_TO_CONFIGURE}"
        return None

    def _try_client(self) -> str | None:
        try:
            self._get_client()
        except ModelError as exc:
            return str(exc)
        return None

    def _get_client(self) -> genai.Client:
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> genai.Client:
        http_options = types.HttpOptions(timeout=int(self.timeout_s * 1000))
        try:
            if _vertex_mode():
                return genai.Client(
                    vertexai=True,
                    project=os.environ.get("GOOGLE_CLOUD_PROJECT") or None,
                    location=self.location,
                    http_options=http_options,
                )
            if not _api_key():
                raise ModelUnavailable(f"{self.label} is not configured: {HOW_TO_CONFIGURE}.")
            return genai.Client(http_options=http_options)
        except (ValueError, auth_errors.GoogleAuthError) as exc:
            raise ModelUnavailable(f"{self.label} is not configured ({exc}); {HOW_TO_CONFIGURE}.") from exc

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
                    raise self._client_error(exc) from exc
                wait = _retry_delay(exc) or backoff
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
                    detail = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
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
            raise ModelError(self._empty_reason(finish, params, stats))
        if finish not in _COMPLETE:  # text came, then the model was stopped: keep it, say why
            because = _EMPTY_BECAUSE.get(finish, f"of finish reason {finish}")
            raise StreamCut(f"{self.label} stopped mid-reply because {because}.")

    # -- errors ------------------------------------------------------------------------------------------
    def _empty_reason(self, finish: str, params: GenerationParams, stats: ReplyStats) -> str:
        if finish == "MAX_TOKENS":
            limit = self.config(params).max_output_tokens
            room = (limit or 0) - params.max_tokens
            spent = f" ({limit} tokens: {params.max_tokens} for the answer, {room} for thinking)" if room else ""
            spent = spent or f" ({limit})"
            lower = " or choose a lower Thinking level" if self.options.thinking_levels else ""
            return (
                f"{self.label} used up the max tokens limit{spent} before writing any text: it spent them "
                f"thinking. Raise Max tokens{lower} and try again."
            )
        if finish in _EMPTY_BECAUSE:
            return f"{self.label} gave no reply because {_EMPTY_BECAUSE[finish]} ({finish})."
        return f"{self.label} returned an empty reply (finish reason {finish})."

    def _client_error(self, exc: errors.ClientError) -> ModelError:
        code, reason = exc.code, f"{exc.status or ''}: {exc.message}".strip(": ")
        if code in (401, 403):
            return ModelUnavailable(f"{self.label} refused our credentials (HTTP {code} {reason}); {HOW_TO_CONFIGURE}.")
        if code == 404:
            sentence = retired_sentence(self.model_id, self._where())
            return ModelUnavailable(f"{self.label}: {sentence} (HTTP 404 {reason}).")
        return ModelError(f"{self.label} rejected the request (HTTP {code} {reason}).")

    def _failure(self, exc: BaseException, received: bool) -> ModelError:
        """Turn anything the SDK or its transport raised into a readable ModelError."""
        cut = StreamCut if received else ModelError
        if isinstance(exc, ModelError):
            return exc
        if isinstance(exc, errors.ClientError):
            return StreamCut(str(self._client_error(exc))) if received else self._client_error(exc)
        if isinstance(exc, errors.APIError):
            return cut(f"{self.label} had a server error (HTTP {exc.code} {exc.status or ''}: {exc.message}).")
        if isinstance(exc, auth_errors.GoogleAuthError):
            return ModelUnavailable(f"{self.label} could not get credentials ({exc}); {HOW_TO_CONFIGURE}.")
        if isinstance(exc, TIMEOUT_ERRORS):
            if received:
                return StreamCut(f"{self.label} went silent for {self.timeout_s:g} s; the reply was cut off.")
            return ModelError(f"{self.label} did not answer within {self.timeout_s:g} s.")
        if isinstance(exc, CONNECT_ERRORS) and not received:
            return ModelUnavailable(f"{self.label} is not reachable ({exc}); check the network or try again.")
        if isinstance(exc, TRANSPORT_ERRORS):
            return cut(f"The connection to {self.label} broke mid-reply ({type(exc).__name__}: {exc}).")
        log.exception("unexpected error from %s", self.label)
        return cut(f"{self.label} failed unexpectedly ({type(exc).__name__}: {exc}).")


def _parts(message: Message) -> list[types.Part]:
    """Text, then each image inline (its bytes in the request, as Vertex's `inlineData`)."""
    parts = [types.Part(text=message.content)] if message.content or not message.images else []
    for image in message.images:
        if image.data is None:
            raise ModelError("An image of this conversation could not be read; attach it again.")
        parts.append(types.Part.from_bytes(data=image.data, mime_type=image.mime_type))
    return parts


def _name(value: Any) -> str:
    return str(getattr(value, "name", value))


def _retry_delay(exc: errors.APIError) -> float | None:
    """The server's RetryInfo delay ("12s") from a google.rpc error's details, when it sends one."""
    details = (exc.details or {}).get("error", {}).get("details", []) if isinstance(exc.details, dict) else []
    for detail in details:
        if isinstance(detail, dict) and (match := re.fullmatch(r"([\d.]+)s", str(detail.get("retryDelay", "")))):
            return float(match.group(1))
    return None
