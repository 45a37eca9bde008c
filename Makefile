# Every target creates the virtual environment and installs what it needs when it is missing.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= runs/demo
TORCH_THREADS ?= 1

.PHONY: demo test test-fast lint clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fedagentbench envs build dermatoscopy --out $(OUT)/env --seed 0 --force
	$(BIN)/fedagentbench envs show $(OUT)/env
	$(BIN)/python -m envs.oracle $(OUT)/env derm-binary-cancer $(OUT)/prepared --size 64
	$(BIN)/fedagentbench train --data $(OUT)/prepared/* --algorithm fedavg --rounds 5 --baselines \
		--threads $(TORCH_THREADS) --out $(OUT)/train --no-resume --quiet

test: $(STAMP)
	OMP_NUM_THREADS=$(TORCH_THREADS) $(BIN)/python -m pytest -q

test-fast: $(STAMP)
	OMP_NUM_THREADS=$(TORCH_THREADS) $(BIN)/python -m pytest -q -m 'not slow'

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
