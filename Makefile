# dsocr-nsys: `make test` and `make demo` work on a fresh machine (they create .venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed pinned before the package: on a CPU-only machine the pinned CPU wheel is
# found locally, whereas an unpinned `torch` would pull several GB of CUDA packages.
TORCH_VERSION ?= 2.13.0
GPU ?=
MODE ?= base
TOKENS ?= 32
RUN ?= runs/$(MODE)-$(TOKENS)
DEMO_TRACE ?= examples/h100_matmul_nvtx_nsys2025.sqlite

.PHONY: install test lint demo profile report bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check dsocr_nsys tests bench launch

test: install lint
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/dsocr-nsys stages $(DEMO_TRACE)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
