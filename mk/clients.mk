# Clients of the runtime and the browser tooling; `include mk/clients.mk` from the Makefile.
#
#   make ts-install   npm ci in clients/ts (only when package-lock.json changed since the last one)
#   make ts-gen       regenerate clients/ts/src/gen from proto/ (buf from the venv, protoc-gen-es from npm)
#   make ts-check     tsc --noEmit over the TypeScript client and the console
#   make ts-build     compile the client to JavaScript with declarations in clients/ts/dist
#                     (untracked): what `node` and bundlers import through the exports map
#   make console      bundle the /debug console into app/debug/static/console.js (committed:
#                     the service itself never needs node)
#   make browser      Debian chromium for the headless console test (apt-get only when missing)
#
# Node and npm come from the lock file (see mk/node.mk). Every npm package is pinned in clients/ts/package.json and locked in its
# package-lock.json; `npm ci --ignore-scripts` installs exactly that (esbuild and
# TypeScript 7 ship their binaries as platform packages, no install scripts needed).
VENV ?= .venv
BIN ?= $(VENV)/bin

TS_DIR := clients/ts
TS_BIN := $(TS_DIR)/node_modules/.bin
CONSOLE_BUNDLE := app/debug/static/console.js
BROWSER_APT_PACKAGES := chromium
BROWSER_SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: ts-install ts-gen ts-check ts-build console browser

ts-install: install
	@if [ -f $(TS_DIR)/node_modules/.package-lock.json ] && \
	    cmp -s $(TS_DIR)/package-lock.json $(TS_DIR)/node_modules/.lock-copy; then \
	  echo "ts-install: $(TS_DIR)/node_modules already matches package-lock.json"; \
	else \
	  cd $(TS_DIR) && $(NPM) ci --ignore-scripts --silent --no-audit --no-fund && \
	  cp package-lock.json node_modules/.lock-copy; \
	fi

ts-gen: install ts-install
	cd $(TS_DIR) && $(WITH_NODE) ../../$(BIN)/buf generate --template buf.gen.yaml

ts-check: ts-install
	$(WITH_NODE) $(TS_BIN)/tsc --noEmit -p $(TS_DIR)

ts-build: ts-install
	rm -rf $(TS_DIR)/dist
	$(WITH_NODE) $(TS_BIN)/tsc -p $(TS_DIR)/tsconfig.build.json

console: ts-install
	$(NODE) $(TS_DIR)/build-console.mjs $(CONSOLE_BUNDLE)
	@echo "console: built $(CONSOLE_BUNDLE) ($$(wc -c < $(CONSOLE_BUNDLE)) bytes); commit it"

browser:
	@if [ -x /usr/bin/chromium ]; then \
	  echo "browser: $$(/usr/bin/chromium --version 2>/dev/null) already installed"; \
	else \
	  command -v apt-get >/dev/null || { echo "browser: needs apt-get (Debian/Ubuntu) to install $(BROWSER_APT_PACKAGES)" >&2; exit 1; }; \
	  echo "browser: installing $(BROWSER_APT_PACKAGES)"; \
	  $(BROWSER_SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(BROWSER_SUDO) apt-get install -y -q --no-install-recommends $(BROWSER_APT_PACKAGES); \
	fi

# tests/clients (tsc) and tests/debug (headless Chromium) fail, naming these targets, without them.
test: browser ts-install ts-build
