"""Password sign-ins every replica can check, and sign-out that holds on all of them.

Gradio 6.31's password sign-in (gradio/routes.py) keeps `app.tokens`, a dict from a random cookie token to the
user name, in one process, under a cookie named after `app.cookie_id`, also random per process: after the load
balancer moves a person to another replica they are signed out there. `share_sign_ins` replaces both:

- the cookie name is derived from CHAT_SECRET_KEY, which every replica shares (a Kubernetes Secret);
- the token map is kept in Firestore (`sign_ins/{sha256 of the token}`: the store never holds a usable token).
  A token found valid is trusted for CHECK_S before it is read again, so a sign-out on one replica holds on
  every other within CHECK_S. Gradio's /logout deletes each of the user's tokens it knows; each deletion
  deletes every sign-in of that user, so signing out signs out everywhere, as Gradio's default does.

With SQLite history there is one process, and Gradio's own dict is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any

from chatapp import gradio_compat

log = logging.getLogger(__name__)

COLLECTION = "sign_ins"
CHECK_S = 5.0  # how stale a replica's view of a sign-out may be
TIMEOUT_S = 3.0  # a sign-in check waits no longer on the store (it runs on the request path)


def cookie_id(secret_key: str) -> str:
    """The same cookie-name suffix on every replica that shares the key (Gradio's is random per process)."""
    return hmac.new(secret_key.encode(), b"gradio-cookie-id", hashlib.sha256).hexdigest()[:32]


class SharedTokens(MutableMapping[str, str]):
    """Gradio's token → user-name map, kept in a Firestore collection."""

    def __init__(self, collection: Any, check_s: float = CHECK_S) -> None:
        self._docs = collection
        self.check_s = check_s
        self._seen: dict[str, tuple[str, float]] = {}  # token → (user, when the store last said so)
        self._lock = threading.Lock()

    @staticmethod
    def _id(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def __setitem__(self, token: str, user: str) -> None:
        self._docs.document(self._id(token)).set({"user": user, "created_at": datetime.now(UTC)}, timeout=TIMEOUT_S)
        with self._lock:
            self._seen[token] = (user, time.monotonic())

    def __getitem__(self, token: str) -> str:
        if not isinstance(token, str) or not token:
            raise KeyError(token)
        with self._lock:
            cached = self._seen.get(token)
        if cached is not None and time.monotonic() - cached[1] < self.check_s:
            return cached[0]
        try:
            snapshot = self._docs.document(self._id(token)).get(timeout=TIMEOUT_S)
        except Exception as exc:  # the store is unreachable: a sign-in already seen stays valid meanwhile
            log.warning("could not check a sign-in: %s", exc)
            if cached is not None:
                return cached[0]
            raise KeyError(token) from None
        user = snapshot.get("user") if snapshot.exists else None
        with self._lock:
            if isinstance(user, str):
                self._seen[token] = (user, time.monotonic())
            else:
                self._seen.pop(token, None)
        if not isinstance(user, str):
            raise KeyError(token)
        return user

    def __delitem__(self, token: str) -> None:
        user = self[token]
        from google.cloud.firestore_v1.base_query import FieldFilter  # only with Firestore history

        for snapshot in self._docs.where(filter=FieldFilter("user", "==", user)).stream(timeout=TIMEOUT_S):
            snapshot.reference.delete(timeout=TIMEOUT_S)
        with self._lock:
            for seen in [t for t, (u, _) in self._seen.items() if u == user]:
                del self._seen[seen]

    def __iter__(self) -> Iterator[str]:  # the tokens this replica has seen: Gradio's /logout walks them
        with self._lock:
            return iter(list(self._seen))

    def __len__(self) -> int:
        return len(self._seen)


def share_sign_ins(gradio_app: Any, secret_key: str | None, firestore_client: Any | None) -> None:
    """Make the mounted Gradio app's password sign-ins valid on every replica (see the module's text)."""
    gradio_compat.share_sign_ins(
        gradio_app,
        cookie_id(secret_key) if secret_key else None,
        SharedTokens(firestore_client.collection(COLLECTION)) if firestore_client is not None else None,
    )
