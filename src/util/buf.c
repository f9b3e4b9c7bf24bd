/* buf.c - growable byte buffer with a hard cap, always NUL-terminated after appends. */
#include "util/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockpipe/error.h"

void bp_buf_init(bp_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void bp_buf_release(bp_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void bp_buf_reset(bp_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* The cap counts payload bytes; the NUL terminator is extra and never counted. */
int bp_buf_reserve(bp_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)
        return BP_ETOOBIG;
    size_t need = b->len + extra;
    if (b->max && need > b->max)
        return BP_ETOOBIG;
    if (need + 1 <= b->cap)
        return BP_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need + 1)
        cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
    if (b->max && cap > b->max + 1)
        cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (!p)
        return BP_ENOMEM;
    b->data = p;
    b->cap = cap;
    return BP_OK;
}

int bp_buf_append(bp_buf *b, const void *p, size_t n)
{
    int rc = bp_buf_reserve(b, n);
    if (rc != BP_OK)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return BP_OK;
}

int bp_buf_puts(bp_buf *b, const char *s)
{
    return bp_buf_append(b, s, strlen(s));
}

int bp_buf_putc(bp_buf *b, char c)
{
    return bp_buf_append(b, &c, 1);
}

int bp_buf_printf(bp_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return BP_EINVAL;
    int rc = bp_buf_reserve(b, (size_t)n);
    if (rc != BP_OK)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return BP_OK;
}
