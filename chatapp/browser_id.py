"""The anonymous browser id of `CHAT_AUTH=none`: minted by the server only, never taken from a page.

A browser id is the credential of that mode (whoever holds the cookie owns the conversations), so a page must
not be able to choose one: a site that sets `hybrid-chat-browser=<a known id>` in a victim's browser would
otherwise read everything the victim writes. The cookie holds `<random id>.<HMAC of it>`; a value without a
valid HMAC under this server's key is refused and replaced by a fresh one.

The key comes from `CHAT_SECRET_KEY` (give every replica the same one), else from a key file created on first
start (beside the SQLite history, or in the user's cache folder with Firestore, so a laptop keeps its browsers
across restarts), else a random per-process key (then a restart starts every browser afresh).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

COOKIE = "hybrid-chat-browser"
MAX_AGE_S = 400 * 24 * 3600  # the longest browsers keep a cookie
_VALUE = re.compile(r"^([0-9a-f]{32})\.([0-9a-f]{32})$")


class BrowserIds:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the browser-id key needs at least 16 bytes")
        self._key = key

    def _mac(self, browser_id: str) -> str:
        return hmac.new(self._key, browser_id.encode(), hashlib.sha256).hexdigest()[:32]

    def mint(self) -> str:
        browser_id = secrets.token_hex(16)
        return f"{browser_id}.{self._mac(browser_id)}"

    def valid(self, value: str) -> bool:
        """Whether `value` is a cookie this server minted (with this key)."""
        match = _VALUE.match(value)
        return match is not None and hmac.compare_digest(match[2], self._mac(match[1]))


def cookie_header(value: str, https: bool) -> str:
    cookie = f"{COOKIE}={value}; Path=/; Max-Age={MAX_AGE_S}; HttpOnly; SameSite=Lax"
    return f"{cookie}; Secure" if https else cookie


def load_key(secret: str | None, key_file: Path | None) -> bytes:
    """The signing key: the setting, else the key file (created once), else random for this process."""
    if secret:
        return secret.encode()
    if key_file is not None:
        try:
            key_file.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # made by an earlier start (or a concurrent one)
            else:
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_hex(32))
            key = key_file.read_text().strip().encode()
            if len(key) >= 16:
                return key
            log.warning("the browser-id key in %s is too short: using a key for this process only", key_file)
        except OSError as exc:
            log.warning(
                "could not keep the browser-id key in %s (%s): using a key for this process only", key_file, exc
            )
    return secrets.token_bytes(32)
