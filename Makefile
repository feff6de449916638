# Every target sets itself up: on a fresh machine with Python 3.11+, `make test` and
# `make demo` create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test lint format demo bench wheel-smoke clean

$(STAMP): pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check layers functions scripts tests setup.py
	$(VENV)/bin/ruff format --check layers functions scripts tests setup.py
	$(VENV)/bin/mypy
	@# Each function is its own top-level module named app: check them one at a time.
	@for f in functions/*/app.py; do $(VENV)/bin/mypy $$f || exit 1; done
	$(VENV)/bin/mypy scripts

format: $(STAMP)
	$(VENV)/bin/ruff format layers functions scripts tests setup.py
	$(VENV)/bin/ruff check --fix layers functions scripts tests setup.py

demo: $(STAMP)
	$(VENV)/bin/preheat demo

bench: $(STAMP)
	$(VENV)/bin/preheat bench

# Build the wheel, install it with [local] in a fresh virtualenv and use it (tests/wheel_smoke.py).
wheel-smoke: $(STAMP)
	$(PY) -m tests.wheel_smoke

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info layers/*.egg-info
