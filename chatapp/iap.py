"""Verify Identity-Aware Proxy assertions (`x-goog-iap-jwt-assertion`): who a request comes from, behind IAP.

IAP signs a short-lived ES256 JWT for every request it lets through. google-auth checks the signature, `iat` and
`exp`; it checks neither the issuer nor a prefix audience, so both are checked here. The public keys are fetched
from `CHAT_IAP_CERTS_URL` (Google's PEM map by default; a JWK set is accepted too) and cached: a verification
normally costs no network round trip, and an unknown key id (IAP rotates its keys) refetches at most once a
minute, so forged key ids cannot make the chat hammer the key server.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import google.auth.exceptions
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.auth import jwt

HEADER = "x-goog-iap-jwt-assertion"
ISSUER = "https://cloud.google.com/iap"
CLOCK_SKEW_S = 30  # what Google's own samples allow
KEYS_TTL_S = 3600.0
REFETCH_AFTER_S = 60.0  # earliest refetch for an unknown key id


class AssertionRefused(Exception):
    """The assertion is missing or invalid; the message is one line, safe to return to the caller."""


@dataclass(frozen=True)
class IapUser:
    email: str

    @property
    def owner(self) -> str:
        # Lower-cased: IAP passes the address as the person typed it at sign-in; one person, one list.
        return f"user:{self.email.lower()}"


def _b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _jwk_to_pem(key: Mapping[str, object]) -> bytes:
    if key.get("kty") != "EC" or key.get("crv") != "P-256":
        raise ValueError("only EC P-256 keys (ES256) are used by IAP")
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(_b64url(str(key["x"])), "big"), int.from_bytes(_b64url(str(key["y"])), "big"), ec.SECP256R1()
    )
    return numbers.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def parse_keys(document: object) -> dict[str, bytes]:
    """Key id → PEM public key, from Google's PEM map (`{kid: pem}`) or a JWK set (`{"keys": [...]}`)."""
    if not isinstance(document, dict):
        raise ValueError("the key document is not a JSON object")
    if isinstance(document.get("keys"), list):
        return {str(k["kid"]): _jwk_to_pem(k) for k in document["keys"] if isinstance(k, dict) and "kid" in k}
    return {str(kid): str(pem).encode() for kid, pem in document.items()}


class IapVerifier:
    def __init__(self, audience: str, certs_url: str, timeout_s: float = 5.0) -> None:
        self.audience = audience
        self.certs_url = certs_url
        self.timeout_s = timeout_s
        self._keys: dict[str, bytes] = {}
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()

    def _fetch(self) -> None:
        response = requests.get(self.certs_url, timeout=self.timeout_s)
        response.raise_for_status()
        self._keys = parse_keys(response.json())
        self._fetched_at = time.monotonic()

    def _keys_for(self, kid: str) -> dict[str, bytes]:
        with self._lock:  # one fetch at a time; the others wait for its result
            age = time.monotonic() - self._fetched_at
            if age > KEYS_TTL_S or (kid not in self._keys and age > REFETCH_AFTER_S):
                try:
                    self._fetch()
                except (requests.RequestException, ValueError, KeyError) as exc:
                    if not self._keys:
                        raise AssertionRefused(f"IAP public keys could not be fetched ({type(exc).__name__})") from None
            return self._keys

    def _audience_ok(self, audience: object) -> bool:
        if not isinstance(audience, str):
            return False
        if self.audience.endswith("/"):
            rest = audience[len(self.audience) :]
            return audience.startswith(self.audience) and rest.isdigit()
        return audience == self.audience

    def verify(self, assertion: str | None) -> IapUser:
        """The person behind a request, or AssertionRefused saying why not. Blocking: may fetch keys."""
        if not assertion:
            raise AssertionRefused(f"missing {HEADER} header: this service is only reachable through IAP")
        try:
            header = jwt.decode_header(assertion)
        except (ValueError, google.auth.exceptions.GoogleAuthError):
            raise AssertionRefused("malformed IAP assertion") from None
        if header.get("alg") != "ES256":
            raise AssertionRefused("IAP assertion is not signed with ES256")
        kid = header.get("kid")
        # Not a string: refused before any lookup (a list is not even hashable).
        if not isinstance(kid, str) or kid not in (keys := self._keys_for(kid)):
            raise AssertionRefused("IAP assertion signed with an unknown key")
        try:
            claims = jwt.decode(assertion, certs={kid: keys[kid]}, clock_skew_in_seconds=CLOCK_SKEW_S)
        except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
            raise AssertionRefused(f"IAP assertion refused: {_reason(exc)}") from None
        if claims.get("iss") != ISSUER:
            raise AssertionRefused("IAP assertion has the wrong issuer")
        if not self._audience_ok(claims.get("aud")):
            raise AssertionRefused("IAP assertion is for another audience")
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise AssertionRefused("IAP assertion carries no email")
        return IapUser(email)


def _reason(exc: Exception) -> str:
    text = str(exc).lower()
    if "expired" in text:
        return "expired"
    if "too early" in text:  # google-auth: "Token used too early"
        return "not valid yet"
    if "signature" in text:
        return "bad signature"
    return "invalid token"
