"""Build both images for real with buildah, smoke-test them, check reproducibility.

usage: python tools/images.py [wheelhouse|base|build|all]

* ``wheelhouse``: every wheel the images install, downloaded *outside* the
  build into ``build/wheelhouse/`` (hash-checked requirements exported from
  uv.lock; the service and its SDK built as wheels), so nothing inside a build
  reaches a registry (the Ring 2 contract). Docker builds in CI use it too.
* ``base``: the official ``python:3.11-slim-bookworm`` when it can be pulled,
  else a stand-in made here from Debian packages (debootstrap bookworm with
  python3.11, python3.11-venv and libpython3.11, the shared library pyvoy's
  Envoy module needs), imported as ``localhost/python-standin:3.11-bookworm``.
* ``build``: both Dockerfiles with ``buildah bud`` (overlay storage, else vfs; chroot
  isolation, ``--timestamp 0``), then the release image a second time without
  cache: its dependency layers must have the same digests as the first's. Each
  image is smoke-tested (``serve`` on loopback through ``buildah run``,
  ``/readyz``, one invocation of ``echo``) and its size printed.
* ``all`` (``make images``): the three in order.

Every step prints what it does; a failure exits non-zero with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
WHEELHOUSE = BUILD / "wheelhouse"
VENV_BIN = ROOT / ".venv" / "bin"
OFFICIAL = "docker.io/library/python:3.11-slim-bookworm"
STANDIN = "localhost/python-standin:3.11-bookworm"
STANDIN_PACKAGES = ["python3.11", "python3.11-venv", "libpython3.11", "ca-certificates", "passwd"]
BUILD_BACKEND = ["hatchling", "editables"]  # what the dev image's editable install needs
BUILDAH: list[str] = []
"""``buildah`` with the storage :func:`choose_storage` picked (overlay, else vfs)."""
STORAGE = Path("/var/lib/containers/extensions-runtime")
SDK = "ameide-extensions-client"


class Failed(Exception):
    """A step failed; the message says which and why."""


def say(message: str) -> None:
    print(f"images: {message}", flush=True)


def run(args: list[str], *, quiet: bool = False, **kwargs: object) -> str:
    """Run a command; its output is returned (and shown unless ``quiet``)."""
    done = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise Failed(f"{' '.join(args[:4])} ... exited {done.returncode}: {done.stderr[-2000:]}")
    if not quiet and done.stdout.strip():
        print(done.stdout.strip()[-4000:], flush=True)
    return str(done.stdout)


# -- the wheelhouse ------------------------------------------------------------------
def wheelhouse() -> None:
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    uv = str(VENV_BIN / "uv")
    exports = {
        "release": ["--no-dev"],
        "dev": ["--all-groups"],
    }
    for name, flags in exports.items():
        text = run(
            [
                uv,
                "export",
                "--frozen",
                *flags,
                "--no-emit-project",
                "--no-emit-package",
                SDK,
                "--format",
                "requirements-txt",
                "--no-header",
            ],
            quiet=True,
            cwd=ROOT,
        )
        _download(name, text)
    _download_build_backend()
    local = WHEELHOUSE / "local"
    shutil.rmtree(local, ignore_errors=True)
    say("building the service and SDK wheels from this commit")
    for project in (ROOT / "clients" / "python", ROOT):
        run([uv, "build", "--wheel", "--out-dir", str(local), str(project)], quiet=True, cwd=ROOT)
    say(f"wheelhouse ready: {_size(WHEELHOUSE)} in {WHEELHOUSE.relative_to(ROOT)}")


def _download(name: str, requirements: str) -> None:
    target = WHEELHOUSE / name
    stamp = WHEELHOUSE / f"{name}.txt"
    if stamp.exists() and stamp.read_text() == requirements and target.is_dir():
        say(f"{name} wheels already match uv.lock ({len(list(target.glob('*.whl')))} wheels)")
        return
    shutil.rmtree(target, ignore_errors=True)
    pending = WHEELHOUSE / f".{name}.txt"
    pending.write_text(requirements)
    count = requirements.count("==")
    say(f"downloading {count} {name} wheels (hash-checked, binary only)")
    _pip_download(["--no-deps", "-r", str(pending)], target)
    pending.rename(stamp)  # written last: an interrupted download is redone


def _download_build_backend() -> None:
    target = WHEELHOUSE / "build"
    stamp = WHEELHOUSE / "build.txt"
    asked = f"# {' '.join(BUILD_BACKEND)}\n"
    if not stamp.exists() or not stamp.read_text().startswith(asked):
        say("downloading the build backend for the dev image's editable install")
        shutil.rmtree(target, ignore_errors=True)
        _pip_download(BUILD_BACKEND, target)
        pins = sorted("{}=={}".format(*wheel.name.split("-")[:2]) for wheel in target.glob("*.whl"))
        stamp.write_text(asked + "\n".join(pins) + "\n")


def _pip_download(args: list[str], target: Path) -> None:
    run(
        [
            str(VENV_BIN / "python"),
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--dest",
            str(target),
            *args,
        ],
        quiet=True,
        cwd=ROOT,
    )


# -- storage -------------------------------------------------------------------------
def choose_storage() -> None:
    """Overlay when it mounts here (each layer stored once: builds take about a
    quarter of vfs's time), else vfs, which works wherever buildah runs as root.
    Each in a root of its own: one storage cannot switch drivers."""
    for driver in ("overlay", "vfs"):
        args = [
            "buildah",
            "--root",
            f"{STORAGE}-{driver}",
            "--runroot",
            f"/run/extensions-runtime-{driver}",
            "--storage-driver",
            driver,
        ]
        probe = subprocess.run(
            [*args, "from", "scratch"], capture_output=True, text=True, check=False
        )
        if probe.returncode != 0:
            continue
        container = probe.stdout.strip().splitlines()[-1]
        mounted = subprocess.run([*args, "mount", container], capture_output=True, check=False)
        subprocess.run([*args, "rm", container], capture_output=True, check=False)
        if mounted.returncode == 0:
            BUILDAH[:] = args
            say(f"buildah storage: {driver} in {STORAGE}-{driver}")
            return
    raise Failed("buildah can use neither overlay nor vfs storage here (run as root?)")


# -- the base ------------------------------------------------------------------------
def base() -> str:
    """The base image to build on: the official one, else the stand-in."""
    say(f"pulling {OFFICIAL}")
    pulled = subprocess.run(
        [*BUILDAH, "pull", "--quiet", OFFICIAL], capture_output=True, text=True, check=False
    )
    if pulled.returncode == 0:
        return OFFICIAL
    reason = (pulled.stderr.strip().splitlines() or ["unknown"])[-1][-200:]
    say(f"the official base cannot be pulled ({reason}); using a stand-in from Debian packages")
    if _image_exists(STANDIN):
        say(f"{STANDIN} already built")
        return STANDIN
    rootfs = BUILD / "standin-rootfs"
    if rootfs.exists():
        shutil.rmtree(rootfs)
    say("debootstrap bookworm (minbase), then " + " ".join(STANDIN_PACKAGES))
    run(
        [
            "debootstrap",
            "--variant=minbase",
            "bookworm",
            str(rootfs),
            "http://deb.debian.org/debian",
        ],
        quiet=True,
    )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(
        [
            "chroot",
            str(rootfs),
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            *STANDIN_PACKAGES,
        ],
        quiet=True,
        env=env,
    )
    run(["chroot", str(rootfs), "apt-get", "clean"], quiet=True)
    shutil.rmtree(rootfs / "var" / "lib" / "apt" / "lists", ignore_errors=True)
    tarball = BUILD / "standin-rootfs.tar"
    run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."], quiet=True)
    container = run([*BUILDAH, "from", "scratch"], quiet=True).strip()
    try:
        run([*BUILDAH, "add", container, str(tarball), "/"], quiet=True)
        run(
            [
                *BUILDAH,
                "config",
                "--env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--env",
                "LANG=C.UTF-8",
                "--cmd",
                "python3.11",
                container,
            ],
            quiet=True,
        )
        run([*BUILDAH, "commit", "--quiet", container, STANDIN], quiet=True)
    finally:
        subprocess.run([*BUILDAH, "rm", container], capture_output=True, check=False)
        shutil.rmtree(rootfs, ignore_errors=True)
        tarball.unlink(missing_ok=True)
    say(f"stand-in base {STANDIN} built")
    return STANDIN


def _image_exists(name: str) -> bool:
    return (
        subprocess.run(
            [*BUILDAH, "inspect", "--type", "image", name], capture_output=True, check=False
        ).returncode
        == 0
    )


# -- build, reproducibility, smoke -----------------------------------------------------
def bud(dockerfile: str, tag: str, base_image: str, *, cache: bool = True) -> None:
    revision = run(["git", "rev-parse", "HEAD"], quiet=True, cwd=ROOT).strip()
    say(f"building {dockerfile} as {tag}{'' if cache else ' (no cache)'}")
    started = time.monotonic()
    run(
        [
            *BUILDAH,
            "bud",
            "--isolation",
            "chroot",
            "--layers",
            "--timestamp",
            "0",
            *([] if cache else ["--no-cache"]),
            "--build-arg",
            f"BASE={base_image}",
            "--build-arg",
            f"REVISION={revision}",
            "-f",
            dockerfile,
            "-t",
            tag,
            ".",
        ],
        quiet=True,
        cwd=ROOT,
    )
    say(f"built {tag} in {time.monotonic() - started:.0f} s")


def layers(tag: str) -> list[tuple[str, str]]:
    """``(diff_id, the instruction that made it)`` for each layer of ``tag``."""
    info = json.loads(run([*BUILDAH, "inspect", "--type", "image", tag], quiet=True))
    diff_ids: list[str] = info["OCIv1"]["rootfs"]["diff_ids"]
    history = [h for h in info["OCIv1"].get("history", []) if not h.get("empty_layer")]
    made_by = [str(h.get("created_by", "?")) for h in history]
    made_by = ["(base)"] * (len(diff_ids) - len(made_by)) + made_by
    return list(zip(diff_ids, made_by, strict=True))


def reproducible(first: str, second: str) -> None:
    """The dependency layer of two builds of one commit must match; report every layer."""
    a, b = layers(first), layers(second)
    say(f"comparing the {len(a)} layers of two release builds (the second without cache)")
    venv_layers = [i for i, (_, made_by) in enumerate(a) if "/app/.venv" in made_by]
    if not venv_layers:
        raise Failed("no layer copies /app/.venv: is this the release Dockerfile?")
    for i, ((digest_a, made_by), (digest_b, _)) in enumerate(zip(a, b, strict=True)):
        role = "dependencies" if i == venv_layers[0] else "service" if i in venv_layers else ""
        verdict = "same" if digest_a == digest_b else "DIFFERS"
        say(f"  {verdict:7} {digest_a[7:19]} {role or _short(made_by)}")
    deps = venv_layers[0]
    if a[deps][0] != b[deps][0]:
        raise Failed("the dependency layer differs between two builds of the same commit")


def _short(made_by: str) -> str:
    text = " ".join(made_by.replace("/bin/sh -c", "").split())
    return text[:110] + ("..." if len(text) > 110 else "")


def smoke(tag: str, env: dict[str, str], mounts: list[str]) -> None:
    """``serve`` from the image on loopback; ``/readyz`` and one ``echo`` must answer."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    container = run([*BUILDAH, "from", "--quiet", tag], quiet=True).strip()
    args = [*BUILDAH, "run", "--isolation", "chroot", "--network", "host"]
    for key, value in {**env, "EXTENSIONS_RUNTIME_PORT": str(port)}.items():
        args += ["--env", f"{key}={value}"]
    for mount in mounts:
        args += ["--volume", mount]
    args += [container, "--", "extensions-runtime", "serve", "--host", "127.0.0.1"]
    say(f"smoke test: {tag} serving on 127.0.0.1:{port}")
    server = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        ready = _wait_ready(url, server)
        body = json.dumps({"extensionId": "echo", "inputJson": {"smoke": tag}}).encode()
        request = urllib.request.Request(
            url + "/ameide.extensions.v1.WasmExtensionRuntime/InvokeExtension",
            data=body,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        if answer.get("outputJson") != {"smoke": tag}:
            raise Failed(f"{tag}: echo answered {answer}")
        say(
            f"smoke test passed: /readyz {ready}, echo {answer['outputJson']} "
            f"(version {answer['resolvedVersion']})"
        )
    finally:
        server.terminate()
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()
        subprocess.run([*BUILDAH, "rm", container], capture_output=True, check=False)


def _wait_ready(url: str, server: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output = server.stdout.read().decode(errors="replace") if server.stdout else ""
            raise Failed(f"the server exited {server.returncode}: {output[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                return str(json.loads(response.read()))
        except OSError:
            time.sleep(0.5)
    raise Failed(f"{url}/readyz never answered 200")


def size(tag: str) -> str:
    info = json.loads(run([*BUILDAH, "inspect", "--type", "image", tag], quiet=True))
    manifest = json.loads(info["Manifest"])
    total = sum(layer["size"] for layer in manifest["layers"])
    return f"{total / 1e6:.0f} MB compressed" if total else "?"


def build(base_image: str) -> None:
    bud("Dockerfile.release", "localhost/extensions-runtime:release", base_image)
    bud("Dockerfile.release", "localhost/extensions-runtime:release-again", base_image, cache=False)
    reproducible(
        "localhost/extensions-runtime:release", "localhost/extensions-runtime:release-again"
    )
    bud("Dockerfile.dev", "localhost/extensions-runtime:dev", base_image)
    examples = f"{ROOT / 'examples' / 'extensions'}:/extensions:ro"
    smoke(
        "localhost/extensions-runtime:release",
        {
            "EXTENSIONS_RUNTIME_EXTENSIONS_DIR": "/extensions",
            "EXTENSIONS_RUNTIME_AUTH_ENABLED": "false",
        },
        [examples],
    )
    smoke("localhost/extensions-runtime:dev", {"EXTENSIONS_RUNTIME_DEV": "true"}, [])
    for tag in ("localhost/extensions-runtime:release", "localhost/extensions-runtime:dev"):
        say(f"size of {tag}: {_uncompressed(tag)}")
    # Layers no tag points at any more (earlier builds of this tree): storage stays bounded.
    subprocess.run([*BUILDAH, "rmi", "--prune"], capture_output=True, check=False)


def _uncompressed(tag: str) -> str:
    info = json.loads(run([*BUILDAH, "images", "--json", tag], quiet=True))
    return str(info[0].get("size", "?")) if info else "?"


def _size(path: Path) -> str:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return f"{total / 1e6:.0f} MB"


def main(argv: list[str]) -> int:
    step = argv[0] if argv else "all"
    if step not in ("wheelhouse", "base", "build", "all"):
        say(__doc__.strip().splitlines()[2])
        return 2
    try:
        if step != "wheelhouse":
            if shutil.which("buildah") is None:
                raise Failed("buildah is not installed: run `make images-tools` (Debian buildah)")
            choose_storage()
        if step in ("wheelhouse", "all"):
            wheelhouse()
        if step == "base":
            say(f"base: {base()}")
        if step in ("build", "all"):
            build(base())
    except Failed as failure:
        say(f"FAILED: {failure}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
