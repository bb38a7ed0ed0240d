"""`make dev`: the chat on http://127.0.0.1:7860 with SQLite history and a local model in the self-hosted slot.

Starts llama.cpp with SmolLM2-135M-Instruct on 127.0.0.1:8000 (LOCAL_MODEL_PORT) unless SELF_HOSTED_URL names
a server of your own. Ctrl-C, SIGTERM and SIGHUP (a closed terminal) all stop everything this started: each
child leads its own process group, and each group is stopped whole (scripts/processes.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator

from chatapp import drain
from scripts.local_model import LlamaServer
from scripts.processes import Stopped, start_group, stop_group, stop_on_signals

LOCAL_PORT_VARIABLE = "LOCAL_MODEL_PORT"
LOCAL_PORT = 8000
LOCAL_LABEL = "SmolLM2 135M (local llama.cpp)"
# The chat drains before it exits: replies finish or are cut and saved, queued turns get a last attempt.
CHAT_GRACE_S = float(drain.GRACE_S)


def local_port(env: dict[str, str]) -> int:
    value = env.get(LOCAL_PORT_VARIABLE, str(LOCAL_PORT))
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SystemExit(f"{LOCAL_PORT_VARIABLE} must be a port number, got {value!r}")
    return int(value)


@contextlib.contextmanager
def self_hosted_model(env: dict[str, str]) -> Iterator[dict[str, str]]:
    if env.get("SELF_HOSTED_URL"):
        print(f"dev: using your model server at {env['SELF_HOSTED_URL']}", file=sys.stderr)
        yield {}
        return
    port = local_port(env)
    print(f"dev: starting llama.cpp with SmolLM2-135M-Instruct on 127.0.0.1:{port} …", file=sys.stderr)
    with LlamaServer(port) as server:
        # An honest label: this is a 135M-parameter stand-in, not Gemma.
        yield {
            "SELF_HOSTED_URL": server.base_url,
            "SELF_HOSTED_MODEL": server.model,
            "SELF_HOSTED_LABEL": LOCAL_LABEL,
            "SELF_HOSTED_WAKES_ON_DEMAND": "false",  # it runs as long as `make dev` does; nothing wakes it
        }


def run_chat(env: dict[str, str]) -> int:
    chat = start_group([sys.executable, "-m", "chatapp"], env=env)
    try:
        return chat.wait()
    finally:
        stop_group(chat, signal.SIGTERM, CHAT_GRACE_S)


def main() -> int:
    env = dict(os.environ)
    env.setdefault("CHAT_HOST", "127.0.0.1")
    env.setdefault("CHAT_STORE", "sqlite")
    stop_on_signals("the chat and the model server")
    print("dev: Ctrl-C, SIGTERM or SIGHUP (closing this terminal) stops everything `make dev` started", file=sys.stderr)
    try:
        with self_hosted_model(env) as model_env:
            return run_chat({**env, **{k: v for k, v in model_env.items() if k not in os.environ}})
    except Stopped as stop:
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            print(f"dev: stopped ({stop}); nothing left running", file=sys.stderr)
        return 128 + stop.signum


if __name__ == "__main__":
    sys.exit(main())
