"""Guest modules for the sandbox tests, written in WAT and assembled with wat2wasm.

Raw-ABI modules share a bump allocator (``alloc``) and ``$pack`` (ptr<<32|len);
WASI modules share ``$write(fd, ptr, len)`` and ``$read(ptr, len) -> n``.
"""

from __future__ import annotations

import wasmtime

_ALLOC = """
  (global $heap (mut i32) (i32.const 4096))
  (func $alloc (export "alloc") (param $len i32) (result i32)
    (local $p i32) (local $end i32)
    (local.set $p (global.get $heap))
    (local.set $end (i32.add (local.get $p) (local.get $len)))
    (block $ok
      (loop $grow
        (br_if $ok (i32.le_u (local.get $end) (i32.shl (memory.size) (i32.const 16))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (br $grow)))
    (global.set $heap (local.get $end))
    (local.get $p))
  (func $pack (param $p i32) (param $n i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32))
            (i64.extend_i32_u (local.get $n))))
"""

_HOST_LOG = '(import "ameide" "host_log" (func $log (param i32 i32 i32)))'
_HOST_CALL = '(import "ameide" "host_call" (func $host_call (param i32 i32) (result i64)))'


def raw(body: str, *, imports: str = "", pages: int = 1) -> bytes:
    """A raw-ABI module: ``body`` must export ``handle``."""
    return bytes(
        wasmtime.wat2wasm(f'(module {imports} (memory (export "memory") {pages}) {_ALLOC} {body})')
    )


_WASI_IMPORTS = """
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
"""
_WASI_HELPERS = """
  (func $write (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
  (func $read (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.load (i32.const 8)))
"""


def wasi(body: str, *, imports: str = "", pages: int = 1) -> bytes:
    """A wasi-stdio command: ``body`` must export ``_start``. Bytes 0..64 are scratch."""
    return bytes(
        wasmtime.wat2wasm(
            f'(module {_WASI_IMPORTS} {imports} (memory (export "memory") {pages})'
            f" {_WASI_HELPERS} {body})"
        )
    )


ECHO = raw("""
  (func (export "handle") (param $p i32) (param $n i32) (result i64)
    (call $pack (local.get $p) (local.get $n)))""")

# Returns (memory cell, global) after incrementing both, after a short spin so
# that concurrent calls overlap: 1 and 1 unless state leaks between calls.
COUNTER = raw("""
  (global $count (mut i32) (i32.const 0))
  (func (export "handle") (param i32 i32) (result i64)
    (local $i i32)
    (loop $spin
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $spin (i32.lt_u (local.get $i) (i32.const 200000))))
    (global.set $count (i32.add (global.get $count) (i32.const 1)))
    (i32.store (i32.const 64) (i32.add (i32.load (i32.const 64)) (i32.const 1)))
    (i32.store (i32.const 68) (global.get $count))
    (call $pack (i32.const 64) (i32.const 8)))""")

INFINITE_LOOP = raw("""
  (func (export "handle") (param i32 i32) (result i64)
    (loop $forever (br $forever))
    (i64.const 0))""")

# Grows until refused, then traps like an allocator that gave up.
GROW_BOMB = raw("""
  (func (export "handle") (param i32 i32) (result i64)
    (loop $more (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable)""")

HUGE_MEMORY = raw(
    """(func (export "handle") (param i32 i32) (result i64) (i64.const 0))""", pages=20_000
)

RECURSION = raw("""
  (func $down (param i32) (result i32) (call $down (i32.add (local.get 0) (i32.const 1))))
  (func (export "handle") (param i32 i32) (result i64)
    (drop (call $down (i32.const 0)))
    (i64.const 0))""")

BIG_OUTPUT = raw("""
  (func (export "handle") (param i32 i32) (result i64)
    (call $pack (i32.const 0) (i32.const 65536)))""")

OUT_OF_BOUNDS_OUTPUT = raw("""
  (func (export "handle") (param i32 i32) (result i64)
    (call $pack (i32.const -65536) (i32.const 16)))""")

UNREACHABLE = raw("""
  (func (export "handle") (param i32 i32) (result i64) unreachable)""")


