# Two commands do all set-up: `make dev` runs the chat locally, `make test` runs every test from a clean clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Built once per machine (llama.cpp takes minutes), shared by every clone on it.
export HYBRID_CHAT_CACHE ?= $(HOME)/.cache/hybrid-chat

.PHONY: dev test lint bench mutations mutations-listed plan venv local-model browser crd-check clean

$(VENV)/.installed: pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -r requirements.txt
	touch $@

venv: $(VENV)/.installed

# llama.cpp's OpenAI-compatible server and SmolLM2-135M-Instruct: the local stand-in for the Gemma slot.
$(VENV)/.local-model: $(VENV)/.installed scripts/install-local-model.sh
	scripts/install-local-model.sh $(BIN)/python
	touch $@

local-model: $(VENV)/.local-model

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
browser:
	scripts/install-chromium.sh

# Validators for the Gateway API and GKE custom resources the Pulumi program renders (tests/infra/crd/README.md).
CRD_CHECK := tests/infra/crd
$(CRD_CHECK)/node_modules/.installed: $(CRD_CHECK)/package.json $(CRD_CHECK)/package-lock.json
	cd $(CRD_CHECK) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

crd-check: $(CRD_CHECK)/node_modules/.installed

# With SELF_HOSTED_URL set, your own model server is used and llama.cpp is neither built nor started.
dev: $(if $(SELF_HOSTED_URL),$(VENV)/.installed,$(VENV)/.local-model)
	$(BIN)/python -m scripts.dev

test: $(VENV)/.local-model browser crd-check lint
	$(BIN)/python -m pytest -q -ra

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

bench: $(VENV)/.local-model
	$(BIN)/python -m bench

# mutmut over the modules that carry security and data promises, each with its own fast tests (bench/mutation_score.py):
# a score per module and every surviving mutant. Minutes per module, so not in make test;
# `make mutations MODULES=chatapp/iap.py` runs one.
MODULES ?=
mutations: $(VENV)/.installed
	$(BIN)/python -m bench.mutation_score $(MODULES)

# The hand-written regression cases (bench/mutations.py): known bugs planted one at a time, each must be caught.
mutations-listed: $(VENV)/.installed
	$(BIN)/python -m bench.mutations

plan: $(VENV)/.installed
	@$(BIN)/python -m stack.render

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts $(CRD_CHECK)/node_modules
