/* error.c - the bp_error convention: code + message naming what was wrong. */
#include "blockpipe/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int bp_error_set(bp_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int bp_error_prefix(bp_error *err, const char *fmt, ...)
{
    if (!err)
        return BP_EINVAL;
    char head[BP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    if (n > 0) {
        /* Truncation is expected and fine here: the message is capped by design. */
        size_t hl = strnlen(head, sizeof(head) - 1);
        size_t ml = strnlen(err->msg, sizeof(err->msg) - 1);
        if (hl + ml > sizeof(err->msg) - 1)
            ml = sizeof(err->msg) - 1 - hl;
        memmove(err->msg + hl, err->msg, ml);
        memcpy(err->msg, head, hl);
        err->msg[hl + ml] = '\0';
    }
    return err->code;
}

void bp_error_clear(bp_error *err)
{
    if (err) {
        err->code = BP_OK;
        err->msg[0] = '\0';
    }
}

const char *bp_strerror(int code)
{
    switch (code) {
#define BP_X_CASE(name, value, text)                                                               \
    case name:                                                                                     \
        return text;
        BP_ERRORS(BP_X_CASE)
#undef BP_X_CASE
    }
    return "unknown error";
}

int bp_error_is_transient(int code)
{
    switch (code) {
    case BP_EPARSE:
    case BP_EHTTP:
    case BP_ETRANSPORT:
    case BP_ETIMEOUT:
    case BP_ERATELIMIT:
    case BP_ERPC:
    case BP_ENOTFOUND: /* a node behind its own head answers null for a block: try again */
    case BP_EIO:       /* an output's disk or file system may recover (space freed) */
        return 1;
    default:
        return 0;
    }
}
