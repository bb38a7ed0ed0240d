"""The weights Job's copy script, run for real against a local server speaking the Hugging Face Hub's wire
format: the tree listing (`/api/models/<repo>/tree/main`), HEAD on `resolve` with the `X-Linked-Size` of
LFS files behind a redirect to a CDN, and the file downloads. The bucket is a temporary folder (in the cluster
it is the FUSE mount)."""

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest

from stack.weights import COPY_SCRIPT, MARKER, TOKEN_KEY

REPO = "google/tiny-test-it"
TOKEN = "hf_fakeTokenForTheCopyTest"
FILES = {
    "config.json": b'{"architectures": ["Gemma3ForConditionalGeneration"]}',
    "tokenizer.json": b'{"version": "1.0"}',
    "model-00001-of-00002.safetensors": b"A" * 300_000,
    "model-00002-of-00002.safetensors": b"B" * 200_000,
    "model.safetensors.index.json": b'{"weight_map": {}}',
    # Never copied: pickles, the duplicate original checkpoint, GGUF, dotfiles.
    "pytorch_model.bin": b"pickle",
    "original/consolidated.00.pth": b"pickle",
    "gguf/model.gguf": b"gguf",
    ".gitattributes": b"*.safetensors filter=lfs",
}
COPIED = {name for name in FILES if name.endswith((".json", ".safetensors"))}


class FakeHub(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.files = dict(FILES)
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        self.cut: set[str] = set()  # downloads whose connection drops halfway
        self.stale: set[str] = set()  # downloads the CDN serves at half the size the Hub announced
        self.gated = False  # files answer 401 without a token and 403 with one that has no access

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, *args) -> None:
        pass

    def do_HEAD(self) -> None:
        self.answer(body=False)

    def do_GET(self) -> None:
        self.answer(body=True)

    def answer(self, body: bool) -> None:
        path = urlparse(self.path).path
        self.server.requests.append((self.command, path, self.headers.get("Authorization")))
        tree = f"/api/models/{REPO}/tree/main"
        resolve = f"/{REPO}/resolve/main/"
        if path.startswith(tree):
            entries = [
                {"type": "file", "oid": f"oid{i}", "size": len(data), "path": name}
                for i, (name, data) in enumerate(self.server.files.items())
            ]
            self.send(200, json.dumps(entries).encode(), {"Content-Type": "application/json"}, body)
        elif path.startswith(resolve):
            name = path[len(resolve) :]
            data = self.server.files.get(name)
            auth = self.headers.get("Authorization")
            if self.server.gated and auth != f"Bearer {TOKEN}":
                # The Hub's answer for a gated repository (the listing stays public; files do not).
                status = 403 if auth else 401
                headers = {"X-Error-Code": "GatedRepo", "X-Error-Message": f"Access to model {REPO} is restricted."}
                self.send(status, b'{"error": "gated"}', headers, body)
            elif data is None:
                self.send(404, b"not found", {"X-Error-Code": "EntryNotFound"}, body)
            elif name.endswith(".safetensors"):
                # LFS: the Hub answers with the size and a redirect to its CDN.
                headers = {
                    # Another host name, as the real CDN: HEAD does not follow it, the download does.
                    "Location": f"http://localhost:{self.server.server_address[1]}/cdn/{name}",
                    "X-Linked-Size": str(len(data)),
                    "X-Linked-Etag": f'"sha-{name}"',
                    "X-Repo-Commit": "c" * 40,
                }
                self.send(302, b"", headers, body)
            else:
                self.send(200, data, {"ETag": f'"{name}"', "X-Repo-Commit": "c" * 40}, body)
        elif path.startswith("/cdn/"):
            name = path[len("/cdn/") :]
            data = self.server.files[name]
            if name in self.server.stale:
                data = data[: len(data) // 2]
            if name in self.server.cut and body:
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.close_connection = True
                return
            self.send(200, data, {}, body)
        else:
            self.send(404, b"unexpected path", {}, body)

    def send(self, status: int, data: bytes, headers: dict[str, str], body: bool) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)


