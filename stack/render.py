"""`make plan`: run the real program (`__main__.py`) under Pulumi mocks and print what it would create.

Offline, like `helm template`: no cloud, no Pulumi CLI. Prints every resource (type and name), the stack
outputs, and every Kubernetes object as YAML. Secret values never print: they show as `[secret]`.

    python -m stack.render [--stack dev] [--set key=value] [--secret key=value] [--only-given] [--json]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from stack.config import PROJECT, ConfigError
from stack.mocks import RecordingMocks, RecordingMonitor, Registration, is_secret, secret_value
from stack.stackfiles import ROOT, StackSettings, full_key, load_stack_settings

SECRET_MASK = "[secret]"
APPLY_ORDER = (
    *("Namespace", "ServiceAccount", "Secret", "Job", "Deployment", "Service"),
    *("HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"),
    *("Gateway", "HTTPRoute", "HealthCheckPolicy", "GCPBackendPolicy", "PodMonitoring"),
    *("TriggerAuthentication", "ScaledObject"),
)
KIND_ORDER = {kind: i for i, kind in enumerate(APPLY_ORDER)}


class RenderError(RuntimeError):
    """The program produced something the real engine or cluster would reject (e.g. duplicate names)."""


@dataclass(frozen=True)
class Rendering:
    registrations: list[Registration]
    outputs: dict[str, Any]
    secret_outputs: frozenset[str]
    invokes: list[tuple[str, tuple[str, ...]]]

    def resources(self) -> list[Registration]:
        """Custom resources (what the cloud gets), in a stable order."""
        return sorted((r for r in self.registrations if r.custom), key=lambda r: (r.type, r.name))

    def manifests(self) -> list[dict[str, Any]]:
        """Every Kubernetes object, `helm template` style: in apply order, apiVersion/kind/metadata first."""
        # A Helm release is not an object of its own: the chart's objects exist only in the cluster.
        objects = [
            normalize(r.inputs, mask)
            for r in self.resources()
            if r.type.startswith("kubernetes:") and not r.type.startswith("kubernetes:helm.sh/")
        ]
        objects.sort(key=lambda o: (KIND_ORDER.get(o["kind"], len(KIND_ORDER)), o["metadata"]["name"]))
        head = ("apiVersion", "kind", "metadata")
        return [{**{k: o[k] for k in head if k in o}, **{k: v for k, v in o.items() if k not in head}} for o in objects]


def mask(value: Any) -> Any:
    """Replaces every string inside a secret, keeping the shape (so the manifest still validates)."""
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return SECRET_MASK if isinstance(value, str) else value


def fingerprint(value: Any) -> dict[str, str]:
    """A secret in the JSON dump: its hash, so tests can tell which secret went where without printing it."""
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
    return {"secret-sha256": digest}


def normalize(value: Any, on_secret: Any) -> Any:
    """Plain JSON types: integral floats back to ints (mocks see floats), secrets through `on_secret`."""
    if is_secret(value):
        return on_secret(normalize(secret_value(value), on_secret))
    if isinstance(value, dict):
        return {k: normalize(v, on_secret) for k, v in value.items() if k != "__defaults"}
    if isinstance(value, list | tuple):
        return [normalize(v, on_secret) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _check_unique(registrations: list[Registration]) -> None:
    # The mock monitor accepts duplicate names; the engine (URNs) and the API server (object names) do not.
    names = collections.Counter((r.type, r.name) for r in registrations)
    objects = collections.Counter(
        (r.type, str(r.inputs.get("metadata", {}).get("namespace")), str(r.inputs.get("metadata", {}).get("name")))
        for r in registrations
        if r.custom and r.type.startswith("kubernetes:")
    )
    duplicates = [key for key, n in (names + objects).items() if n > 1]
    if duplicates:
        raise RenderError(f"duplicate resource names: {duplicates}")


def render(
    config: dict[str, str], secret_keys: list[str], stack: str = "dev", program: Path | None = None
) -> Rendering:
    """Runs `program` once under fresh mocks. Pulumi's runtime state is global: one render per process."""
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_all_config(config, secret_keys)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    outputs: dict[str, Any] = {}
    secrets: set[str] = set()

    async def run() -> None:
        namespace = runpy.run_path(str(program or ROOT / "__main__.py"), run_name="__pulumi_program__")
        for name, value in namespace["outputs"].items():
            output = pulumi.Output.from_input(value)
            outputs[name] = await output.future()
            if await output.is_secret():
                secrets.add(name)

    _sync_await(run_pulumi_func(run))
    _check_unique(mocks.registrations)
    return Rendering(monitor.with_edges(mocks.registrations), outputs, frozenset(secrets), mocks.invokes)


def as_json(rendering: Rendering) -> str:
    return json.dumps(
        {
            "resources": [
                {
                    "type": r.type,
                    "name": r.name,
                    "custom": r.custom,
                    "provider": r.provider,
                    "parent": r.parent,
                    "dependencies": list(r.dependencies),
                    "inputs": normalize(r.inputs, fingerprint),
                }
                for r in rendering.registrations
            ],
            "outputs": {
                k: fingerprint(v) if k in rendering.secret_outputs else normalize(v, fingerprint)
                for k, v in rendering.outputs.items()
            },
            "secretOutputs": sorted(rendering.secret_outputs),
            "invokes": [{"token": token, "after": list(after)} for token, after in rendering.invokes],
            "manifests": rendering.manifests(),
        },
        indent=1,
    )


def as_text(rendering: Rendering, notes: list[str]) -> str:
    custom = rendering.resources()
    lines = [f"# {note}" for note in notes]
    lines.append(f"# {len(custom)} resources ({len(rendering.registrations) - len(custom)} components not counted)")
    lines += [f"#   {r.type:<52} {r.name}" for r in custom]
    lines.append("# outputs")
    for name, value in rendering.outputs.items():
        shown = SECRET_MASK if name in rendering.secret_outputs else value
        lines.append(f"#   {name}: {shown}")
    documents = yaml.safe_dump_all(rendering.manifests(), sort_keys=False, default_flow_style=False)
    return "\n".join(lines) + "\n---\n" + documents


def _pairs(values: list[str]) -> dict[str, str]:
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected KEY=VALUE, got {item!r}")
        pairs[full_key(key)] = value
    return pairs


def settings_from_args(args: argparse.Namespace) -> StackSettings:
    settings = StackSettings() if args.only_given else load_stack_settings(args.stack)
    settings.config.update(_pairs(args.set))
    secrets = _pairs(args.secret)
    settings.config.update(secrets)
    settings.secret_keys = sorted(set(settings.secret_keys) | set(secrets))
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.render", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default=os.environ.get("PULUMI_STACK", "dev"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="plain config value")
    parser.add_argument("--secret", action="append", default=[], metavar="KEY=VALUE", help="secret config value")
    parser.add_argument("--only-given", action="store_true", help="ignore Pulumi.yaml and the stack file")
    parser.add_argument("--json", action="store_true", help="machine-readable output (secrets as hashes)")
    args = parser.parse_args(argv)
    settings = settings_from_args(args)
    try:
        rendering = render(settings.config, settings.secret_keys, stack=args.stack)
    except (ConfigError, RenderError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(as_json(rendering) if args.json else as_text(rendering, settings.notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
