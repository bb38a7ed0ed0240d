"""Password sign-ins every replica can check, and sign-out that holds on all of them.

Gradio 6.31's password sign-in (gradio/routes.py) keeps `app.tokens`, a dict from a random cookie token to the
user name, in one process, under a cookie named after `app.cookie_id`, also random per process: after the load
balancer moves a person to another replica they are signed out there. `share_sign_ins` replaces both:

- the cookie name is derived from CHAT_SECRET_KEY, which every replica shares (a Kubernetes Secret);
- the token map is kept in Firestore (`sign_ins/{sha256 of the token}`: the store never holds a usable token).
  A token found valid is trusted for CHECK_S before it is read again, so a sign-out on one replica holds on
  every other within CHECK_S. Gradio's /logout deletes each of the user's tokens it knows; each deletion
  deletes every sign-in of that user, so signing out signs out everywhere, as Gradio's default does.

The store is read off the event loop: the Guard checks each request's cookie with `signed_in_user`, which
answers from the cache or reads the store in a thread, and caches "no such sign-in" too, so Gradio's own
look-ups of the same cookie right after (its routes read `app.tokens` synchronously) find the answer cached.
The cache is bounded (SEEN_MAX, least recently checked forgotten first).

With SQLite history there is one process, and Gradio's own dict is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from google.api_core.exceptions import DeadlineExceeded, ServiceUnavailable
from google.api_core.retry import Retry, if_exception_type

from chatapp import gradio_compat

log = logging.getLogger(__name__)

COLLECTION = "sign_ins"
CHECK_S = 5.0  # how stale a replica's view of a sign-out may be
TIMEOUT_S = 3.0  # a sign-in check waits no longer on the store (it runs on the request path)
SEEN_MAX = 50_000  # cached answers (valid or not) kept at most
# The client's default retry would go on for a minute: a check gives up after TIMEOUT_S in all.
_RETRY = Retry(predicate=if_exception_type(ServiceUnavailable, DeadlineExceeded), timeout=TIMEOUT_S)


def cookie_id(secret_key: str) -> str:
    """The same cookie-name suffix on every replica that shares the key (Gradio's is random per process)."""
    return hmac.new(secret_key.encode(), b"gradio-cookie-id", hashlib.sha256).hexdigest()[:32]


class SharedTokens(MutableMapping[str, str]):
    """Gradio's token → user-name map, kept in a Firestore collection."""

    def __init__(self, collection: Any, check_s: float = CHECK_S) -> None:
        self._docs = collection
        self.check_s = check_s
        # token → (user, or None for "no such sign-in", when the store last said so)
        self._seen: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _id(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def __setitem__(self, token: str, user: str) -> None:
        self._docs.document(self._id(token)).set({"user": user, "created_at": datetime.now(UTC)}, timeout=TIMEOUT_S)
        with self._lock:
            self._seen[token] = (user, time.monotonic())

    def cached(self, token: str) -> tuple[str | None] | None:
        """(user or None,) when the cache answers for `token` now; None when the store must be read."""
        with self._lock:
            cached = self._seen.get(token)
            if cached is not None and time.monotonic() - cached[1] < self.check_s:
                self._seen.move_to_end(token)
                return (cached[0],)
        return None

    def __getitem__(self, token: str) -> str:
        if not isinstance(token, str) or not token:
            raise KeyError(token)
        known = self.cached(token)
        user = known[0] if known is not None else self._check(token)
        if user is None:
            raise KeyError(token)
        return user

    def _check(self, token: str) -> str | None:
        """Read the store (blocking: call it from a thread on a request's path)."""
        try:
            snapshot = self._docs.document(self._id(token)).get(retry=_RETRY, timeout=TIMEOUT_S)
        except Exception as exc:  # the store is unreachable: a sign-in already seen stays valid meanwhile
            log.warning("could not check a sign-in: %s", exc)
            with self._lock:
                cached = self._seen.get(token)
            user = cached[0] if cached is not None else None
        else:
            value = snapshot.get("user") if snapshot.exists else None
            user = value if isinstance(value, str) else None
        # Cached either way, so Gradio's own look-ups right after (on the event loop) never wait on the store.
        with self._lock:
            self._seen[token] = (user, time.monotonic())
            self._seen.move_to_end(token)
            while len(self._seen) > SEEN_MAX:
                self._seen.popitem(last=False)
        return user

    async def user_of(self, token: str) -> str | None:
        """The signed-in user of `token`, or None; reads the store in a thread, never on the event loop."""
        if not token:
            return None
        known = self.cached(token)
        return known[0] if known is not None else await anyio.to_thread.run_sync(self._check, token)

    def __delitem__(self, token: str) -> None:
        user = self[token]
        from google.cloud.firestore_v1.base_query import FieldFilter  # only with Firestore history

        for snapshot in self._docs.where(filter=FieldFilter("user", "==", user)).stream(timeout=TIMEOUT_S):
            snapshot.reference.delete(timeout=TIMEOUT_S)
        with self._lock:
            for seen in [t for t, (u, _) in self._seen.items() if u == user]:
                self._seen[seen] = (None, time.monotonic())

    def __iter__(self) -> Iterator[str]:  # the valid tokens this replica has seen: Gradio's /logout walks them
        with self._lock:
            return iter([t for t, (u, _) in self._seen.items() if u is not None])

    def __len__(self) -> int:
        return len(list(iter(self)))


async def signed_in_user(gradio: Any, cookies: Mapping[str, str]) -> str | None:
    """The user the request's sign-in cookie belongs to, checked without blocking the event loop."""
    tokens = gradio.tokens
    if not isinstance(tokens, SharedTokens):  # Gradio's own in-memory dict: nothing to wait for
        return gradio_compat.signed_in_user(gradio, cookies)
    secure, plain = gradio_compat.session_cookie_names(gradio)
    return await tokens.user_of(cookies.get(secure) or cookies.get(plain) or "")


def share_sign_ins(gradio_app: Any, secret_key: str | None, firestore_client: Any | None) -> None:
    """Make the mounted Gradio app's password sign-ins valid on every replica (see the module's text)."""
    gradio_compat.share_sign_ins(
        gradio_app,
        cookie_id(secret_key) if secret_key else None,
        SharedTokens(firestore_client.collection(COLLECTION)) if firestore_client is not None else None,
    )