@pytest.fixture
def hub():
    server = FakeHub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def copy(hub, dest, token: str | None = TOKEN):
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_TELEMETRY": "1", "HOME": str(dest.parent)}
    if token is not None:
        # As the Job gets it: a mounted file named by HF_TOKEN_PATH, no HF_TOKEN in the environment.
        token_file = dest.parents[2] / "hf-token"
        token_file.write_text(token)
        env["HF_TOKEN_PATH"] = str(token_file)
    return subprocess.run(
        [sys.executable, "-c", COPY_SCRIPT, REPO, str(dest), MARKER, TOKEN_KEY],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_copies_the_safetensors_model_with_the_token_and_marks_it_complete(hub, tmp_path):
    dest = tmp_path / "weights" / REPO
    result = copy(hub, dest)
    assert result.returncode == 0, result.stderr
    copied = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}
    assert copied == COPIED | {MARKER}
    for name in COPIED:
        assert (dest / name).read_bytes() == FILES[name]
    assert json.loads((dest / MARKER).read_text()) == {name: len(FILES[name]) for name in COPIED}
    gets = [(path, auth) for method, path, auth in hub.requests if method == "GET" and "/api/" not in path]
    # The Hub gets the token (gated models need it); the CDN it redirects to never sees it.
    assert {auth for path, auth in gets if "/resolve/" in path} == {f"Bearer {TOKEN}"}
    assert {auth for path, auth in gets if path.startswith("/cdn/")} == {None}
    assert not any(".bin" in path or ".pth" in path or ".gguf" in path for _, path, _ in hub.requests)


def test_a_finished_copy_is_not_repeated(hub, tmp_path):
    dest = tmp_path / "weights" / REPO
    assert copy(hub, dest).returncode == 0
    hub.requests.clear()
    again = copy(hub, dest)
    assert again.returncode == 0 and "already in the bucket" in again.stdout
    assert hub.requests == []


def test_a_retry_resumes_and_fetches_only_what_is_missing(hub, tmp_path):
    dest = tmp_path / "weights" / REPO
    assert copy(hub, dest).returncode == 0
    (dest / MARKER).unlink()
    (dest / "model-00002-of-00002.safetensors").write_bytes(b"B" * 10)  # cut short by a killed pod
    hub.requests.clear()
    assert copy(hub, dest).returncode == 0
    fetched = {path for method, path, _ in hub.requests if method == "GET" and path.startswith("/cdn/")}
    assert fetched == {"/cdn/model-00002-of-00002.safetensors"}
    assert (dest / "model-00002-of-00002.safetensors").read_bytes() == FILES["model-00002-of-00002.safetensors"]
    assert (dest / MARKER).exists()


def test_a_dropped_connection_fails_without_a_marker(hub, tmp_path):
    dest = tmp_path / "weights" / REPO
    hub.cut.add("model-00001-of-00002.safetensors")
    result = copy(hub, dest)
    assert result.returncode != 0
    assert not (dest / MARKER).exists()


def test_a_file_of_the_wrong_size_fails_without_a_marker(hub, tmp_path):
    dest = tmp_path / "weights" / REPO
    hub.stale.add("model-00001-of-00002.safetensors")
    result = copy(hub, dest)
    assert result.returncode != 0
    assert "model-00001-of-00002.safetensors: copied 150000 bytes, expected 300000" in result.stderr
    assert not (dest / MARKER).exists()


def test_a_repository_without_safetensors_is_refused(hub, tmp_path):
    hub.files = {"config.json": b"{}", "pytorch_model.bin": b"pickle"}
    dest = tmp_path / "weights" / REPO
    result = copy(hub, dest)
    assert result.returncode != 0 and f"{REPO} has no safetensors weights" in result.stderr
    assert not dest.exists() or not (dest / MARKER).exists()


def test_an_ungated_model_copies_without_a_token(hub, tmp_path):
    dest = tmp_path / "weights" / REPO
    result = copy(hub, dest, token=None)
    assert result.returncode == 0, result.stderr
    assert (dest / MARKER).exists()
    assert {auth for _, _, auth in hub.requests} == {None}


@pytest.mark.parametrize("token", [None, "hf_tokenOfAnAccountWithoutAccess"])
def test_a_gated_model_says_so_and_names_the_key(hub, tmp_path, token):
    hub.gated = True
    dest = tmp_path / "weights" / REPO
    result = copy(hub, dest, token=token)
    assert result.returncode != 0
    status = 401 if token is None else 403
    assert f"(HTTP {status}): the model is gated or private" in result.stderr, result.stderr
    assert "pulumi config set --secret hybrid-chat:hfToken" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (dest / MARKER).exists()
