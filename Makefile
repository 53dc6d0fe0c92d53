# Everything a fresh Debian machine with Python 3.11 needs: `make run`, `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the test suite drives for real.
TEST_PACKAGES := chromium redis-server coturn fonts-dejavu-core
TEST_COMMANDS := /usr/bin/chromium /usr/bin/redis-server /usr/bin/turnserver

.PHONY: install run test check lint typecheck pytest system-deps bench compose-smoke clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "teleconsult needs Python 3.11, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/teleconsult serve

system-deps:
	@missing=""; for c in $(TEST_COMMANDS); do [ -x $$c ] || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages for the tests (missing:$$missing)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; \
		elif command -v sudo >/dev/null; then SUDO="sudo"; \
		else echo "error: need root (or sudo) to apt-get install $(TEST_PACKAGES)" >&2; exit 1; fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(TEST_PACKAGES) >/dev/null; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install system-deps
	$(BIN)/python -m pytest

test: lint typecheck pytest

# Relay forwarding cost (docs/benchmarks.md). The decode/re-encode baseline
# cannot carry 40 calls, so it is compared at a load it can still hold.
BENCH_CONSULTATIONS ?= 40
BENCH_SECONDS ?= 20
bench: install
	$(BIN)/teleconsult bench relay --consultations $(BENCH_CONSULTATIONS) --seconds $(BENCH_SECONDS) --baseline frames
	$(BIN)/teleconsult bench relay --consultations 2 --seconds $(BENCH_SECONDS) --baseline frames --baseline mediarelay

# docker-compose.yml for real: a private Docker engine in its own network namespace
# (no route out), images built from Debian packages, the smoke test of
# tests/compose_smoke.py, then everything torn down (docs/deployment.md).
# Needs root and the Debian packages docker.io, docker-compose and debootstrap.
# Not part of `make test`: the first run builds images (several minutes).
COMPOSE_SMOKE_TIMEOUT ?= 2700
compose-smoke: install
	timeout --kill-after=60 $(COMPOSE_SMOKE_TIMEOUT) deploy/compose-smoke.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
