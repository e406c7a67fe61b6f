/*
 * wordcount: a raw-ABI extension in freestanding C (no libc, no WASI imports).
 *
 *   input   {"text": "..."}     a JSON object: its "text" string is counted
 *           "..."               a JSON string: its value is counted
 *           anything else       the input bytes themselves are counted
 *   output  {"words":N,"lines":N,"bytes":N}
 *   log     one info line through ameide.host_log (a warning if an object has no "text")
 *
 * words: maximal runs of bytes that are not ASCII whitespace (space \t \n \v \f \r)
 * lines: "\n"-terminated lines, plus a last line without "\n" if the text does not
 *        end in one ("" -> 0, "a" -> 1, "a\n" -> 1, "a\nb" -> 2)
 * bytes: the UTF-8 length of the text (after JSON unescaping)
 *
 * One pass: the "text" string is counted while it is unescaped, nothing is copied.
 * Malformed JSON is counted as raw text, byte for byte.
 *
 * Exports memory, alloc(len) -> ptr and handle(ptr, len) -> i64 (ptr << 32 | len).
 * Memory: the stack sits first (16 KiB, overflow traps instead of corrupting data),
 * then static data, then the heap of alloc(), a bump allocator: every invocation
 * runs in a fresh instance, so nothing is ever freed.
 */
#include <stddef.h>
#include <stdint.h>

#define WASM_IMPORT(mod, name) __attribute__((import_module(mod), import_name(name)))
#define WASM_EXPORT(name) __attribute__((export_name(name)))

WASM_IMPORT("ameide", "host_log") void host_log(int32_t level, const char *ptr, int32_t len);

enum { LOG_DEBUG = 1, LOG_INFO = 2, LOG_WARN = 3, LOG_ERROR = 4 };

/* ---- memory --------------------------------------------------------------- */

extern unsigned char __heap_base; /* provided by wasm-ld: first byte after data and stack */
static uintptr_t heap_top = (uintptr_t)&__heap_base;

WASM_EXPORT("alloc") void *alloc(uint32_t len) {
    uintptr_t ptr = (heap_top + 7) & ~(uintptr_t)7;
    uint64_t end = (uint64_t)ptr + len;
    uint64_t have = (uint64_t)__builtin_wasm_memory_size(0) << 16;
    if (end > have) {
        uint64_t pages = (end - have + 0xFFFF) >> 16;
        if (end > 0xFFFFFFFFull || __builtin_wasm_memory_grow(0, (size_t)pages) == (size_t)-1)
            __builtin_trap();
    }
    heap_top = (uintptr_t)end;
    return (void *)ptr;
}

/* ---- counting ------------------------------------------------------------ */

typedef struct {
    uint32_t words, lines, bytes;
    int in_word, ends_in_newline;
} Counter;

static void feed(Counter *c, unsigned char b) {
    int space = b == ' ' || (b >= '\t' && b <= '\r'); /* \t \n \v \f \r */
    c->words += !space && !c->in_word;
    c->in_word = !space;
    c->ends_in_newline = b == '\n';
    c->lines += c->ends_in_newline;
    c->bytes++;
}

/* A last line without "\n" counts too. */
static Counter finish(Counter c) {
    c.lines += c.bytes > 0 && !c.ends_in_newline;
    return c;
}

/* ---- a minimal JSON reader ------------------------------------------------ */

typedef struct {
    char *p, *end;
} Scan;

static int is_json_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static void skip_ws(Scan *s) {
    while (s->p < s->end && is_json_ws(*s->p))
        s->p++;
}

