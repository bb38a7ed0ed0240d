"""The model list notices a retired or unknown model id from start-up on, before anyone sends a message, and
remembers since when a model has been unavailable (exported for the doctor)."""

from __future__ import annotations

import time

from prometheus_client import REGISTRY

from chatapp.models.gemini import GeminiModel
from chatapp.models.openai_compat import OpenAICompatModel
from chatapp.status import ModelStatus
from harness.fakes.vertex_server import RETIRED_2026
from tests.app.helpers import wait_until


def test_start_up_names_retired_and_unknown_ids_with_the_setting_that_fixes_them(fake_vertex, fake_openai):
    fake_vertex.retired = RETIRED_2026
    models = {
        "Gemini": GeminiModel("Gemini", "gemini-2.5-flash"),
        "Gemma": OpenAICompatModel("Gemma", fake_openai.base_url, "google/gemma-4-12b-it"),
    }
    status = ModelStatus(models, interval_s=3600)  # only the check at start-up can answer within the test
    status.start()
    try:
        wait_until(lambda: "not checked yet" not in status.markdown(), 30, "the first check of every model", 0.02)
    finally:
        status.stop()
    text = status.markdown()
    assert "**Gemini**: retired or unknown model id gemini-2.5-flash: set GEMINI_MODEL (geminiModel)" in text
    assert "**Gemma**: retired or unknown model id google/gemma-4-12b-it: set SELF_HOSTED_MODEL (gemmaModel)" in text


def test_current_ids_are_reachable(fake_vertex, fake_openai):
    status = ModelStatus(
        {
            "Gemini": GeminiModel("Gemini", "gemini-3.8-flash"),
            "Gemma": OpenAICompatModel("Gemma", fake_openai.base_url, fake_openai.model),
        }
    )
    assert status.refresh() == {"Gemini": None, "Gemma": None}


def test_since_when_a_model_is_unavailable_is_kept_and_exported(fake_openai):
    label = "Gemma since-test"
    status = ModelStatus({label: OpenAICompatModel(label, fake_openai.base_url, fake_openai.model)})
    fake_openai.mode = "loading"
    before = time.time()
    status.refresh()
    since = status.unavailable_since(label)
    assert since is not None and before <= since <= time.time()
    status.refresh()
    assert status.unavailable_since(label) == since, "a second failed check moved the start of the outage"
    assert REGISTRY.get_sample_value("chat_model_unavailable_since_seconds", {"model": label}) == since
    fake_openai.mode = "normal"
    status.refresh()
    assert status.unavailable_since(label) is None
    assert REGISTRY.get_sample_value("chat_model_unavailable_since_seconds", {"model": label}) == 0
