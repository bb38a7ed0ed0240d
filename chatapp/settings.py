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
    self_hosted_model: str = "google/gemma-3-12b-it"
    self_hosted_label: str = "Gemma 3 12B (self-hosted)"
    gemini_model: str = "gemini-2.5-flash"
    gemini_label: str = "Gemini 2.5 Flash (Vertex AI)"
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
    # Tokens in + out one person may use per UTC day; None = no limit (usage is counted either way).
    daily_tokens: int | None = None
    # Cloud Storage bucket for images; None keeps them in a folder beside the SQLite file.
    media_bucket: str | None = None


def _text(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default).strip()
    if not value:
        raise SettingsError(f"{name} is set but empty; unset it to use the default {default!r}")
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
        self_hosted_label=_text(env, "SELF_HOSTED_LABEL", defaults.self_hosted_label),
        gemini_model=_text(env, "GEMINI_MODEL", defaults.gemini_model),
        gemini_label=_text(env, "GEMINI_LABEL", defaults.gemini_label),
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
