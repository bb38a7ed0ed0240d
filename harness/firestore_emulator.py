"""Google's Cloud Firestore emulator as a restartable process, for tests and benchmarks.

    FirestoreEmulator(port=None)      one emulator process on 127.0.0.1 (a free port unless given)
      .host                           "127.0.0.1:PORT", the value for FIRESTORE_EMULATOR_HOST
      .start() / .stop()              stop and start again on the SAME port (fault tests); data is in memory,
                                      so a restart begins empty
      .running                        whether the process is up
      .reset(database, project)       delete every document of one database
    find_emulator_jar()               the emulator jar, or None

The pytest fixtures built on it live in tests/fixtures/firestore_emulator.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from harness.support import free_port

PROJECT = "hybrid-chat-test"
MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
READY_LINE = "Dev App Server is now running"
INSTALL_HINT = (
    "install the gcloud component cloud-firestore-emulator (Debian package google-cloud-cli-firestore-emulator)"
    " and a Java runtime"
)
_JAR = Path("platform/cloud-firestore-emulator/cloud-firestore-emulator.jar")


def find_emulator_jar() -> Path | None:
    """$FIRESTORE_EMULATOR_JAR, else under the gcloud SDK root (found next to `gcloud`, else via `gcloud info`)."""
    if os.environ.get("FIRESTORE_EMULATOR_JAR"):
        jar = Path(os.environ["FIRESTORE_EMULATOR_JAR"])
        return jar if jar.is_file() else None
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    # bin/gcloud lives in the SDK root: this avoids `gcloud info`, which takes seconds.
    jar = Path(gcloud).resolve().parent.parent / _JAR
    if jar.is_file():
        return jar
    try:
        root = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    jar = Path(root) / _JAR
    return jar if root and jar.is_file() else None


class FirestoreEmulator:
    """One emulator process on 127.0.0.1:port, restartable on the same port."""

    def __init__(self, jar: Path, port: int | None = None, log_dir: Path | None = None) -> None:
        self.jar = jar
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log_path = Path(log_dir or tempfile.mkdtemp(prefix="firestore-emulator-")) / f"emulator-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Start the emulator and wait until it serves (about a second once the JVM is warm)."""
        if self.running:
            return
        java = shutil.which("java")
        if java is None:
            raise RuntimeError(f"no `java` on PATH: {INSTALL_HINT}")
        with self.log_path.open("ab") as log:
            log.write(b"--- start ---\n")
            log.flush()
            offset = log.tell()  # look for the ready line only in this run's output
            self._process = subprocess.Popen(
                [java, "-cp", str(self.jar), MAIN_CLASS, "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in pytest reaches pytest, which stops us in order
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the Firestore emulator exited at start; see {self.log_path}")
            with self.log_path.open("rb") as log:
                log.seek(offset)
                if READY_LINE.encode() in log.read():
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the Firestore emulator did not start within {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        """Stop the process we started (by its pid) and wait for it to exit."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def warm_up(self, timeout: float = 60.0) -> None:
        """One write through the Firestore client with a generous deadline. The emulator's first gRPC calls
        run cold JVM code and can take longer than a store's 5 s write deadline on a busy machine; tests that
        time how fast a dead store fails must not pay for that."""
        from google.cloud import firestore

        database = "warm-up"
        saved = os.environ.get("FIRESTORE_EMULATOR_HOST")
        os.environ["FIRESTORE_EMULATOR_HOST"] = self.host  # the client reads it when it is created
        try:
            client = firestore.Client(project=PROJECT, database=database)
        finally:
            if saved is None:
                del os.environ["FIRESTORE_EMULATOR_HOST"]
            else:
                os.environ["FIRESTORE_EMULATOR_HOST"] = saved
        try:
            client.collection("warm-up").document("warm-up").set({"at": time.time()}, timeout=timeout)
        finally:
            client.close()
        self.reset(database)

    def reset(self, database: str = "(default)", project: str = PROJECT) -> None:
        """Delete every document of one database (the emulator's own reset endpoint)."""
        url = f"http://{self.host}/emulator/v1/projects/{project}/databases/{database}/documents"
        urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=10).close()

    def __enter__(self) -> FirestoreEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
