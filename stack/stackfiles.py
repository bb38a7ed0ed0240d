"""Reads the config the Pulumi CLI would pass: Pulumi.yaml defaults overlaid with Pulumi.<stack>.yaml."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stack.config import PROJECT

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class StackSettings:
    config: dict[str, str] = field(default_factory=dict)
    secret_keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def full_key(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


def _text(value: Any) -> str:
    # The CLI hands every value to the program as a string; booleans as `true`/`false`, lists and maps (set
    # with `pulumi config set --path`) as JSON.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def project_defaults(root: Path = ROOT) -> dict[str, str]:
    """`default:` of our own keys and `value:` of other namespaces' keys (e.g. gcp:region)."""
    declared = yaml.safe_load((root / "Pulumi.yaml").read_text()).get("config") or {}
    values: dict[str, str] = {}
    for key, entry in declared.items():
        value = entry.get("value", entry.get("default")) if isinstance(entry, dict) else entry
        if value is not None:
            values[full_key(key)] = _text(value)
    return values


def placeholder(key: str) -> str:
    return f"OFFLINE-PLACEHOLDER-{key.replace(':', '-')}"


def load_stack_settings(stack: str, root: Path = ROOT) -> StackSettings:
    settings = StackSettings(config=project_defaults(root))
    path = root / f"Pulumi.{stack}.yaml"
    stack_config = (yaml.safe_load(path.read_text()) or {}).get("config") or {} if path.exists() else {}
    if not path.exists():
        settings.notes.append(f"{path.name} not found: using the defaults in Pulumi.yaml")
    for key, value in stack_config.items():
        name = full_key(key)
        if isinstance(value, dict) and "secure" in value:
            # Encrypted values need the Pulumi CLI and the stack's secrets provider: never decrypted here.
            settings.config[name] = placeholder(name)
            settings.secret_keys.append(name)
            settings.notes.append(f"{name} is encrypted: rendered with a placeholder")
        else:
            settings.config[name] = _text(value)
    token = f"{PROJECT}:hfToken"
    if token not in settings.config:
        settings.notes.append(f"{token} is not set: the weights Job downloads without a token (ungated models)")
    return settings
