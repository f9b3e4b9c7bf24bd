/* testfile.c - whole-file reads for tests. */
#include "testfile.h"

#include <stdio.h>
#include <stdlib.h>

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
