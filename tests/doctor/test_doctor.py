"""`python -m chatapp.doctor` against the real Firestore emulator and the fakes (Gemini with Google's REST shape,
vLLM's OpenAI server, Cloud Storage's JSON API): one line per check, every failure names its fix, and the exit
status says whether anything failed."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator

import pytest
from prometheus_client import start_http_server

from chatapp import doctor
from chatapp.settings import load_settings
from chatapp.status import ModelStatus
from harness.fakes.gcs_server import FakeGcsServer
from harness.fakes.vertex_server import RETIRED_2026
from harness.firestore_emulator import PROJECT
from harness.support import free_port

SELF_HOSTED_LABEL = "Gemma (doctor test)"


@pytest.fixture(scope="module")
def metrics_port() -> int:
    """The chat's /metrics as the chat serves it (prometheus_client's server over this process's registry, which
    holds the chat's metrics once chatapp.metrics is imported, as in the chat process)."""
    import chatapp.metrics  # noqa: F401 - registers the chat's metrics

    port = free_port()
    start_http_server(port, addr="127.0.0.1")
    return port


@pytest.fixture
def gcs(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGcsServer]:
    with FakeGcsServer(("media-bucket",)) as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        yield server


@pytest.fixture
def env(firestore_database, fake_vertex, fake_openai, gcs, metrics_port) -> dict[str, str]:
    """A deployed pod's settings: Firestore, Vertex AI Gemini, the self-hosted server, a media bucket, IAP."""
    return {
        "CHAT_STORE": "firestore",
        "FIRESTORE_DATABASE": firestore_database,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "SELF_HOSTED_URL": fake_openai.base_url,
        "SELF_HOSTED_MODEL": fake_openai.model,
        "SELF_HOSTED_LABEL": SELF_HOSTED_LABEL,
        "CHAT_MEDIA_BUCKET": "media-bucket",
        "CHAT_AUTH": "iap",
        "CHAT_IAP_AUDIENCE": "/projects/123/global/backendServices/",
        "CHAT_METRICS_PORT": str(metrics_port),
    }


def diagnose(env: dict[str, str]) -> tuple[int, list[str]]:
    out = io.StringIO()
    status = doctor.main(env, out)
    return status, out.getvalue().splitlines()


def line(lines: list[str], name: str) -> str:
    [found] = [text for text in lines if text[2:].startswith(name)]
    return found


def test_a_healthy_deployment_passes_every_check(env):
    status, lines = diagnose(env)
    assert status == 0, "\n".join(lines)
    assert len(lines) == 6 and all(text.startswith("✓ ") for text in lines), "\n".join(lines)
    assert f"in database {env['FIRESTORE_DATABASE']} in project {PROJECT}" in line(lines, "Firestore")
    assert "exists and answered one token at global" in line(lines, "Gemini gemini-3.8-flash")
    assert "answered one token" in line(lines, "self-hosted fake-model")
    assert "gs://media-bucket" in line(lines, "media bucket")
    assert "/projects/123/global/backendServices/" in line(lines, "sign-in")


def test_the_probes_leave_nothing_behind(env, gcs):
    from google.cloud import firestore

    diagnose(env)
    client = firestore.Client(project=PROJECT, database=env["FIRESTORE_DATABASE"])
    assert list(client.collection(doctor.PROBE_COLLECTION).stream()) == []
    assert gcs.objects == {}


def test_a_retired_gemini_id_fails_naming_the_setting(env, fake_vertex):
    fake_vertex.retired = RETIRED_2026
    status, lines = diagnose({**env, "GEMINI_MODEL": "gemini-2.5-flash"})
    assert status == 1
    assert line(lines, "Gemini gemini-2.5-flash").startswith(
        "✗ Gemini gemini-2.5-flash: retired or unknown model id gemini-2.5-flash: set GEMINI_MODEL (geminiModel)"
    )
    assert fake_vertex.generate_requests() == []  # noticed by the lookup, before any generation


def test_an_unknown_or_gated_self_hosted_model_fails_naming_the_setting(env):
    # A gated model whose weights never arrived, or a changed id the server does not serve: the server lists
    # something else (or nothing).
    status, lines = diagnose({**env, "SELF_HOSTED_MODEL": "google/gemma-4-31b-it"})
    assert status == 1
    text = line(lines, "self-hosted google/gemma-4-31b-it")
    assert "retired or unknown model id google/gemma-4-31b-it: set SELF_HOSTED_MODEL (gemmaModel)" in text
    assert "(the server serves fake-model)" in text and "hfToken" in text


def test_a_loading_model_server_says_so_and_since_when(env, fake_openai):
    fake_openai.mode = "loading"  # 503 on /v1/models, as a loading server or its load balancer answers
    settings = load_settings(env)
    # The running chat's status check has seen it down; the doctor reads that from /metrics.
    from chatapp.models import PROVIDERS

    ModelStatus({SELF_HOSTED_LABEL: PROVIDERS["openai_compat"](settings)}).refresh()
    status, lines = diagnose(env)
    assert status == 1
    text = line(lines, "self-hosted fake-model")
    assert "still loading or down" in text and "still starting (HTTP 503)" in text
    assert "unavailable since 20" in text and "UTC (0 min ago)" in text
    assert "kubectl -n hybrid-chat logs deploy/gemma" in text


def test_a_model_server_not_listening_yet_is_loading_too(env):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    status, lines = diagnose({**env, "SELF_HOSTED_URL": f"http://127.0.0.1:{port}/v1"})
    assert status == 1
    assert "not reachable (connection refused)" in line(lines, "self-hosted fake-model")


def test_sqlite_skips_firestore_and_says_which_store(env, tmp_path):
    path = str(tmp_path / "history.sqlite3")
    local = {k: v for k, v in env.items() if k not in ("CHAT_STORE", "CHAT_MEDIA_BUCKET")}
    status, lines = diagnose({**local, "CHAT_SQLITE_PATH": path})
    assert status == 0, "\n".join(lines)
    assert line(lines, "history") == f"– history: SQLite file {path} (CHAT_STORE=sqlite): no Firestore to probe"
    assert line(lines, "media").startswith("– media: ")


def test_a_missing_media_bucket_fails_naming_the_fix(env):
    status, lines = diagnose({**env, "CHAT_MEDIA_BUCKET": "no-such-bucket"})
    assert status == 1
    text = line(lines, "media bucket")
    assert text.startswith("✗ media bucket: gs://no-such-bucket") and "roles/storage.objectUser" in text


def test_iap_without_an_audience_fails_naming_the_variable(env):
    status, lines = diagnose({**env, "CHAT_IAP_AUDIENCE": ""})
    assert status == 1
    assert lines == [
        "✗ configuration: CHAT_AUTH=iap needs CHAT_IAP_AUDIENCE: /projects/NUMBER/global/backendServices/ID, or "
        "that prefix ending in '/' → fix: set it in the chat Deployment (`pulumi up`)"
    ]


def test_metrics_not_answering_fails_naming_the_port(env):
    port = free_port()
    status, lines = diagnose({**env, "CHAT_METRICS_PORT": str(port)})
    assert status == 1
    assert f"CHAT_METRICS_PORT ({port})" in line(lines, "metrics")