def log_flood(lines: int) -> bytes:
    """``lines`` lines of 64 bytes through host_log, then "ok"."""
    return raw(
        f"""
  (data (i32.const 64) "ok")
  (data (i32.const 128) "flood flood flood flood flood flood flood flood flood flood flood!")
  (func (export "handle") (param i32 i32) (result i64)
    (local $i i32)
    (loop $again
      (call $log (i32.const 2) (i32.const 128) (i32.const 64))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const {lines}))))
    (call $pack (i32.const 64) (i32.const 2)))""",
        imports=_HOST_LOG,
    )


LOG_FLOOD = log_flood(10_000)

# Logs "hello" at the level given as the input's first byte, then echoes.
LOGGER = raw(
    """
  (data (i32.const 64) "hello")
  (func (export "handle") (param $p i32) (param $n i32) (result i64)
    (call $log (i32.load8_u (local.get $p)) (i32.const 64) (i32.const 5))
    (call $pack (local.get $p) (local.get $n)))""",
    imports=_HOST_LOG,
)

BAD_LOG_POINTER = raw(
    """
  (func (export "handle") (param i32 i32) (result i64)
    (call $log (i32.const 2) (i32.const -16) (i32.const 64))
    (i64.const 0))""",
    imports=_HOST_LOG,
)

# The input is the request; the response is the output.
HOST_CALL = raw(
    """
  (func (export "handle") (param $p i32) (param $n i32) (result i64)
    (call $host_call (local.get $p) (local.get $n)))""",
    imports=_HOST_CALL,
)

# Calls twice and returns the second response.
HOST_CALL_TWICE = raw(
    """
  (func (export "handle") (param $p i32) (param $n i32) (result i64)
    (drop (call $host_call (local.get $p) (local.get $n)))
    (call $host_call (local.get $p) (local.get $n)))""",
    imports=_HOST_CALL,
)

UNKNOWN_IMPORT = raw(
    """
  (func (export "handle") (param $p i32) (param $n i32) (result i64)
    (drop (call $system (i32.const 0)))
    (call $pack (local.get $p) (local.get $n)))""",
    imports='(import "env" "system" (func $system (param i32) (result i32)))',
)

WRONG_HOST_SIGNATURE = raw(
    """(func (export "handle") (param i32 i32) (result i64) (i64.const 0))""",
    imports='(import "ameide" "host_log" (func $log (param i64)))',
)

NO_ALLOC = bytes(
    wasmtime.wat2wasm("""(module (memory (export "memory") 1)
      (func (export "handle") (param i32 i32) (result i64) (i64.const 0)))""")
)

WRONG_HANDLE_TYPE = raw("""(func (export "handle") (param i32 i32) (result i32) (i32.const 0))""")

# -- wasi-stdio ------------------------------------------------------------------

# stdin -> stdout, and one stderr line.
CAT = wasi("""
  (data (i32.const 64) "hello from stderr\\npartial")
  (func (export "_start")
    (local $n i32)
    (drop (call $write (i32.const 2) (i32.const 64) (i32.const 25)))
    (block $eof
      (loop $chunk
        (local.set $n (call $read (i32.const 1024) (i32.const 60000)))
        (br_if $eof (i32.eqz (local.get $n)))
        (drop (call $write (i32.const 1) (i32.const 1024) (local.get $n)))
        (br $chunk))))""")

# Writes environ count/size and argc/argv size (4 x u32) to stdout.
ENVIRONMENT = wasi(
    """
  (func (export "_start")
    (drop (call $environ_sizes_get (i32.const 64) (i32.const 68)))
    (drop (call $args_sizes_get (i32.const 72) (i32.const 76)))
    (drop (call $write (i32.const 1) (i32.const 64) (i32.const 16))))""",
    imports="""
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))""",
)

