"""The self-hosted models the stack knows how to serve: one row per preset, everything vLLM needs in that row.

`gemmaModel` names a preset (or a Hugging Face id with explicit `gemmaGpus` and `gemmaVllmArgs`, see
stack/config.py). Checked 2026-12-06 against the model cards, vllm-project/recipes and Google's GKE manifests:
- Gemma 4 (April 2026) needs vLLM >= 0.19 (the 12B >= 0.23); Google's Terraform default for Gemma 4 is
  `vllm/vllm-openai:v0.26.0`. 0.27.x fails to start Gemma 4 (vllm#51744, #52768): do not move to it.
- Google's 4-bit QAT checkpoints `google/gemma-4-*-it-qat-w4a16-ct` (compressed-tensors, weights 4 bit,
  activations 16 bit): 31B 19.8 GB, 12B 8.3 GB of weights, against 75 GB / 29 GB minimum VRAM at bf16.
- Gemma 3 12B stays at the seed's vLLM 0.10.2 (bf16, ~24 GB: two L4s).

Image digests are filled in only from sources that pin them. v0.26.0's `sha256:ffb2d59b…` is the digest that
independent public pins of `vllm/vllm-openai:v0.26.0` agree on (six projects' Dockerfiles and manifests, read
2026-12-06; no registry is reachable from where this was written). Check it before you move it:
`docker buildx imagetools inspect vllm/vllm-openai:v0.26.0` prints the index digest. v0.10.2's public pins
disagree, so that preset is pulled by tag: an empty digest means the tag alone is used, and the tag can move.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from chatapp import defaults

# GKE mounts the NVIDIA driver's libraries here; vLLM images >= 0.9 do not look there by themselves and stop with
# "No platform detected" (vllm#18859, #23935). Google's own vLLM manifests set the same variable.
NVIDIA_LIBRARIES = "/usr/local/nvidia/lib64"
VLLM_ENV = {"LD_LIBRARY_PATH": NVIDIA_LIBRARIES}
# Images per prompt vLLM accepts: the chat sends at most this many (chatapp.conversation.PROMPT_IMAGES; a
# contract test keeps the two equal, since the stack never imports the chat).
PROMPT_IMAGES = 5
VLLM_GEMMA4 = "vllm/vllm-openai:v0.26.0"
VLLM_GEMMA4_DIGEST = "sha256:ffb2d59b1c059a5bd8d781320c9f5189de8293693b7d95da54befddaa54abf52"
VLLM_GEMMA3 = "vllm/vllm-openai:v0.10.2"


@dataclass(frozen=True)
class Preset:
    model: str
    """Hugging Face id: what the weights Job copies and what vLLM answers to (SELF_HOSTED_MODEL)."""
    gpus: int
    accelerator: str
    image: str
    digest: str
    """`sha256:…` of `image`, or empty when no citable source pins one."""
    weights_gb: float
    """Size of the checkpoint's files: sizes the FUSE file cache."""
    max_model_len: int
    """0: vLLM's default (the model's own context), or whatever `extra_args` says."""
    quantization: str | None = None
    reasoning_parser: str | None = None
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    """Further vLLM arguments (`gemmaVllmArgs`), last so they win over the preset's own."""

    @property
    def image_ref(self) -> str:
        return f"{self.image}@{self.digest}" if self.digest else self.image

    def vllm_args(self) -> list[str]:
        """Every model-specific vLLM argument (the server's address and batching are stack/gemma.py's)."""
        # vLLM splits the attention heads evenly across the GPUs of the pod.
        args = [f"--tensor-parallel-size={self.gpus}"]
        if self.max_model_len:
            args.append(f"--max-model-len={self.max_model_len}")
        # JSON: `image=5` fails since vLLM 0.10.
        args.append(f"--limit-mm-per-prompt={json.dumps({'image': PROMPT_IMAGES})}")
        if self.quantization:
            args.append(f"--quantization={self.quantization}")
        if self.reasoning_parser:
            # Splits Gemma 4's thinking into `delta.reasoning`, so it never lands in the answer text.
            args.append(f"--reasoning-parser={self.reasoning_parser}")
        return [*args, *self.extra_args]


def gemma4_qat_on_l4(model: str, gpus: int, weights_gb: float) -> Preset:
    """What both Gemma 4 presets share: one of Google's 4-bit QAT checkpoints on L4s, the vLLM that starts Gemma
    4 (pinned by digest), its reasoning parser, and a 16K window (a long conversation with images; vLLM refuses
    to start if one sequence of this length cannot fit the KV cache, and a larger window leaves less of it for
    the 64 sequences batched at once)."""
    return Preset(
        model=model,
        gpus=gpus,
        accelerator="nvidia-l4",
        image=VLLM_GEMMA4,
        digest=VLLM_GEMMA4_DIGEST,
        weights_gb=weights_gb,
        max_model_len=16384,
        quantization="compressed-tensors",
        reasoning_parser="gemma4",
    )


PRESETS: dict[str, Preset] = {
    # The default: the largest Gemma 4 that fits 2 L4s (48 GB) with images and a long context. 19.8 GB of QAT
    # weights leave ~20 GB for the KV cache at 0.9 GPU memory use; bf16 31B (75 GB) or 26B-A4B (64 GB) would
    # need 4 L4s, and the 12B fits one L4 (below).
    "gemma4-31b-qat": gemma4_qat_on_l4(defaults.SELF_HOSTED_MODEL, gpus=2, weights_gb=19.8),
    # One L4 (half the GPU price): 8.3 GB of QAT weights leave ~13 GB of the 24 for the KV cache.
    "gemma4-12b-qat": gemma4_qat_on_l4("google/gemma-4-12b-it-qat-w4a16-ct", gpus=1, weights_gb=8.3),
    # The seed's model, kept for stacks that already serve it: bf16, two L4s, vLLM 0.10.2 (no reasoning parser).
    "gemma3-12b": Preset(
        model="google/gemma-3-12b-it",
        gpus=2,
        accelerator="nvidia-l4",
        image=VLLM_GEMMA3,
        digest="",
        weights_gb=24.0,
        max_model_len=8192,
    ),
}
DEFAULT_PRESET = "gemma4-31b-qat"
# For a Hugging Face id that is no preset: the image Gemma 4 needs.
DEFAULT_IMAGE = VLLM_GEMMA4
DEFAULT_DIGEST = VLLM_GEMMA4_DIGEST
