# Guest toolchain and example extensions; `include mk/guest-toolchain.mk` from the Makefile.
#
#   make guest-toolchain   Debian clang 14 + lld + wasi-libc + wasm32 compiler-rt, only if missing
#   make guest-js          npm ci in tools/guest-js: componentize-js (JavaScript components) and
#                          jco (the WASI preview 1 adapter for C components), from package-lock.json
#   make examples          rebuild every examples/extensions/*/*/module.wasm from examples/src
#                          and rewrite each extension.json's sha256
#
# Debian bookworm ships clang/lld 14, wasi-libc 0.0~git20220510 and
# libclang-rt-14-dev-wasm32 (libclang_rt.builtins-wasm32.a); together they
# give `clang --target=wasm32-wasi`. WAT examples only need the venv's wasmtime;
# Python components need componentize-py and wasm-tools, both in the dev group.
VENV ?= .venv
BIN ?= $(VENV)/bin

GUEST_APT_PACKAGES := clang lld wasi-libc libclang-rt-14-dev-wasm32
GUEST_SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

GUEST_JS := tools/guest-js

.PHONY: guest-toolchain guest-js examples

test: guest-js

# Node and npm come from the lock file (mk/node.mk); neither package needs its
# install scripts (componentize-js ships its engine as a prebuilt .wasm).
guest-js: install
	@if [ -f $(GUEST_JS)/node_modules/.package-lock.json ] && \
	    cmp -s $(GUEST_JS)/package-lock.json $(GUEST_JS)/node_modules/.lock-copy; then \
	  echo "guest-js: $(GUEST_JS)/node_modules already matches package-lock.json"; \
	else \
	  cd $(GUEST_JS) && $(NPM) ci --ignore-scripts --silent --no-audit --no-fund && \
	  cp package-lock.json node_modules/.lock-copy; \
	fi

guest-toolchain:
	@missing=""; \
	for pkg in $(GUEST_APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q 'install ok installed' \
	    || missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then \
	  echo "guest toolchain: already installed ($(GUEST_APT_PACKAGES))"; \
	else \
	  command -v apt-get >/dev/null || { echo "guest toolchain: needs apt-get (Debian/Ubuntu) to install:$$missing" >&2; exit 1; }; \
	  echo "guest toolchain: installing$$missing"; \
	  $(GUEST_SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(GUEST_SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

## Rebuild the example extensions from source and refresh their manifests' sha256.
examples: install guest-toolchain guest-js
	$(BIN)/python examples/build.py
