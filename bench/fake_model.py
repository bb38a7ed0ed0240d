"""The streaming benches' model server: the fault-injecting fake (harness.fakes.openai_server) in its own process,
sending each reply as `max_tokens` tokens at a fixed rate, so one server (and one chat behind it) serves
measurements of different reply lengths.

    python -m bench.fake_model --port 8011 --tokens-per-s 20
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from typing import Any

from harness.fakes.openai_server import FakeOpenAIServer


def reply(body: dict[str, Any]) -> str:
    return "".join(f"tok{i} " for i in range(1, int(body.get("max_tokens") or 16) + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens-per-s", type=float, required=True)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with (
        FakeOpenAIServer(port=args.port, tokens_per_s=args.tokens_per_s, reply=reply),
        contextlib.suppress(KeyboardInterrupt),
    ):
        stop.wait()


if __name__ == "__main__":
    main()
