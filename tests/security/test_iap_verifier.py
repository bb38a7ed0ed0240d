"""IAP assertions: real ES256 signatures, keys fetched over HTTP from a local key server, every refusal named."""

import base64
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor, wait
from types import SimpleNamespace

import pytest
from google.auth import jwt

from chatapp import iap
from chatapp.iap import AssertionRefused, IapVerifier
from tests.security.iap_keys import AUDIENCE, PREFIX, KeyServer, SigningKey

KEY = SigningKey("key-1")
OTHER = SigningKey("key-2")  # a real key IAP never published


@pytest.fixture(scope="module")
def keys():
    with KeyServer(KEY) as server:
        yield server


@pytest.fixture
def verifier(keys):
    return IapVerifier(AUDIENCE, keys.jwk_url)


def test_a_valid_assertion_names_the_person_lower_cased(verifier):
    user = verifier.verify(KEY.assertion("Ada.Lovelace@Example.COM"))
    assert user.email == "Ada.Lovelace@Example.COM"
    assert user.owner == "user:ada.lovelace@example.com"


def test_googles_pem_map_form_works_too(keys):
    assert IapVerifier(AUDIENCE, keys.pem_url).verify(KEY.assertion()).owner == "user:ada@example.com"


def test_a_prefix_audience_accepts_any_backend_service_of_the_project(keys):
    verifier = IapVerifier(PREFIX, keys.jwk_url)
    assert verifier.verify(KEY.assertion(audience=f"{PREFIX}987654321")).owner == "user:ada@example.com"
    for audience in (f"{PREFIX}", f"{PREFIX}12/extra", "/projects/999/global/backendServices/1", f"{PREFIX}1x"):
        with pytest.raises(AssertionRefused, match="another audience"):
            verifier.verify(KEY.assertion(audience=audience))


def test_an_exact_audience_matches_only_itself(verifier):
    # A longer number, a path under it, or the audience inside another string are other backend services.
    for audience in (f"{AUDIENCE}7", f"{AUDIENCE}/x", f"/x{AUDIENCE}", AUDIENCE[:-1], AUDIENCE.upper()):
        with pytest.raises(AssertionRefused, match="another audience"):
            verifier.verify(KEY.assertion(audience=audience))
    assert verifier.verify(KEY.assertion(audience=AUDIENCE)).owner == "user:ada@example.com"


def claims_without(name: str) -> str:
    """KEY's assertion without one of the claims google-auth requires."""
    payload = {"iss": iap.ISSUER, "aud": AUDIENCE, "iat": int(time.time()), "exp": int(time.time()) + 600}
    payload["email"] = "ada@example.com"
    del payload[name]
    return jwt.encode(KEY.signer, payload).decode()


# The refusal's message is returned to the caller as it is: each is checked whole.
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: None, "missing x-goog-iap-jwt-assertion header: this service is only reachable through IAP"),
        (lambda: "", "missing x-goog-iap-jwt-assertion header: this service is only reachable through IAP"),
        (lambda: "not-a-jwt", "malformed IAP assertion"),
        (lambda: "a.b.c", "malformed IAP assertion"),
        (lambda: KEY.assertion(issued=time.time() - 3600), "IAP assertion refused: expired"),
        (lambda: KEY.assertion(issued=time.time() + 600), "IAP assertion refused: not valid yet"),
        (lambda: claims_without("iat"), "IAP assertion refused: invalid token"),
        (
            lambda: KEY.assertion(audience="/projects/1/global/backendServices/2"),
            "IAP assertion is for another audience",
        ),
        (lambda: KEY.assertion(audience=None), "IAP assertion is for another audience"),
        (lambda: KEY.assertion(issuer="https://accounts.google.com"), "IAP assertion has the wrong issuer"),
        (lambda: OTHER.assertion(kid="key-1"), "IAP assertion refused: bad signature"),  # a stranger claiming IAP's kid
        (lambda: OTHER.assertion(), "IAP assertion signed with an unknown key"),
        (lambda: KEY.assertion(email=None), "IAP assertion carries no email"),
        (lambda: KEY.assertion(email="ada.example.com"), "IAP assertion carries no email"),
    ],
    ids=[
        "none",
        "empty",
        "garbage",
        "three-dots",
        "expired",
        "future",
        "no-iat",
        "audience",
        "no-audience",
        "issuer",
        "forged-signature",
        "unknown-kid",
        "no-email",
        "not-an-address",
    ],
)
def test_every_bad_assertion_is_refused_with_its_reason(verifier, make, message):
    with pytest.raises(AssertionRefused) as refused:
        verifier.verify(make())
    assert str(refused.value) == message


@pytest.mark.parametrize("kid", [None, 7, ["key-1"], {"key-1": 1}])
def test_a_key_id_that_is_not_a_string_is_an_unknown_key(keys, kid):
    header = {"alg": "ES256", "typ": "JWT"} | ({} if kid is None else {"kid": kid})
    _, payload, signature = KEY.assertion().split(".")
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    verifier = IapVerifier(AUDIENCE, keys.jwk_url)
    before = keys.fetches
    with pytest.raises(AssertionRefused) as refused:
        verifier.verify(f"{encoded}.{payload}.{signature}")
    assert str(refused.value) == "IAP assertion signed with an unknown key"
    assert keys.fetches == before  # nothing to look up, so nothing fetched


