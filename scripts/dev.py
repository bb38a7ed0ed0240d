"""`make dev`: the chat on http://127.0.0.1:7860 with SQLite history and a local model in the self-hosted slot.

Starts llama.cpp with SmolLM2-135M-Instruct on 127.0.0.1:8000 unless SELF_HOSTED_URL names a server of your
own. Ctrl-C stops everything this started.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

from scripts.local_model import LlamaServer

LOCAL_PORT = 8000
LOCAL_LABEL = "SmolLM2 135M (local llama.cpp)"


@contextlib.contextmanager
def self_hosted_model(env: dict[str, str]) -> Iterator[dict[str, str]]:
    if env.get("SELF_HOSTED_URL"):
        print(f"dev: using your model server at {env['SELF_HOSTED_URL']}", file=sys.stderr)
        yield {}
        return
    print(f"dev: starting llama.cpp with SmolLM2-135M-Instruct on 127.0.0.1:{LOCAL_PORT} …", file=sys.stderr)
    with LlamaServer(LOCAL_PORT) as server:
        # An honest label: this is a 135M-parameter stand-in, not Gemma.
        yield {"SELF_HOSTED_URL": server.base_url, "SELF_HOSTED_MODEL": server.model, "SELF_HOSTED_LABEL": LOCAL_LABEL}


def main() -> int:
    env = dict(os.environ)
    env.setdefault("CHAT_HOST", "127.0.0.1")
    env.setdefault("CHAT_STORE", "sqlite")
    with self_hosted_model(env) as model_env:
        env = {**env, **{k: v for k, v in model_env.items() if k not in os.environ}}
        chat = subprocess.Popen([sys.executable, "-m", "chatapp"], env=env)
        try:
            return chat.wait()
        except KeyboardInterrupt:
            chat.terminate()  # Ctrl-C already reached it as SIGINT; this covers a chat that ignored it
            try:
                return chat.wait(timeout=20)
            except subprocess.TimeoutExpired:
                chat.kill()
                return chat.wait()


if __name__ == "__main__":
    sys.exit(main())
