/* testfile.h - reading whole files in tests. */
#ifndef BP_TEST_TESTFILE_H
#define BP_TEST_TESTFILE_H

#include <stddef.h>

/* The file's bytes, NUL-terminated, malloc'd (free()); *len (may be NULL) gets the size.
 * NULL when the file cannot be read. */
char *bp_test_slurp(const char *path, size_t *len);

#endif
