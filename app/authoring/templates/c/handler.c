/*
 * {{name}}: an extension in C, a component of ameide:extension/extension.
 * Implement ext_handle (extension.h explains the contract); see README.md.
 */
#include <stdio.h>

#include "extension.h"

int ext_handle(const uint8_t *input, size_t len, ext_output *out) {
    if (len == 0) {
        out->code = "invalid_input";
        out->message = "send a JSON document";
        return EXT_GUEST_ERROR;
    }
    char *answer = malloc(64);
    if (!answer)
        abort();
    int n = snprintf(answer, 64, "{\"received_bytes\":%zu}", len);
    out->bytes = (uint8_t *)answer;
    out->len = (size_t)n;
    static const char line[] = "{{name}}: answered";
    ext_log(EXT_INFO, line, sizeof line - 1);
    return EXT_OK;
}
