# Two commands do all set-up: `make dev` runs the chat locally, `make test` runs every test from a clean clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Built once per machine (llama.cpp takes minutes), shared by every clone on it.
export HYBRID_CHAT_CACHE ?= $(HOME)/.cache/hybrid-chat

.PHONY: dev test lint bench mutations mutations-listed plan scan venv local-model browser crd-check scan-tools clean

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

# The CIS-aligned policy scanner (checkov), in a virtualenv of its own: its pins clash with Pulumi's.
SCAN_VENV := .venv-scan
$(SCAN_VENV)/.installed: requirements-scan.txt
	$(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install --quiet --upgrade pip
	$(SCAN_VENV)/bin/pip install --quiet -r requirements-scan.txt
	touch $@

scan-tools: $(SCAN_VENV)/.installed

# With SELF_HOSTED_URL set, your own model server is used and llama.cpp is neither built nor started.
dev: $(if $(SELF_HOSTED_URL),$(VENV)/.installed,$(VENV)/.local-model)
	$(BIN)/python -m scripts.dev

test: $(VENV)/.local-model browser crd-check scan-tools lint
	$(BIN)/python -m pytest -q -ra

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

bench: $(VENV)/.local-model
	$(BIN)/python -m bench
	$(BIN)/python -m bench.cost

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

# The policy scan alone: every Kubernetes object `make plan` renders, checked by checkov; failures not listed
# with a reason in tests/infra/policy_exceptions.yaml fail it.
scan: $(VENV)/.installed scan-tools
	$(BIN)/python -m pytest -q -ra tests/infra/test_policy_scan.py

clean:
	rm -rf $(VENV) $(SCAN_VENV) .pytest_cache .ruff_cache test-artifacts $(CRD_CHECK)/node_modules
