# callcenter: a fresh Debian/Ubuntu machine needs only `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ASTERISK_ROOT ?= $(or $(CALLCENTER_ASTERISK_ROOT),$(HOME)/.cache/callcenter/asterisk-root)
# Debian packages the project needs on the host (Asterisk itself lives in a
# Debian sid chroot: bookworm has no asterisk package).
DEB_PACKAGES := debootstrap sip-tester postgresql prometheus graphviz espeak-ng sox ffmpeg util-linux chromium

.PHONY: setup system-packages venv asterisk-root run test test-fast check bench clean

setup: system-packages venv asterisk-root

system-packages:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

asterisk-root:
	@$(SUDO) bash asterisk/build-root.sh $(ASTERISK_ROOT)

# The whole stack on local defaults: Asterisk sandbox, PostgreSQL, the daemon.
run: setup
	$(PY) -m callcenter prompts build
	$(PY) -m callcenter run --sandbox

# The IVR tests play the prompts as callers hear them: build them first.
test: setup
	$(PY) -m callcenter prompts build >/dev/null
	$(PY) -m pytest -q

# Only the pure cores (tier 1): seconds, no Asterisk, no database.
test-fast: venv
	$(PY) -m pytest -q tests/unit

check: venv
	$(VENV)/bin/ruff check callcenter tests bench
	$(VENV)/bin/ruff format --check callcenter tests bench
	$(VENV)/bin/mypy
	$(PY) -m callcenter ivr check --strict ivr_scripts

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	-$(PY) -m callcenter asterisk stop
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
