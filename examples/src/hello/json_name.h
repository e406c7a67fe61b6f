/*
 * json_name.h: the JSON the hello examples need, shared by the wasi-stdio
 * `hello` and the component `hello-c`: find the top-level "name" string of an
 * object, and write text as the inside of a JSON string.
 *
 * The includer defines `static void emit(const char *p, size_t n)` first:
 * where write_json_chars puts its bytes (stdout for hello, a buffer for hello-c).
 */
#ifndef JSON_NAME_H
#define JSON_NAME_H
#include <stddef.h>
#include <string.h>

/* ---- a minimal JSON reader ---------------------------------------------- */

typedef struct {
    char *p, *end;
} Scan;

static void skip_ws(Scan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hex4(const char *p, const char *end, unsigned *out) {
    unsigned v = 0;
    if (end - p < 4)
        return 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

static char *put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | cp >> 12);
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | cp >> 18);
        *o++ = (char)(0x80 | (cp >> 12 & 0x3F));
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/*
 * The JSON string at s->p (on its opening quote), decoded in place: the text
 * lands at the start of the string's own bytes, which is safe because a decoded
 * string is never longer than its escaped form. Returns the decoded length, or
 * -1 if the string is malformed. Lone surrogates become U+FFFD.
 */
static long parse_string(Scan *s, char **text) {
    char *o = ++s->p;
    *text = o;
    while (s->p < s->end) {
        char c = *s->p++;
        if (c == '"')
            return o - *text;
        if ((unsigned char)c < 0x20)
            return -1;
        if (c != '\\') {
            *o++ = c;
            continue;
        }
        if (s->p >= s->end)
            return -1;
        c = *s->p++;
        switch (c) {
        case '"': case '\\': case '/': *o++ = c; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
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
            o = put_utf8(o, cp);
            break;
        }
        default:
            return -1;
        }
    }
    return -1;
}

/* Skip one value of any type (lenient about what is inside containers). */
static int skip_value(Scan *s) {
    int depth = 0;
    char *ignored;
    do {
        skip_ws(s);
        if (s->p >= s->end)
            return 0;
        char c = *s->p;
        if (c == '"') {
            if (parse_string(s, &ignored) < 0)
                return 0;
        } else if (c == '{' || c == '[') {
            depth++;
            s->p++;
        } else if (c == '}' || c == ']') {
            if (--depth < 0)
                return 0;
            s->p++;
        } else if (c == ',' || c == ':') {
            if (depth == 0)
                return 0;
            s->p++;
        } else {
            char *start = s->p;
            while (s->p < s->end && *s->p && strchr("+-.0123456789Eabcdefghijklmnopqrstuvwxyz", *s->p))
                s->p++;
            if (s->p == start)
                return 0;
        }
    } while (depth > 0);
    return 1;
}

/* The top-level "name" string of a JSON object: 1 found, 0 absent, -1 not an object. */
static int find_name(Scan *s, char **name, long *name_len) {
    skip_ws(s);
    if (s->p == s->end)
        return 0; /* empty input counts as {} */
    if (*s->p != '{')
        return -1;
    s->p++;
    int found = 0;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
    } else {
        for (;;) {
            char *key;
            skip_ws(s);
            if (s->p >= s->end || *s->p != '"')
                return -1;
            long key_len = parse_string(s, &key);
            if (key_len < 0)
                return -1;
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':')
                return -1;
            s->p++;
            skip_ws(s);
            if (key_len == 4 && memcmp(key, "name", 4) == 0 && s->p < s->end && *s->p == '"') {
                if ((*name_len = parse_string(s, name)) < 0)
                    return -1;
                found = 1;
            } else if (key_len == 4 && memcmp(key, "name", 4) == 0) {
                found = 0; /* a later non-string "name" wins, as in most parsers */
                if (!skip_value(s))
                    return -1;
            } else if (!skip_value(s)) {
                return -1;
            }
            skip_ws(s);
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                continue;
            }
            if (s->p < s->end && *s->p == '}') {
                s->p++;
                break;
            }
            return -1;
        }
    }
    skip_ws(s);
    return s->p == s->end ? found : -1;
}

/* ---- output --------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if it is not valid. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, min = 0x10000;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    unsigned cp = c & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000))
        return 0;
    return n;
}

/* Write s as the inside of a JSON string: escapes, and U+FFFD for invalid UTF-8. */
static void write_json_chars(const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        const unsigned char *run = p;
        size_t len;
        while (p < end && *p >= 0x20 && *p != '"' && *p != '\\' && (len = utf8_len(p, end)) > 0)
            p += len;
        emit((const char *)run, (size_t)(p - run));
        if (p == end)
            break;
        unsigned char c = *p++;
        if (c == '"') {
            emit("\\\"", 2);
        } else if (c == '\\') {
            emit("\\\\", 2);
        } else if (c == '\n') {
            emit("\\n", 2);
        } else if (c == '\r') {
            emit("\\r", 2);
        } else if (c == '\t') {
            emit("\\t", 2);
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            emit(esc, sizeof esc);
        } else {
            emit("\xEF\xBF\xBD", 3); /* one invalid byte -> U+FFFD */
        }
    }
}

#endif
