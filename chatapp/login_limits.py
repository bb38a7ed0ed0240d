"""Failed sign-ins, limited per user name and per client address.

The name counted is the one Gradio's `/login` signs in with: its form is read exactly as the login handler reads
it (multipart, which browsers send, or URL-encoded), and a form that names a field twice is refused outright,
because the handler would take one copy and a limiter another. Each address has its own count, so failures from
elsewhere never lock out a person signing in correctly from their own address.

With `shared` (the history store, chatapp.history.shared) the failures are also counted in the store, by wall
clock, so the limit holds for all replicas together instead of once per replica: one read of the two keys per
attempt, one transaction per failure (sign-ins are rare: nothing on the chat's hot path). The store calls block,
so the Guard calls these from a thread. If the store does not answer, this replica's own count still applies.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.datastructures import Headers
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from chatapp.gradio_compat import LOGIN_FIELDS, login_name
from chatapp.history.base import StoreError
from chatapp.history.shared import SharedState

log = logging.getLogger(__name__)

LOGIN_FAILURES_PER_MINUTE = 10


class BadLoginForm(ValueError):
    """The sign-in form cannot be read unambiguously; the message says why (answered with 400)."""


@dataclass
class LoginLimiter:
    """At most `limit` failed logins per key (client address, user name) in any `window_s` seconds."""

    limit: int = LOGIN_FAILURES_PER_MINUTE
    window_s: float = 60.0
    max_keys: int = 100_000
    shared: SharedState | None = None
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)  # the Guard calls from threads

    def retry_after(self, keys: Iterable[str], now: float | None = None) -> int | None:
        """Seconds until the next attempt is allowed, or None if it is allowed now."""
        now = time.monotonic() if now is None else now
        keys = list(keys)
        wait = self._shared_wait(keys)
        with self._lock:
            for key in keys:
                times = self._failures.get(key)
                while times and now - times[0] >= self.window_s:
                    times.popleft()
                if times is not None and len(times) >= self.limit:
                    wait = max(wait, self.window_s - (now - times[0]))
        return max(1, round(wait + 0.5)) if wait else None

    def _shared_wait(self, keys: list[str]) -> float:
        if self.shared is None:
            return 0.0
        try:
            stored = self.shared.sign_in_failures(keys)
        except StoreError as exc:
            log.warning("could not read failed sign-ins from the store: %s", exc)
            return 0.0
        now, wait = time.time(), 0.0
        for times in stored.values():
            recent = [t for t in times if now - t < self.window_s]
            if len(recent) >= self.limit:
                wait = max(wait, self.window_s - (now - recent[-self.limit]))
        return wait

    def failed(self, keys: Iterable[str], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        keys = list(keys)
        if self.shared is not None:
            try:
                self.shared.add_sign_in_failure(keys, time.time(), self.limit, self.window_s)
            except StoreError as exc:
                log.warning("could not count a failed sign-in in the store: %s", exc)
        with self._lock:
            for key in keys:
                self._failures.setdefault(key, deque(maxlen=self.limit)).append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)


async def login_user_name(request: Request) -> str:
    """The user name this sign-in form signs in as (as Gradio's handler reads it), case-folded for counting."""
    try:
        form = await request.form()
    except MultiPartException as exc:
        raise BadLoginForm(f"The sign-in form could not be read: {exc.message}") from None
    try:
        for name in LOGIN_FIELDS:
            if len(form.getlist(name)) > 1:
                raise BadLoginForm(f"The sign-in form names {name!r} more than once: send it once.")
        value = form.get("username")
        return login_name(value if isinstance(value, str) else "").casefold()
    finally:
        await form.close()


def client_address(headers: Headers, peer: str | None, trusted_proxy: bool) -> str:
    """The caller's address. Behind Google's load balancer (`trusted_proxy`), X-Forwarded-For reads
    `<whatever the client sent>, <client>, <balancer>`: the client is the second-to-last entry, the ones before
    it are the client's own word."""
    forwarded = headers.get("x-forwarded-for") if trusted_proxy else None
    if forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-2] if len(hops) >= 2 else hops[-1]
    return peer or "unknown"
