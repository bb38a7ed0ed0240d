"""Every environment variable the chat service reads, validated in one place.

A bad value stops start-up with a message that names the variable, so a typo in a Deployment shows up in
`kubectl logs` as one clear line instead of a failure on the first chat.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlparse

from chatapp.drain import REPLY_BUDGET_S

AUTH_MODES = ("none", "password", "iap")
# IAP's audience for a backend service (the GKE Gateway's), exact or as the project's prefix.
IAP_AUDIENCE = re.compile(r"^/projects/[0-9]+/global/backendServices/(?:[0-9]+)?$")


class SettingsError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 7860
    # Prometheus /metrics on a port of its own (never behind the public front door); 0 turns it off.
    metrics_port: int = 9090
    store: str = "sqlite"
    sqlite_path: str = "./chat-history.sqlite3"
    firestore_database: str = "chat-app-db"
    google_cloud_project: str | None = None
    self_hosted_url: str = "http://127.0.0.1:8000/v1"
    # The stack's default Gemma preset (stack/presets.py; checked 2026-12-06): Gemma 4 31B, Google's 4-bit QAT
    # checkpoint, on 2 L4s.
    self_hosted_model: str = "google/gemma-4-31b-it-qat-w4a16-ct"
    # A label left empty follows the model id (`model_label`), so a changed id never shows another model's name.
    self_hosted_label: str = ""
    # Checked 2026-12-06: gemini-2.5-flash was retired on Vertex AI in October 2026; 3.8 Flash retires Sep 2027
    # at the earliest. README "Models in the chat" says how to move to a newer id.
    gemini_model: str = "gemini-3.8-flash"
    gemini_label: str = ""
    # Where Gemini is called (google-genai's GOOGLE_CLOUD_LOCATION), independent of the cluster's region: Gemini 3.x
    # is served from `global` and the `us`/`eu` multi-region endpoints.
    gemini_location: str = "global"
    # The entry that answers with the self-hosted model, or Gemini when that one cannot (chatapp/models/auto.py).
    auto_label: str = "Auto: self-hosted, else Gemini"
    concurrency: int = 64
    # Who may call: "none" (a random browser-id cookie is the credential), "password" (`auth_users`) or "iap"
    # (a verified Identity-Aware Proxy assertion on every request).
    auth: str = "none"
    # `user:password` pairs for CHAT_AUTH=password.
    auth_users: dict[str, str] = field(default_factory=dict)
    # Exact IAP audience, or a prefix ending in "/" (the backend service id is only known after deployment).
    iap_audience: str | None = None
    iap_certs_url: str = "https://www.gstatic.com/iap/verify/public_key"
    # Signs the browser ids of CHAT_AUTH=none (give every replica the same); None: a key file beside the SQLite
    # history, else a random key per process.
    secret_key: str | None = None
    # Behind Google's load balancer: the client address is the last X-Forwarded-For hop the balancer added.
    trusted_proxy: bool = False
    log_content: bool = False
    # Oldest turns are dropped beyond this many characters of prompt (~4 chars per token).
    context_chars: int = 24_000
    request_timeout_s: float = 120.0
    # After SIGTERM, how long replies in flight may go on before they are cut short and saved. The stack's
    # grace period is computed from the default (chatapp.drain), so the Deployment does not set this.
    shutdown_budget_s: float = REPLY_BUDGET_S
    # Tokens in + out one person may use per UTC day; None = no limit (usage is counted either way).
    daily_tokens: int | None = None
    # Cloud Storage bucket for images; None keeps them in a folder beside the SQLite file.
    media_bucket: str | None = None

    def __post_init__(self) -> None:
        if not self.self_hosted_label:
            object.__setattr__(self, "self_hosted_label", f"{model_label(self.self_hosted_model)} (self-hosted)")
        if not self.gemini_label:
            object.__setattr__(self, "gemini_label", model_label(self.gemini_model))


# Name parts written in capitals: sizes (12b, e4b, a4b) and QAT.
_SIZE = re.compile(r"^(?:[a-z]?\d+(?:\.\d+)?[bmk]|qat)$")
_INSTRUCT = ("it", "instruct")


def model_label(model_id: str) -> str:
    """A readable name made from a model id alone: `google/gemma-4-12b-it` → `Gemma 4 12B`, `gemini-3.8-flash` →
    `Gemini 3.8 Flash`, `google/gemma-4-31b-it-qat-w4a16-ct` → `Gemma 4 31B QAT` (after `it` only QAT says
    something to a person; the rest is the checkpoint format). The same rule as the stack's `display_name`. Made
    from the id, never from a table, so it cannot name a model that is not configured."""
    words = [w for w in re.split(r"[-_]", model_id.rsplit("/", 1)[-1].removesuffix(".gguf")) if w]
    cut = next((i for i, w in enumerate(words) if w.lower() in _INSTRUCT), None)
    if cut:
        words = words[:cut] + (["qat"] if "qat" in (w.lower() for w in words[cut:]) else [])
    return " ".join(w.upper() if _SIZE.match(w.lower()) else w.capitalize() for w in words)


def _text(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default).strip()
    if not value:
        raise SettingsError(f"{name} is set but empty; unset it to use the default {default!r}")
    return value


def _label(env: Mapping[str, str], name: str) -> str:
    """A label set by hand, or "" (unset) to have it follow the model id."""
    if name not in env:
        return ""
    value = env[name].strip()
    if not value:
        raise SettingsError(f"{name} is set but empty; unset it to name the model after its id")
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, default).strip().lower()
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {env.get(name)!r}")
    return value


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    value = _text(env, name, default)
    parsed = urlparse(value)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise SettingsError(f"{name} must be an http(s) URL such as {default!r}, got {value!r}")
    return value


def _base_url(env: Mapping[str, str], name: str, default: str) -> str:
    value = _text(env, name, default).rstrip("/")
    parsed = urlparse(value)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise SettingsError(f"{name} must be an http(s) URL such as {default!r}, got {value!r}")
    if not parsed.path.endswith("/v1"):
        raise SettingsError(f"{name} must end in /v1 (the OpenAI-compatible API root), got {value!r}")
    return value


def _auth_users(env: Mapping[str, str], name: str) -> dict[str, str]:
    raw = env.get(name, "").strip()
    users: dict[str, str] = {}
    if not raw:
        return users
    for pair in raw.split(","):
        user, sep, password = pair.strip().partition(":")
        if not sep or not user.strip() or not password:
            raise SettingsError(
                f"{name} must be comma-separated user:password pairs; one entry has no user or password"
            )
        if user.strip() in users:
            raise SettingsError(f"{name} lists the user {user.strip()!r} twice")
        users[user.strip()] = password
    return users


def _check_auth(settings: Settings) -> None:
    """A sign-in mode without what it needs, or settings for another mode, would fail open or confuse: refuse."""
    if settings.auth == "password" and not settings.auth_users:
        raise SettingsError("CHAT_AUTH=password needs CHAT_AUTH_USERS (user:password pairs, comma separated)")
    if settings.auth != "password" and settings.auth_users:
        raise SettingsError(f"CHAT_AUTH_USERS is set but CHAT_AUTH is {settings.auth!r}: set CHAT_AUTH=password")
    if settings.auth == "iap":
        audience = settings.iap_audience
        if not audience:
            raise SettingsError(
                "CHAT_AUTH=iap needs CHAT_IAP_AUDIENCE: /projects/NUMBER/global/backendServices/ID, "
                "or that prefix ending in '/'"
            )
        if not IAP_AUDIENCE.match(audience):
            raise SettingsError(
                "CHAT_IAP_AUDIENCE must look like /projects/NUMBER/global/backendServices/ID (exact) or "
                f"/projects/NUMBER/global/backendServices/ (any backend service of the project), got {audience!r}"
            )
    elif settings.iap_audience:
        raise SettingsError(f"CHAT_IAP_AUDIENCE is set but CHAT_AUTH is {settings.auth!r}: set CHAT_AUTH=iap")


# `global`, a multi-region (`us`, `eu`) or a region (`us-central1`, `europe-west4`).
_LOCATION = re.compile(r"^(?:global|[a-z]+|[a-z]+-[a-z]+[0-9]+)$")


def _location(env: Mapping[str, str], name: str, default: str) -> str:
    value = _text(env, name, default).lower()
    if not _LOCATION.match(value):
        raise SettingsError(
            f"{name} (the Gemini location; Pulumi key geminiLocation) must be global, a multi-region such as us or "
            f"eu, or a region such as us-central1, got {env.get(name)!r}"
        )
    return value


def _secret(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    if value and len(value) < 32:
        raise SettingsError(f"{name} must be at least 32 characters (e.g. `openssl rand -hex 32`), got {len(value)}")
    return value or None


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")


def _bucket(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if not _BUCKET.match(value.removeprefix("gs://")):
        raise SettingsError(f"{name} must be a Cloud Storage bucket name (3-63 of a-z 0-9 . _ -), got {value!r}")
    return value.removeprefix("gs://")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the environment; raise SettingsError naming the first bad variable."""
    env = os.environ if env is None else env
    defaults = Settings()
    settings = Settings(
        host=_text(env, "CHAT_HOST", defaults.host),
        port=_int(env, "CHAT_PORT", defaults.port, 1, 65535),
        metrics_port=_int(env, "CHAT_METRICS_PORT", defaults.metrics_port, 0, 65535),
        store=_choice(env, "CHAT_STORE", defaults.store, ("sqlite", "firestore")),
        sqlite_path=_text(env, "CHAT_SQLITE_PATH", defaults.sqlite_path),
        firestore_database=_text(env, "FIRESTORE_DATABASE", defaults.firestore_database),
        google_cloud_project=env.get("GOOGLE_CLOUD_PROJECT", "").strip() or None,
        self_hosted_url=_base_url(env, "SELF_HOSTED_URL", defaults.self_hosted_url),
        self_hosted_model=_text(env, "SELF_HOSTED_MODEL", defaults.self_hosted_model),
        # Unset labels stay empty here and follow the (possibly changed) model id in Settings.__post_init__.
        self_hosted_label=_label(env, "SELF_HOSTED_LABEL"),
        gemini_model=_text(env, "GEMINI_MODEL", defaults.gemini_model),
        gemini_label=_label(env, "GEMINI_LABEL"),
        gemini_location=_location(env, "GOOGLE_CLOUD_LOCATION", defaults.gemini_location),
        auto_label=_text(env, "AUTO_LABEL", defaults.auto_label),
        concurrency=_int(env, "CHAT_CONCURRENCY", defaults.concurrency, 1, 1024),
        auth=_choice(env, "CHAT_AUTH", defaults.auth, AUTH_MODES),
        auth_users=_auth_users(env, "CHAT_AUTH_USERS"),
        iap_audience=env.get("CHAT_IAP_AUDIENCE", "").strip() or None,
        iap_certs_url=_url(env, "CHAT_IAP_CERTS_URL", defaults.iap_certs_url),
        trusted_proxy=_bool(env, "CHAT_TRUSTED_PROXY", defaults.trusted_proxy),
        secret_key=_secret(env, "CHAT_SECRET_KEY"),
        log_content=_bool(env, "CHAT_LOG_CONTENT", defaults.log_content),
        context_chars=_int(env, "CHAT_CONTEXT_CHARS", defaults.context_chars, 1_000, 10_000_000),
        request_timeout_s=_float(env, "CHAT_REQUEST_TIMEOUT", defaults.request_timeout_s, 1.0, 3600.0),
        shutdown_budget_s=_float(env, "CHAT_SHUTDOWN_BUDGET", defaults.shutdown_budget_s, 0.0, REPLY_BUDGET_S),
        daily_tokens=_int(env, "CHAT_DAILY_TOKENS", 0, 1, 10**12) if env.get("CHAT_DAILY_TOKENS") else None,
        media_bucket=_bucket(env, "CHAT_MEDIA_BUCKET"),
    )
    _check_auth(settings)
    if settings.metrics_port == settings.port:
        raise SettingsError(
            f"CHAT_METRICS_PORT must differ from CHAT_PORT ({settings.port}), or be 0 to turn metrics off"
        )
    if settings.self_hosted_label == settings.gemini_label:
        raise SettingsError("SELF_HOSTED_LABEL and GEMINI_LABEL must differ: the model menu tells them apart by label")
    if settings.auto_label in (settings.self_hosted_label, settings.gemini_label):
        raise SettingsError("AUTO_LABEL must differ from SELF_HOSTED_LABEL and GEMINI_LABEL")
    return settings