# Tries path_open("/etc/passwd") against fds 3, 4 and 5 (where preopens would
# be) and fd_prestat_get(3); writes the four errnos (u32 each), then whatever
# it managed to read from an opened file.
OPEN_PASSWD = wasi(
    """
  (data (i32.const 100) "/etc/passwd")
  (func $try_open (param $dirfd i32) (param $slot i32)
    (local $errno i32)
    (local.set $errno
      (call $path_open (local.get $dirfd) (i32.const 1) (i32.const 100) (i32.const 11)
        (i32.const 0) (i64.const 2) (i64.const 2) (i32.const 0) (i32.const 200)))
    (i32.store (local.get $slot) (local.get $errno))
    (if (i32.eqz (local.get $errno))
      (then
        (i32.store (i32.const 0) (i32.const 1024))
        (i32.store (i32.const 4) (i32.const 4096))
        (drop (call $fd_read (i32.load (i32.const 200)) (i32.const 0) (i32.const 1) (i32.const 8)))
        (drop (call $write (i32.const 1) (i32.const 1024) (i32.load (i32.const 8)))))))
  (func (export "_start")
    (call $try_open (i32.const 3) (i32.const 300))
    (call $try_open (i32.const 4) (i32.const 304))
    (call $try_open (i32.const 5) (i32.const 308))
    (i32.store (i32.const 312) (call $fd_prestat_get (i32.const 3) (i32.const 400)))
    (drop (call $write (i32.const 1) (i32.const 300) (i32.const 16))))""",
    imports="""
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get"
    (func $fd_prestat_get (param i32 i32) (result i32)))""",
)

# Reads a relative sleep in nanoseconds (u64) from stdin straight into the
# clock subscription, polls, then writes "awake\0\0\0", poll's errno (u32), the
# number of events (u32) and the first event's userdata (u64).
SLEEP = wasi(
    """
  (data (i32.const 400) "awake")
  (func (export "_start")
    (i64.store (i32.const 64) (i64.const 42))    ;; userdata
    (i32.store8 (i32.const 72) (i32.const 0))    ;; tag: clock
    (i32.store (i32.const 80) (i32.const 1))     ;; clock id: monotonic
    (drop (call $read (i32.const 88) (i32.const 8)))  ;; timeout
    (i64.store (i32.const 96) (i64.const 0))     ;; precision
    (i32.store16 (i32.const 104) (i32.const 0))  ;; flags: relative
    (i32.store (i32.const 408)
      (call $poll_oneoff (i32.const 64) (i32.const 200) (i32.const 1) (i32.const 300)))
    (i32.store (i32.const 412) (i32.load (i32.const 300)))
    (i64.store (i32.const 416) (i64.load (i32.const 200)))
    (drop (call $write (i32.const 1) (i32.const 400) (i32.const 24))))""",
    imports="""
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))""",
)

# Writes "bye", then exits with the status given as the input's first byte.
EXIT = wasi(
    """
  (data (i32.const 64) "bye")
  (func (export "_start")
    (drop (call $read (i32.const 128) (i32.const 1)))
    (drop (call $write (i32.const 1) (i32.const 64) (i32.const 3)))
    (call $proc_exit (i32.load8_u (i32.const 128)))
    unreachable)""",
    imports="""
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))""",
)

# Writes 64 KiB to stdout forever, ignoring errors.
STDOUT_FLOOD = wasi("""
  (func (export "_start")
    (loop $forever
      (drop (call $write (i32.const 1) (i32.const 0) (i32.const 65536)))
      (br $forever)))""")

# Calls host_call without exporting alloc; writes the i64 result to stdout.
WASI_HOST_CALL_NO_ALLOC = wasi(
    """
  (func (export "_start")
    (i64.store (i32.const 64) (call $host_call (i32.const 0) (i32.const 2)))
    (drop (call $write (i32.const 1) (i32.const 64) (i32.const 8))))""",
    imports=_HOST_CALL,
)

WASI_WITHOUT_START = bytes(wasmtime.wat2wasm('(module (memory (export "memory") 1))'))

# -- clocks and random (deterministic unless the run grants real ones) ----------

_CLOCK_RANDOM_IMPORTS = """
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_res_get"
    (func $clock_res_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get"
    (func $random_get (param i32 i32) (result i32)))"""

# Reads realtime twice, monotonic once, realtime's resolution and 16 random
# bytes; writes the five errnos (u32 each), 8 bytes of padding, the four u64
# values and the random bytes ("<5I8x4Q16s", 76 bytes).
CLOCK_RANDOM = wasi(
    """
  (func (export "_start")
    (i32.store (i32.const 100) (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 128)))
    (i32.store (i32.const 104) (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 136)))
    (i32.store (i32.const 108) (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 144)))
    (i32.store (i32.const 112) (call $clock_res_get (i32.const 0) (i32.const 152)))
    (i32.store (i32.const 116) (call $random_get (i32.const 160) (i32.const 16)))
    (drop (call $write (i32.const 1) (i32.const 100) (i32.const 76))))""",
    imports=_CLOCK_RANDOM_IMPORTS,
)

