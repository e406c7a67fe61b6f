"""Validate rendered Kubernetes manifests with kubernetes-validate (strict schemas).

Usage: PYTHONPATH=.tools/kubernetes-validate python tests/deploy/validate_manifests.py \
           [--kube-version 1.34.0] FILE...

Core kinds are validated against the strict schemas of the given Kubernetes
version: an unknown field, a wrong type or a kind/apiVersion the version does
not serve is an error. Custom resources (ServiceMonitor, PrometheusRule,
ExternalSecret, ApplicationSet, Application) have no schema in
kubernetes-validate: they are only checked for the fields every object needs,
and tests/deploy/test_chart.py checks their structure. Exit status 1 when any
object fails. `make deploy-check` and the tests both run this file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

CUSTOM_KINDS = frozenset(
    {
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
        ("external-secrets.io/v1beta1", "ExternalSecret"),
        ("argoproj.io/v1alpha1", "ApplicationSet"),
        ("argoproj.io/v1alpha1", "Application"),
    }
)
DEFAULT_KUBE_VERSION = "1.34.0"


def load_documents(paths: Iterable[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """Every non-empty YAML document of ``paths``, with the file it came from."""
    documents = []
    for path in paths:
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append((path, document))
    return documents


def _name(document: dict[str, Any]) -> str:
    return f"{document.get('kind')}/{(document.get('metadata') or {}).get('name')}"


def check_custom(document: dict[str, Any]) -> list[str]:
    """The fields every object needs; the CRD's own schema is not available here."""
    problems = []
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not metadata.get("name"):
        problems.append("metadata.name is missing")
    if not isinstance(document.get("spec"), dict) or not document["spec"]:
        problems.append("spec is missing or empty")
    return problems


def validate_documents(
    documents: Sequence[tuple[Path, dict[str, Any]]], kube_version: str
) -> tuple[list[str], list[str]]:
    """(errors, lines of what was checked) for ``documents``."""
    from kubernetes_validate import utils

    errors: list[str] = []
    report: list[str] = []
    for path, document in documents:
        where = f"{path}: {_name(document)}"
        key = (document.get("apiVersion"), document.get("kind"))
        if key in CUSTOM_KINDS:
            problems = check_custom(document)
            errors += [f"{where}: {problem}" for problem in problems]
            report.append(f"SKIP {where} (custom resource: structural check only)")
            continue
        try:
            utils.validate(document, kube_version, strict=True)
        except utils.ValidationError as exc:
            location = ".".join(str(part) for part in exc.path)
            errors.append(f"{where}: {location}: {exc.message}")
        except utils.SchemaNotFoundError as exc:
            errors.append(f"{where}: {exc.message}")
        else:
            report.append(f"OK   {where} (Kubernetes {kube_version}, strict)")
    return errors, report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kube-version", default=DEFAULT_KUBE_VERSION)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    errors, report = validate_documents(load_documents(args.files), args.kube_version)
    for line in report:
        print(line)
    for error in errors:
        print(f"ERROR {error}", file=sys.stderr)
    print(f"kubernetes-validate: {len(report)} objects checked, {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
