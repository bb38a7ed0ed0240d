"""A local server with Vertex AI's (and the Gemini API's) REST shape for `streamGenerateContent?alt=sse`.

The real google-genai SDK is pointed at it (base URL override), so tests exercise the SDK's own request
building, SSE parsing and error classes, with no Google host involved:

    with FakeVertexServer() as fake:
        fake.mode = "safety"             # or fake.queue("rate_limit", "normal")
        fake.vertex_env(tmp_path)        # env vars for Vertex mode with offline fake credentials
        fake.api_key_env()               # env vars for API-key mode
        fake.requests[-1]["body"]         # what the SDK sent (contents, systemInstruction, generationConfig)

Paths served:
- `POST /v1beta1/projects/P/locations/L/publishers/google/models/M:streamGenerateContent?alt=sse` (Vertex)
- `POST /v1beta/models/M:streamGenerateContent?alt=sse` and `/v1/models/M:…` (API key)
- `GET /v1beta1/publishers/google/models/M` (Vertex's PublisherModel; the SDK sends no project or location for
  a base model) and `GET /v1beta/models/M` (the Gemini API's Model): the SDK's `models.get`. An id in
  `fake.retired` answers 404 NOT_FOUND there and on generation, in Google's error shape, as a retired model does.
- Thinking: with `fake.thoughts = "…"`, a request whose thinkingConfig has includeThoughts gets thought-summary
  parts (`{"text": …, "thought": true}`) before the answer, as Gemini 3 streams them; thinkingLevel together
  with thinkingBudget is refused with a 400, as Gemini 3 does.
- Quota: with `fake.retry_delay = "2s"` a 429 carries google.rpc RetryInfo (`retryDelay`) among its details, as the
  Gemini API sends it; `fake.lookup_error = {"error": {...}}` makes `models.get` answer that Google error body (e.g.
  403 PERMISSION_DENIED: an identity that may call the model but not read its card).
- `POST /token`: an OAuth token endpoint for the fake service-account credentials (Vertex mode needs a
  bearer token; the credentials file names this endpoint, so google-auth never calls oauth2.googleapis.com).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.fakes.sse_http import ClientGone, FakeServer, SSEHandler, wait_or_gone

MODES = (
    "normal",  # stream the reply, finishReason STOP on the last chunk
    "safety",  # a candidate with finishReason SAFETY and no text
    "prompt_blocked",  # promptFeedback.blockReason SAFETY, no candidates
    "max_tokens_thinking",  # finishReason MAX_TOKENS with no text: thinking used the whole budget
    "rate_limit",  # 429 RESOURCE_EXHAUSTED
    "error_500",  # 500 INTERNAL
    "permission_denied",  # 403 PERMISSION_DENIED: the identity may not call the model (aiplatform.endpoints.predict)
    "invalid_argument",  # 400 INVALID_ARGUMENT, Google's generic refusal of a request it cannot take
    "cut",  # half the reply, then the TCP connection drops mid-body
    # Candidate.finishReason is absent until generation stops, so a body that simply ends after text
    # without one is a reply the server never finished.
    "no_finish",  # the whole reply, but no chunk carries a finishReason; the body ends cleanly
    # When streaming, a candidate blocked by the content filters comes with finishReason SAFETY and an empty
    # content (no parts), after whatever text was already sent.
    "safety_after_text",  # half the reply, then finishReason SAFETY (or `.finish_after_text`), no content
    # Google's front end reports a failure found mid-stream as an error object in the stream (google-genai raises it
    # as an APIError with that code).
    "error_after_text",  # half the reply, then `data: {"error": …}` (`.error_after_text`, a 500 INTERNAL by default)
    "hang",  # never answers
)

FAKE_TOKEN = "fake-access-token"
_PATH = re.compile(
    r"^/(v1beta1|v1beta|v1)/(?:projects/([^/]+)/locations/([^/]+)/publishers/google/)?models/([^/:]+):(\w+)"
)
# The SDK's models.get asks Vertex for a base model without project or location (`publishers.models.get`).
_MODEL_PATH = re.compile(r"^/(v1beta1|v1beta|v1)/(publishers/google/)?models/([^/:?]+)(?:\?.*)?$")
# Retired on Vertex AI in October 2026 (Google's model-versions page, checked 2026-12-06).
RETIRED_2026 = frozenset({"gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite"})

Reply = str | Callable[[dict[str, Any]], str]


class FakeVertexServer(FakeServer):
    MODES = MODES

    def __init__(
        self, *, port: int = 0, mode: str = "normal", tokens_per_s: float = 200.0, reply: Reply | None = None
    ) -> None:
        """`reply`: None answers "You said: <last user text> (<n> messages in context)"; a str is sent as
        is; a callable gets the request body."""
        super().__init__(_handler_for(self), port=port, mode=mode)
        self.tokens_per_s = tokens_per_s
        self.reply = reply
        self.finish_after_text = "SAFETY"  # the finishReason "safety_after_text" sends (OTHER, RECITATION…)
        # Thinking tokens a "normal" reply reports on its last chunk (thoughtsTokenCount), as Gemini 2.5 does.
        self.thoughts_tokens = 0
        # A thought summary streamed before the answer when the request asks for thoughts (includeThoughts).
        self.thoughts: str | None = None
        # Model ids that answer 404 NOT_FOUND (lookups and generation); e.g. RETIRED_2026.
        self.retired: set[str] | frozenset[str] = frozenset()
        # The google.rpc RetryInfo delay a 429 names ("2s"); None: the 429 has no details, as Vertex's often has not.
        self.retry_delay: str | None = None
        # A Google error body (`_status_error(...)`) that `models.get` answers with, its code as the HTTP status.
        self.lookup_error: dict[str, Any] | None = None
        # promptFeedback.blockReasonMessage of "prompt_blocked": Vertex explains the block in words, the Gemini API
        # sends none (None).
        self.block_reason_message: str | None = None
        self.error_after_text = _status_error(500, "INTERNAL", "Internal error encountered.")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def generate_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if ":streamGenerateContent" in r["path"]]

    def vertex_env(self, directory: Path, project: str = "fake-project", location: str = "global") -> dict[str, str]:
        """Environment for the SDK's Vertex mode against this server, with offline credentials.

        Writes a service-account key file whose token_uri is this server, so google-auth's Application
        Default Credentials flow (signed JWT exchanged for a token) runs for real but never leaves 127.0.0.1.
        (An `authorized_user` file would not do: google-auth always sends those to oauth2.googleapis.com.)
        """
        creds = directory / "fake-adc.json"
        creds.write_text(json.dumps(fake_service_account(f"{self.base_url}/token", project)))
        return {
            "GOOGLE_GENAI_USE_VERTEXAI": "true",
            "GOOGLE_CLOUD_PROJECT": project,
            "GOOGLE_CLOUD_LOCATION": location,
            "GOOGLE_VERTEX_BASE_URL": self.base_url,
            "GOOGLE_APPLICATION_CREDENTIALS": str(creds),
        }

    def api_key_env(self, key: str = "fake-api-key") -> dict[str, str]:
        """Environment for the SDK's Gemini API (API key) mode against this server."""
        return {"GEMINI_API_KEY": key, "GOOGLE_GEMINI_BASE_URL": self.base_url, "GOOGLE_GENAI_API_VERSION": "v1beta"}

    # -- used by the handler -----------------------------------------------------------------------------
    def _pick_mode(self) -> str:
        return self._queued_mode() or self.mode

    def _reply_text(self, body: dict[str, Any]) -> str:
        if callable(self.reply):
            return self.reply(body)
        if isinstance(self.reply, str):
            return self.reply
        contents = body.get("contents") or []
        users = [c for c in contents if c.get("role", "user") == "user"]
        last = "".join(p.get("text", "") for p in (users[-1].get("parts") or [])) if users else ""
        images = len(inline_images(body))
        seen = f" [images in context: {images}]" if images else ""
        return f"You said: {last} ({len(contents)} messages in context){seen}"