# random_get(ptr, len) with ptr and len (u32 each) from stdin; writes its errno.
RANDOM_AT = wasi(
    """
  (func (export "_start")
    (drop (call $read (i32.const 64) (i32.const 8)))
    (i32.store (i32.const 72)
      (call $random_get (i32.load (i32.const 64)) (i32.load (i32.const 68))))
    (drop (call $write (i32.const 1) (i32.const 72) (i32.const 4))))""",
    imports=_CLOCK_RANDOM_IMPORTS,
)

# clock_time_get(id, 0, ptr) and clock_res_get(id, ptr) with id and ptr (u32
# each) from stdin; writes both errnos.
CLOCK_AT = wasi(
    """
  (func (export "_start")
    (drop (call $read (i32.const 64) (i32.const 8)))
    (i32.store (i32.const 72)
      (call $clock_time_get (i32.load (i32.const 64)) (i64.const 0) (i32.load (i32.const 68))))
    (i32.store (i32.const 76)
      (call $clock_res_get (i32.load (i32.const 64)) (i32.load (i32.const 68))))
    (drop (call $write (i32.const 1) (i32.const 72) (i32.const 8))))""",
    imports=_CLOCK_RANDOM_IMPORTS,
)

# 17 calls of random_get(65536, 1 MiB) into 17 pages; writes the 17 errnos.
RANDOM_BUDGET = wasi(
    """
  (func (export "_start")
    (local $i i32)
    (loop $again
      (i32.store (i32.add (i32.const 64) (i32.shl (local.get $i) (i32.const 2)))
        (call $random_get (i32.const 65536) (i32.const 1048576)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 17))))
    (drop (call $write (i32.const 1) (i32.const 64) (i32.const 68))))""",
    imports=_CLOCK_RANDOM_IMPORTS,
    pages=17,
)

# Input: clock id (u32), subscription flags (u32, 1 = absolute), timeout (u64).
# Reads that clock (t1), polls one clock subscription whose timeout is the
# input's, plus t1 if absolute, then reads the clock again (t2). Writes poll's
# errno, the event count and t1, t2 ("<IIQQ").
SLEEP_AND_READ = wasi(
    """
  (func (export "_start")
    (drop (call $read (i32.const 64) (i32.const 16)))
    (drop (call $clock_time_get (i32.load (i32.const 64)) (i64.const 1) (i32.const 304)))
    (i64.store (i32.const 128) (i64.const 7))                ;; userdata
    (i32.store8 (i32.const 136) (i32.const 0))               ;; tag: clock
    (i32.store (i32.const 144) (i32.load (i32.const 64)))    ;; clock id
    (i64.store (i32.const 152)
      (i64.add (i64.load (i32.const 72))
        (select (i64.load (i32.const 304)) (i64.const 0)
          (i32.and (i32.load (i32.const 68)) (i32.const 1)))))
    (i64.store (i32.const 160) (i64.const 0))                ;; precision
    (i32.store16 (i32.const 168) (i32.load (i32.const 68)))  ;; flags
    (i32.store (i32.const 296)
      (call $poll_oneoff (i32.const 128) (i32.const 200) (i32.const 1) (i32.const 240)))
    (i32.store (i32.const 300) (i32.load (i32.const 240)))
    (drop (call $clock_time_get (i32.load (i32.const 64)) (i64.const 1) (i32.const 312)))
    (drop (call $write (i32.const 1) (i32.const 296) (i32.const 24))))""",
    imports=_CLOCK_RANDOM_IMPORTS
    + """
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))""",
)

# Reads realtime from the module's start function (before the runner has the
# instance) and 8 random bytes; _start writes both ("<Q8s").
CLOCK_IN_START = wasi(
    """
  (func $early
    (drop (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 128)))
    (drop (call $random_get (i32.const 136) (i32.const 8))))
  (start $early)
  (func (export "_start")
    (drop (call $write (i32.const 1) (i32.const 128) (i32.const 16))))""",
    imports=_CLOCK_RANDOM_IMPORTS,
)

