"""The chat image: lint-clean, non-root, only the app's dependencies."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from chatapp import defaults

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_hadolint_is_clean():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_runs_the_chat_as_a_non_root_user_on_7860():
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert re.search(r"^EXPOSE 7860$", DOCKERFILE, re.MULTILINE)
    # The image cannot import the default: it must name the same one.
    assert f"EXPOSE {defaults.CHAT_PORT}\n" in DOCKERFILE and f"CHAT_PORT={defaults.CHAT_PORT}\n" in DOCKERFILE
    assert 'CMD ["python", "-m", "chatapp"]' in DOCKERFILE
    assert re.search(r"^FROM python:3\.11[\w.-]*-slim", DOCKERFILE, re.MULTILINE)


def test_image_installs_only_the_app_dependencies():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in deps if d.lower().startswith("pulumi")]
    assert all("==" in d for d in deps), "pin every runtime dependency"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ignored[0] == "*" and "!chatapp/" in ignored  # the build context is the app only, no venvs
