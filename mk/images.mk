# Container images built for real; `include mk/images.mk` from the Makefile.
#
#   make images-tools   Debian buildah and debootstrap, only if missing
#   make wheelhouse     build/wheelhouse/: every wheel both images install, downloaded
#                       outside any build (uv.lock's hash-checked export), plus the
#                       service and SDK wheels of this commit
#   make images         both Dockerfiles with buildah (overlay or vfs, chroot), the release image
#                       twice to compare its dependency layers, smoke tests of both,
#                       sizes (tools/images.py). Part of `make test`.
#
# No Docker engine runs on these machines; buildah builds as root with overlay (else vfs) storage
# and chroot isolation. Without root (or apt-get) the target fails with the reason.
IMAGES_APT_PACKAGES := buildah debootstrap
IMAGES_SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: images images-tools wheelhouse

test: images

images-tools:
	@missing=""; \
	for pkg in $(IMAGES_APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q 'install ok installed' \
	    || missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then \
	  echo "images-tools: buildah $$(buildah --version | cut -d' ' -f3) and debootstrap already installed"; \
	else \
	  command -v apt-get >/dev/null || { echo "images-tools: needs apt-get (Debian/Ubuntu) to install$$missing" >&2; exit 1; }; \
	  echo "images-tools: installing$$missing"; \
	  $(IMAGES_SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(IMAGES_SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

wheelhouse: install
	$(BIN)/python tools/images.py wheelhouse

images: install images-tools
	$(BIN)/python tools/images.py all
