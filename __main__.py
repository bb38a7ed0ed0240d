"""Pulumi entry point for hybrid-chat: load and validate the config, build the stack, export its outputs."""

import pulumi

from stack.config import load_config
from stack.program import build_stack

outputs = build_stack(load_config())
for name, value in outputs.items():
    pulumi.export(name, value)
