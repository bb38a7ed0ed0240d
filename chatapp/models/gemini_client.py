"""Which Gemini endpoint and credentials: the google-genai SDK's own environment, and the client made from it.

Configuration is the SDK's own environment (GOOGLE_GENAI_USE_VERTEXAI, GOOGLE_CLOUD_PROJECT,
GOOGLE_CLOUD_LOCATION, GEMINI_API_KEY / GOOGLE_API_KEY, GOOGLE_VERTEX_BASE_URL / GOOGLE_GEMINI_BASE_URL).
One SDK quirk shapes `make_client`: `genai.Client()` picks the base-URL override from the `vertexai`
*argument*, not from GOOGLE_GENAI_USE_VERTEXAI, so with only environment variables GOOGLE_VERTEX_BASE_URL
is ignored in Vertex mode (requests go to Google). We therefore resolve Vertex mode, project and location
from those same variables and pass them explicitly, which is otherwise exactly what the SDK would do.
"""

from __future__ import annotations

import os

from google import genai
from google.auth import exceptions as auth_errors
from google.genai import types

from chatapp.models.base import ModelUnavailable

HOW_TO_CONFIGURE = (
    "set GEMINI_API_KEY (an API key from Google AI Studio), or GOOGLE_GENAI_USE_VERTEXAI=true with "
    "GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION and Application Default Credentials "
    "(`gcloud auth application-default login`, or Workload Identity on GKE)"
)


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name)
    return None if value is None else value.strip().lower() in ("true", "1")


def vertex_mode() -> bool:
    """Whether requests go to Vertex AI rather than the Gemini API (API key)."""
    # The SDK lets GOOGLE_GENAI_USE_ENTERPRISE win over GOOGLE_GENAI_USE_VERTEXAI; mirror that.
    enterprise = _env_flag("GOOGLE_GENAI_USE_ENTERPRISE")
    return bool(enterprise if enterprise is not None else _env_flag("GOOGLE_GENAI_USE_VERTEXAI"))


def api_key() -> str | None:
    return (os.environ.get("GOOGLE_API_KEY") or os.environ.get("GEMINI_API_KEY") or "").strip() or None


def needs_project_lookup() -> bool:
    """Vertex mode without a project: the SDK will ask Application Default Credentials for one."""
    return vertex_mode() and not (os.environ.get("GOOGLE_CLOUD_PROJECT") or api_key())


def make_client(label: str, location: str, timeout_s: float) -> genai.Client:
    """A client for this environment (`location` in Vertex mode only); ModelUnavailable saying how to configure
    it when credentials are missing."""
    http_options = types.HttpOptions(timeout=int(timeout_s * 1000))
    try:
        if vertex_mode():
            return genai.Client(
                vertexai=True,
                project=os.environ.get("GOOGLE_CLOUD_PROJECT") or None,
                location=location,
                http_options=http_options,
            )
        if not api_key():
            raise ModelUnavailable(f"{label} is not configured: {HOW_TO_CONFIGURE}.")
        return genai.Client(http_options=http_options)
    except (ValueError, auth_errors.GoogleAuthError) as exc:
        raise ModelUnavailable(f"{label} is not configured ({exc}); {HOW_TO_CONFIGURE}.") from exc
