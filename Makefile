# The two commands of the README: `make run` starts the gateway, `make test` runs every test.
# Both build their own virtual environment in .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-unit test-deploy lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Settings come from the environment; a .env file beside this Makefile is loaded first if present.
run: $(BIN)/.installed
	@set -a; if [ -f .env ]; then . ./.env; fi; set +a; exec $(BIN)/python -m gateway serve

test: test-unit test-deploy

test-unit: $(BIN)/.installed
	$(BIN)/python -m ruff check gateway tests
	$(BIN)/python -m pytest

# The Helm chart is rendered by Helm's own engine (helm-sdkpy), which needs Python 3.12+.
DEPLOY_VENV := .venv-deploy
$(DEPLOY_VENV)/.installed: deploy/requirements-check.txt deploy/python312.sh
	PY=$$(sh deploy/python312.sh) && "$$PY" -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DEPLOY_VENV)/bin/python -m pip install --quiet -r deploy/requirements-check.txt
	touch $@

test-deploy: $(DEPLOY_VENV)/.installed
	DEPLOY_CHECKS_STRICT=1 $(DEPLOY_VENV)/bin/python -m pytest -p no:cacheprovider -W ignore::pytest.PytestConfigWarning tests/deploy

lint: $(BIN)/.installed
	$(BIN)/python -m ruff check gateway tests

bench: $(BIN)/.installed
	$(BIN)/python -m gateway bench

clean:
	rm -rf $(VENV) $(DEPLOY_VENV) .pytest_cache
