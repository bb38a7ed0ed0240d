"""Each stack is rendered once per session (a subprocess, ~1.5 s) and shared by the tests that read it."""

import json

import pytest

from tests.infra.rendering import CHAT_USERS, DOMAIN, IAP_CLIENT_ID, IAP_CLIENT_SECRET, Plan, plan


@pytest.fixture(scope="session")
def default_plan() -> Plan:
    """The issue's reference run: only gcp:project, gcp:region and a secret hybrid-chat:hfToken."""
    return plan()


@pytest.fixture(scope="session")
def gemma_off_plan() -> Plan:
    return plan({"gemmaEnabled": "false"}, token=False)


@pytest.fixture(scope="session")
def scaled_plan() -> Plan:
    """Several chat replicas, a prebuilt image, two GPUs, an own domain, named IAP users, a custom OAuth client
    and a daily token limit."""
    return plan(
        {
            "chatReplicas": "3",
            "chatImage": "example.com/chat@sha256:" + "1" * 64,
            "gemmaGpus": "2",
            "domain": DOMAIN,
            "chatUsers": json.dumps(list(CHAT_USERS)),
            "iapClientId": IAP_CLIENT_ID,
            "chatDailyTokens": "50000",
        },
        secret={"iapClientSecret": IAP_CLIENT_SECRET, "chatAuthUsers": "ignored:with-iap-secret"},
    )


@pytest.fixture(scope="session")
def password_plan() -> Plan:
    """`frontDoor: password`: HTTPS with the chat's own logins, IAP off."""
    return plan({"frontDoor": "password"}, secret={"chatAuthUsers": "alice:wonderland-secret"})
