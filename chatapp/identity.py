"""Who is calling: derived from the HTTP request being handled, every time.

Never from Gradio state, the `session_hash`, or a value the client sends as data: Gradio keys `gr.State` by the
client-supplied `session_hash` alone, so anything kept there can be replayed by someone else.

Gradio puts the caller on every request it hands a handler (`gr.Request.username`), computed from that request
by the server's authentication (see `chatapp.web`):
- `CHAT_AUTH=iap`: `user:<email>` from a verified Identity-Aware Proxy assertion;
- `CHAT_AUTH=password`: the signed-in user name (Gradio's login), which `caller` turns into `user:<name>`;
- `CHAT_AUTH=none`: `browser:<id>`, a random id held in an HttpOnly cookie: whoever holds the cookie is the owner.
"""

from __future__ import annotations

from typing import Any

import gradio as gr


class NotSignedIn(gr.Error):
    """The request carries no identity (it should have been refused before reaching a handler)."""

    def __init__(self) -> None:
        super().__init__("You are not signed in (or your sign-in expired): reload the page.", print_exception=False)


def owner_id(username: str) -> str:
    """The owner id stored with conversations for a user name the server authenticated."""
    # Password-mode names cannot contain ":" (CHAT_AUTH_USERS is `user:password` pairs); every other mode's
    # authenticator already returns a prefixed id.
    return username if ":" in username else f"user:{username}"


def caller(request: Any) -> str:
    """The owner id of whoever sent `request` (a `gr.Request`); raises NotSignedIn when there is none."""
    username = getattr(request, "username", None) if request is not None else None
    if not isinstance(username, str) or not username:
        raise NotSignedIn()
    return owner_id(username)
