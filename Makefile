# Every target sets itself up: on a fresh machine with Python 3.11+, `make test` and
# `make demo` create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test lint format demo bench wheel-smoke clean py312 print-python312

# SnapStart needs Python 3.12+, so its tests and demo run the environments on a second,
# light interpreter: AWS's runtime client, its hooks package, preheat's runtime part and the
# LiteRT interpreter the zip form of the inference function runs on (no TensorFlow).
# PYTHON312 may name one; otherwise the first 3.12 found on PATH or under pyenv is used.
VENV312  := .venv312
STAMP312 := $(VENV312)/.installed
PYTHON312 ?= $(shell for p in python3.12 $$(pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo "$$p"; break; }; done)

$(STAMP): pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

$(STAMP312): pyproject.toml setup.py
	@test -n "$(PYTHON312)" || { echo "no Python 3.12 found: install one (pyenv install 3.12) or pass PYTHON312=/path/to/python3.12" >&2; exit 2; }
	@test -x $(VENV312)/bin/python || $(PYTHON312) -m venv $(VENV312)
	$(VENV312)/bin/python -m pip install --quiet --upgrade pip
	$(VENV312)/bin/python -m pip install --quiet -e '.[litert]' 'awslambdaric==4.2.2' 'snapshot-restore-py>=1.0'
	@touch $(STAMP312)

py312: $(STAMP312)

# The interpreter `py312` would build from (empty when there is none): the tests ask.
print-python312:
	@echo "$(PYTHON312)"

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

# Build the wheel, install it alone in a fresh virtualenv and use it: every verb's --help,
# emulate, deploy --dry-run and a real deploy against moto, and the demo (tests/wheel_smoke.py).
wheel-smoke: $(STAMP)
	$(PY) -m tests.wheel_smoke --extras tensorflow,litert,local

clean:
	rm -rf $(VENV) $(VENV312) .pytest_cache .mypy_cache .ruff_cache build *.egg-info layers/*.egg-info
