"""A stand-in for Identity-Aware Proxy's signing side: real ES256 keys made by the test, served as a JWK set.

IAP signs `x-goog-iap-jwt-assertion` with ES256 and publishes its public keys; the chat fetches them from
`CHAT_IAP_CERTS_URL`. Here the keys are generated per test session and served on 127.0.0.1 in the JWK-set form
(`{"keys": [{"kty": "EC", "crv": "P-256", "kid", "x", "y", "alg": "ES256", "use": "sig"}]}`), the same shape as
Google's `public_key-jwk` document; `pem_map()` gives Google's other form (`{kid: PEM}`).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.auth import crypt, jwt

ISSUER = "https://cloud.google.com/iap"
PROJECT_NUMBER = "123456789012"
PREFIX = f"/projects/{PROJECT_NUMBER}/global/backendServices/"
AUDIENCE = f"{PREFIX}4242424242424242"


def _b64(number: int) -> str:
    return base64.urlsafe_b64encode(number.to_bytes(32, "big")).rstrip(b"=").decode()


class SigningKey:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = ec.generate_private_key(ec.SECP256R1())
        pem = self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self.signer = crypt.EsSigner.from_string(pem, key_id=kid)

    def jwk(self) -> dict[str, str]:
        numbers = self.private.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "kid": self.kid,
            "x": _b64(numbers.x),
            "y": _b64(numbers.y),
            "alg": "ES256",
            "use": "sig",
        }

    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def assertion(
        self,
        email: str = "ada@example.com",
        *,
        audience: str = AUDIENCE,
        issuer: str = ISSUER,
        issued: float | None = None,
        lifetime_s: float = 600,
        kid: str | None = None,
        **claims: Any,
    ) -> str:
        """An IAP-shaped assertion; every field can be bent to make a bad one."""
        now = time.time() if issued is None else issued
        payload = {
            "iss": issuer,
            "aud": audience,
            "iat": int(now),
            "exp": int(now + lifetime_s),
            "sub": f"accounts.google.com:{abs(hash(email))}",
            "email": email,
            **claims,
        }
        return jwt.encode(self.signer, payload, key_id=kid or self.kid).decode()


class KeyServer:
    """Serves `/jwk` (JWK set) and `/pem` (kid → PEM map) for the given keys on 127.0.0.1; counts fetches."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.fetches += 1
                if self.path == "/jwk":
                    body = {"keys": [k.jwk() for k in server.keys]}
                elif self.path == "/pem":
                    body = {k.kid: k.public_pem() for k in server.keys}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.jwk_url = f"{self.url}/jwk"
        self.pem_url = f"{self.url}/pem"

    def __enter__(self) -> Self:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
