/*
 * hello: a wasi-stdio extension in C (Debian clang + wasi-libc).
 *
 *   stdin   {"name": "Ada"}            (any JSON object; empty input = {})
 *   stdout  {"greeting":"Hello, Ada!"}  ("World" when "name" is missing or not a string)
 *   stderr  one log line
 *
 * Input that is not a JSON object is refused: a message on stderr, exit status 1.
 * Only read(2)/write(2) and malloc are used, so the module stays small (no stdio).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- I/O ---------------------------------------------------------------- */

static char *read_stdin(size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                return NULL;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t got = read(0, buf + n, cap - n);
        if (got < 0) {
            free(buf);
            return NULL;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    *len = n;
    return buf;
}

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t put = write(fd, p, n);
        if (put <= 0)
            exit(2);
        p += put;
        n -= (size_t)put;
    }
}

static void write_str(int fd, const char *s) { write_all(fd, s, strlen(s)); }

static void write_uint(int fd, size_t v) {
    char digits[24];
    size_t i = sizeof digits;
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    write_all(fd, digits + i, sizeof digits - i);
}

static void emit(const char *p, size_t n) { write_all(1, p, n); }

#include "json_name.h"

int main(void) {
    size_t len;
    char *input = read_stdin(&len);
    if (!input) {
        write_str(2, "hello: cannot read stdin\n");
        return 1;
    }
    Scan scan = {input, input + len};
    char *name = NULL;
    long name_len = 0;
    int found = find_name(&scan, &name, &name_len);
    if (found < 0) {
        write_str(2, "hello: input must be a JSON object such as {\"name\": \"Ada\"}\n");
        return 1;
    }
    if (!found) {
        name = "World";
        name_len = 5;
    }

    write_str(1, "{\"greeting\":\"Hello, ");
    write_json_chars(name, (size_t)name_len);
    write_str(1, "!\"}");

    if (found) {
        write_str(2, "hello: greeting a name of ");
        write_uint(2, (size_t)name_len);
        write_str(2, " bytes\n");
    } else {
        write_str(2, "hello: no name given, greeting World\n");
    }
    return 0;
}
