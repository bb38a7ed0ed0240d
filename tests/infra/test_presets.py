"""The Gemma presets (stack/presets.py): every row complete and consistent with what it claims to fit, and the
stack free of the chat's code."""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from pathlib import Path

import pytest

from stack.config import GPU_MEMORY_GB
from stack.presets import DEFAULT_PRESET, NVIDIA_LIBRARIES, PRESETS, VLLM_ENV
from tests.infra.rendering import ROOT, config_args, run_render

GEMMA4 = [name for name, p in PRESETS.items() if "gemma-4" in p.model]


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_is_complete(name):
    preset = PRESETS[name]
    args = preset.vllm_args()
    assert f"--tensor-parallel-size={preset.gpus}" in args
    assert '--limit-mm-per-prompt={"image": 5}' in args  # JSON, as vLLM takes it
    assert any(a.startswith("--max-model-len=") for a in args)
    assert re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+", preset.image)
    # Empty only where public pins disagree (README, Models); a digest, when set, is a full sha256.
    assert preset.digest == "" or re.fullmatch(r"sha256:[0-9a-f]{64}", preset.digest)
    # The weights fit the GPUs with room for the KV cache (at most 0.9 of their memory in use).
    assert preset.weights_gb < 0.6 * GPU_MEMORY_GB[preset.accelerator] * preset.gpus


def test_the_default_is_a_gemma_4_on_two_l4s_with_images_and_16k():
    preset = PRESETS[DEFAULT_PRESET]
    assert "gemma-4" in preset.model and (preset.gpus, preset.accelerator) == (2, "nvidia-l4")
    assert preset.max_model_len >= 16384
    assert any(p.gpus == 1 for p in PRESETS.values() if "gemma-4" in p.model)  # a one-L4 choice
    assert PRESETS["gemma3-12b"].model == "google/gemma-3-12b-it"  # the seed's, kept


@pytest.mark.parametrize("name", GEMMA4)
def test_gemma_4_runs_on_a_vllm_that_starts_it_and_parses_its_thinking(name):
    preset = PRESETS[name]
    major, minor, _ = (int(x) for x in preset.image.rsplit(":v", 1)[1].split("."))
    assert (major, minor) >= (0, 19) and (major, minor) != (0, 27)  # 0.27.x: vllm#51744, #52768
    assert "--reasoning-parser=gemma4" in preset.vllm_args()
    assert "--quantization=compressed-tensors" in preset.vllm_args()  # the QAT checkpoints' format


def test_vllm_finds_gkes_driver():
    assert NVIDIA_LIBRARIES in VLLM_ENV["LD_LIBRARY_PATH"].split(":")


def test_vllm_0_27_is_refused_for_gemma_4():
    result = run_render(*config_args({"gcp:project": "p", "vllmImage": "vllm/vllm-openai:v0.27.1"}, {}))
    assert result.returncode == 2 and "fails to start Gemma 4 (vLLM 0.27.x)" in result.stderr


def _imports(path: Path) -> list[str]:
    """Every module `path` imports (`from chatapp import defaults` counts as chatapp.defaults)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names += [f"{node.module}.{a.name}" if node.module == "chatapp" else node.module or "" for a in node.names]
    return names


def test_the_stack_imports_only_the_chats_defaults():
    # The chat's modules pull Gradio and set up the chat: none of it may run inside Pulumi. The shared defaults
    # (and the package file any import of them runs first) import nothing and do nothing.
    for path in (ROOT / "stack").glob("*.py"):
        chat = [n for n in _imports(path) if n == "chatapp" or n.startswith("chatapp.")]
        assert set(chat) <= {"chatapp.defaults"}, path.name
    for shared in ("__init__.py", "defaults.py"):
        tree = ast.parse((ROOT / "chatapp" / shared).read_text())
        assert all(isinstance(n, ast.Expr | ast.Assign) for n in tree.body), f"chatapp/{shared} must only assign"


def test_the_default_image_is_pulled_by_digest():
    # A tag can be re-pushed; the default stack pulls exactly the image it was checked against.
    default = PRESETS[DEFAULT_PRESET]
    assert default.digest
    assert default.image_ref == f"{default.image}@{default.digest}"


def test_the_gemma_4_presets_differ_only_in_model_size():
    # One base (stack/presets.py gemma4_qat_on_l4): a fix to the image, window or parser reaches both.
    small, large = PRESETS["gemma4-12b-qat"], PRESETS["gemma4-31b-qat"]
    size = ("model", "gpus", "weights_gb")
    assert {f: getattr(small, f) for f in size} != {f: getattr(large, f) for f in size}
    assert replace(small, **{f: getattr(large, f) for f in size}) == large