static int hex4(const char *p, const char *end, uint32_t *out) {
    uint32_t v = 0;
    if (end - p < 4)
        return 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

static void feed_utf8(Counter *c, uint32_t cp) {
    if (cp < 0x80) {
        feed(c, (unsigned char)cp);
    } else if (cp < 0x800) {
        feed(c, (unsigned char)(0xC0 | cp >> 6));
        feed(c, (unsigned char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        feed(c, (unsigned char)(0xE0 | cp >> 12));
        feed(c, (unsigned char)(0x80 | (cp >> 6 & 0x3F)));
        feed(c, (unsigned char)(0x80 | (cp & 0x3F)));
    } else {
        feed(c, (unsigned char)(0xF0 | cp >> 18));
        feed(c, (unsigned char)(0x80 | (cp >> 12 & 0x3F)));
        feed(c, (unsigned char)(0x80 | (cp >> 6 & 0x3F)));
        feed(c, (unsigned char)(0x80 | (cp & 0x3F)));
    }
}

/*
 * The JSON string at s->p (on its opening quote); with a counter, its unescaped
 * bytes are fed to it. Returns the string's raw (escaped) length, or -1 if it is
 * malformed. Lone surrogates count as U+FFFD.
 */
static int64_t parse_string(Scan *s, Counter *counter) {
    char *start = ++s->p;
    while (s->p < s->end) {
        char c = *s->p++;
        if (c == '"')
            return s->p - 1 - start;
        if ((unsigned char)c < 0x20)
            return -1;
        if (c != '\\') {
            if (counter)
                feed(counter, (unsigned char)c);
            continue;
        }
        if (s->p >= s->end)
            return -1;
        c = *s->p++;
        uint32_t cp, lo;
        switch (c) {
        case '"': case '\\': case '/': cp = (unsigned char)c; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (!hex4(s->p, s->end, &cp))
                return -1;
            s->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && s->end - s->p >= 6 && s->p[0] == '\\' &&
                s->p[1] == 'u' && hex4(s->p + 2, s->end, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                s->p += 6;
            } else if (cp >= 0xD800 && cp < 0xE000) {
                cp = 0xFFFD;
            }
            break;
        default:
            return -1;
        }
        if (counter)
            feed_utf8(counter, cp);
    }
    return -1;
}

static int is_scalar_char(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '+' ||
           c == '.' || c == 'E';
}

/* Skip one value of any type (lenient about what is inside containers). */
static int skip_value(Scan *s) {
    int depth = 0;
    do {
        skip_ws(s);
        if (s->p >= s->end)
            return 0;
        char c = *s->p;
        if (c == '"') {
            if (parse_string(s, NULL) < 0)
                return 0;
        } else if (c == '{' || c == '[') {
            depth++;
            s->p++;
        } else if (c == '}' || c == ']') {
            if (--depth < 0)
                return 0;
            s->p++;
        } else if ((c == ',' || c == ':') && depth > 0) {
            s->p++;
        } else if (is_scalar_char(c)) {
            while (s->p < s->end && is_scalar_char(*s->p))
                s->p++;
        } else {
            return 0;
        }
    } while (depth > 0);
    return 1;
}

typedef enum { INPUT_RAW, INPUT_OBJECT, INPUT_OBJECT_NO_TEXT, INPUT_STRING } InputKind;

static InputKind count_raw(const char *in, uint32_t len, Counter *counts) {
    Counter c = {0};
    for (uint32_t i = 0; i < len; i++)
        feed(&c, (unsigned char)in[i]);
    *counts = finish(c);
    return INPUT_RAW;
}

/* Count the input's text: the "text" string of an object, a JSON string, or raw bytes. */
static InputKind count_input(char *in, uint32_t len, Counter *counts) {
    Scan s = {in, in + len};
    Counter text = {0};
    InputKind kind = INPUT_OBJECT_NO_TEXT;
    skip_ws(&s);
    if (s.p < s.end && *s.p == '"') {
        kind = INPUT_STRING;
        if (parse_string(&s, &text) < 0)
            return count_raw(in, len, counts);
    } else if (s.p < s.end && *s.p == '{') {
        s.p++;
        skip_ws(&s);
        if (s.p < s.end && *s.p == '}') {
            s.p++;
        } else {
            for (;;) {
                skip_ws(&s);
                if (s.p >= s.end || *s.p != '"')
                    return count_raw(in, len, counts);
                char *key = s.p + 1;
                int64_t key_len = parse_string(&s, NULL);
                skip_ws(&s);
                if (key_len < 0 || s.p >= s.end || *s.p != ':')
                    return count_raw(in, len, counts);
                s.p++;
                skip_ws(&s);
                /* A key spelled with escapes ("te\u0078t") is not recognised; fine here. */
                int is_text = key_len == 4 && key[0] == 't' && key[1] == 'e' && key[2] == 'x' &&
                              key[3] == 't';
                if (is_text && s.p < s.end && *s.p == '"') {
                    Counter value = {0}; /* a repeated "text" replaces the earlier one */
                    if (parse_string(&s, &value) < 0)
                        return count_raw(in, len, counts);
                    text = value;
                    kind = INPUT_OBJECT;
                } else {
                    if (is_text) { /* a later non-string "text" wins too */
                        kind = INPUT_OBJECT_NO_TEXT;
                        text = (Counter){0};
                    }
                    if (!skip_value(&s))
                        return count_raw(in, len, counts);
                }
                skip_ws(&s);
                if (s.p < s.end && *s.p == ',') {
                    s.p++;
                    continue;
                }
                if (s.p < s.end && *s.p == '}') {
                    s.p++;
                    break;
                }
                return count_raw(in, len, counts);
            }
        }
    } else {
        return count_raw(in, len, counts);
    }
    skip_ws(&s);
    if (s.p != s.end)
        return count_raw(in, len, counts);
    *counts = finish(text);
    return kind;
}

/* ---- counting and output -------------------------------------------------- */

static char *put_str(char *o, const char *s) {
    while (*s)
        *o++ = *s++;
    return o;
}

static char *put_uint(char *o, uint32_t v) {
    char digits[10];
    int i = 0;
    do {
        digits[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i)
        *o++ = digits[--i];
    return o;
}

static int64_t pack(const char *ptr, uint32_t len) {
    return (int64_t)((uint64_t)(uintptr_t)ptr << 32 | len);
}

WASM_EXPORT("handle") int64_t handle(char *in, uint32_t len) {
    Counter c;
    InputKind kind = count_input(in, len, &c);

    char *out = alloc(64), *o = out;
    o = put_str(o, "{\"words\":");
    o = put_uint(o, c.words);
    o = put_str(o, ",\"lines\":");
    o = put_uint(o, c.lines);
    o = put_str(o, ",\"bytes\":");
    o = put_uint(o, c.bytes);
    o = put_str(o, "}");

    static const char *const kinds[] = {"raw text", "JSON object", "JSON object", "JSON string"};
    char line[128], *l = line;
    if (kind == INPUT_OBJECT_NO_TEXT) {
        l = put_str(l, "wordcount: JSON object without a \"text\" string, counted nothing");
        host_log(LOG_WARN, line, (int32_t)(l - line));
    } else {
        l = put_str(l, "wordcount: ");
        l = put_str(l, kinds[kind]);
        l = put_str(l, ", ");
        l = put_uint(l, c.words);
        l = put_str(l, " words, ");
        l = put_uint(l, c.lines);
        l = put_str(l, " lines, ");
        l = put_uint(l, c.bytes);
        l = put_str(l, " bytes");
        host_log(LOG_INFO, line, (int32_t)(l - line));
    }
    return pack(out, (uint32_t)(o - out));
}
