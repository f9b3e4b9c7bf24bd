/* buf.h - growable byte buffer with a hard size cap (every buffer the network fills has one).
 * The caller owns the struct; bp_buf_release frees the storage. data is always NUL-terminated
 * after a successful append so it can be handed to text parsers. */
#ifndef BP_UTIL_BUF_H
#define BP_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct bp_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max; /* 0 = unlimited */
} bp_buf;

void bp_buf_init(bp_buf *b, size_t max);
void bp_buf_release(bp_buf *b);
void bp_buf_reset(bp_buf *b); /* len = 0, keeps storage */
/* Return 0, BP_ENOMEM, or BP_ETOOBIG when the cap would be exceeded. */
int bp_buf_append(bp_buf *b, const void *p, size_t n);
int bp_buf_puts(bp_buf *b, const char *s);
int bp_buf_putc(bp_buf *b, char c);
int bp_buf_printf(bp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int bp_buf_reserve(bp_buf *b, size_t extra);

#endif
