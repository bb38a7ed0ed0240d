"""`python -m chatapp` takes what start-up built (modules, the app, its pages: ~200k objects) out of the garbage
collector's way before it serves. A full collection walks every tracked object with the event loop stopped;
with them it took ~100 ms at a time, a pause every stream in flight waited out (README "Performance")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.chat_process import ROOT, chat_env

# `main()` as `python -m chatapp` runs it, up to the moment uvicorn would serve.
SCRIPT = """
import gc, sys
import chatapp.__main__ as entry

def run(self):
    print("frozen", gc.get_freeze_count(), "collected", len(gc.get_objects()), flush=True)

entry.DrainingServer.run = run
sys.exit(entry.main())
"""


def test_what_start_up_built_is_frozen_before_serving(app_env: dict[str, str], tmp_path: Path) -> None:
    env = chat_env(app_env, tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    words = done.stdout.split()
    assert words[:1] == ["frozen"], f"the server was never started: {done.stdout!r} {done.stderr[-2000:]}"
    frozen, collected = int(words[1]), int(words[3])
    assert frozen > 100_000, f"only {frozen} objects frozen before serving"
    assert collected < frozen // 20, f"{collected} objects left for the collector to walk, {frozen} frozen"