# Returns the definition's config exactly as host_config hands it over.
CONFIG_RAW = raw(
    """
  (func (export "handle") (param i32 i32) (result i64) (call $config))""",
    imports='(import "ameide" "host_config" (func $config (result i64)))',
)

# Writes its whole environment block (NUL-separated KEY=VALUE) to stdout.
CONFIG_ENV = wasi(
    """
  (func (export "_start")
    (drop (call $environ_sizes_get (i32.const 64) (i32.const 68)))
    (drop (call $environ_get (i32.const 128) (i32.const 1024)))
    (drop (call $write (i32.const 1) (i32.const 1024) (i32.load (i32.const 68)))))""",
    imports="""
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get"
    (func $environ_get (param i32 i32) (result i32)))""",
)

# -- memory refusals ---------------------------------------------------------------
# The test limit is 16 MiB (256 pages); 4096 pages is 256 MiB.

# Asks for 256 MiB at once; refused, it exits 1 like a C program whose malloc failed.
WASI_REFUSED_EXITS = wasi(
    """
  (func (export "_start")
    (if (i32.eq (memory.grow (i32.const 4096)) (i32.const -1))
      (then (call $proc_exit (i32.const 1)))))""",
    imports="""
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))""",
)

# One huge allocation, far below the limit before it; refused, it aborts.
HUGE_ALLOCATION = raw("""
  (func (export "handle") (param i32 i32) (result i64)
    (if (i32.eq (memory.grow (i32.const 4096)) (i32.const -1)) (then unreachable))
    (i64.const 0))""")

# Refused, it ignores the -1 and stores where the memory would have been.
REFUSED_THEN_OUT_OF_BOUNDS = raw("""
  (func (export "handle") (param i32 i32) (result i64)
    (drop (memory.grow (i32.const 4096)))
    (i32.store (i32.const 0x2000000) (i32.const 1))
    (i64.const 0))""")

# Refused, it hands back output where the memory would have been.
REFUSED_THEN_BAD_OUTPUT = raw("""
  (func (export "handle") (param i32 i32) (result i64)
    (drop (memory.grow (i32.const 4096)))
    (call $pack (i32.const 0x2000000) (i32.const 16)))""")

# Refused, it falls back to a smaller request and succeeds: "ok".
REFUSED_THEN_RECOVERS = raw("""
  (data (i32.const 64) "ok")
  (func (export "handle") (param i32 i32) (result i64)
    (if (i32.eq (memory.grow (i32.const 4096)) (i32.const -1))
      (then (drop (memory.grow (i32.const 16)))))
    (call $pack (i32.const 64) (i32.const 2)))""")

# Refused, it spins forever (retrying in a loop would look the same).
REFUSED_THEN_SPINS = raw("""
  (func (export "handle") (param i32 i32) (result i64)
    (drop (memory.grow (i32.const 4096)))
    (loop $forever (br $forever))
    (i64.const 0))""")

# Grows to 15 MiB of the 16 (all granted), then traps for another reason.
GROWN_THEN_TRAPS = raw("""
  (func (export "handle") (param i32 i32) (result i64)
    (if (i32.eq (memory.grow (i32.const 239)) (i32.const -1)) (then (return (i64.const 0))))
    (i32.store (i32.const 0x00e00000) (i32.const 1))
    (drop (i32.div_u (i32.const 1) (i32.load (i32.const 0x00e00010))))
    (i64.const 0))""")

# Declares 32 MiB of initial memory: more than the limit before any code runs.
WASI_HUGE_MEMORY = wasi("""(func (export "_start"))""", pages=512)

# -- fuel ---------------------------------------------------------------------------


def counted_loop(iterations: int) -> bytes:
    """``iterations`` rounds of a call-free loop, then returns (exact fuel)."""
    return raw(f"""
  (func (export "handle") (param i32 i32) (result i64)
    (local $i i32)
    (loop $spin
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $spin (i32.lt_u (local.get $i) (i32.const {iterations}))))
    (i64.const 0))""")


# Like INFINITE_LOOP with a call in every round: compiled code writes the fuel
# count back at each call.
CALLING_LOOP = raw("""
  (func $step (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
  (func (export "handle") (param i32 i32) (result i64)
    (local $i i32)
    (loop $forever
      (local.set $i (call $step (local.get $i)))
      (br $forever))
    (i64.const 0))""")