def inline_images(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The `inlineData` parts of a generateContent request (Vertex's REST form: {mimeType, data (base64)})."""
    return [
        part["inlineData"]
        for content in body.get("contents") or []
        for part in content.get("parts") or []
        if isinstance(part, dict) and isinstance(part.get("inlineData"), dict)
    ]


def inline_mime_type(data: dict[str, Any]) -> Any:
    """google-genai sends the Blob's field as `mime_type`; proto3 JSON parsing (Vertex's) accepts the proto
    field name and the lowerCamelCase `mimeType` alike, so the fake does too."""
    return data.get("mimeType", data.get("mime_type"))


def inline_problem(body: dict[str, Any]) -> str | None:
    for data in inline_images(body):
        if not str(inline_mime_type(data)).startswith("image/"):
            return f"Unsupported MIME type: {inline_mime_type(data)}"
        try:
            base64.b64decode(data.get("data", ""), validate=True)
        except ValueError:
            return "Invalid value at 'contents.parts.inline_data.data' (TYPE_BYTES), Base64 decoding failed"
    return None


def fake_service_account(token_uri: str, project: str) -> dict[str, str]:
    """A syntactically real service-account key (fresh RSA key) whose token endpoint is local."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": "fake-key-id",
        "private_key": pem.decode(),
        "client_email": f"fake-chat@{project}.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": token_uri,
    }


def _usage(prompt: int, out: int | None, thoughts: int = 0) -> dict[str, Any]:
    """usageMetadata as Gemini streams it: chunks before the last carry only promptTokenCount and
    totalTokenCount (out=None); the last one adds candidatesTokenCount and, when the model thought,
    thoughtsTokenCount (not included in candidatesTokenCount, included in totalTokenCount)."""
    usage: dict[str, Any] = {"promptTokenCount": prompt, "totalTokenCount": prompt + (out or 0) + thoughts}
    if out is not None:
        usage["candidatesTokenCount"] = out
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def _status_error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


status_error = _status_error  # Google's error body (google.rpc.Status as JSON), for tests that set `lookup_error`


def rate_limited(message: str, retry_delay: str | None) -> dict[str, Any]:
    """A 429 RESOURCE_EXHAUSTED; with a delay, the details the Gemini API sends: which quota, and RetryInfo."""
    body = _status_error(429, "RESOURCE_EXHAUSTED", message)
    if retry_delay is not None:
        body["error"]["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay},
        ]
    return body


def not_found(version: str, model: str, vertex_name: str | None) -> dict[str, Any]:
    """Google's 404 for a model id it does not serve: Vertex names the publisher model it looked for."""
    if vertex_name:
        message = (
            f"Publisher Model `{vertex_name}` was not found or your project does not have access to it. Please "
            "ensure you are using a valid model version. For more information, see: "
            "https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions"
        )
    else:
        message = (
            f"models/{model} is not found for API version {version}, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their supported methods."
        )
    return _status_error(404, "NOT_FOUND", message)


def model_card(model: str, vertex: bool) -> dict[str, Any]:
    """What `models.get` returns: Vertex's PublisherModel, or the Gemini API's Model with its defaults."""
    if vertex:
        return {
            "name": f"publishers/google/models/{model}",
            "versionId": "001",
            "openSourceCategory": "PROPRIETARY",
            "launchStage": "GA",
        }
    return {
        "name": f"models/{model}",
        "version": "001",
        "displayName": model,
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": True,
    }


def thinking_config(body: dict[str, Any]) -> dict[str, Any]:
    """The request's thinkingConfig with camelCase keys. google-genai sends this message's fields in snake_case
    (`include_thoughts`, `thinking_level`); proto3 JSON parsing (Google's) accepts either, so the fake does too."""
    raw = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
    return {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key): value for key, value in raw.items()}


def thinking_problem(body: dict[str, Any]) -> str | None:
    thinking = thinking_config(body)
    if "thinkingLevel" in thinking and "thinkingBudget" in thinking:
        return "thinking_budget and thinking_level are not supported together."
    return None


def _handler_for(server: FakeVertexServer) -> type[SSEHandler]:
    class Handler(SSEHandler):
        def do_GET(self) -> None:
            server._record(self.path, None, dict(self.headers))
            match = _MODEL_PATH.match(self.path)
            if not match:
                self.send_json(404, _status_error(404, "NOT_FOUND", f"no fake for {self.path}"))
                return
            version, vertex, model = match.group(1), bool(match.group(2)), match.group(3)
            if vertex and self.headers.get("Authorization") != f"Bearer {FAKE_TOKEN}":
                self.send_json(
                    401, _status_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
                )
            elif server.lookup_error is not None:
                self.send_json(server.lookup_error["error"]["code"], server.lookup_error)
            elif model in server.retired:
                self.send_json(404, not_found(version, model, f"publishers/google/models/{model}" if vertex else None))
            else:
                self.send_json(200, model_card(model, vertex))

        def do_POST(self) -> None:
            if self.path == "/token":
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server._record(self.path, None, dict(self.headers))
                self.send_json(200, {"access_token": FAKE_TOKEN, "expires_in": 3600, "token_type": "Bearer"})
                return
            body = self.read_json()
            server._record(self.path, body, dict(self.headers))
            match = _PATH.match(self.path)
            if not match or match.group(5) != "streamGenerateContent" or "alt=sse" not in self.path:
                self.send_json(404, _status_error(404, "NOT_FOUND", f"no fake for {self.path}"))
                return
            if match.group(2) and self.headers.get("Authorization") != f"Bearer {FAKE_TOKEN}":
                self.send_json(
                    401, _status_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
                )
                return
            if match.group(4) in server.retired:
                project, location, model = match.group(2), match.group(3), match.group(4)
                name = f"projects/{project}/locations/{location}/publishers/google/models/{model}" if project else None
                self.send_json(404, not_found(match.group(1), model, name))
                return
            problem = inline_problem(body or {}) or thinking_problem(body or {})
            if problem:
                self.send_json(400, _status_error(400, "INVALID_ARGUMENT", problem))
                return
            try:
                self._serve(server._pick_mode(), body or {}, match.group(4))
            except ClientGone:
                server._count("disconnects")
                self.close_connection = True

        def _serve(self, mode: str, body: dict[str, Any], model: str) -> None:
            prompt_tokens = len(json.dumps(body.get("contents", []))) // 4 + 1
            meta = {"modelVersion": model, "responseId": "fake-response"}
            if mode == "rate_limit":
                message = (
                    "Resource exhausted. Please try again later. Please refer to "
                    "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."
                )
                self.send_json(429, rate_limited(message, server.retry_delay))
            elif mode == "error_500":
                self.send_json(500, _status_error(500, "INTERNAL", "Internal error encountered."))
            elif mode == "permission_denied":
                message = f"Permission 'aiplatform.endpoints.predict' denied on resource '{model}'."
                self.send_json(403, _status_error(403, "PERMISSION_DENIED", message))
            elif mode == "invalid_argument":
                self.send_json(400, _status_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."))
            elif mode == "hang":
                wait_or_gone(self, 3600, server._stopping)
            elif mode == "prompt_blocked":
                self.start_sse()
                feedback = {
                    "blockReason": "SAFETY",
                    "safetyRatings": [
                        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
                    ],
                }
                if server.block_reason_message is not None:
                    feedback["blockReasonMessage"] = server.block_reason_message
                self._event({"promptFeedback": feedback, "usageMetadata": _usage(prompt_tokens, 0), **meta})
                self.end_chunks()
            elif mode == "safety":
                self.start_sse()
                rating = {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}
                candidate = {"content": {"role": "model"}, "finishReason": "SAFETY", "safetyRatings": [rating]}
                self._event({"candidates": [candidate], "usageMetadata": _usage(prompt_tokens, 0), **meta})
                self.end_chunks()
            elif mode == "max_tokens_thinking":
                self.start_sse()
                limit = (body.get("generationConfig") or {}).get("maxOutputTokens", 64)
                candidate = {"content": {"role": "model"}, "finishReason": "MAX_TOKENS"}
                self._event({"candidates": [candidate], "usageMetadata": _usage(prompt_tokens, 0, limit), **meta})
                self.end_chunks()
            else:
                self._stream(mode, body, prompt_tokens, meta)

        def _stream(self, mode: str, body: dict[str, Any], prompt_tokens: int, meta: dict[str, Any]) -> None:
            words = re.findall(r"\s*\S+", server._reply_text(body)) or [""]
            # Gemini sends a few larger chunks rather than one per token; three words per chunk is close.
            chunks = ["".join(words[i : i + 3]) for i in range(0, len(words), 3)]
            self.start_sse()
            thoughts = server.thoughts if thinking_config(body).get("includeThoughts") else None
            thought_words = re.findall(r"\s*\S+", thoughts or "")
            for i in range(0, len(thought_words), 3):
                part = {"text": "".join(thought_words[i : i + 3]), "thought": True}
                thought_event = {"candidates": [{"content": {"role": "model", "parts": [part]}}], **meta}
                self._event(thought_event | {"usageMetadata": _usage(prompt_tokens, None)})
            start = time.monotonic()
            for i, text in enumerate(chunks):
                wait_or_gone(self, start + 3 * i / server.tokens_per_s - time.monotonic(), server._stopping)
                if mode == "cut" and i == max(1, len(chunks) // 2):
                    self.cut_connection()
                    return
                if mode == "error_after_text" and i == max(1, len(chunks) // 2):
                    self._event(server.error_after_text)
                    break
                if mode == "safety_after_text" and i == max(1, len(chunks) // 2):
                    rating = {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
                    reason = server.finish_after_text
                    blocked = {"content": {"role": "model"}, "finishReason": reason, "safetyRatings": [rating]}
                    usage = _usage(prompt_tokens, len("".join(chunks[:i]).split()))
                    self._event({"candidates": [blocked], "usageMetadata": usage, **meta})
                    break
                candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}}
                event: dict[str, Any] = {"candidates": [candidate], **meta}
                if i == len(chunks) - 1 and mode != "no_finish":
                    candidate["finishReason"] = "STOP"
                    spent = server.thoughts_tokens or len(thought_words)  # thinking is counted apart
                    event["usageMetadata"] = _usage(prompt_tokens, len(words), spent)
                else:
                    event["usageMetadata"] = _usage(prompt_tokens, None)
                self._event(event)
            self.end_chunks()  # no [DONE]: Google's streams simply end

        def _event(self, obj: dict[str, Any]) -> None:
            self.write_chunk(b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\r\n\r\n")

    return Handler
