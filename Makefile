# Two commands do all the set-up on a fresh machine (Python 3.11 + package registries):
#   make run    creates .venv, installs nengo-hybrid, runs the main job
#   make test   creates .venv and .venv-lava, installs nengo-hybrid, runs the fast test suite
#   make lava   creates .venv-lava (Python 3.10 + lava-nc 0.10.0), Lava's own environment
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_ARGS ?=
PYTEST_ARGS ?=

# Lava (Loihi 2 referee and chip path) needs Python >=3.10,<3.11: pyenv's 3.10.13
LAVA_PYTHON ?= $(shell pyenv root 2>/dev/null || echo /nonexistent)/versions/3.10.13/bin/python
LAVA_VENV ?= .venv-lava
LAVA_STAMP := $(LAVA_VENV)/.installed

.PHONY: run test test-slow lint format install browser clean lava

$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e ".[all]"
	touch $(STAMP)

install: $(STAMP)

$(LAVA_STAMP):
	test -x $(LAVA_VENV)/bin/python || $(LAVA_PYTHON) -m venv $(LAVA_VENV) || python3.10 -m venv $(LAVA_VENV)
	$(LAVA_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LAVA_VENV)/bin/python -m pip install --quiet "lava-nc==0.10.0" "numpy<2"
	touch $(LAVA_STAMP)

lava: $(LAVA_STAMP)

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

test: $(STAMP) $(LAVA_STAMP) browser lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: $(STAMP) $(LAVA_STAMP) browser
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(LAVA_VENV) build *.egg-info
