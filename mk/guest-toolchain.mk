# Guest toolchain and example extensions; `include mk/guest-toolchain.mk` from the Makefile.
#
#   make guest-toolchain   Debian clang 14 + lld + wasi-libc + wasm32 compiler-rt, only if missing
#   make examples          rebuild every examples/extensions/*/*/module.wasm from examples/src
#                          and rewrite each extension.json's sha256
#
# Debian bookworm ships clang/lld 14, wasi-libc 0.0~git20220510 and
# libclang-rt-14-dev-wasm32 (libclang_rt.builtins-wasm32.a); together they
# give `clang --target=wasm32-wasi`. WAT examples only need the venv's wasmtime.
VENV ?= .venv
BIN ?= $(VENV)/bin

GUEST_APT_PACKAGES := clang lld wasi-libc libclang-rt-14-dev-wasm32
GUEST_SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: guest-toolchain examples

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
examples: install guest-toolchain
	$(BIN)/python examples/build.py
