/*
 * hello-c: the C hello (examples/src/hello) as a component of the world
 * ameide:extension/extension: {"name": "Ada"} -> {"greeting": "Hello, Ada!"}
 * ("World" when "name" is missing or not a string); one host.log line; input
 * that is not a JSON object is the guest error invalid_input.
 */
#include "extension.h"

/* write_json_chars (json_name.h) writes here: a growing output buffer. */
static ext_output *sink;
static size_t sink_cap;

static void emit(const char *p, size_t n) {
    if (sink->len + n > sink_cap) {
        size_t cap = sink_cap ? sink_cap : 64;
        while (cap < sink->len + n)
            cap *= 2;
        uint8_t *bigger = realloc(sink->bytes, cap);
        if (!bigger)
            abort();
        sink->bytes = bigger;
        sink_cap = cap;
    }
    memcpy(sink->bytes + sink->len, p, n);
    sink->len += n;
}

static void emit_str(const char *s) { emit(s, strlen(s)); }

#include "../hello/json_name.h"

int ext_handle(const uint8_t *input, size_t len, ext_output *out) {
    /* find_name decodes in place, so it works on a copy of the input. */
    char *text = malloc(len + 1);
    if (!text)
        abort();
    memcpy(text, input, len);
    Scan scan = {text, text + len};
    char *name = "World";
    long name_len = 5;
    if (find_name(&scan, &name, &name_len) < 0) {
        free(text);
        out->code = "invalid_input";
        out->message = "input must be a JSON object such as {\"name\": \"Ada\"}";
        return EXT_GUEST_ERROR;
    }
    sink = out;
    sink_cap = 0;
    emit_str("{\"greeting\":\"Hello, ");
    write_json_chars(name, (size_t)name_len);
    emit_str("!\"}");
    static const char line[] = "hello-c: greeting a name";
    ext_log(EXT_INFO, line, sizeof line - 1);
    free(text);
    return EXT_OK;
}
