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

typecheck: $(STAMP)
	$(PY) -m mypy

test: lint
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pytest -q -s tests/benchmarks -p no:randomly --override-ini="addopts=-ra"

sample-data: $(STAMP)
	$(PY) sample_data/generate.py --out sample_data

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
