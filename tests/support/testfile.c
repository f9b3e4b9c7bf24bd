/* testfile.c - whole-file reads and text edits for tests. */
#include "testfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *bp_test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *data = malloc(cap + 1);
    while (data && (got = fread(data + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *bigger = realloc(data, 2 * cap + 1);
            if (!bigger) {
                free(data);
                data = NULL;
                break;
            }
            data = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (!data)
        return NULL;
    data[n] = '\0';
    if (len)
        *len = n;
    return data;
}

char *bp_test_replace(const char *s, const char *from, const char *to)
{
    const char *p = strstr(s, from);
    if (!p)
        return NULL;
    size_t head = (size_t)(p - s), fl = strlen(from), tl = strlen(to);
    char *out = malloc(strlen(s) - fl + tl + 1);
    if (!out)
        return NULL;
    memcpy(out, s, head);
    memcpy(out + head, to, tl);
    strcpy(out + head + tl, p + fl);
    return out;
}
