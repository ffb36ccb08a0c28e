# reelgate: `make run` starts the server with embedded defaults; `make test` runs every test.
# Both set themselves up: a virtualenv in .venv and the system packages the tests need.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSTEM_STAMP := $(VENV)/.system-packages
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install system-packages run test test-fast check lint typecheck layers lowest bench soak clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Debian's chromium drives the studio's browser tests; libfiu's fiu-run injects disk faults into the database
# tests. Installed only when missing.
system-packages: $(SYSTEM_STAMP)

$(SYSTEM_STAMP):
	@mkdir -p $(VENV)
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v fiu-run >/dev/null 2>&1; then \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = "0" ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core fiu-utils >/dev/null; \
		else \
			echo "note: chromium or fiu-utils is not installed; browser and disk-fault tests will be skipped"; \
		fi; \
	fi
	@touch $(SYSTEM_STAMP)

run: install
	$(BIN)/reelgate serve

# The slowest tests are listed at the end, so that a suite growing towards CI's time limit shows where.
test: install system-packages
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=25

test-fast: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow and not browser"

lint: install
	$(BIN)/ruff check reelgate tests examples scripts
	$(BIN)/ruff format --check reelgate tests examples scripts

typecheck: install
	$(BIN)/mypy

layers: install
	$(BIN)/lint-imports

# The core tests on the lowest version of every runtime dependency pyproject.toml allows (test tools at their
# usual versions): a lower bound that promises more than the code can use fails here.
LOWEST := .venv-lowest
lowest: install
	@test -x $(LOWEST)/bin/python || $(BIN)/uv venv -q -p $(PYTHON) $(LOWEST)
	$(BIN)/python scripts/lowest_constraints.py > $(LOWEST)/constraints.txt
	VIRTUAL_ENV=$(LOWEST) $(BIN)/uv pip install -q -c $(LOWEST)/constraints.txt -e '.[test,sentry]'
	$(LOWEST)/bin/python -m pytest -q -p no:cacheprovider tests/db tests/test_migrations.py \
		tests/api/test_generation_flow.py tests/billing/test_stripe.py tests/production/test_queue.py \
		tests/production/test_error_reporting.py tests/production/test_shared_limits.py \
		-k 'not workers-'

# Every gate CI runs.
check: lint typecheck layers lowest test

bench: install
	$(BIN)/python -m bench

soak: install system-packages
	REELGATE_SOAK=1 $(BIN)/python -m pytest -q -p no:cacheprovider -m soak tests/reliability

clean:
	rm -rf $(VENV) $(LOWEST) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
