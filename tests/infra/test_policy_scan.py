"""The standing policy scan: checkov's CIS-aligned Kubernetes checks over every object `make plan` renders.

Two renderings are scanned together, in one checkov run per session: `make plan` itself (the dev stack, IAP
front door) and the password front door (it adds the login Secret and the chat's use of it). Any failed check
fails the scan unless tests/infra/policy_exceptions.yaml lists it (check id, object, reason); an exception that
matches nothing fails it too, so the list shrinks when a fix lands. A planted copy of the model server without
`readOnlyRootFilesystem` rides along in the same run and must be caught: the scan is never vacuous.

checkov lives in its own virtualenv (`make scan-tools`, requirements-scan.txt); `make scan` runs this alone.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.support import require
from tests.infra.rendering import ROOT, run_render

CHECKOV = ROOT / ".venv-scan" / "bin" / "checkov"
EXCEPTIONS = Path(__file__).with_name("policy_exceptions.yaml")
RENDERINGS = {
    "make-plan": ["--json"],
    "password": ["--json", "--set", "frontDoor=password", "--secret", "chatAuthUsers=alice:scan-secret"],
}
PLANTED = "planted-regression"


@dataclass(frozen=True)
class Finding:
    check: str
    name: str
    object: str  # checkov's resource id: Kind.namespace.name
    file: str

    def __str__(self) -> str:
        return f"{self.check} {self.object} ({self.name}) in {self.file}"


@dataclass(frozen=True)
class Scan:
    summary: dict[str, Any]
    failed: list[Finding]
    files: int


def planted_regression(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """The model server's Deployment under another name, its containers' root filesystems writable again."""
    (gemma,) = [m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == "gemma"]
    planted = copy.deepcopy(gemma)
    planted["metadata"]["name"] = PLANTED
    for container in planted["spec"]["template"]["spec"]["containers"]:
        container["securityContext"].pop("readOnlyRootFilesystem", None)
    return planted


def write_manifests(folder: Path) -> int:
    """Every rendering's Kubernetes objects, one YAML file each, plus the planted regression."""
    count = 0
    for rendering, args in RENDERINGS.items():
        result = run_render(*args)
        assert result.returncode == 0, result.stderr
        manifests = json.loads(result.stdout)["manifests"]
        if rendering == "make-plan":
            manifests = [*manifests, planted_regression(manifests)]
        for manifest in manifests:
            name = f"{rendering}-{manifest['kind']}-{manifest['metadata']['name']}.yaml"
            (folder / name).write_text(yaml.safe_dump(manifest, sort_keys=False))
            count += 1
    return count


def run_checkov(folder: Path) -> dict[str, Any]:
    # Offline: --skip-download skips the platform's policy metadata (severities and guideline links go
    # missing), CKV_SKIP_PACKAGE_UPDATE_CHECK the banner's look-up of a newer checkov.
    command = [str(CHECKOV), "--directory", str(folder), "--framework", "kubernetes", "--output", "json"]
    command += ["--skip-download", "--compact"]
    env = {**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, check=False)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov exited {result.returncode} without a JSON report:\n{result.stderr[-3000:]}")
    assert isinstance(report, dict), f"expected one Kubernetes report, got {type(report).__name__}"
    return report


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Scan:
    """One checkov run for the whole module (it takes several seconds to start)."""
    require(CHECKOV.exists(), "checkov (the policy scanner)", "run `make scan-tools` (its own virtualenv)")
    folder = tmp_path_factory.mktemp("manifests")
    files = write_manifests(folder)
    report = run_checkov(folder)
    failed = [
        Finding(f["check_id"], f["check_name"], f["resource"], Path(f["file_path"]).name)
        for f in report["results"]["failed_checks"]
    ]
    return Scan(report["summary"], failed, files)


def load_exceptions() -> list[dict[str, str]]:
    entries = yaml.safe_load(EXCEPTIONS.read_text()) or []
    for entry in entries:
        missing = {"check", "object", "reason"} - {k for k, v in entry.items() if str(v or "").strip()}
        assert not missing, f"{EXCEPTIONS.name}: {entry} lacks {sorted(missing)}"
    return entries


def excepted(finding: Finding, exceptions: list[dict[str, str]]) -> bool:
    return any(e["check"] == finding.check and e["object"] == finding.object for e in exceptions)


def test_the_scan_read_every_rendered_object(scan):
    assert scan.summary["parsing_errors"] == 0
    # checkov also counts the namespaces it infers; never fewer than the objects written.
    assert scan.summary["resource_count"] >= scan.files
    assert scan.summary["passed"] > 0


def test_the_planted_regression_is_caught(scan):
    caught = {f.check for f in scan.failed if f.object.endswith(f".{PLANTED}")}
    assert "CKV_K8S_22" in caught, f"readOnlyRootFilesystem dropped but not reported: {sorted(caught)}"


def test_no_failed_check_outside_the_exceptions(scan):
    exceptions = load_exceptions()
    unexpected = sorted(
        {str(f) for f in scan.failed if not f.object.endswith(f".{PLANTED}") and not excepted(f, exceptions)}
    )
    assert not unexpected, (
        f"{len(unexpected)} failed checks ({scan.summary['passed']} passed); fix them, or list each in "
        f"{EXCEPTIONS.name} with the reason:\n" + "\n".join(unexpected)
    )


def test_every_exception_still_matches_a_failure(scan):
    stale = [
        e for e in load_exceptions() if not any(f.check == e["check"] and f.object == e["object"] for f in scan.failed)
    ]
    assert not stale, f"these no longer fail; remove them from {EXCEPTIONS.name}: {stale}"
