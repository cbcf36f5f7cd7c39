# The two commands of the README: `make demo` and `make test`. Both build .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

# The stamp is touched last, so .venv is either complete or made afresh: a venv half made by
# an interrupted run (Ctrl-C while pip installs itself, say) is removed instead of breaking
# every later run with "already satisfied" packages that lack their files.
$(BIN)/.installed: pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# The README's demo, on the embedded SQLite default whatever the shell exports: an
# application's LINK_MQ_DATABASE_URL or LINK_MQ_BROKER_URL (the Quick start exports one) would
# put the demo on that application's database and queue. `link-mq demo` itself reads them.
DEMO_UNSET := LINK_MQ_DATABASE_URL LINK_MQ_BROKER_URL LINK_MQ_QUEUE LINK_MQ_TABLE_PREFIX \
	LINK_MQ_CONFIG LINK_MQ_CONSUME_MODE LINK_MQ_NODE_NAME LINK_MQ_MAX_ATTEMPTS LINK_MQ_LEASE_S \
	LINK_MQ_TICK_INTERVAL LINK_MQ_MESSAGES_PER_TICK LINK_MQ_RETRY_BACKOFF_S \
	LINK_MQ_RELAY_INTERVAL LINK_MQ_DEMO_CSV

demo: $(BIN)/.installed
	env $(foreach name,$(DEMO_UNSET),-u $(name)) $(BIN)/link-mq demo

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(BIN)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis site
