"""The chat's Prometheus endpoint after real turns: llama.cpp in the self-hosted slot, a failing Vertex-shaped
server in the Gemini slot, scraped from the separate CHAT_METRICS_PORT as Managed Prometheus would."""

import pytest
import requests
from gradio_client import Client
from prometheus_client.parser import text_string_to_metric_families

from chatapp.settings import model_label
from harness.fakes.openai_server import _prompt_tokens

SMOL = "SmolLM2 (llama.cpp)"
GEMINI = "Gemini (fake Vertex)"


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_turns_are_counted_per_model_and_outcome_with_latency_and_tokens(chat_server, llama_server, fake_vertex):
    fake_vertex.mode = "error_500"
    chat = chat_server(
        SELF_HOSTED_URL=llama_server.base_url,
        SELF_HOSTED_MODEL=llama_server.model,
        SELF_HOSTED_LABEL=SMOL,
        GEMINI_LABEL=GEMINI,
    )
    before = scrape(chat.metrics_url)
    assert value(before, "chat_turns_total", model=SMOL, outcome="ok") is None
    assert value(before, "chat_unsaved_turns") == 0
    assert value(before, "chat_self_hosted_wanted_total") == 0  # exported from the start: the wake signal

    client = Client(chat.url, verbose=False)
    try:
        for question in ("What is the capital of France?", "And of Italy?"):
            answer = client.predict(question, SMOL, 0.1, 0.9, 24, "Answer briefly.", api_name="/chat")
            assert answer.strip() and "⚠️" not in answer
        failed = client.predict("Hello?", GEMINI, 0.1, 0.9, 24, "", api_name="/chat")
        assert "⚠️" in failed
    finally:
        client.close()

    after = scrape(chat.metrics_url)
    assert value(after, "chat_turns_total", model=SMOL, outcome="ok") == 2
    assert value(after, "chat_turns_total", model=GEMINI, outcome="error") == 1
    assert value(after, "chat_turns_total", model=GEMINI, outcome="ok") is None
    assert value(after, "chat_time_to_first_token_seconds_count", model=SMOL) == 2
    assert 0 < value(after, "chat_time_to_first_token_seconds_sum", model=SMOL) < 60
    # A reply that never produced text has a duration but no first token.
    assert value(after, "chat_reply_duration_seconds_count", model=GEMINI) == 1
    assert value(after, "chat_time_to_first_token_seconds_count", model=GEMINI) is None
    assert value(after, "chat_reply_duration_seconds_bucket", model=SMOL, le="+Inf") == 2
    # llama.cpp ignores `include_usage`: output tokens are counted from the stream's deltas, input tokens are
    # unknown and so not counted at all (vLLM reports both).
    assert value(after, "chat_tokens_total", model=SMOL, direction="in") is None
    assert 0 < value(after, "chat_tokens_total", model=SMOL, direction="out") <= 2 * 24
    assert value(after, "chat_streams_in_flight", model=SMOL) == 0
    assert value(after, "chat_unsaved_turns") == 0
    # The self-hosted model's two turns wanted it; the Gemini turn did not (the KEDA query's counter).
    assert value(after, "chat_self_hosted_wanted_total") == 2


def test_metrics_are_not_served_on_the_public_port(chat_server):
    chat = chat_server()
    response = requests.get(f"{chat.url}/metrics", timeout=10)
    assert "chat_turns" not in response.text
    assert "chat_unsaved_turns" in requests.get(chat.metrics_url, timeout=10).text


def test_tokens_in_and_out_as_a_vllm_shaped_server_reports_them(chat_server, fake_openai):
    # The fake follows vLLM's wire format, including the final `usage` chunk llama.cpp leaves out.
    fake_openai.reply = "one two three"
    chat = chat_server(SELF_HOSTED_URL=fake_openai.base_url, SELF_HOSTED_MODEL=fake_openai.model)
    model = f"{model_label(fake_openai.model)} (self-hosted)"  # the label follows the served id
    client = Client(chat.url, verbose=False)
    try:
        answer = client.predict("Hello there", model, 0.1, 0.9, 24, "", api_name="/chat")
    finally:
        client.close()
    assert answer == "one two three"
    (request,) = fake_openai.chat_requests()
    assert request["stream_options"] == {"include_usage": True}
    after = scrape(chat.metrics_url)
    assert value(after, "chat_tokens_total", model=model, direction="in") == _prompt_tokens(request)
    assert value(after, "chat_tokens_total", model=model, direction="out") > 0


def test_a_taken_metrics_port_stops_the_chat_with_a_clear_message(tmp_path):
    import socket

    from harness.chat_process import start_chat

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError) as error:
            start_chat({"CHAT_METRICS_PORT": str(port)}, tmp_path, timeout_s=60)
    assert f"CHAT_METRICS_PORT {port}:" in str(error.value)
    assert "Traceback" not in str(error.value)
