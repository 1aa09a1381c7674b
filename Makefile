# Every install step lives here: a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv install lint typecheck test bench demo sample-data clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(PY) -m mypy

test: lint
	$(PY) -m pytest -q

# Byte-compiled first, as a regular install would be: the CLI's start-up is part of what is timed
# (and PYTHONDONTWRITEBYTECODE, where set, would otherwise make every run parse the sources again).
# A benchmark at 1M users runs for minutes: no per-test timeout (the children have their own).
bench: $(STAMP)
	$(PY) -m compileall -q orchestrator
	$(PY) -m pytest -q -s tests/benchmarks -p no:randomly --override-ini="addopts=-ra" --timeout=0

# A real import of sample_data/ into the local sandbox: start it, run, print the report, stop it.
DEMO_PORT ?= 8765
DEMO_DIR := runs/demo
demo: $(STAMP)
	@mkdir -p runs && rm -rf $(DEMO_DIR)
	@$(PY) -m orchestrator sandbox --port $(DEMO_PORT) --job-seconds 2 > runs/sandbox.log 2>&1 & \
	sandbox=$$!; trap 'kill $$sandbox 2>/dev/null' EXIT; \
	for i in $$(seq 50); do grep -q '^export AUTH0_CLIENT_SECRET' runs/sandbox.log && break; sleep 0.1; done; \
	grep -q '^export' runs/sandbox.log || { cat runs/sandbox.log; exit 2; }; \
	eval "$$(grep '^export' runs/sandbox.log)"; \
	echo "== orchestrator run sample_data/users.json (sandbox on port $(DEMO_PORT))"; \
	$(PY) -m orchestrator run sample_data/users.json --run-dir $(DEMO_DIR) \
		--connection-id con_SandboxDatabase1 --max-request-bytes 60000 --max-rps 10 --log-format text; \
	status=$$?; echo "== exit code $$status; the run directory is $(DEMO_DIR)"; exit $$status

sample-data: $(STAMP)
	$(PY) sample_data/generate.py --out sample_data

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
