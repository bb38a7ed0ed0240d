"""Pulumi mocks for offline runs: record every registration and answer with plausible cloud outputs."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor

FAKE_PROJECT_NUMBER = "123456789012"
FAKE_ACCESS_TOKEN = "offline-fake-access-token"
FAKE_LOAD_BALANCER_IP = "203.0.113.10"  # TEST-NET-3: never routable
FAKE_DIGEST = "sha256:" + "0" * 64


@dataclass(frozen=True)
class Registration:
    type: str
    name: str
    inputs: dict[str, Any]
    """As the engine would see them: camelCase names, numbers as floats, secrets still wrapped (see is_secret)."""
    custom: bool
    provider: str = ""
    """`URN::ID` of the provider instance, empty for the default one."""
    parent: str = ""
    """URN of the parent resource (components and the stack are parents too)."""
    dependencies: tuple[str, ...] = ()
    """URNs this resource waits for: explicit `depends_on` plus those of its input values."""


def is_secret(value: Any) -> bool:
    return rpc.is_rpc_secret(value)


def secret_value(value: Any) -> Any:
    return rpc.unwrap_rpc_secret(value)


def _outputs(typ: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The output properties our program reads; everything else echoes the inputs."""
    if typ == "gcp:container/cluster:Cluster":
        return {"endpoint": "203.0.113.1", "masterAuth": {"clusterCaCertificate": "LS0tLS1PRkZMSU5FLUNBLS0tLS0="}}
    if typ == "docker:index/image:Image":
        base = str(inputs.get("imageName", "image")).rsplit(":", 1)[0]
        return {"repoDigest": f"{base}@{FAKE_DIGEST}"}
    if typ == "kubernetes:core/v1:Service" and inputs.get("spec", {}).get("type") == "LoadBalancer":
        return {"status": {"loadBalancer": {"ingress": [{"ip": FAKE_LOAD_BALANCER_IP}]}}}
    return {}


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.registrations: list[Registration] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        self.registrations.append(
            Registration(args.typ, args.name, dict(args.inputs), bool(args.custom), args.provider or "")
        )
        return f"{args.name}-id", {**args.inputs, **_outputs(args.typ, args.inputs)}

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        if args.token == "gcp:organizations/getProject:getProject":
            return {"number": FAKE_PROJECT_NUMBER, "projectId": args.args.get("projectId")}
        if args.token == "gcp:organizations/getClientConfig:getClientConfig":
            return {"accessToken": FAKE_ACCESS_TOKEN}
        raise NotImplementedError(f"no offline answer for {args.token}: add one to stack/mocks.py")


class RecordingMonitor(MockMonitor):
    """Records what new_resource does not see, parents and dependencies, so tests can check the graph's edges."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.edges: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}

    def RegisterResource(self, request: Any) -> Any:
        # Called from several threads at once: key by the request itself, never by "the current" resource.
        self.edges[(request.type, request.name)] = (request.parent, tuple(request.dependencies))
        return super().RegisterResource(request)

    def with_edges(self, registrations: list[Registration]) -> list[Registration]:
        return [
            replace(r, parent=self.edges[(r.type, r.name)][0], dependencies=self.edges[(r.type, r.name)][1])
            for r in registrations
        ]
