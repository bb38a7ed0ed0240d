"""IAP assertions: real ES256 signatures, keys fetched over HTTP from a local key server, every refusal named."""

import time
from types import SimpleNamespace

import pytest

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


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: None, "missing x-goog-iap-jwt-assertion"),
        (lambda: "", "missing"),
        (lambda: "not-a-jwt", "malformed"),
        (lambda: "a.b.c", "malformed"),
        (lambda: KEY.assertion(issued=time.time() - 3600), "expired"),
        (lambda: KEY.assertion(issued=time.time() + 600), "not valid yet"),
        (lambda: KEY.assertion(audience="/projects/1/global/backendServices/2"), "another audience"),
        (lambda: KEY.assertion(issuer="https://accounts.google.com"), "wrong issuer"),
        (lambda: OTHER.assertion(kid="key-1"), "bad signature"),  # signed by a stranger, claiming IAP's key id
        (lambda: OTHER.assertion(), "unknown key"),
        (lambda: KEY.assertion(email=None), "no email"),
    ],
    ids=[
        "none",
        "empty",
        "garbage",
        "three-dots",
        "expired",
        "future",
        "audience",
        "issuer",
        "forged-signature",
        "unknown-kid",
        "no-email",
    ],
)
def test_every_bad_assertion_is_refused_with_its_reason(verifier, make, reason):
    with pytest.raises(AssertionRefused, match=reason):
        verifier.verify(make())


def test_an_unsigned_or_hmac_token_is_refused(verifier):
    good = KEY.assertion()
    _, payload, _ = good.split(".")
    # {"alg":"none"} and {"alg":"HS256"} headers in front of IAP's own claims.
    for forged_header in ("eyJhbGciOiJub25lIiwia2lkIjoia2V5LTEifQ", "eyJhbGciOiJIUzI1NiIsImtpZCI6ImtleS0xIn0"):
        with pytest.raises(AssertionRefused, match="ES256"):
            verifier.verify(f"{forged_header}.{payload}.")


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
    with pytest.raises(AssertionRefused, match="could not be fetched"):
        IapVerifier(AUDIENCE, "http://127.0.0.1:9/jwk", timeout_s=1).verify(KEY.assertion())


def test_keys_are_refetched_after_their_lifetime_so_a_revoked_key_stops_working(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(iap, "time", SimpleNamespace(monotonic=lambda: now[0]))
    with KeyServer(KEY) as server:
        verifier = IapVerifier(AUDIENCE, server.jwk_url)
        assert verifier.verify(KEY.assertion()).email == "ada@example.com"
        server.keys = [OTHER]  # IAP rotated: KEY is no longer published
        now[0] += iap.KEYS_TTL_S - 1
        assert verifier.verify(KEY.assertion()).email == "ada@example.com"  # cached, not refetched yet
        assert server.fetches == 1
        now[0] += 2  # past the keys' lifetime: fetched again, and the revoked key is refused
        with pytest.raises(AssertionRefused, match="unknown key"):
            verifier.verify(KEY.assertion())
        assert server.fetches == 2
        assert verifier.verify(OTHER.assertion()).email == "ada@example.com"
