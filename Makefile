# The two commands of the README: `make run` starts the gateway, `make test` runs every test.
# Both build their own virtual environment in .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Settings come from the environment; a .env file beside this Makefile is loaded first if present.
run: $(BIN)/.installed
	@set -a; if [ -f .env ]; then . ./.env; fi; set +a; exec $(BIN)/python -m gateway serve

test: $(BIN)/.installed
	$(BIN)/python -m ruff check gateway tests
	$(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/python -m ruff check gateway tests

clean:
	rm -rf $(VENV) .pytest_cache
