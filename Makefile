# Two commands set up a fresh machine: `make demo` and `make test`. Both create .venv themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export RISKMODEL_THREADS ?= 2
export OMP_NUM_THREADS ?= 2
export PYTHONHASHSEED := 0

.PHONY: venv demo test reliability bench bench-peers lock clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/riskmodel demo --out data/synthetic/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

reliability: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/reliability

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Regenerate the pinned versions from what is installed in .venv (run after a deliberate upgrade).
lock:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^riskmodel' > constraints.txt

clean:
	rm -rf $(VENV) mlruns.db mlartifacts
