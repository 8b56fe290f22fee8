# Two commands do all the set-up on a fresh machine (Python 3.11 + package registries):
#   make run    creates .venv, installs nengo-hybrid, runs the main job
#   make test   creates .venv, installs nengo-hybrid, runs the fast test suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test test-slow lint format install browser clean

$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e ".[all]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/nengo-hybrid run $(RUN_ARGS)

# Debian's chromium (apt, only if missing) for the Nengo GUI browser test
browser: $(STAMP)
	bash tests/setup_browser.sh $(BIN)/python

# the formatter and the linter (ruff.toml), as CI runs them
lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) browser lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: $(STAMP) browser
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
