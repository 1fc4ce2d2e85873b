# The two commands:
#   make run    set up .venv, migrate, create the demo admin and schedules, start web + worker + beat
#   make test   install the test tools into .venv and run the whole suite (pytest)
# Nothing needs to be set. Overrides: make run PORT=9000, make test PYTEST_ARGS="-k cron",
# PYTHON=python3.11 for the interpreter that creates .venv.

PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
PYTEST_ARGS ?=

BIN := $(VENV)/bin
VENV_PYTHON := $(BIN)/python
RUNTIME_STAMP := $(VENV)/.requirements.stamp
DEV_STAMP := $(VENV)/.requirements-dev.stamp
PIP := $(VENV_PYTHON) -m pip --disable-pip-version-check

# honcho, stopping each process by SIGTERM to its main process (see deploy/run_procfile.py).
HONCHO := $(VENV_PYTHON) deploy/run_procfile.py

# Where the platform keeps its SQLite file and broker queue (settings: DATA_DIR, default ./var).
RUN_DATA_DIR := $(abspath $(or $(DATA_DIR),var))

.DEFAULT_GOAL := help
.PHONY: help run test lint format install install-dev

help:
	@echo "make run      start the platform locally (admin at http://127.0.0.1:$(PORT)/admin/)"
	@echo "make test     run the test suite"
	@echo "make lint     ruff check + ruff format --check"
	@echo "make format   apply ruff's fixes and formatting"

# --- the virtualenv ------------------------------------------------------------------------
$(VENV_PYTHON):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed to create $(VENV); $(PYTHON) is " + sys.version.split()[0] + ". Try: make PYTHON=python3.11 ...")'
	@echo "Creating $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV) || { echo "Could not create $(VENV). On Debian/Ubuntu: apt-get install python3-venv" >&2; exit 1; }

# A stamp file per requirements file: pip runs again only when the requirements change.
$(RUNTIME_STAMP): requirements.txt | $(VENV_PYTHON)
	$(PIP) install -r requirements.txt
	@touch $@

$(DEV_STAMP): requirements-dev.txt requirements.txt | $(VENV_PYTHON)
	$(PIP) install -r requirements-dev.txt
	@touch $@

install: $(RUNTIME_STAMP)
install-dev: $(DEV_STAMP)

# --- command 1: run the platform -----------------------------------------------------------
# The file cleanup demo works in $(RUN_DATA_DIR)/demo-files, so allow that directory unless
# JOBS_FILE_ROOTS is set already; the API's uploads land below it. The health check demo
# calls the local admin on 127.0.0.1, which the HTTP job refuses by default (loopback), so
# allow that one address likewise.
run: export JOBS_FILE_ROOTS ?= $(RUN_DATA_DIR)/demo-files
run: export API_UPLOAD_ROOT ?= $(RUN_DATA_DIR)/demo-files/uploads
run: export JOBS_HTTP_ALLOW ?= 127.0.0.1
run: export PYTHONUNBUFFERED = 1
run: $(RUNTIME_STAMP)
	$(VENV_PYTHON) manage.py migrate --noinput
	$(VENV_PYTHON) manage.py collectstatic --noinput --verbosity 0
	$(VENV_PYTHON) manage.py demo --base-url http://127.0.0.1:$(PORT)
	@echo "Starting web, worker and beat. Admin: http://127.0.0.1:$(PORT)/admin/  Ctrl-C stops all three."
	@PATH="$(abspath $(BIN)):$$PATH" VIRTUAL_ENV="$(abspath $(VENV))" $(HONCHO) start --port $(PORT) \
		|| [ $$? -eq 130 ]  # 130: stopped by Ctrl-C, as intended

# --- command 2: the test suite ---------------------------------------------------------------
# make itself exits with 2 when a recipe fails; the line above it shows pytest's own code.
test: $(DEV_STAMP)
	@$(BIN)/pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests (exit 5); that is a failure." >&2; fi; \
	if [ $$status -ne 0 ]; then echo "make test: pytest exited with code $$status" >&2; fi; \
	exit $$status

lint: $(DEV_STAMP)
	@status=0; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/ruff format --check . || status=1; \
	exit $$status

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix-only .
	$(BIN)/ruff format .
