"""Checking a module against the guest ABI before it is ever instantiated.

Refusing at compile time means a bad upload fails once, as INVALID_MODULE
with the offending name, instead of as a confusing trap on every call.
"""

from __future__ import annotations

from enum import StrEnum

import wasmtime
import wasmtime.component

from app.errors import ErrorKind, InvocationFailure

__all__ = [
    "COMPONENT_LAYER",
    "HOST_INTERFACE",
    "WASI_MODULE",
    "WASI_P2_VERSIONS",
    "Abi",
    "check_component",
    "check_exports",
    "check_imports",
    "default_abi",
    "imports_clock_or_random",
    "min_memory_bytes",
]

WASI_MODULE = "wasi_snapshot_preview1"
COMPONENT_LAYER = b"\x0d\x00\x01\x00"
"""Version and layer bytes after ``\\0asm`` in a component (a core module has ``01 00 00 00``)."""
_HOST_IMPORTS = {("ameide", "host_log"), ("ameide", "host_call"), ("ameide", "host_config")}
_CLOCK_AND_RANDOM = {"clock_time_get", "clock_res_get", "random_get"}
_PAGE = 64 * 1024


class Abi(StrEnum):
    """How the runtime hands input to a guest and takes its output."""

    RAW = "raw"
    """Exports ``memory``, ``alloc(len) -> ptr`` and ``handle(ptr, len) -> i64``."""
    WASI_STDIO = "wasi-stdio"
    """A WASI preview1 command: stdin in, stdout out, stderr as logs."""
    COMPONENT = "component"
    """A component of the ``ameide:extension`` world (``wit/extension``): a typed
    ``handle``, the ``host`` interface and locked-down WASI preview 2."""


def default_abi(wasm: bytes) -> Abi:
    """The ABI to assume when none is given: ``component`` for a component binary,
    else ``wasi-stdio`` (the bytes after the magic tell a component from a module)."""
    return Abi.COMPONENT if bytes(wasm[4:8]) == COMPONENT_LAYER else Abi.WASI_STDIO


def _invalid(message: str) -> InvocationFailure:
    return InvocationFailure(ErrorKind.INVALID_MODULE, message)


def _signature(ty: wasmtime.FuncType) -> tuple[list[str], list[str]]:
    return [str(t) for t in ty.params], [str(t) for t in ty.results]


_RAW_EXPORTS: dict[str, tuple[list[str], list[str]]] = {
    "alloc": (["i32"], ["i32"]),
    "handle": (["i32", "i32"], ["i64"]),
}
_WASI_EXPORTS: dict[str, tuple[list[str], list[str]]] = {"_start": ([], [])}


def check_imports(module: wasmtime.Module, abi: Abi) -> None:
    """Only the runtime's host functions (and WASI for ``wasi-stdio``) may be imported."""
    for imp in module.imports:
        name = imp.name or ""
        if (imp.module, name) in _HOST_IMPORTS:
            continue
        if abi is Abi.WASI_STDIO and imp.module == WASI_MODULE:
            continue
        raise _invalid(f"import {imp.module}.{name} is not provided by the runtime (abi {abi})")


def imports_clock_or_random(module: wasmtime.Module) -> bool:
    """Whether the module imports a WASI function the deterministic mode replaces."""
    return any(
        imp.module == WASI_MODULE and imp.name in _CLOCK_AND_RANDOM for imp in module.imports
    )


def check_exports(module: wasmtime.Module, abi: Abi) -> None:
    """The exports the ABI calls must exist with the right types."""
    exports = {exp.name: exp.type for exp in module.exports}
    wanted = _RAW_EXPORTS if abi is Abi.RAW else _WASI_EXPORTS
    if abi is Abi.RAW and not isinstance(exports.get("memory"), wasmtime.MemoryType):
        raise _invalid("abi raw requires an exported memory named 'memory'")
    for name, (params, results) in wanted.items():
        ty = exports.get(name)
        if not isinstance(ty, wasmtime.FuncType):
            raise _invalid(f"abi {abi} requires an exported function '{name}'")
        got = _signature(ty)
        if got != (params, results):
            raise _invalid(
                f"export '{name}' has type ({', '.join(got[0])}) -> ({', '.join(got[1])}),"
                f" abi {abi} requires ({', '.join(params)}) -> ({', '.join(results)})"
            )


def min_memory_bytes(module: wasmtime.Module) -> int:
    """Initial size of the module's exported memories (what instantiation must allocate)."""
    total = 0
    for exp in module.exports:
        if isinstance(exp.type, wasmtime.MemoryType):
            total = max(total, exp.type.limits.min * _PAGE)
    return total


# -- components -------------------------------------------------------------------

HOST_INTERFACE = "ameide:extension/host@0.1.0"
_OWN_IMPORTS = frozenset({HOST_INTERFACE, "ameide:extension/types@0.1.0"})
WASI_P2_VERSIONS = tuple(f"0.2.{minor}" for minor in range(16))
"""The WASI 0.2 releases a component may import: wasmtime links any 0.2.x to its own
implementation, and the runtime shadows the clocks and random of each (see ``_hostfuncs``)."""
_WASI_P2_INTERFACES = frozenset({
    "cli/environment", "cli/exit", "cli/stdin", "cli/stdout", "cli/stderr",
    "cli/terminal-input", "cli/terminal-output", "cli/terminal-stdin",
    "cli/terminal-stdout", "cli/terminal-stderr",
    "clocks/monotonic-clock", "clocks/wall-clock",
    "filesystem/types", "filesystem/preopens",
    "io/error", "io/poll", "io/streams",
    "random/random", "random/insecure", "random/insecure-seed",
    "sockets/network", "sockets/instance-network", "sockets/tcp",
    "sockets/tcp-create-socket", "sockets/udp", "sockets/udp-create-socket",
    "sockets/ip-name-lookup",
})  # fmt: skip
"""What a component may import from WASI. Toolchains import sockets and the
filesystem whatever the guest does; the context grants neither (no preopens,
every address and name lookup denied), so importing them is harmless."""


def _allowed_component_import(name: str) -> bool:
    if name in _OWN_IMPORTS:
        return True
    package, _, version = name.partition("@")
    namespace, _, interface = package.partition(":")
    return namespace == "wasi" and interface in _WASI_P2_INTERFACES and version in WASI_P2_VERSIONS


def check_component(component: wasmtime.component.Component, engine: wasmtime.Engine) -> None:
    """Imports only from the world and allowed WASI; exports ``handle``. Before any run."""
    kind = component.type
    for name in kind.imports(engine):
        if not _allowed_component_import(name):
            raise _invalid(f"import {name} is not provided by the runtime (abi component)")
    if "handle" not in kind.exports(engine):
        raise _invalid("abi component requires an exported function 'handle' (world extension)")
