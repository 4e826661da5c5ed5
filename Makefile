# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs what it needs; only python3 and make are assumed.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# The demo's mail catcher (manage.py demo_mail_catcher): the site and the
# worker send over SMTP to it, and staff read the mail at /demo-mail/.
MAIL_PORT ?= 1025
DEMO_MAIL := EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend EMAIL_HOST=127.0.0.1 EMAIL_PORT=$(MAIL_PORT)
# Links in the demo's mail (unsubscribe, renew...) point at the port it serves on.
DEMO_URL := WAGTAILADMIN_BASE_URL=http://127.0.0.1:$(PORT)
# PostgreSQL used by `make test` when reachable (required when CI=true).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=

.PHONY: demo test lint bench clean venv

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,postgres,redis]"
	@touch $@

# Setup runs its tasks inline (TASKS_BACKEND=immediate): the worker then starts
# on an empty queue instead of on tasks for pages the setup already replaced.
demo: venv
	DEBUG=1 TASKS_BACKEND=immediate $(PY) manage.py migrate --noinput
	DEBUG=1 TASKS_BACKEND=immediate $(PY) manage.py crm_demo_data
	DEBUG=1 TASKS_BACKEND=immediate $(PY) manage.py crm_demo_payments
	DEBUG=1 TASKS_BACKEND=immediate $(PY) manage.py demo_site --base-url http://127.0.0.1:$(PORT)
	@echo "Serving on http://127.0.0.1:$(PORT)/ with the task worker and the mail catcher (Ctrl-C stops all three)"
	@echo "Mail sent by the demo arrives at http://127.0.0.1:$(PORT)/demo-mail/"
	@trap 'kill $$worker $$catcher 2>/dev/null' EXIT INT TERM; \
	DEBUG=1 $(PY) manage.py demo_mail_catcher --port $(MAIL_PORT) & catcher=$$!; \
	DEBUG=1 $(DEMO_MAIL) $(DEMO_URL) $(PY) manage.py db_worker --queue-name "*" --no-reload & worker=$$!; \
	DEBUG=1 $(DEMO_MAIL) $(DEMO_URL) $(PY) manage.py runserver --noreload 127.0.0.1:$(PORT)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)
	@if $(PY) tests/postgres_available.py "$(TEST_DATABASE_URL)"; then \
		echo "== PostgreSQL run ($(TEST_DATABASE_URL))"; \
		DATABASE_URL="$(TEST_DATABASE_URL)" $(PY) -m pytest $(PYTEST_ARGS); \
	elif [ "$(CI)" = "true" ]; then \
		echo "PostgreSQL is required under CI but not reachable at $(TEST_DATABASE_URL)"; exit 1; \
	else \
		echo "== PostgreSQL not reachable at $(TEST_DATABASE_URL): PostgreSQL run skipped"; \
	fi

bench: venv
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) var *.egg-info .pytest_cache .ruff_cache test-artifacts
