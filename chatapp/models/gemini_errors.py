"""What a person reads when Gemini fails: the SDK's and its transport's exceptions, and replies that ended with
no text or early, turned into ModelError sentences that say what to do."""

from __future__ import annotations

import logging
import re

from google.auth import exceptions as auth_errors
from google.genai import errors

from chatapp.models.base import ModelError, ModelUnavailable, StreamCut
from chatapp.models.gemini_client import HOW_TO_CONFIGURE
from chatapp.models.transport_errors import CONNECT_ERRORS, TIMEOUT_ERRORS, TRANSPORT_ERRORS

log = logging.getLogger(__name__)

# Why a reply can end with no text, in words for the chat.
EMPTY_BECAUSE = {
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


def retired_sentence(model_id: str, location: str | None = None) -> str:
    """What the model list and each message say about an id Gemini does not know. On Vertex a model that is not
    served in the location answers the same 404, so a regional location is named too."""
    sentence = f"retired or unknown model id {model_id}: set GEMINI_MODEL (geminiModel)"
    if location and location != "global":
        sentence += f", or it is not served in {location}: set GOOGLE_CLOUD_LOCATION (geminiLocation), e.g. global"
    return sentence


def empty_reason(label: str, finish: str, limit: int | None, max_tokens: int, thinks: bool) -> str:
    """Why a reply that finished with `finish` had no text; `limit` is the request's max_output_tokens, of which
    `max_tokens` were for the answer."""
    if finish == "MAX_TOKENS":
        room = (limit or 0) - max_tokens
        spent = f" ({limit} tokens: {max_tokens} for the answer, {room} for thinking)" if room else ""
        spent = spent or f" ({limit})"
        lower = " or choose a lower Thinking level" if thinks else ""
        return (
            f"{label} used up the max tokens limit{spent} before writing any text: it spent them "
            f"thinking. Raise Max tokens{lower} and try again."
        )
    if finish in EMPTY_BECAUSE:
        return f"{label} gave no reply because {EMPTY_BECAUSE[finish]} ({finish})."
    return f"{label} returned an empty reply (finish reason {finish})."


def client_error(exc: errors.ClientError, label: str, model_id: str, where: str | None) -> ModelError:
    """A 4xx other than 429; `where` is the Vertex location (None with an API key)."""
    code, reason = exc.code, f"{exc.status or ''}: {exc.message}".strip(": ")
    if code in (401, 403):
        return ModelUnavailable(f"{label} refused our credentials (HTTP {code} {reason}); {HOW_TO_CONFIGURE}.")
    if code == 404:
        return ModelUnavailable(f"{label}: {retired_sentence(model_id, where)} (HTTP 404 {reason}).")
    return ModelError(f"{label} rejected the request (HTTP {code} {reason}).")


def failure(
    exc: BaseException, received: bool, *, label: str, model_id: str, where: str | None, timeout_s: float
) -> ModelError:
    """Turn anything the SDK or its transport raised into a readable ModelError: a StreamCut once text was
    `received` (the text is kept), else a plain failure."""
    cut = StreamCut if received else ModelError
    if isinstance(exc, ModelError):
        return exc
    if isinstance(exc, errors.ClientError):
        refused = client_error(exc, label, model_id, where)
        return StreamCut(str(refused)) if received else refused
    if isinstance(exc, errors.APIError):
        return cut(f"{label} had a server error (HTTP {exc.code} {exc.status or ''}: {exc.message}).")
    if isinstance(exc, auth_errors.GoogleAuthError):
        return ModelUnavailable(f"{label} could not get credentials ({exc}); {HOW_TO_CONFIGURE}.")
    if isinstance(exc, TIMEOUT_ERRORS):
        if received:
            return StreamCut(f"{label} went silent for {timeout_s:g} s; the reply was cut off.")
        return ModelError(f"{label} did not answer within {timeout_s:g} s.")
    if isinstance(exc, CONNECT_ERRORS) and not received:
        return ModelUnavailable(f"{label} is not reachable ({exc}); check the network or try again.")
    if isinstance(exc, TRANSPORT_ERRORS):
        return cut(f"The connection to {label} broke mid-reply ({type(exc).__name__}: {exc}).")
    log.exception("unexpected error from %s", label)
    return cut(f"{label} failed unexpectedly ({type(exc).__name__}: {exc}).")


def retry_delay(exc: errors.APIError) -> float | None:
    """The server's RetryInfo delay ("12s") from a google.rpc error's details, when it sends one."""
    details = (exc.details or {}).get("error", {}).get("details", []) if isinstance(exc.details, dict) else []
    for detail in details:
        if isinstance(detail, dict) and (match := re.fullmatch(r"([\d.]+)s", str(detail.get("retryDelay", "")))):
            return float(match.group(1))
    return None
