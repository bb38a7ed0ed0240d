"""Each stack is rendered once per session (a subprocess, ~1.5 s) and shared by the tests that read it."""

import pytest

from tests.infra.rendering import Plan, plan


@pytest.fixture(scope="session")
def default_plan() -> Plan:
    """The issue's reference run: only gcp:project, gcp:region and a secret hybrid-chat:hfToken."""
    return plan()


@pytest.fixture(scope="session")
def gemma_off_plan() -> Plan:
    return plan({"gemmaEnabled": "false"}, token=False)


@pytest.fixture(scope="session")
def scaled_plan() -> Plan:
    """Several chat replicas, logins, a prebuilt image and two GPUs."""
    return plan(
        {
            "chatReplicas": "3",
            "chatImage": "example.com/chat@sha256:" + "1" * 64,
            "gemmaGpus": "2",
        },
        secret={"chatAuthUsers": "alice:wonderland-secret"},
    )
