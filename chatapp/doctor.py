"""`python -m chatapp.doctor`: is this deployment able to answer? Run it inside the chat pod (the stack's output
`doctorCommand` prints the `kubectl exec` line), so every check uses the pod's own identity and settings:

- the history store: a probe document written, read and deleted in the configured Firestore database (with
  SQLite, which file, and nothing to probe);
- Gemini: the configured model id exists and answers one token;
- the self-hosted model server: it lists the configured model and answers one token, or is still loading (and
  since when, as the running chat's status check saw it);
- the media bucket (CHAT_MEDIA_BUCKET): an object written, read and deleted;
- sign-in: with CHAT_AUTH=iap, the IAP audience;
- `/metrics` answers on CHAT_METRICS_PORT.

One line per check; every failure names the setting (and its Pulumi key) or the command that fixes it. The
exit status is 1 when any check failed, 0 otherwise.
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

import requests

from chatapp.conversation import Message
from chatapp.models import PROVIDERS
from chatapp.models.base import ChatModel, GenerationParams, ModelError, ReplyStats
from chatapp.models.gemini import GeminiModel
from chatapp.settings import Settings, SettingsError, load_settings

PROBE_COLLECTION = "doctor_probes"  # never read by the chat; each probe document is deleted at once
TIMEOUT_S = 20.0
GEMMA_LOGS = (
    "`kubectl -n hybrid-chat logs deploy/gemma` (loading, GPU) and `kubectl -n hybrid-chat logs job/weights-copy` "
    "(a gated model needs the Pulumi secret hfToken)"
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: skipped (does not apply to this configuration)
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {True: "✓", False: "✗", None: "–"}[self.ok]
        fix = f" → fix: {self.fix}" if self.fix and not self.ok else ""
        return f"{mark} {self.name}: {self.detail}{fix}"


# -- history store -----------------------------------------------------------------------------------------


def check_store(settings: Settings) -> Check:
    if settings.store != "firestore":
        return Check("history", None, f"SQLite file {settings.sqlite_path} (CHAT_STORE=sqlite): no Firestore to probe")
    from google.api_core import exceptions as gexc
    from google.cloud import firestore

    where = f"database {settings.firestore_database}" + (
        f" in project {settings.google_cloud_project}" if settings.google_cloud_project else ""
    )
    name = "Firestore"
    try:
        client = firestore.Client(project=settings.google_cloud_project, database=settings.firestore_database)
        probe = client.collection(PROBE_COLLECTION).document(f"probe-{uuid.uuid4().hex[:12]}")
        written = {"by": "chatapp.doctor", "at": datetime.now(UTC).isoformat()}
        probe.set(written, timeout=TIMEOUT_S, retry=None)
        read = probe.get(timeout=TIMEOUT_S, retry=None).to_dict()
        probe.delete(timeout=TIMEOUT_S, retry=None)
        gone = not probe.get(timeout=TIMEOUT_S, retry=None).exists
    except (gexc.PermissionDenied, gexc.Unauthenticated) as exc:
        return Check(
            name,
            False,
            f"{where} refused the pod's identity: {exc.message}",
            "grant the chat's service account roles/datastore.user (`pulumi up` does), and check Workload Identity",
        )
    except gexc.NotFound as exc:
        return Check(
            name,
            False,
            f"{where} not found: {exc.message}",
            "set FIRESTORE_DATABASE (firestoreDatabase) to an existing database, or `pulumi up` to create it",
        )
    except Exception as exc:  # network, credentials, anything: one line, never a trace
        return Check(
            name,
            False,
            f"{where} unreachable ({type(exc).__name__}: {_short(exc)})",
            "check GOOGLE_CLOUD_PROJECT and FIRESTORE_DATABASE (firestoreDatabase), and the pod's network",
        )
    if read != written or not gone:
        return Check(name, False, f"{where}: the probe did not read back as written", "check FIRESTORE_DATABASE")
    return Check(name, True, f"wrote, read and deleted {PROBE_COLLECTION}/{probe.id} in {where}")


# -- models ------------------------------------------------------------------------------------------------


def _one_token(model: ChatModel) -> str | None:
    """None when the model answered a one-token request (a reply stopped at that limit counts: it answered)."""
    options = getattr(model, "options", None)
    levels = getattr(options, "thinking_levels", ())
    params = GenerationParams(max_tokens=1, thinking=levels[0] if levels else None)  # the least thinking
    stats = ReplyStats()
    stream = model.stream([_ping()], params, stats)
    try:
        for _ in stream:
            pass
    except ModelError as exc:
        if stats.finish_reason == "length":
            return None
        return str(exc)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    return None


def _ping() -> Message:
    return Message("user", "Reply with the single word: ok")


def check_gemini(settings: Settings) -> Check:
    model = PROVIDERS["gemini"](settings)
    name = f"Gemini {settings.gemini_model}"
    where = f" at {settings.gemini_location}" if isinstance(model, GeminiModel) and model.vertex else ""
    problem = model.check()  # credentials, then the model lookup
    if problem:
        return Check(name, False, problem, _gemini_fix(problem))
    failed = _one_token(model)
    if failed:
        return Check(name, False, f"exists, but did not answer: {failed}", _gemini_fix(failed))
    return Check(name, True, f"exists and answered one token{where}")


def _gemini_fix(problem: str) -> str:
    if "GEMINI_MODEL" in problem or "GOOGLE_CLOUD_LOCATION" in problem:
        return "the setting named above (change the Pulumi key, then `pulumi up`)"
    if "credentials" in problem or "not configured" in problem or "HTTP 403" in problem:
        return (
            "give the chat's service account roles/aiplatform.user and enable aiplatform.googleapis.com "
            "(`pulumi up` does both); locally set GEMINI_API_KEY or GOOGLE_GENAI_USE_VERTEXAI=true"
        )
    if "quota" in problem or "429" in problem:
        return "wait a minute, or raise the Vertex AI quota for the model in the Cloud console"
    return "check GEMINI_MODEL (geminiModel) and GOOGLE_CLOUD_LOCATION (geminiLocation)"


def check_self_hosted(settings: Settings, since: Callable[[str], float | None]) -> Check:
    model = PROVIDERS["openai_compat"](settings)
    name = f"self-hosted {settings.self_hosted_model}"
    problem = model.check()  # GET /v1/models: reachable, and serving our id?
    if problem and ("still starting" in problem or "not reachable" in problem):
        started = since(settings.self_hosted_label)
        when = f", unavailable since {_ago(started)} (the chat's status check)" if started else ""
        return Check(
            name,
            False,
            f"still loading or down at {settings.self_hosted_url}: {problem}{when}",
            f"wait for it; follow {GEMMA_LOGS}",
        )
    if problem:
        return Check(name, False, problem, f"the setting named above; the server's own log: {GEMMA_LOGS}")
    failed = _one_token(model)
    if failed:
        return Check(name, False, f"listed, but did not answer: {failed}", f"see {GEMMA_LOGS}")
    return Check(name, True, f"listed by {settings.self_hosted_url}/models and answered one token")


def _ago(moment: float) -> str:
    minutes = max(0, int(time.time() - moment)) // 60
    return f"{datetime.fromtimestamp(moment, UTC):%Y-%m-%d %H:%M:%S} UTC ({minutes} min ago)"


# -- media, sign-in, metrics --------------------------------------------------------------------------------


def check_media(settings: Settings) -> Check:
    if not settings.media_bucket:
        return Check("media", None, "images in a folder beside the SQLite file (CHAT_MEDIA_BUCKET unset)")
    from chatapp.media.gcs import GcsMediaStore

    bucket = settings.media_bucket
    store = GcsMediaStore(bucket)
    # The chat's own object naming (owner key/conversation/image), under an owner no person can be.
    owner, conversation = "doctor:probe", uuid.uuid4().hex
    try:
        ref = store.put(owner, conversation, b"doctor probe", "image/png")
        read = store.get(owner, conversation, ref.id)
        store.delete(owner, conversation, [ref.id])
    except Exception as exc:
        return Check(
            "media bucket",
            False,
            f"gs://{bucket}: {_short(exc)}",
            "grant the chat's service account roles/storage.objectUser on the bucket (`pulumi up` does); "
            "check CHAT_MEDIA_BUCKET",
        )
    if read != b"doctor probe":
        return Check("media bucket", False, f"gs://{bucket}: the probe did not read back", "check CHAT_MEDIA_BUCKET")
    return Check("media bucket", True, f"wrote, read and deleted an object in gs://{bucket}")


def check_sign_in(settings: Settings) -> Check:
    if settings.auth != "iap":
        return Check("sign-in", None, f"CHAT_AUTH={settings.auth}: no IAP audience needed")
    # load_settings already refused a missing or malformed audience; say which one this pod checks against.
    scope = "any backend service of the project" if settings.iap_audience.endswith("/") else "one backend service"
    return Check("sign-in", True, f"IAP audience {settings.iap_audience} ({scope})")


def check_metrics(settings: Settings, url: str | None) -> Check:
    if not url:
        return Check("metrics", None, "off (CHAT_METRICS_PORT=0)")
    try:
        response = requests.get(url, timeout=5)
    except requests.RequestException as exc:
        return Check(
            "metrics",
            False,
            f"{url} did not answer ({_short(exc)})",
            f"the chat serves /metrics on CHAT_METRICS_PORT ({settings.metrics_port}): is `python -m chatapp` "
            "running in this pod? `kubectl -n hybrid-chat logs deploy/chat`",
        )
    if response.status_code != 200 or "chat_turns" not in response.text:
        return Check(
            "metrics",
            False,
            f"{url} answered HTTP {response.status_code} without the chat's metrics",
            "check CHAT_METRICS_PORT",
        )
    return Check("metrics", True, f"{url} answers")


def since_from_metrics(url: str | None) -> Callable[[str], float | None]:
    """Since when the running chat has seen each model unavailable (its gauge on /metrics), when it says."""

    def since(label: str) -> float | None:
        if not url:
            return None
        try:
            text = requests.get(url, timeout=5).text
        except requests.RequestException:
            return None
        escaped = re.escape(label.replace("\\", "\\\\").replace('"', '\\"'))
        match = re.search(rf'^chat_model_unavailable_since_seconds\{{model="{escaped}"\}} (\S+)$', text, re.M)
        value = float(match.group(1)) if match else 0.0
        return value or None

    return since


# -- running ------------------------------------------------------------------------------------------------


def run(settings: Settings, out: TextIO = sys.stdout, metrics_host: str = "127.0.0.1") -> int:
    url = f"http://{metrics_host}:{settings.metrics_port}/metrics" if settings.metrics_port else None
    checks: list[Callable[[], Check]] = [
        lambda: check_store(settings),
        lambda: check_gemini(settings),
        lambda: check_self_hosted(settings, since_from_metrics(url)),
        lambda: check_media(settings),
        lambda: check_sign_in(settings),
        lambda: check_metrics(settings, url),
    ]
    failed = False
    for make in checks:
        result = make()
        failed = failed or result.ok is False
        print(result.line(), file=out, flush=True)
    return 1 if failed else 0


def main(env: Mapping[str, str] | None = None, out: TextIO = sys.stdout) -> int:
    try:
        settings = load_settings(env)
    except SettingsError as exc:
        # The message names the variable (e.g. CHAT_IAP_AUDIENCE for CHAT_AUTH=iap); the stack sets them all.
        print(Check("configuration", False, str(exc), "set it in the chat Deployment (`pulumi up`)").line(), file=out)
        return 1
    return run(settings, out)


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


if __name__ == "__main__":
    sys.exit(main())
