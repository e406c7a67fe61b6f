;; enrich: a raw-ABI extension that calls a platform service through ameide.host_call.
;;
;;   input    a JSON object, e.g. {"id": "n1"}        (empty input counts as null)
;;   request  {"service":"graph","method":"GetNode","body":<input>}
;;   output   {"input":<input>,"enriched":<the host_call response>}
;;
;; The response is spliced in as it comes: {"status":200,"body":{...}} when the
;; service answered, {"error":{"kind":"denied",...}} when the call was refused,
;; and null if the runtime gave no response (the invocation is being stopped).
;; Nothing is parsed; the output is valid JSON whenever the input is.
;;
;; Memory: static strings below 256, the bump heap of alloc() above it (a fresh
;; instance serves each invocation, so nothing is freed).
(module
  (import "ameide" "host_call" (func $host_call (param i32 i32) (result i64)))
  (memory (export "memory") 1)

  (data (i32.const 16) "{\"service\":\"graph\",\"method\":\"GetNode\",\"body\":")  ;; 45 bytes
  (data (i32.const 80) "{\"input\":")                                          ;; 9 bytes
  (data (i32.const 96) ",\"enriched\":")                                       ;; 12 bytes
  (data (i32.const 112) "}")                                                   ;; 1 byte
  (data (i32.const 128) "null")                                                ;; 4 bytes

  (global $heap (mut i32) (i32.const 256))

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

  ;; Copy [src, src+len) to dst; returns dst + len.
  (func $put (param $dst i32) (param $src i32) (param $len i32) (result i32)
    (memory.copy (local.get $dst) (local.get $src) (local.get $len))
    (i32.add (local.get $dst) (local.get $len)))

  (func (export "handle") (param $in i32) (param $n i32) (result i64)
    (local $req i32) (local $end i32) (local $answer i64)
    (local $rp i32) (local $rn i32) (local $out i32)
    (if (i32.eqz (local.get $n))
      (then (local.set $in (i32.const 128)) (local.set $n (i32.const 4))))

    ;; request = prefix + input + "}"
    (local.set $req (call $alloc (i32.add (local.get $n) (i32.const 46))))
    (local.set $end (call $put (local.get $req) (i32.const 16) (i32.const 45)))
    (local.set $end (call $put (local.get $end) (local.get $in) (local.get $n)))
    (local.set $end (call $put (local.get $end) (i32.const 112) (i32.const 1)))
    (local.set $answer
      (call $host_call (local.get $req) (i32.sub (local.get $end) (local.get $req))))

    (if (i64.eq (local.get $answer) (i64.const -1))
      (then (local.set $rp (i32.const 128)) (local.set $rn (i32.const 4)))
      (else
        (local.set $rp (i32.wrap_i64 (i64.shr_u (local.get $answer) (i64.const 32))))
        (local.set $rn (i32.wrap_i64 (local.get $answer)))))

    ;; output = {"input": + input + ,"enriched": + response + }
    (local.set $out
      (call $alloc (i32.add (i32.add (local.get $n) (local.get $rn)) (i32.const 22))))
    (local.set $end (call $put (local.get $out) (i32.const 80) (i32.const 9)))
    (local.set $end (call $put (local.get $end) (local.get $in) (local.get $n)))
    (local.set $end (call $put (local.get $end) (i32.const 96) (i32.const 12)))
    (local.set $end (call $put (local.get $end) (local.get $rp) (local.get $rn)))
    (local.set $end (call $put (local.get $end) (i32.const 112) (i32.const 1)))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
            (i64.extend_i32_u (i32.sub (local.get $end) (local.get $out)))))
)
