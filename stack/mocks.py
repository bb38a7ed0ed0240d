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
FAKE_DEPLOYER_EMAIL = "deployer@example.com"  # who runs `pulumi up`, as Google's userinfo endpoint says
# Distinctive, so a test can search every rendered input and output for it (and for a prefix of it).
FAKE_RANDOM_PASSWORD_SEED = "offlineFakeRandomPasswordThatMustNeverLeak"


def fake_random_password(length: int) -> str:
    """What the mocks give a RandomPassword of `length` as its `result`."""
    return (FAKE_RANDOM_PASSWORD_SEED * (length // len(FAKE_RANDOM_PASSWORD_SEED) + 1))[:length]


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
    if typ == "gcp:compute/globalAddress:GlobalAddress":
        return {"address": FAKE_LOAD_BALANCER_IP}
    if typ == "random:index/randomPassword:RandomPassword":
        return {"result": fake_random_password(int(inputs["length"]))}
    if typ == "gcp:serviceaccount/account:Account":
        email = f"{inputs['accountId']}@{inputs['project']}.iam.gserviceaccount.com"
        return {"email": email, "member": f"serviceAccount:{email}"}
    return {}


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.registrations: list[Registration] = []
        self.secret_outputs: dict[tuple[str, str], frozenset[str]] = {}
        """Per resource, the outputs its provider declares secret (filled in by RecordingMonitor)."""
        self.invokes: list[tuple[str, tuple[str, ...]]] = []
        """Each data-source call and the names of the resources already registered when it ran (ordering)."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        self.registrations.append(
            Registration(args.typ, args.name, dict(args.inputs), bool(args.custom), args.provider or "")
        )
        state = {**args.inputs, **_outputs(args.typ, args.inputs)}
        # The engine, not the SDK, marks a provider's declared secret outputs (e.g. a generated password) secret.
        # Pulumi's MockMonitor does not: without this, such a value would be plain text here but secret in `up`.
        secret = self.secret_outputs.get((args.typ, args.name), frozenset())
        return f"{args.name}-id", {k: rpc.wrap_rpc_secret(v) if k in secret else v for k, v in state.items()}

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        self.invokes.append((args.token, tuple(r.name for r in self.registrations)))
        if args.token == "gcp:organizations/getProject:getProject":
            return {"number": FAKE_PROJECT_NUMBER, "projectId": args.args.get("projectId")}
        if args.token == "gcp:organizations/getClientConfig:getClientConfig":
            return {"accessToken": FAKE_ACCESS_TOKEN}
        if args.token == "gcp:organizations/getClientOpenIdUserInfo:getClientOpenIdUserInfo":
            return {"email": FAKE_DEPLOYER_EMAIL, "id": FAKE_DEPLOYER_EMAIL}
        raise NotImplementedError(f"no offline answer for {args.token}: add one to stack/mocks.py")


class RecordingMonitor(MockMonitor):
    """Records what new_resource does not see, parents and dependencies, so tests can check the graph's edges."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording = mocks
        self.edges: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}

    def RegisterResource(self, request: Any) -> Any:
        # Called from several threads at once: key by the request itself, never by "the current" resource.
        self.edges[(request.type, request.name)] = (request.parent, tuple(request.dependencies))
        self.recording.secret_outputs[(request.type, request.name)] = frozenset(request.additionalSecretOutputs)
        return super().RegisterResource(request)

    def with_edges(self, registrations: list[Registration]) -> list[Registration]:
        return [
            replace(r, parent=self.edges[(r.type, r.name)][0], dependencies=self.edges[(r.type, r.name)][1])
            for r in registrations
        ]
