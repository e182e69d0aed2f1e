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

# Peer benchmark (issue 7): peers are the `bench` extra; scorecardpy needs pandas < 3, so it gets
# its own venv, used by benchmarks/_scorecardpy_worker.py. `make bench` runs bench_peers.py too.
BENCH_STAMP := $(VENV)/.bench-installed
SCPY_VENV := .venv-scorecardpy

bench: $(STAMP) $(BENCH_STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,bench]'
	test -x $(SCPY_VENV)/bin/python || $(PY) -m venv $(SCPY_VENV)
	$(SCPY_VENV)/bin/python -m pip install -q 'pandas<3' scorecardpy pyarrow || echo "scorecardpy venv failed; bench_peers.py reports it"
	touch $(BENCH_STAMP)

bench-peers: $(BENCH_STAMP)
	$(BIN)/python benchmarks/bench_peers.py
	$(BIN)/python benchmarks/peers_investigation.py
	$(BIN)/python benchmarks/bench_peers.py --render

# Regenerate the pinned versions from what is installed in .venv (run after a deliberate upgrade).
lock:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^riskmodel' > constraints.txt

clean:
	rm -rf $(VENV) mlruns.db mlartifacts
