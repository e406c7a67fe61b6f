"""Small components in WAT for the component-ABI tests: one core module whose
``handle(ptr, len) -> i32`` returns the address of a canonical-ABI result area.

The result area of ``result<list<u8>, guest-error>``: the case byte at 0, then
either the list (ptr, len) at 4 and 8, or the error's two strings (ptr, len,
ptr, len) from 4. ``realloc`` is a bump allocator from 64 KiB, so inputs land
above the result area at 1024.
"""

from __future__ import annotations

import wasmtime

RESULT = 1024
_REALLOC = """
  (global $heap (mut i32) (i32.const 65536))
  (func $realloc (export "realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (local.get $p))
"""


def component(body: str, *, pages: int = 2, imports: str = "") -> bytes:
    """A component exporting ``handle``; ``body`` defines the core ``$handle``."""
    return bytes(
        wasmtime.wat2wasm(f"""
(component
  {imports}
  (core module $m
    (memory (export "memory") {pages})
    {_REALLOC}
    {body})
  (core instance $i (instantiate $m))
  (type $error' (record (field "code" string) (field "message" string)))
  (export $error "guest-error" (type $error'))
  (func (export "handle") (param "input" (list u8)) (result (result (list u8) (error $error)))
    (canon lift (core func $i "handle") (memory (core memory $i "memory"))
      (realloc (core func $i "realloc")))))
""")
    )


def _ok(ptr: str, length: str) -> str:
    return f"""
    (i32.store8 (i32.const {RESULT}) (i32.const 0))
    (i32.store (i32.const {RESULT + 4}) {ptr})
    (i32.store (i32.const {RESULT + 8}) {length})
    (i32.const {RESULT})"""


ECHO = component(f"""
  (func (export "handle") (param $p i32) (param $n i32) (result i32)
    {_ok("(local.get $p)", "(local.get $n)")})""")

GUEST_ERROR = component(f"""
  (data (i32.const 0) "bad-inputno such thing")
  (func (export "handle") (param i32 i32) (result i32)
    (i32.store8 (i32.const {RESULT}) (i32.const 1))
    (i32.store (i32.const {RESULT + 4}) (i32.const 0))
    (i32.store (i32.const {RESULT + 8}) (i32.const 9))
    (i32.store (i32.const {RESULT + 12}) (i32.const 9))
    (i32.store (i32.const {RESULT + 16}) (i32.const 13))
    (i32.const {RESULT}))""")

INFINITE_LOOP = component("""
  (func (export "handle") (param i32 i32) (result i32)
    (loop $forever (br $forever))
    (unreachable))""")

RECURSION = component("""
  (func $down (export "handle") (param i32 i32) (result i32)
    (call $down (local.get 0) (local.get 1)))""")

MEMORY_BOMB = component("""
  (func (export "handle") (param i32 i32) (result i32)
    (loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    (unreachable))""")


def declares(pages: int) -> bytes:
    """A component whose core module asks for ``pages`` of initial memory."""
    answer = _ok("(i32.const 0)", "(i32.const 0)")
    return component(
        f"""(func (export "handle") (param i32 i32) (result i32) {answer})""", pages=pages
    )


def output_of(length: int) -> bytes:
    """A component answering ``length`` zero bytes from its own memory."""
    pages = length // 65536 + 3
    return component(
        f"""(func (export "handle") (param i32 i32) (result i32)
          {_ok("(i32.const 131072)", f"(i32.const {length})")})""",
        pages=pages,
    )


UNKNOWN_IMPORT = component(
    """(func (export "handle") (param i32 i32) (result i32) (unreachable))""",
    imports='(import "evil:escape/sockets@1.0.0" (instance))',
)
