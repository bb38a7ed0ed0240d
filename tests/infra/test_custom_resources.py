"""Every Gateway API and GKE custom resource the program renders passes its upstream CRD schema, strictly.

The check (tests/infra/crd/check.mjs, installed by `make crd-check`) runs the schema validators and a TypeScript
check that rejects unknown fields. The planted-error tests prove it can fail.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from typing import Any

import pytest

from harness.support import require
from tests.infra.rendering import ROOT

CRD = ROOT / "tests" / "infra" / "crd"
PLANS = ("default_plan", "gemma_off_plan", "scaled_plan", "password_plan")
EXPECTED_KINDS = {
    "Gateway",
    "HTTPRoute",
    "HealthCheckPolicy",
    "GCPBackendPolicy",
    "ScaledObject",
    "TriggerAuthentication",
}


def check(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    node = shutil.which("node")
    require(node is not None, "node", "install Node.js 20+ (Debian: apt-get install nodejs npm)")
    require((CRD / "node_modules" / ".installed").exists(), "the CRD validators", "run `make crd-check`")
    result = subprocess.run(
        [node, str(CRD / "check.mjs")], input=json.dumps(manifests), capture_output=True, text=True, timeout=120
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert report["checked"] == len(manifests)
    assert (result.returncode == 0) == (not report["errors"])
    return report


@pytest.fixture(scope="module")
def rendered(request) -> list[dict[str, Any]]:
    """The custom resources of every rendered variant (IAP, password, custom OAuth client, own domain)."""
    return [m for which in PLANS for m in request.getfixturevalue(which).custom_resources()]


def test_every_custom_resource_passes_its_schema(rendered):
    assert {m["kind"] for m in rendered} == EXPECTED_KINDS
    report = check(rendered)
    assert report["errors"] == []


def _backend_policy(rendered):
    return copy.deepcopy(next(m for m in rendered if m["kind"] == "GCPBackendPolicy"))


def _messages(report, check_name):
    return [e["message"] for e in report["errors"] if e["check"] == check_name]


def test_an_unknown_field_fails_at_any_depth(rendered):
    policy = _backend_policy(rendered)
    policy["spec"]["default"]["sessionAffinity"]["cookieTTL"] = 60  # the real field is cookieTtlSec
    gateway = copy.deepcopy(next(m for m in rendered if m["kind"] == "Gateway"))
    gateway["spec"]["listeners"][0]["certificate"] = "x"
    report = check([policy, gateway])
    types = _messages(report, "types")
    assert any("'\"cookieTTL\"' does not exist" in m for m in types), types
    assert any("'\"certificate\"' does not exist" in m for m in types), types
    assert {e["kind"] for e in report["errors"]} == {"GCPBackendPolicy", "Gateway"}


def test_a_wrong_type_or_enum_fails(rendered):
    policy = _backend_policy(rendered)
    policy["spec"]["default"]["timeoutSec"] = "3600"
    route = copy.deepcopy(next(m for m in rendered if m["kind"] == "HTTPRoute" and m["metadata"]["name"] != "chat"))
    route["spec"]["rules"][0]["filters"][0]["requestRedirect"]["statusCode"] = 418  # 301, 302, 303, 307 or 308
    report = check([policy, route])
    schema = _messages(report, "schema")
    assert any("timeoutSec must be integer" in m for m in schema), schema
    assert any("statusCode must be equal to one of the allowed values" in m for m in schema), schema


def test_a_missing_required_field_fails(rendered):
    policy = _backend_policy(rendered)
    del policy["spec"]["targetRef"]["kind"]
    report = check([policy])
    assert any("targetRef must have required property kind" in m for m in _messages(report, "schema")), report


def test_an_unknown_kind_has_no_schema():
    report = check([{"apiVersion": "networking.gke.io/v1", "kind": "GCPNothing", "metadata": {"name": "x"}}])
    assert any("no schema for networking.gke.io/v1 GCPNothing" in m for m in _messages(report, "schema"))


def test_keda_objects_are_checked_against_kedas_own_schema(rendered):
    scaled = next(m for m in rendered if m["kind"] == "ScaledObject")
    unknown, wrong = copy.deepcopy(scaled), copy.deepcopy(scaled)
    unknown["spec"]["cooldown"] = 60  # the real field is cooldownPeriod
    wrong["spec"]["minReplicaCount"] = "0"  # an integer
    auth = copy.deepcopy(next(m for m in rendered if m["kind"] == "TriggerAuthentication"))
    del auth["spec"]["podIdentity"]["provider"]
    report = check([unknown, wrong, auth])
    assert any("'\"cooldown\"' does not exist" in m for m in _messages(report, "types")), report
    schema = _messages(report, "schema")
    assert any("minReplicaCount must be integer" in m for m in schema), schema
    assert any("podIdentity must have required property provider" in m for m in schema), schema
