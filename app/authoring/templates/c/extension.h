/*
 * extension.h: the world ameide:extension/extension@0.1.0 (wit/extension) for C,
 * written by hand against the component model's canonical ABI, because the
 * bindings generator (wit-bindgen) is not in our offline toolchain.
 *
 * An author includes this once and defines ext_handle:
 *
 *     int ext_handle(const uint8_t *input, size_t len, ext_output *out);
 *
 * returning EXT_OK with out->bytes/out->len (malloc'd, the runtime copies them),
 * or EXT_GUEST_ERROR with out->code and out->message (NUL-terminated), which the
 * caller receives as GUEST_ERROR "code: message". Host functions: ext_log and
 * ext_config below. Build as a wasi-libc reactor, then make a component:
 *
 *     clang --target=wasm32-wasi -mexec-model=reactor -Os -o core.wasm hello.c
 *     wasm-tools component embed wit/extension --world extension core.wasm -o embedded.wasm
 *     wasm-tools component new embedded.wasm --adapt wasi_snapshot_preview1.reactor.wasm -o module.wasm
 *
 * (`extensions-runtime build DIR` runs exactly these; the adapter comes with jco.)
 */
#ifndef AMEIDE_EXTENSION_H
#define AMEIDE_EXTENSION_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { EXT_OK = 0, EXT_GUEST_ERROR = 1 };
/* host.log levels, in the WIT enum's order. */
enum { EXT_DEBUG = 0, EXT_INFO = 1, EXT_WARN = 2, EXT_ERROR = 3 };

typedef struct {
    uint8_t *bytes;
    size_t len;
    const char *code;
    const char *message;
} ext_output;

int ext_handle(const uint8_t *input, size_t len, ext_output *out);

/* ---- imports: interface host ---------------------------------------------- */

__attribute__((import_module("ameide:extension/host@0.1.0"), import_name("log")))
extern void ext__host_log(int32_t level, const char *message, size_t len);

__attribute__((import_module("ameide:extension/host@0.1.0"), import_name("config")))
extern void ext__host_config(uint32_t *ret /* [ptr, len] */);

/* One log line (the runtime caps them by the log budget). */
static inline void ext_log(int level, const char *message, size_t len) {
    ext__host_log(level, message, len);
}

/* The definition's config as JSON text; malloc'd, not NUL-terminated. */
static inline char *ext_config(size_t *len) {
    uint32_t ret[2];
    ext__host_config(ret);
    *len = ret[1];
    return (char *)(uintptr_t)ret[0];
}

/* ---- exports: canonical ABI glue ------------------------------------------- */

/* The runtime allocates the input (and host answers) in guest memory with this. */
__attribute__((export_name("cabi_realloc")))
void *cabi_realloc(void *old, size_t old_size, size_t align, size_t new_size) {
    (void)old_size;
    (void)align; /* malloc's alignment (16) covers every type of this world */
    if (new_size == 0)
        return (void *)align;
    void *p = realloc(old, new_size);
    if (!p)
        abort();
    return p;
}

/* result<list<u8>, guest-error>: tag at 0, payload from 4 (ok: ptr, len;
 * err: code ptr, len, message ptr, len). */
static uint32_t ext__result[5];
static ext_output ext__last;

__attribute__((export_name("handle")))
uint32_t *ext__export_handle(uint8_t *input, size_t len) {
    memset(&ext__last, 0, sizeof ext__last);
    int status = ext_handle(input, len, &ext__last);
    if (len != 0) /* an empty list was never allocated: its pointer is the alignment */
        free(input);
    if (status == EXT_OK) {
        ext__result[0] = 0;
        ext__result[1] = (uint32_t)(uintptr_t)ext__last.bytes;
        ext__result[2] = (uint32_t)ext__last.len;
    } else {
        const char *code = ext__last.code ? ext__last.code : "error";
        const char *message = ext__last.message ? ext__last.message : "";
        ext__result[0] = 1;
        ext__result[1] = (uint32_t)(uintptr_t)code;
        ext__result[2] = (uint32_t)strlen(code);
        ext__result[3] = (uint32_t)(uintptr_t)message;
        ext__result[4] = (uint32_t)strlen(message);
    }
    return ext__result;
}

/* Called after the runtime has copied the result out. */
__attribute__((export_name("cabi_post_handle")))
void ext__post_handle(uint32_t *result) {
    (void)result;
    free(ext__last.bytes);
    ext__last.bytes = NULL;
}

#endif
