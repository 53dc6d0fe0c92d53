# Everything a fresh Debian machine with Python 3.11 needs: `make run`, `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages, each as "what shows it is there:package" (a command or a file).
# The test suite drives these for real:
TEST_DEPS := /usr/bin/chromium:chromium /usr/bin/redis-server:redis-server \
	/usr/bin/turnserver:coturn /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:fonts-dejavu-core \
	/usr/bin/promtool:prometheus
# Firefox and Safari's engine (docs/browsers.md): Firefox plays into a private PulseAudio,
# WebKitGTK's MiniBrowser runs under Xvfb; network namespaces and shaping need iproute2.
TEST_DEPS += /usr/bin/firefox-esr:firefox-esr /usr/bin/WebKitWebDriver:webkit2gtk-driver \
	/usr/bin/Xvfb:xvfb /usr/bin/pulseaudio:pulseaudio /usr/bin/pactl:pulseaudio-utils \
	/usr/sbin/tc:iproute2
# ESLint (package.json) runs on these:
NODE_DEPS := node:nodejs npm:npm
NODE_STAMP := node_modules/.installed

# $(call apt_install,DEPS): apt-get install the packages of DEPS that are missing.
define apt_install
	@missing=""; for dep in $(1); do \
		{ [ -e "$${dep%%:*}" ] || command -v "$${dep%%:*}"; } >/dev/null 2>&1 || missing="$$missing $${dep#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; \
		elif command -v sudo >/dev/null; then SUDO="sudo"; \
		else echo "error: need root (or sudo) to apt-get install$$missing" >&2; exit 1; fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

.PHONY: install run test check lint typecheck pytest system-deps node-deps bench compose-smoke clean

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
	$(call apt_install,$(TEST_DEPS))

node-deps:
	$(call apt_install,$(NODE_DEPS))

# `npm ci` (exact versions from package-lock.json) when node_modules is missing or stale.
$(NODE_STAMP): package.json package-lock.json | node-deps
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

lint: install $(NODE_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	npx eslint web_client

typecheck: install
	$(BIN)/mypy

pytest: install system-deps $(NODE_STAMP)
	$(BIN)/python -m pytest

test: lint typecheck pytest

# Relay forwarding cost (docs/benchmarks.md). The decode/re-encode baseline
# cannot carry 40 calls, so it is compared at a load it can still hold.
BENCH_CONSULTATIONS ?= 40
BENCH_SECONDS ?= 20
bench: install
	$(BIN)/teleconsult bench relay --consultations $(BENCH_CONSULTATIONS) --seconds $(BENCH_SECONDS) --baseline minimal
	$(BIN)/teleconsult bench relay --consultations 2 --seconds $(BENCH_SECONDS) --baseline frames --baseline mediarelay
	$(BIN)/teleconsult bench join --runs 5
	$(BIN)/teleconsult bench signalling --patients 2000 --per-practitioner 2000

# docker-compose.yml for real: a private Docker engine in its own network namespace
# (no route out), images built from Debian packages, the smoke test of
# tests/compose_smoke.py, then everything torn down (docs/deployment.md).
# Needs root and the Debian packages docker.io, docker-compose and debootstrap.
# Not part of `make test`: the first run builds images (several minutes).
COMPOSE_SMOKE_TIMEOUT ?= 2700
compose-smoke: install
	timeout --kill-after=60 $(COMPOSE_SMOKE_TIMEOUT) deploy/compose-smoke.sh

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache *.egg-info