def test_keys_are_fetched_with_a_five_second_timeout_by_default(keys):
    # What the chat passes (server.py gives no timeout): one slow key server costs a request at most this long.
    assert IapVerifier(AUDIENCE, keys.jwk_url).timeout_s == 5.0


def test_an_unsigned_or_hmac_token_is_refused(verifier):
    good = KEY.assertion()
    _, payload, _ = good.split(".")
    # {"alg":"none"} and {"alg":"HS256"} headers in front of IAP's own claims.
    for forged_header in ("eyJhbGciOiJub25lIiwia2lkIjoia2V5LTEifQ", "eyJhbGciOiJIUzI1NiIsImtpZCI6ImtleS0xIn0"):
        with pytest.raises(AssertionRefused) as refused:
            verifier.verify(f"{forged_header}.{payload}.")
        assert str(refused.value) == "IAP assertion is not signed with ES256"


def test_clock_skew_of_30_seconds_is_tolerated(verifier):
    assert verifier.verify(KEY.assertion(issued=time.time() - 600 - 20)).email == "ada@example.com"
    with pytest.raises(AssertionRefused, match="expired"):
        verifier.verify(KEY.assertion(issued=time.time() - 600 - 60))


def test_keys_are_cached_and_unknown_key_ids_do_not_hammer_the_key_server(keys, verifier):
    before = keys.fetches
    for _ in range(20):
        verifier.verify(KEY.assertion())
    for _ in range(20):
        with pytest.raises(AssertionRefused):
            verifier.verify(OTHER.assertion())
    assert keys.fetches - before == 1


def test_unreachable_key_server_refuses_rather_than_accepting():
    with pytest.raises(AssertionRefused) as refused:
        IapVerifier(AUDIENCE, "http://127.0.0.1:9/jwk", timeout_s=1).verify(KEY.assertion())
    assert str(refused.value) == "IAP public keys could not be fetched (ConnectionError)"


def test_a_key_server_that_never_answers_is_given_up_on_after_the_timeout():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # connections queue in its backlog, never answered
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/jwk"
        with ThreadPoolExecutor(1) as pool:
            attempt = pool.submit(IapVerifier(AUDIENCE, url, timeout_s=0.5).verify, KEY.assertion())
            try:
                wait([attempt], timeout=10)
                assert attempt.done(), "still waiting for a silent key server 10 s on, with a 0.5 s timeout"
            finally:
                silent.close()  # resets a hung request, so the pool can shut down
    assert isinstance(attempt.exception(), AssertionRefused)
    assert str(attempt.exception()) == "IAP public keys could not be fetched (ReadTimeout)"


def test_key_documents_in_both_forms_and_what_is_not_one():
    jwk_set = {"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}, KEY.jwk(), "key-2"]}
    assert iap.parse_keys(jwk_set) == {"key-1": KEY.public_pem().encode()}  # entries without a kid are skipped
    assert iap.parse_keys({"key-1": KEY.public_pem()}) == {"key-1": KEY.public_pem().encode()}
    with pytest.raises(ValueError, match=r"^the key document is not a JSON object$"):
        iap.parse_keys([KEY.jwk()])
    for kty, crv in (("RSA", "P-256"), ("EC", "P-384"), ("OKP", "Ed25519")):
        with pytest.raises(ValueError, match=r"^only EC P-256 keys \(ES256\) are used by IAP$"):
            iap.parse_keys({"keys": [{**KEY.jwk(), "kty": kty, "crv": crv}]})


def test_keys_are_refetched_after_their_lifetime_so_a_revoked_key_stops_working(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(iap, "time", SimpleNamespace(monotonic=lambda: now[0]))
    with KeyServer(KEY) as server:
        verifier = IapVerifier(AUDIENCE, server.jwk_url)
        assert verifier.verify(KEY.assertion()).email == "ada@example.com"
        server.keys = [OTHER]  # IAP rotated: KEY is no longer published
        now[0] += iap.KEYS_TTL_S  # exactly the keys' lifetime: still cached, not refetched yet
        assert verifier.verify(KEY.assertion()).email == "ada@example.com"
        assert server.fetches == 1
        now[0] += 0.5  # past it: fetched again, and the revoked key is refused
        with pytest.raises(AssertionRefused, match="unknown key"):
            verifier.verify(KEY.assertion())
        assert server.fetches == 2
        assert verifier.verify(OTHER.assertion()).email == "ada@example.com"


def test_an_unknown_key_id_refetches_only_once_a_minute(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(iap, "time", SimpleNamespace(monotonic=lambda: now[0]))
    with KeyServer(KEY) as server:
        verifier = IapVerifier(AUDIENCE, server.jwk_url)
        verifier.verify(KEY.assertion())
        server.keys = [KEY, OTHER]  # IAP published a new key
        now[0] += iap.REFETCH_AFTER_S  # exactly a minute: too soon to ask again
        with pytest.raises(AssertionRefused, match="unknown key"):
            verifier.verify(OTHER.assertion())
        assert server.fetches == 1
        now[0] += 0.5
        assert verifier.verify(OTHER.assertion()).email == "ada@example.com"
        assert server.fetches == 2
