# The two commands of the README: `make run` starts the gateway, `make test` runs every test.
# Both build the virtual environment in .venv on first use, with Python 3.12 or newer: by default
# the first of python3.13, python3.12 and python3 that is 3.12+ (deploy/python312.sh, which also
# looks in pyenv); `make PYTHON=/path/to/python3.12 ...` picks one yourself.
PYTHON ?= $(shell sh deploy/python312.sh 2>/dev/null)
VENV ?= .venv
BIN := $(VENV)/bin
IS_PY312 := -c 'import sys; sys.exit(sys.version_info < (3, 12))'

.PHONY: run test test-deploy lint bench clean

# One environment for everything: the gateway (editable), its dev tools and what the deploy checks
# need (deploy/requirements-check.txt). A .venv left by an older Python is rebuilt.
$(BIN)/.installed: pyproject.toml deploy/requirements-check.txt
	@if [ -x $(BIN)/python ] && ! $(BIN)/python $(IS_PY312) 2>/dev/null; then \
		echo "make: $(VENV) was built with Python $$($(BIN)/python -V 2>&1 | cut -d' ' -f2), 3.12+ is needed: rebuilding it"; \
		rm -rf $(VENV); \
	fi
	@if [ ! -x $(BIN)/python ]; then \
		py='$(PYTHON)'; \
		if [ -z "$$py" ] || ! "$$py" $(IS_PY312) >/dev/null 2>&1; then \
			echo "make: no Python 3.12 or newer found$${py:+ ($$py is older or does not run)}: install python3.12 or python3.13 with its venv module, or run make PYTHON=/path/to/python3.12" >&2; \
			exit 1; \
		fi; \
		echo "make: building $(VENV) with $$("$$py" -V 2>&1) ($$py)"; \
		"$$py" -m venv $(VENV) || exit 1; \
	fi
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -r deploy/requirements-check.txt
	touch $@

# Settings come from the environment; the gateway reads a .env file itself (see the README).
run: $(BIN)/.installed
	@exec $(BIN)/python -m gateway serve

# ruff, then one pytest run of the whole tests/ tree (the deploy checks included). A deploy tool that
# is missing (promtool off CI) skips the checks that need it, with one summary line; with
# DEPLOY_CHECKS_STRICT=1 or CI=true (.ci/run) it fails them instead.
test: $(BIN)/.installed
	$(BIN)/python -m ruff check gateway tests
	$(BIN)/python -m pytest

# The deploy checks alone (Helm chart, compose stack, alert rules).
test-deploy: $(BIN)/.installed
	$(BIN)/python -m pytest tests/deploy

lint: $(BIN)/.installed
	$(BIN)/python -m ruff check gateway tests

bench: $(BIN)/.installed
	$(BIN)/python -m gateway bench

# .venv-deploy: the separate deploy environment of earlier versions.
clean:
	rm -rf $(VENV) .venv-deploy .pytest_cache
