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
NCU ?=
# Inference variants (docs/launch.md): DECODE=eager|cuda-graph, MOE=loop|device (empty: the
# launcher's default), COMPILE=1 (torch.compile the decode step), BATCH=N pages per request.
DECODE ?= eager
MOE ?=
COMPILE ?=
BATCH ?= 1
VARIANT_ARGS = --decode $(DECODE) --batch $(BATCH) $(if $(MOE),--moe $(MOE)) $(if $(COMPILE),--compile)
RUN ?= runs/$(MODE)-$(TOKENS)$(if $(filter cuda-graph,$(DECODE)),-cuda-graph)$(if $(COMPILE),-compile)$(if $(filter-out 1,$(BATCH)),-b$(BATCH))
# The bundled real trace: DeepSeek-OCR base mode, 32 new tokens, full graph, on an H100.
DEMO_TRACE ?= examples/dsocr_base32_h100_nsys2025.sqlite
DEMO_STATIC ?= examples/dsocr_base32_h100_static.json
DEMO_OUT ?= runs/demo

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

# The main job on the bundled trace: mfu.md/json/csv and plots in $(DEMO_OUT), then the
# Markdown report on the terminal.
demo: install
	$(BIN)/dsocr-nsys mfu $(DEMO_TRACE) --static $(DEMO_STATIC) -o $(DEMO_OUT)
	@cat $(DEMO_OUT)/mfu.md

# Trace-engine speed on a scaled real export (built once into bench/out/); see docs/benchmarks.md.
bench: install
	$(BIN)/python bench/bench_trace.py

# make profile GPU=h100 [MODE=base] [TOKENS=32] [DECODE=cuda-graph] [MOE=device] [COMPILE=1]
#   [BATCH=16] [RUN=runs/NAME]: a run folder under nsys.
# GPU names the card for the MFU step (its peak figures); it is recorded in run.json.
# NCU=1 adds Nsight Compute hardware FLOPs (ncu.csv, hw_flops.json) after the nsys run.
profile: install
	@if [ -z "$(GPU)" ]; then echo "Error: name the GPU for the MFU step, e.g. make profile GPU=h100 MODE=$(MODE) TOKENS=$(TOKENS)" >&2; exit 2; fi
	$(BIN)/dsocr-nsys profile --mode $(MODE) --max-new-tokens $(TOKENS) $(VARIANT_ARGS) --gpu "$(GPU)" --out $(RUN) $(if $(filter 1,$(NCU)),--ncu)

# make report [RUN=runs/NAME]: static compute for the run's configuration, then MFU of its trace
# (default: the latest profiled run, runs/latest).
REPORT_RUN = $(if $(filter command line environment,$(origin RUN)),$(RUN),runs/latest)
report: install
	$(BIN)/python -m dsocr_nsys.launch report $(REPORT_RUN) --dsocr $(BIN)/dsocr-nsys $(if $(GPU),--gpu "$(GPU)")

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
