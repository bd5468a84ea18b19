# AvatarAdam: `make run` serves the app with demo content; `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP_FLAGS ?= --disable-pip-version-check --no-input

.PHONY: run test lint stop clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.requirements: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) -q -r requirements.txt
	touch $@

$(VENV)/.requirements-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) -q -r requirements-dev.txt
	touch $(VENV)/.requirements $@

run: $(VENV)/.requirements
	$(BIN)/python -m avatar_adam.launcher run

lint: $(VENV)/.requirements-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

stop: $(VENV)/.requirements
	$(BIN)/python -m avatar_adam.launcher stop

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
