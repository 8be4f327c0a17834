# The README's two commands: `make run` (flagship scenario against the demo, writes a
# report under reports/) and `make test` (the test suite). Both set everything up first.
VENV ?= .venv
PY := $(VENV)/bin/python
SCENARIO ?= scenarios/feature-store-latency.yaml
RUN_FLAGS ?=

.PHONY: setup run test quick bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: this build lies on disk; any other spec downloads a CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[ml,dev,docker,k8s,observe,fast]'
	touch $@

run: setup
	$(VENV)/bin/aftershock run $(SCENARIO) $(RUN_FLAGS)

quick: setup
	$(VENV)/bin/aftershock run $(SCENARIO) --quick

test: setup
	$(VENV)/bin/lint-imports  # the layers only point down (harness/README.md)
	$(PY) -m pytest tests -q -ra

bench: setup
	$(PY) benchmarks/proxy_bench.py
	$(PY) benchmarks/load_bench.py

clean:
	rm -rf $(VENV) reports/*/
