"""The Tiltfile, checked without a tilt binary: evaluated by a Starlark interpreter
(PyPI ``starlark-pyo3``) against stubs of the Tilt built-ins it calls, then every
path, the chart, its values and the port it uses compared with the repository."""

from __future__ import annotations

from typing import Any

import starlark
import yaml

from tests._servers import ROOT
from tests.deploy.test_chart import CHART, RELEASE, only, render

TILTFILE = ROOT / "Tiltfile"
_BUILTINS = (
    "docker_build",
    "fall_back_on",
    "sync",
    "k8s_yaml",
    "helm",
    "k8s_resource",
    "port_forward",
    "local_resource",
)


def evaluate(text: str) -> dict[str, list[tuple[tuple[Any, ...], dict[str, Any]]]]:
    """Run the Tiltfile; every stubbed built-in records its calls."""
    calls: dict[str, list[tuple[tuple[Any, ...], dict[str, Any]]]] = {n: [] for n in _BUILTINS}
    module = starlark.Module()

    def stub(name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> dict[str, Any]:
            calls[name].append((args, kwargs))
            return {"builtin": name, "args": list(args), "kwargs": kwargs}

        return record

    for name in _BUILTINS:
        module.add_callable(name, stub(name))
    module["TRIGGER_MODE_MANUAL"] = "manual"
    starlark.eval(module, starlark.parse("Tiltfile", text), starlark.Globals.standard())
    return calls


def problems(text: str) -> list[str]:
    """Where the Tiltfile disagrees with the repository; empty when it agrees."""
    calls = evaluate(text)
    found: list[str] = []
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    port = values["containerPort"]

    ((build_args, build), *more) = calls["docker_build"] or [((), {})]
    if more or not build_args:
        return ["exactly one docker_build is expected"]
    if build_args[0] != values["image"]["repository"]:
        found.append(f"docker_build image {build_args[0]!r} is not the chart's image.repository")
    dockerfile = ROOT / build.get("dockerfile", "Dockerfile")
    if not dockerfile.is_file():
        found.append(f"dockerfile {dockerfile.name} does not exist")
    steps = build.get("live_update", [])
    syncs = [s["args"] for s in steps if s["builtin"] == "sync"]
    if not syncs:
        found.append("no live_update sync")
    source = dockerfile.read_text() if dockerfile.is_file() else ""
    for local, remote in syncs:
        if not (ROOT / local).is_dir():
            found.append(f"sync source {local} does not exist")
        # Dockerfile.dev: WORKDIR /app, COPY app ./app -> the source lives at /app/app.
        if remote != f"/app/{local}" or f"COPY {local} ./{local}" not in source:
            found.append(f"sync target {remote} is not where the image keeps {local}")
    for step in steps:
        if step["builtin"] == "fall_back_on":
            found += [
                f"fall_back_on {p} does not exist"
                for p in step["args"][0]
                if not (ROOT / p).exists()
            ]

    ((chart_args, chart),) = calls["helm"] or [((), {})]
    chart_dir = ROOT / chart_args[0] if chart_args else ROOT / "missing"
    if chart_dir.resolve() != CHART.resolve() or not (chart_dir / "Chart.yaml").is_file():
        named = chart_args[0] if chart_args else None
        found.append(f"helm chart {named!r} is not {CHART.relative_to(ROOT)}")
    if chart.get("name") != RELEASE:
        found.append(f"helm release {chart.get('name')!r} is not {RELEASE!r}")
    layered: dict[str, Any] = {}
    for path in chart.get("values", []):
        if not (ROOT / path).is_file():
            found.append(f"values file {path} does not exist")
        else:
            layered.update(yaml.safe_load((ROOT / path).read_text()) or {})
    if layered.get("liveUpdate") is not True:
        found.append("no values file turns liveUpdate on (the sync needs a writable app/)")
    if len(calls["k8s_yaml"]) != 1:
        found.append("the chart's manifests are not applied with k8s_yaml")

    ((resource_args, resource),) = calls["k8s_resource"] or [(("",), {})]
    if resource_args[0] != RELEASE:
        found.append(f"k8s_resource {resource_args[0]!r} is not the Deployment {RELEASE!r}")
    forwards = [f["args"][:2] for f in resource.get("port_forwards", [])]
    if forwards != [[port, port]] or values["service"]["port"] != port:
        found.append(f"port_forwards {forwards} do not forward the chart's port {port}")

    ((_, suite),) = calls["local_resource"] or [((), {})]
    if "tools/integration.py --mode cluster" not in suite.get("cmd", ""):
        found.append("the local resource does not run the acceptance suite in cluster mode")
    if suite.get("env", {}).get("INTEGRATION_RUNTIME_URL") != f"http://localhost:{port}":
        found.append("the acceptance suite is not pointed at the forwarded port")
    if RELEASE not in suite.get("resource_deps", []):
        found.append("the acceptance suite does not wait for the deployment")
    return found


def test_the_tiltfile_agrees_with_the_repository() -> None:
    assert problems(TILTFILE.read_text()) == []


def test_the_check_fails_when_the_chart_path_changes() -> None:
    text = TILTFILE.read_text().replace('"helm/extensions-runtime"', '"helm/extension-runtime"')
    assert problems(text) == ["helm chart 'helm/extension-runtime' is not helm/extensions-runtime"]


def test_the_check_fails_when_the_port_or_the_sync_drift() -> None:
    text = TILTFILE.read_text().replace("PORT = 8080", "PORT = 9090")
    assert any("port_forwards" in p for p in problems(text))
    text = TILTFILE.read_text().replace('"/app/app"', '"/srv/app"')
    assert problems(text) == ["sync target /srv/app is not where the image keeps app"]


def test_live_update_values_render_a_writable_reloading_pod() -> None:
    docs = render("dev", extra_values=ROOT / "tilt" / "values.yaml")
    container = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-1] == "--reload"
    assert container["securityContext"]["readOnlyRootFilesystem"] is False
    default = only(render("dev"), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--reload" not in default["command"]
    assert default["securityContext"]["readOnlyRootFilesystem"] is True
    assert "HorizontalPodAutoscaler" not in {d["kind"] for d in docs}
