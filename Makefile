# Dock2Box: `make run` serves the portal on its embedded default; `make test` runs everything CI runs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
HOST_PORT ?= 127.0.0.1:8000

# The test suite runs against PostgreSQL (pytest-django creates and drops test_dock2box).
TEST_ENV := DATABASE_URL=$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/dock2box} \
	DATABASE_CONN_MAX_AGE=0 DJANGO_SECRET_KEY=test-only-not-secret DOCK2BOX_VAR_DIR=$(CURDIR)/var/test CELERY_BROKER_URL= \
	DJANGO_ALLOWED_HOSTS=testserver,localhost,127.0.0.1

.PHONY: run test test-quick lint clean bootenv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py ensure_admin --url http://$(HOST_PORT)/admin/
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(BIN)/python manage.py runserver $(HOST_PORT)

# The installer's boot environment, registered as the default boot image (needs the tools in tests/debian-packages.txt).
bootenv: $(VENV)/.runtime
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py bootenv --default

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(TEST_ENV) $(BIN)/mypy
	$(TEST_ENV) $(BIN)/python manage.py check
	$(TEST_ENV) $(BIN)/python manage.py makemigrations --check --dry-run

test:
	tests/setup_machine.sh
	$(MAKE) lint
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS)

test-quick: $(VENV)/.dev
	$(TEST_ENV) $(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var/test
