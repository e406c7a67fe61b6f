;; echo: the raw-ABI benchmark workload. handle() returns its input unchanged.
;;
;; The runtime calls alloc(len) once to place the input, then handle(ptr, len);
;; the output is the input itself, so nothing is copied. alloc is a bump
;; allocator (a fresh instance serves each invocation, so nothing is freed)
;; that grows memory by exactly the pages it is short of, in one memory.grow.
(module
  (memory (export "memory") 1)
  ;; Start past 0 so no allocation is ever the null pointer.
  (global $heap (mut i32) (i32.const 16))

  (func (export "alloc") (param $len i32) (result i32)
    (local $ptr i32) (local $end i32) (local $short i32)
    (local.set $ptr (global.get $heap))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    ;; 4 GiB wrap-around: the request cannot be satisfied.
    (if (i32.lt_u (local.get $end) (local.get $ptr)) (then unreachable))
    ;; pages needed for [0, end) minus pages present (64-bit math: end may be ~4 GiB).
    (local.set $short
      (i32.sub
        (i32.wrap_i64
          (i64.shr_u (i64.add (i64.extend_i32_u (local.get $end)) (i64.const 0xffff))
                     (i64.const 16)))
        (memory.size)))
    (if (i32.gt_s (local.get $short) (i32.const 0))
      (then
        (if (i32.eq (memory.grow (local.get $short)) (i32.const -1)) (then unreachable))))
    ;; Keep the next allocation 8-byte aligned.
    (global.set $heap (i32.and (i32.add (local.get $end) (i32.const 7)) (i32.const -8)))
    (local.get $ptr))

  (func (export "handle") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))
)
