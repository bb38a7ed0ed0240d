"""Every environment variable the chat service reads, declared once: one field each, with its variable, bounds,
default and description; rules across variables are validators.

A bad value stops start-up with a message that names the variable, so a typo in a Deployment shows up in
`kubectl logs` as one clear line instead of a failure on the first chat. Defaults the stack shares come from
`chatapp.defaults`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from chatapp import defaults
from chatapp.drain import REPLY_BUDGET_S

AUTH_MODES = ("none", "password", "iap")
STORES = ("sqlite", "firestore")
# IAP's audience for a backend service (the GKE Gateway's), exact or as the project's prefix.
IAP_AUDIENCE = re.compile(r"^/projects/[0-9]+/global/backendServices/(?:[0-9]+)?$")
# `global`, a multi-region (`us`, `eu`) or a region (`us-central1`, `europe-west4`).
_LOCATION = re.compile(r"^(?:global|[a-z]+|[a-z]+-[a-z]+[0-9]+)$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
# Set but empty, these mean "follow the model id"; any other variable with an off value (None, False, no users)
# takes an empty value as unset, and the rest refuse it.
_LABELS = ("SELF_HOSTED_LABEL", "GEMINI_LABEL")


class SettingsError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


def _bad(reason: str) -> PydanticCustomError:
    """A refusal whose text is kept as it is (the loader puts the variable's name in front of a field's)."""
    return PydanticCustomError("settings", "{reason}", {"reason": reason})


def _var(default: Any, name: str, description: str, **bounds: Any) -> Any:
    return Field(default, alias=name, description=description, **bounds)


class Settings(BaseModel):
    """The chat's configuration. `load_settings` reads it from the environment; code and tests may build one
    directly by field name."""

    model_config = ConfigDict(frozen=True, validate_by_name=True, validate_by_alias=True, extra="forbid")

    host: str = _var("0.0.0.0", "CHAT_HOST", "Address the chat listens on.")
    port: int = _var(defaults.CHAT_PORT, "CHAT_PORT", "HTTP port of the chat.", ge=1, le=65535)
    metrics_port: int = _var(
        defaults.CHAT_METRICS_PORT,
        "CHAT_METRICS_PORT",
        "Prometheus /metrics on a port of its own (never behind the public front door); 0 turns it off.",
        ge=0,
        le=65535,
    )
    store: str = _var("sqlite", "CHAT_STORE", f"Where history is kept: {' or '.join(STORES)}.")
    sqlite_path: str = _var("./chat-history.sqlite3", "CHAT_SQLITE_PATH", "The SQLite history file.")
    firestore_database: str = _var(defaults.FIRESTORE_DATABASE, "FIRESTORE_DATABASE", "Firestore database id.")
    google_cloud_project: str | None = _var(None, "GOOGLE_CLOUD_PROJECT", "Project of Firestore and Gemini.")
    self_hosted_url: str = _var(
        "http://127.0.0.1:8000/v1", "SELF_HOSTED_URL", "The self-hosted model's OpenAI-compatible API root."
    )
    self_hosted_model: str = _var(defaults.SELF_HOSTED_MODEL, "SELF_HOSTED_MODEL", "The self-hosted model id.")
    # Left empty, a label follows the model id (`model_label`), so a changed id never shows another model's name.
    self_hosted_label: str = _var("", "SELF_HOSTED_LABEL", "Menu label of the self-hosted model.")
    self_hosted_wakes: bool = _var(
        True,
        "SELF_HOSTED_WAKES_ON_DEMAND",
        "The self-hosted server scales to zero and a turn for it wakes it: while it is down the chat says it is "
        "asleep or waking. False: it is down, and said to be unreachable.",
    )
    gemini_model: str = _var(defaults.GEMINI_MODEL, "GEMINI_MODEL", "Gemini model id on Vertex AI.")
    gemini_label: str = _var("", "GEMINI_LABEL", "Menu label of Gemini.")
    # google-genai's own variable, independent of the cluster's region.
    gemini_location: str = _var(defaults.GEMINI_LOCATION, "GOOGLE_CLOUD_LOCATION", "Where Gemini is called.")
    auto_label: str = _var(
        "Auto: self-hosted, else Gemini",
        "AUTO_LABEL",
        "Menu label of the entry that answers with the self-hosted model, or Gemini when that one cannot.",
    )
    concurrency: int = _var(
        defaults.CHAT_CONCURRENCY, "CHAT_CONCURRENCY", "Generations one replica runs at once.", ge=1, le=1024
    )
    auth: str = _var(
        "none",
        "CHAT_AUTH",
        "Who may call: none (a signed browser-id cookie), password (CHAT_AUTH_USERS) or iap (a verified "
        "Identity-Aware Proxy assertion on every request).",
    )
    auth_users: dict[str, str] = _var(
        {}, "CHAT_AUTH_USERS", "user:password pairs, comma separated (password).", repr=False
    )
    iap_audience: str | None = _var(None, "CHAT_IAP_AUDIENCE", "Exact IAP audience, or a prefix ending in '/' (iap).")
    iap_certs_url: str = _var(
        "https://www.gstatic.com/iap/verify/public_key", "CHAT_IAP_CERTS_URL", "IAP's public keys."
    )
    secret_key: str | None = _var(
        None,
        "CHAT_SECRET_KEY",
        "Signs browser ids and names sign-in cookies (give every replica the same); unset: a key file beside the "
        "SQLite history, else a random key per process.",
        repr=False,
    )
    trusted_proxy: bool = _var(
        False,
        "CHAT_TRUSTED_PROXY",
        "Behind Google's load balancer: the client address is the last X-Forwarded-For hop it added.",
    )
    log_content: bool = _var(False, "CHAT_LOG_CONTENT", "Log message text (never on by default).")
    context_chars: int = _var(
        24_000,
        "CHAT_CONTEXT_CHARS",
        "Characters of prompt kept (~4 a token); the oldest turns are dropped beyond.",
        ge=1_000,
        le=10_000_000,
    )
    request_timeout_s: float = _var(
        float(defaults.CHAT_REQUEST_TIMEOUT_S), "CHAT_REQUEST_TIMEOUT", "Seconds to wait on a model.", ge=1.0, le=3600.0
    )
    # The stack's grace period is computed from the default (chatapp.drain), so the Deployment does not set this.
    shutdown_budget_s: float = _var(
        REPLY_BUDGET_S,
        "CHAT_SHUTDOWN_BUDGET",
        "After SIGTERM, seconds replies in flight may go on before they are cut short and saved.",
        ge=0.0,
        le=REPLY_BUDGET_S,
    )
    daily_tokens: int | None = _var(
        None, "CHAT_DAILY_TOKENS", "Tokens in + out one person may use per UTC day; unset: no limit.", ge=1, le=10**12
    )
    media_bucket: str | None = _var(
        None, "CHAT_MEDIA_BUCKET", "Cloud Storage bucket for images; unset: a folder beside the SQLite file."
    )

    # -- one variable ------------------------------------------------------------------------------------------

    @field_validator("store", "auth", mode="before")
    @classmethod
    def _one_of(cls, value: object, info: ValidationInfo) -> object:
        choices = STORES if info.field_name == "store" else AUTH_MODES
        if not isinstance(value, str):
            return value
        if value.lower() not in choices and (info.field_name == "auth" or _from_environment(info)):
            # A store named in code is left to `open_store`, which refuses it naming CHAT_STORE itself.
            raise _bad(f"must be one of {', '.join(choices)}, got {value!r}")
        return value.lower() if value.lower() in choices else value

    @field_validator("self_hosted_url", "iap_certs_url", mode="before")
    @classmethod
    def _url(cls, value: object, info: ValidationInfo) -> object:
        """An http(s) URL like its field's default; the self-hosted model's is its OpenAI-compatible API root."""
        if not isinstance(value, str):
            return value
        api_root = info.field_name == "self_hosted_url"
        if api_root:
            value = value.rstrip("/")
        parsed = urlparse(value)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            example = cls.model_fields[str(info.field_name)].default
            raise _bad(f"must be an http(s) URL such as {example!r}, got {value!r}")
        if api_root and not parsed.path.endswith("/v1"):
            raise _bad(f"must end in /v1 (the OpenAI-compatible API root), got {value!r}")
        return value

    @field_validator("gemini_location", mode="before")
    @classmethod
    def _location(cls, value: object) -> object:
        if isinstance(value, str) and not _LOCATION.match(value.lower()):
            raise _bad(
                "(the Gemini location; Pulumi key geminiLocation) must be global, a multi-region such as us or eu, "
                f"or a region such as us-central1, got {value!r}"
            )
        return value.lower() if isinstance(value, str) else value

    @field_validator("secret_key", mode="before")
    @classmethod
    def _secret(cls, value: object) -> object:
        if isinstance(value, str) and len(value) < 32:
            raise _bad(f"must be at least 32 characters (e.g. `openssl rand -hex 32`), got {len(value)}")
        return value

    @field_validator("media_bucket", mode="before")
    @classmethod
    def _bucket(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.removeprefix("gs://")
            if not _BUCKET.match(value):
                raise _bad(f"must be a Cloud Storage bucket name (3-63 of a-z 0-9 . _ -), got {value!r}")
        return value

    @field_validator("trusted_proxy", "log_content", "self_hosted_wakes", mode="before")
    @classmethod
    def _bool(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        if value.lower() in {"1", "true", "yes", "on"}:
            return True
        if value.lower() in {"0", "false", "no", "off"}:
            return False
        raise _bad(f"must be true or false, got {value!r}")

    @field_validator("auth_users", mode="before")
    @classmethod
    def _users(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        users: dict[str, str] = {}
        for pair in value.split(","):
            user, sep, password = pair.strip().partition(":")
            if not sep or not user.strip() or not password:
                raise _bad("must be comma-separated user:password pairs; one entry has no user or password")
            if user.strip() in users:
                raise _bad(f"lists the user {user.strip()!r} twice")
            users[user.strip()] = password
        return users

    # -- across variables --------------------------------------------------------------------------------------

    @model_validator(mode="after")
    def _labels_follow_model_ids(self) -> Settings:
        if not self.self_hosted_label:
            object.__setattr__(self, "self_hosted_label", f"{model_label(self.self_hosted_model)} (self-hosted)")
        if not self.gemini_label:
            object.__setattr__(self, "gemini_label", model_label(self.gemini_model))
        return self

    @model_validator(mode="after")
    def _auth_has_what_it_needs(self) -> Settings:
        """A sign-in mode without what it needs, or settings for another mode, would fail open or confuse."""
        if self.auth == "password" and not self.auth_users:
            raise _bad("CHAT_AUTH=password needs CHAT_AUTH_USERS (user:password pairs, comma separated)")
        if self.auth != "password" and self.auth_users:
            raise _bad(f"CHAT_AUTH_USERS is set but CHAT_AUTH is {self.auth!r}: set CHAT_AUTH=password")
        if self.auth == "iap":
            if not self.iap_audience:
                raise _bad(
                    "CHAT_AUTH=iap needs CHAT_IAP_AUDIENCE: /projects/NUMBER/global/backendServices/ID, "
                    "or that prefix ending in '/'"
                )
            if not IAP_AUDIENCE.match(self.iap_audience):
                raise _bad(
                    "CHAT_IAP_AUDIENCE must look like /projects/NUMBER/global/backendServices/ID (exact) or "
                    "/projects/NUMBER/global/backendServices/ (any backend service of the project), "
                    f"got {self.iap_audience!r}"
                )
        elif self.iap_audience:
            raise _bad(f"CHAT_IAP_AUDIENCE is set but CHAT_AUTH is {self.auth!r}: set CHAT_AUTH=iap")
        return self

    @model_validator(mode="after")
    def _distinct(self) -> Settings:
        if self.metrics_port == self.port:
            raise _bad(f"CHAT_METRICS_PORT must differ from CHAT_PORT ({self.port}), or be 0 to turn metrics off")
        if self.self_hosted_label == self.gemini_label:
            raise _bad("SELF_HOSTED_LABEL and GEMINI_LABEL must differ: the model menu tells them apart by label")
        if self.auto_label in (self.self_hosted_label, self.gemini_label):
            raise _bad("AUTO_LABEL must differ from SELF_HOSTED_LABEL and GEMINI_LABEL")
        return self


def _from_environment(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("environment"))


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


# -- reading the environment ---------------------------------------------------------------------------------


def _read(env: Mapping[str, str]) -> dict[str, str]:
    """The variables that are set (stripped), by name; an empty one is unset where the field's default is an off
    value, refused otherwise."""
    values = {}
    for field in Settings.model_fields.values():
        name = str(field.alias)
        raw = env.get(name)
        if raw is None:
            continue
        value = raw.strip()
        if not value and name in _LABELS:
            raise SettingsError(f"{name} is set but empty; unset it to name the model after its id")
        if not value and (field.default is None or field.default is False or field.default == {}):
            continue
        if not value:
            raise SettingsError(f"{name} is set but empty; unset it to use the default {field.default!r}")
        values[name] = value
    return values


def _bounds(name: str) -> tuple[Any, Any]:
    field = next(f for f in Settings.model_fields.values() if f.alias == name)
    low = next((m.ge for m in field.metadata if hasattr(m, "ge")), None)
    high = next((m.le for m in field.metadata if hasattr(m, "le")), None)
    return low, high


def _message(error: Any) -> str:
    """One line naming the variable, for pydantic's first error."""
    if not error["loc"]:
        return error["msg"]  # a rule across variables: its message names them
    name, raw = error["loc"][0], error["input"]
    kind = error["type"]
    if kind in {"int_parsing", "int_from_float", "int_type"}:
        return f"{name} must be a whole number, got {raw!r}"
    if kind in {"float_parsing", "float_type", "finite_number"}:
        return f"{name} must be a number, got {raw!r}"
    if kind in {"greater_than_equal", "less_than_equal"}:
        low, high = _bounds(name)
        if low is None or high is None:
            return f"{name} must be at {'least' if high is None else 'most'} {low if high is None else high}, got {raw}"
        return f"{name} must be between {low} and {high}, got {raw}"
    return f"{name} {error['msg']}"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the environment; raise SettingsError naming the first bad variable."""
    env = os.environ if env is None else env
    values = _read(env)
    try:
        return Settings.model_validate(values, by_alias=True, context={"environment": True})
    except ValidationError as exc:
        raise SettingsError(_message(exc.errors(include_url=False)[0])) from None
