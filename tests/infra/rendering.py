"""Runs `python -m stack.render` (the `make plan` renderer) in a subprocess and reads its JSON.

A subprocess per render: Pulumi's runtime settings are process-global, so in-process runs would leak into each
other and into the rest of the suite.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "test-project"
REGION = "europe-west4"
HF_TOKEN = "hf_offlineTestTokenThatMustNeverLeak"
DOMAIN = "chat.example.com"
CHAT_USERS = ("user:ada@example.com", "group:chat-team@example.com", "domain:example.org")
IAP_CLIENT_ID = "1234-abc.apps.googleusercontent.com"
IAP_CLIENT_SECRET = "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everLeak"
# Where the stack's Docker Hub mirror serves images (stack/mirror.py; the dev stack's repository).
DOCKER_HUB_MIRROR = f"{REGION}-docker.pkg.dev/{PROJECT}/hybrid-chat-dockerhub-dev"
# The API groups of the custom resources (Gateway API, GKE policies, KEDA): not in kubernetes-validate's schemas.
CUSTOM_GROUPS = ("gateway.networking.k8s.io", "networking.gke.io", "keda.sh")


def run_render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stack.render", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def config_args(plain: dict[str, str], secret: dict[str, str]) -> list[str]:
    args = ["--only-given"]
    for key, value in plain.items():
        args += ["--set", f"{key}={value}"]
    for key, value in secret.items():
        args += ["--secret", f"{key}={value}"]
    return args


def fingerprint(value: Any) -> dict[str, str]:
    return {"secret-sha256": hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()}


@dataclass(frozen=True)
class Plan:
    data: dict[str, Any]
    raw: str

    @property
    def resources(self) -> list[dict[str, Any]]:
        return [r for r in self.data["resources"] if r["custom"]]

    @property
    def components(self) -> list[dict[str, Any]]:
        return [r for r in self.data["resources"] if not r["custom"]]

    @property
    def outputs(self) -> dict[str, Any]:
        return self.data["outputs"]

    def of_type(self, typ: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == typ]

    def one(self, typ: str, name: str | None = None) -> dict[str, Any]:
        found = [r for r in self.of_type(typ) if name is None or r["name"] == name]
        assert len(found) == 1, f"expected one {typ} {name or ''}, found {len(found)}"
        return found[0]

    def custom_resources(self) -> list[dict[str, Any]]:
        return [m for m in self.data["manifests"] if m["apiVersion"].split("/")[0] in CUSTOM_GROUPS]

    def core_manifests(self) -> list[dict[str, Any]]:
        return [m for m in self.data["manifests"] if m["apiVersion"].split("/")[0] not in CUSTOM_GROUPS]

    def manifest(self, kind: str, name: str) -> dict[str, Any]:
        found = [m for m in self.data["manifests"] if m["kind"] == kind and m["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
        return found[0]

    def urn(self, typ: str, name: str) -> str:
        """The URN the mock monitor gave a resource: `…::ParentType$Type::name` (only the parent's own type)."""
        resource = self.one(typ, name)
        stack, project, parent_types, _ = resource["parent"].split("::")
        return "::".join([stack, project, f"{parent_types.split('$')[-1]}${typ}", name])

    def depends_on(self, typ: str, name: str, on_type: str, on_name: str) -> bool:
        return self.urn(on_type, on_name) in self.one(typ, name)["dependencies"]


def plan(
    plain: dict[str, str] | None = None, secret: dict[str, str] | None = None, token: bool = True, stack: str = "dev"
) -> Plan:
    """Renders with only gcp:project, gcp:region, the secret HF token (unless token=False) and what is given."""
    plain = {"gcp:project": PROJECT, "gcp:region": REGION, **(plain or {})}
    secret = {**({"hfToken": HF_TOKEN} if token else {}), **(secret or {})}
    result = run_render("--json", "--stack", stack, *config_args(plain, secret))
    assert result.returncode == 0, result.stderr
    return Plan(json.loads(result.stdout), result.stdout + result.stderr)
