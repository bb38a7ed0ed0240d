"""Failed sign-ins, limited per user name and per client address.

The name counted is the one Gradio's `/login` signs in with: its form is read exactly as the login handler reads
it (multipart, which browsers send, or URL-encoded), and a form that names a field twice is refused outright,
because the handler would take one copy and a limiter another. Each address has its own count, so failures from
elsewhere never lock out a person signing in correctly from their own address.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.datastructures import Headers
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from chatapp.gradio_compat import LOGIN_FIELDS, login_name

LOGIN_FAILURES_PER_MINUTE = 10


class BadLoginForm(ValueError):
    """The sign-in form cannot be read unambiguously; the message says why (answered with 400)."""


@dataclass
class LoginLimiter:
    """At most `limit` failed logins per key (client address, user name) in any `window_s` seconds."""

    limit: int = LOGIN_FAILURES_PER_MINUTE
    window_s: float = 60.0
    max_keys: int = 100_000
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def retry_after(self, keys: Iterable[str], now: float | None = None) -> int | None:
        """Seconds until the next attempt is allowed, or None if it is allowed now."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        for key in keys:
            times = self._failures.get(key)
            while times and now - times[0] >= self.window_s:
                times.popleft()
            if times is not None and len(times) >= self.limit:
                wait = max(wait, self.window_s - (now - times[0]))
        return max(1, round(wait + 0.5)) if wait else None

    def failed(self, keys: Iterable[str], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
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
