"""What a person sees of a Gemini reply, each promise pinned by the observable result (the reply text, the usage
recorded, the sentence shown): the server's token counts over anything counted here (that thought summaries
never reach the answer: test_gemini_options.py). Through the real google-genai SDK against the local server
with Google's REST shape."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from chatapp.conversation import ImageRef, Message
from chatapp.models.base import GenerationParams, ModelError, ModelUnavailable, StreamCut
from chatapp.models.gemini import LOOKUP_RETRY_S, LOOKUP_TTL_S, GeminiModel
from chatapp.models.gemini_client import HOW_TO_CONFIGURE
from harness.fakes.vertex_server import status_error
from harness.support import free_port
from tests.fixtures.model_servers import use_gemini_env
from tests.media.images import PNG
from tests.models.helpers import ask, collect, within


def gemini(model_id: str = "gemini-3.8-flash", **kwargs) -> GeminiModel:
    return GeminiModel("Gemini Test", model_id, **kwargs)


# -- the status check's lookup (is GEMINI_MODEL there?) ---------------------------------------------------------
def lookups(fake_vertex) -> list[dict]:
    return [r for r in fake_vertex.requests if r["body"] is None and "/models/" in r["path"]]


def test_a_lookup_is_trusted_for_ten_minutes_then_made_again(fake_vertex):
    now = [1000.0]
    model = gemini(clock=lambda: now[0])
    assert model.check() is None
    now[0] += LOOKUP_TTL_S - 1
    assert model.check() is None and len(lookups(fake_vertex)) == 1
    now[0] += 1  # exactly LOOKUP_TTL_S later: stale
    fake_vertex.retired = {"gemini-3.8-flash"}
    assert model.check() == "retired or unknown model id gemini-3.8-flash: set GEMINI_MODEL (geminiModel)"
    assert len(lookups(fake_vertex)) == 2


def test_a_lookup_gives_google_five_seconds_and_a_reply_the_models_timeout(fake_vertex):
    """google-genai sends a request's timeout as X-Server-Timeout (whole seconds): what Google's front end sees."""
    model = gemini(timeout_s=42)
    assert model.check() is None
    collect(model, ask("hi"))
    [lookup] = lookups(fake_vertex)
    assert lookup["headers"].get("X-Server-Timeout") == "5"
    [reply] = fake_vertex.generate_requests()
    assert reply["headers"].get("X-Server-Timeout") == "42"


@pytest.mark.parametrize(("code", "status"), [(401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED")])
def test_a_lookup_the_identity_may_not_make_is_no_verdict_but_is_logged(fake_vertex, caplog, code, status):
    """Calling a model needs aiplatform.endpoints.predict, reading its card more: a refused lookup says nothing
    about the model, so the status check stays fine (and messages still go out); the operator reads why."""
    fake_vertex.lookup_error = status_error(code, status, "Permission denied on the publisher model.")
    model = gemini()
    with caplog.at_level(logging.WARNING, logger="chatapp.models.gemini"):
        assert model.check() is None
    [record] = [r for r in caplog.records if r.name == "chatapp.models.gemini"]
    assert record.getMessage() == (
        f"Gemini Test: cannot look up gemini-3.8-flash (HTTP {code}: Permission denied on the publisher model.)"
    )
    chunks, _, error = collect(model, ask("hi"))
    assert error is None and "".join(chunks) == "You said: hi (1 messages in context)"


def test_another_refused_lookup_is_named_and_tried_again_after_thirty_seconds(fake_vertex):
    now = [1000.0]
    model = gemini(clock=lambda: now[0])
    fake_vertex.lookup_error = status_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
    refused = "model lookup refused (HTTP 400 INVALID_ARGUMENT: Request contains an invalid argument.)"
    assert model.check() == refused
    fake_vertex.lookup_error = None
    now[0] += LOOKUP_RETRY_S - 1
    assert model.check() == refused and len(lookups(fake_vertex)) == 1
    now[0] += 1
    assert model.check() is None and len(lookups(fake_vertex)) == 2
    # Only a retired id makes a message fail before it is sent: a refused lookup does not.
    chunks, _, error = collect(model, ask("hi"))
    assert error is None and chunks


# -- what the status list and a failed reply say --------------------------------------------------------------
def test_without_credentials_the_status_says_how_to_configure_and_nothing_is_asked(fake_vertex, monkeypatch):
    use_gemini_env(monkeypatch, {})
    assert gemini().check() == f"not configured: no credentials; {HOW_TO_CONFIGURE}"
    assert fake_vertex.requests == []


def test_vertex_without_a_project_or_credentials_to_find_one_is_not_configured(fake_vertex, monkeypatch, tmp_path):
    use_gemini_env(monkeypatch, {"GOOGLE_GENAI_USE_VERTEXAI": "true"})
    missing = tmp_path / "no-such-adc.json"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(missing))
    assert gemini().check() == (
        f"not configured: Gemini Test is not configured (File {missing} was not found.); {HOW_TO_CONFIGURE}."
    )
    assert fake_vertex.requests == []


def test_a_reply_blocked_by_safety_names_the_model_and_the_reason(fake_vertex):
    fake_vertex.mode = "safety"
    chunks, stats, error = collect(gemini(), ask("x"))
    assert chunks == [] and type(error) is ModelError
    assert str(error) == "Gemini Test gave no reply because its safety filters blocked the reply (SAFETY)."
    assert stats.finish_reason == "safety"


def test_a_server_error_names_the_model(fake_vertex):
    fake_vertex.mode = "error_500"
    _, _, error = collect(gemini(), ask("x"))
    assert str(error) == "Gemini Test had a server error (HTTP 500 INTERNAL: Internal error encountered.)."


def test_with_an_api_key_a_404_names_no_location(fake_vertex, monkeypatch):
    """The Gemini API has no regions: only on Vertex can a 404 mean "not served in this location"."""
    use_gemini_env(monkeypatch, fake_vertex.api_key_env())
    fake_vertex.retired = {"gemini-3.8-flash"}
    _, _, error = collect(gemini(location="us-central1"), ask("hi"))
    assert isinstance(error, ModelUnavailable)
    retired = "Gemini Test: retired or unknown model id gemini-3.8-flash: set GEMINI_MODEL (geminiModel)"
    assert str(error).startswith(f"{retired} (HTTP 404 NOT_FOUND: ")
    assert "us-central1" not in str(error)


# -- 429: Google's own delay, within the retry budget ----------------------------------------------------------
def test_a_429_waits_the_delay_google_names_then_answers(fake_vertex, caplog):
    fake_vertex.retry_delay = "1.5s"  # longer than the first backoff (1 s), so waiting it shows
    fake_vertex.queue("rate_limit")
    with caplog.at_level(logging.INFO, logger="chatapp.models.gemini"):
        chunks, _, error = collect(gemini(), ask("hi"))
    assert error is None and "".join(chunks) == "You said: hi (1 messages in context)"
    first, second = fake_vertex.generate_requests()
    assert second["time"] - first["time"] >= 1.5
    logged = [r.getMessage() for r in caplog.records if r.name == "chatapp.models.gemini"]
    assert logged == ["Gemini Test answered 429; retrying in 1.5 s"]  # what the operator reads


def test_a_429_that_asks_for_longer_than_the_budget_is_reported_at_once(fake_vertex):
    fake_vertex.retry_delay = "30s"
    fake_vertex.mode = "rate_limit"
    _, _, error = within(10, lambda: collect(gemini(retry_budget_s=12), ask("hi")))
    assert type(error) is ModelError
    assert str(error) == (
        "Gemini Test quota is exhausted (429 RESOURCE_EXHAUSTED: Resource exhausted. Please try again later. Please "
        "refer to https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.); asked to "
        "wait longer. Try again in a minute or switch models."
    )
    assert len(fake_vertex.generate_requests()) == 1


# -- why a reply ended without text, or early (gemini_errors) -------------------------------------------------
STOPPED_BECAUSE = {
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


@pytest.mark.parametrize(("finish", "because"), STOPPED_BECAUSE.items())
def test_a_reply_stopped_after_some_text_keeps_it_and_says_why_in_words(fake_vertex, finish, because):
    fake_vertex.mode, fake_vertex.finish_after_text = "safety_after_text", finish
    fake_vertex.reply = "one two three four five six seven eight nine ten eleven twelve"
    chunks, _, error = collect(gemini(), ask("x"))
    assert "".join(chunks) == "one two three four five six"
    assert isinstance(error, StreamCut) and str(error) == f"Gemini Test stopped mid-reply because {because}."


def test_an_empty_stop_is_an_empty_reply(fake_vertex):
    fake_vertex.reply = ""
    chunks, _, error = collect(gemini(), ask("x"))
    assert "".join(chunks) == "" and type(error) is ModelError
    assert str(error) == "Gemini Test returned an empty reply (finish reason STOP)."


def test_a_model_without_thinking_that_hit_max_tokens_is_told_to_raise_it(fake_vertex):
    fake_vertex.mode = "max_tokens_thinking"
    _, _, error = collect(gemini("gemini-2.5-flash"), ask("x"), GenerationParams(max_tokens=64))
    assert str(error) == (
        "Gemini Test used up the max tokens limit (64) before writing any text: it spent them thinking. "
        "Raise Max tokens and try again."
    )


@pytest.mark.parametrize(
    ("mode", "kind", "expected"),
    [
        (
            "permission_denied",
            ModelUnavailable,
            "Gemini Test refused our credentials (HTTP 403 PERMISSION_DENIED: Permission "
            f"'aiplatform.endpoints.predict' denied on resource 'gemini-3.8-flash'.); {HOW_TO_CONFIGURE}.",
        ),
        (
            "invalid_argument",
            ModelError,
            "Gemini Test rejected the request (HTTP 400 INVALID_ARGUMENT: Request contains an invalid argument.).",
        ),
    ],
)
def test_a_refused_request_says_who_refused_and_why(fake_vertex, mode, kind, expected):
    fake_vertex.mode = mode
    chunks, _, error = collect(gemini(), ask("x"))
    assert chunks == [] and type(error) is kind and str(error) == expected


def test_a_global_location_is_not_named_in_a_404(fake_vertex):
    fake_vertex.retired = {"gemini-3.8-flash"}
    _, _, error = collect(gemini(location="global"), ask("hi"))
    retired = "Gemini Test: retired or unknown model id gemini-3.8-flash: set GEMINI_MODEL (geminiModel)"
    assert str(error).startswith(f"{retired} (HTTP 404 NOT_FOUND: ")
    assert "GOOGLE_CLOUD_LOCATION" not in str(error)


def test_silence_mid_reply_is_a_cut_that_keeps_the_text(fake_vertex):
    fake_vertex.reply = "one two three four five six"
    fake_vertex.tokens_per_s = 1  # three words a chunk: the second chunk comes 3 s after the first
    chunks, _, error = collect(gemini(timeout_s=1), ask("x"))
    assert "".join(chunks) == "one two three"
    assert isinstance(error, StreamCut) and str(error) == "Gemini Test went silent for 1 s; the reply was cut off."


def test_a_connection_cut_mid_reply_names_the_model(fake_vertex):
    fake_vertex.mode = "cut"
    fake_vertex.reply = "one two three four five six seven eight nine ten eleven twelve"
    _, _, error = collect(gemini(), ask("x"))
    assert isinstance(error, StreamCut) and str(error).startswith("The connection to Gemini Test broke mid-reply (")


def test_an_endpoint_nobody_listens_on_is_unavailable(fake_vertex, monkeypatch):
    use_gemini_env(
        monkeypatch, {**fake_vertex.api_key_env(), "GOOGLE_GEMINI_BASE_URL": f"http://127.0.0.1:{free_port()}"}
    )
    chunks, _, error = collect(gemini(), ask("x"))
    assert chunks == [] and isinstance(error, ModelUnavailable)
    assert str(error).startswith("Gemini Test is not reachable (")
    assert str(error).endswith("); check the network or try again.")


def test_credentials_that_cannot_get_a_token_say_so(fake_vertex, monkeypatch, tmp_path):
    env = fake_vertex.vertex_env(tmp_path)
    account = json.loads(Path(env["GOOGLE_APPLICATION_CREDENTIALS"]).read_text())
    account["token_uri"] = f"http://127.0.0.1:{free_port()}/token"  # nobody answers there
    Path(env["GOOGLE_APPLICATION_CREDENTIALS"]).write_text(json.dumps(account))
    use_gemini_env(monkeypatch, env)
    chunks, _, error = collect(gemini(), ask("x"))
    assert chunks == [] and isinstance(error, ModelUnavailable)
    assert str(error).startswith("Gemini Test could not get credentials (")
    assert str(error).endswith(f"); {HOW_TO_CONFIGURE}.")
    assert fake_vertex.generate_requests() == []


# -- what a request asks for (gemini_request) ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model_id", "levels", "default"),
    [
        ("gemini-3.8-flash", ("low", "medium", "high"), "medium"),
        ("gemini-3.8-flash-001", ("low", "medium", "high"), "medium"),  # a pinned version of the family
        ("gemini-3.8-flash-lite", ("low", "high"), "high"),  # another model, not a version of 3.8 Flash
        ("gemini-3.5-flash", ("minimal", "low", "medium", "high"), "medium"),
        ("gemini-4-pro", ("low", "high"), "high"),
        ("gemini-2.5-flash", (), None),
        ("gemma-3-12b-it", (), None),
    ],
)
def test_each_model_id_offers_its_familys_thinking_levels(model_id, levels, default):
    options = gemini(model_id).options
    assert (options.thinking_levels, options.thinking) == (levels, default)
    assert (options.temperature, options.top_p) == (1.0, 0.95)
    note = "Gemini 3 works best at its default temperature and top-p: they are sent only if you change them."
    assert options.note == (note if levels else "")


@pytest.mark.parametrize(("level", "room"), [("minimal", 1024), ("low", 4096), ("medium", 8192), ("high", 16384)])
def test_max_output_leaves_each_levels_room_for_thinking_on_top_of_max_tokens(fake_vertex, level, room):
    collect(gemini("gemini-3.5-flash"), ask("hi"), GenerationParams(max_tokens=100, thinking=level))
    config = fake_vertex.generate_requests()[-1]["body"]["generationConfig"]
    assert config["maxOutputTokens"] == 100 + room
    sent = {"include_thoughts": True} | ({} if level == "medium" else {"thinking_level": level.upper()})
    assert config["thinkingConfig"] == sent


def test_a_model_without_thinking_gets_max_tokens_and_no_thinking_config(fake_vertex):
    collect(gemini("gemini-2.5-flash"), ask("hi"), GenerationParams(temperature=0.3, top_p=0.5, max_tokens=77))
    config = fake_vertex.generate_requests()[-1]["body"]["generationConfig"]
    assert config == {"temperature": 0.3, "topP": 0.5, "maxOutputTokens": 77}


def test_system_messages_become_one_instruction_and_turns_keep_their_roles(fake_vertex):
    image = ImageRef("a" * 32, "image/png", len(PNG), PNG)
    messages = [
        Message("system", "Be brief."),
        Message("system", "   "),
        Message("user", "Hi"),
        Message("assistant", "Hello", model="Gemma"),
        Message("system", "Answer in French."),
        Message("user", "", images=(image,)),
    ]
    collect(gemini(), messages)
    body = fake_vertex.generate_requests()[-1]["body"]
    assert body["systemInstruction"]["parts"] == [{"text": "Be brief.\n\nAnswer in French."}]
    assert [(c["role"], [sorted(p) for p in c["parts"]]) for c in body["contents"]] == [
        ("user", [["text"]]),
        ("model", [["text"]]),
        ("user", [["inlineData"]]),  # an image alone: no empty text part before it
    ]
    assert base64.b64decode(body["contents"][2]["parts"][0]["inlineData"]["data"]) == PNG


def test_without_system_messages_no_instruction_is_sent(fake_vertex):
    collect(gemini(), ask("hi"))
    assert "systemInstruction" not in fake_vertex.generate_requests()[-1]["body"]


def test_an_image_that_could_not_be_read_is_said_before_anything_is_sent(fake_vertex):
    unread = ImageRef("a" * 32, "image/png", 10)
    _, _, error = collect(gemini(), [Message("user", "x", images=(unread,))])
    assert type(error) is ModelError
    assert str(error) == "An image of this conversation could not be read; attach it again."
    assert fake_vertex.generate_requests() == []


# -- which endpoint and credentials (gemini_client) ------------------------------------------------------------
@pytest.mark.parametrize(
    ("vertex", "enterprise", "expected"),
    [(" True ", None, True), ("1", None, True), ("yes", None, False), ("true", "false", False), ("0", "TRUE", True)],
)
def test_vertex_mode_is_read_as_the_sdk_reads_it(fake_vertex, monkeypatch, vertex, enterprise, expected):
    """GOOGLE_GENAI_USE_ENTERPRISE wins over GOOGLE_GENAI_USE_VERTEXAI; only "true" and "1" mean yes."""
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", vertex)
    if enterprise is not None:
        monkeypatch.setenv("GOOGLE_GENAI_USE_ENTERPRISE", enterprise)
    model = gemini()
    assert model.vertex is expected and model.configured is expected


def test_an_api_key_of_blanks_is_no_credentials(fake_vertex, monkeypatch):
    use_gemini_env(monkeypatch, {"GEMINI_API_KEY": "   ", "GOOGLE_API_KEY": ""})
    model = gemini()
    assert not model.configured
    assert model.check() == f"not configured: no credentials; {HOW_TO_CONFIGURE}"


@pytest.mark.parametrize("name", ["GOOGLE_API_KEY", "GEMINI_API_KEY"])
def test_either_api_key_variable_configures_the_api_key_mode(fake_vertex, monkeypatch, name):
    env = fake_vertex.api_key_env("k-1")
    del env["GEMINI_API_KEY"]
    use_gemini_env(monkeypatch, env | {name: "k-1"})
    model = gemini()
    assert model.configured and not model.vertex
    chunks, _, error = collect(model, ask("hi"))
    assert error is None and chunks
    assert fake_vertex.generate_requests()[-1]["headers"]["x-goog-api-key"] == "k-1"


def test_vertex_mode_asks_for_the_project_and_location_set(fake_vertex, monkeypatch, tmp_path):
    use_gemini_env(monkeypatch, fake_vertex.vertex_env(tmp_path, project="other-project"))
    collect(gemini(location="europe-west4"), ask("hi"))
    path = fake_vertex.generate_requests()[-1]["path"]
    assert path.startswith("/v1beta1/projects/other-project/locations/europe-west4/publishers/google/models/")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (None, "Gemini Test refused the prompt (SAFETY). Rephrase and try again."),
        (
            "The prompt was blocked because of harmful content.",
            "Gemini Test refused the prompt (SAFETY): The prompt was blocked because of harmful content. Rephrase "
            "and try again.",
        ),
    ],
)
def test_a_blocked_prompt_says_why_in_googles_words_when_it_gives_them(fake_vertex, message, expected):
    fake_vertex.mode, fake_vertex.block_reason_message = "prompt_blocked", message
    chunks, _, error = collect(gemini(), ask("x"))
    assert chunks == [] and type(error) is ModelError and str(error) == expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (None, "Gemini Test had a server error (HTTP 500 INTERNAL: Internal error encountered.)."),
        (
            status_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
            "Gemini Test rejected the request (HTTP 400 INVALID_ARGUMENT: Request contains an invalid argument.).",
        ),
    ],
)
def test_an_error_in_the_stream_after_text_keeps_the_text_and_says_what_failed(fake_vertex, error, expected):
    fake_vertex.mode = "error_after_text"
    if error is not None:
        fake_vertex.error_after_text = error
    fake_vertex.reply = "one two three four five six seven eight nine ten eleven twelve"
    chunks, _, failure = collect(gemini(), ask("x"))
    assert "".join(chunks) == "one two three four five six"
    assert isinstance(failure, StreamCut) and str(failure) == expected


def test_vertex_with_an_api_key_but_no_credentials_says_it_is_not_configured(fake_vertex, monkeypatch, tmp_path):
    """No project lookup is needed with an API key, so the status check's lookup is what finds the client cannot
    be made: it says so, with how to configure, instead of an unreachable model."""
    missing = tmp_path / "no-such-adc.json"
    env = {"GOOGLE_GENAI_USE_VERTEXAI": "true", "GOOGLE_API_KEY": "k", "GOOGLE_APPLICATION_CREDENTIALS": str(missing)}
    use_gemini_env(monkeypatch, env)
    assert gemini().check() == f"Gemini Test is not configured (File {missing} was not found.); {HOW_TO_CONFIGURE}."
    assert fake_vertex.requests == []


def test_a_budget_spent_thinking_is_recorded_as_that_many_tokens_out(fake_vertex):
    """The reply had no text but was billed: usage reports 0 candidate tokens and the whole budget as thoughts."""
    fake_vertex.mode = "max_tokens_thinking"
    _, stats, error = collect(gemini(), ask("x"), GenerationParams(max_tokens=100, thinking="low"))
    assert type(error) is ModelError
    assert stats.tokens_out == 100 + 4096


def test_with_an_api_key_a_reply_also_gives_google_the_models_timeout(fake_vertex, monkeypatch):
    use_gemini_env(monkeypatch, fake_vertex.api_key_env())
    collect(gemini(timeout_s=42), ask("hi"))
    [reply] = fake_vertex.generate_requests()
    assert reply["headers"].get("X-Server-Timeout") == "42"
