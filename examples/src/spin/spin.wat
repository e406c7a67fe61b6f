;; spin: a CPU-bound raw-ABI workload for benchmarks.
;;
;; Input:  the first run of ASCII decimal digits anywhere in the input is N,
;;         the iteration count, so `1000000`, `{"iterations": 1000000}` and the
;;         JSON number 1000000 all mean N = 1e6. No digits: N = 0. Values above
;;         10^12 saturate at 10^12 (far beyond any fuel or time budget).
;; Work:   N rounds of xorshift64 (x ^= x << 13; x ^= x >> 7; x ^= x << 17)
;;         starting from x = 0x9E3779B97F4A7C15; 26 fuel per round (~26e6 fuel and
;;         about 2 ms at N = 1e6).
;; Output: {"result":X} where X = the final x >> 32 (an unsigned 32-bit value,
;;         exact in any JSON parser).
(module
  (memory (export "memory") 1)
  ;; Bytes [0, 64) hold the output; the heap starts after them.
  (data (i32.const 0) "{\"result\":")
  (global $heap (mut i32) (i32.const 64))

  (func $alloc (export "alloc") (param $len i32) (result i32)
    (local $ptr i32) (local $end i32) (local $short i32)
    (local.set $ptr (global.get $heap))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (if (i32.lt_u (local.get $end) (local.get $ptr)) (then unreachable))
    (local.set $short
      (i32.sub
        (i32.wrap_i64
          (i64.shr_u (i64.add (i64.extend_i32_u (local.get $end)) (i64.const 0xffff))
                     (i64.const 16)))
        (memory.size)))
    (if (i32.gt_s (local.get $short) (i32.const 0))
      (then
        (if (i32.eq (memory.grow (local.get $short)) (i32.const -1)) (then unreachable))))
    (global.set $heap (i32.and (i32.add (local.get $end) (i32.const 7)) (i32.const -8)))
    (local.get $ptr))

  ;; N: the first run of digits in [ptr, ptr+len).
  (func $iterations (param $ptr i32) (param $len i32) (result i64)
    (local $end i32) (local $digit i32) (local $n i64) (local $seen i32)
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (block $done
      (loop $scan
        (br_if $done (i32.ge_u (local.get $ptr) (local.get $end)))
        (local.set $digit (i32.sub (i32.load8_u (local.get $ptr)) (i32.const 48)))
        (if (i32.lt_u (local.get $digit) (i32.const 10))
          (then
            (local.set $seen (i32.const 1))
            (local.set $n
              (i64.add (i64.mul (local.get $n) (i64.const 10))
                       (i64.extend_i32_u (local.get $digit))))
            (if (i64.gt_u (local.get $n) (i64.const 1000000000000))
              (then (local.set $n (i64.const 1000000000000)))))
          (else (br_if $done (local.get $seen))))
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 1)))
        (br $scan)))
    (local.get $n))

  (func (export "handle") (param $ptr i32) (param $len i32) (result i64)
    (local $n i64) (local $x i64) (local $v i64) (local $p i32) (local $digits i32)
    (local.set $n (call $iterations (local.get $ptr) (local.get $len)))
    (local.set $x (i64.const 0x9E3779B97F4A7C15))
    (block $done
      (loop $round
        (br_if $done (i64.eqz (local.get $n)))
        (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 13))))
        (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 7))))
        (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 17))))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $round)))
    ;; Decimal digits of x >> 32, written backwards into [10+digits .. 10), then "}".
    (local.set $v (i64.shr_u (local.get $x) (i64.const 32)))
    (local.set $digits (i32.const 1))
    (local.set $x (local.get $v))
    (block $counted
      (loop $count
        (local.set $x (i64.div_u (local.get $x) (i64.const 10)))
        (br_if $counted (i64.eqz (local.get $x)))
        (local.set $digits (i32.add (local.get $digits) (i32.const 1)))
        (br $count)))
    (local.set $p (i32.add (i32.const 10) (local.get $digits)))
    (i32.store8 (local.get $p) (i32.const 125)) ;; '}'
    (loop $emit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $emit (i32.ne (local.get $p) (i32.const 10))))
    ;; output = [0, 10 + digits + 1)
    (i64.extend_i32_u (i32.add (i32.const 11) (local.get $digits))))
)
