"""Run the acceptance suite (tests/acceptance) locally or against a deployed service.

usage: python tools/integration.py [--mode local|cluster] [PYTEST_ARGS ...]

``local`` (default) starts the service, SeaweedFS and tokens on loopback.
``cluster`` reads the target from INTEGRATION_* variables (listed in
tests/acceptance/_target.py and the README) and refuses to start, in one line
naming every missing or malformed variable, before any test runs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.acceptance._target import MODES, TargetProblem, cluster_target  # noqa: E402


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="integration", description="the acceptance suite, local or against a deployment"
    )
    parser.add_argument(
        "--mode", choices=MODES, default=os.environ.get("INTEGRATION_MODE", "local")
    )
    args, pytest_args = parser.parse_known_args(argv)
    env = {**os.environ, "INTEGRATION_MODE": args.mode}
    if args.mode == "cluster":
        try:
            cluster_target(env)  # validate (and obtain the tokens) before pytest starts
        except TargetProblem as problem:
            print(f"integration: {problem}", file=sys.stderr)
            return 2
    command = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "acceptance"), "-ra"]
    print(f"integration: {args.mode} mode: {' '.join(command[2:] + pytest_args)}", flush=True)
    return subprocess.call(command + pytest_args, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
