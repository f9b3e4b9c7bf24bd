/* testfile.h - reading whole files and editing texts in tests. */
#ifndef BP_TEST_TESTFILE_H
#define BP_TEST_TESTFILE_H

#include <stddef.h>

/* The file's bytes, NUL-terminated, malloc'd (free()); *len (may be NULL) gets the size.
 * NULL when the file cannot be read. */
char *bp_test_slurp(const char *path, size_t *len);

/* A malloc'd copy of s with the first `from` replaced by `to`; NULL when s has no `from` (or
 * out of memory). */
char *bp_test_replace(const char *s, const char *from, const char *to);

#endif
