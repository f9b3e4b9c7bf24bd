/* fuzz_file.h - for the targets whose parser reads a file: the input written to one. */
#ifndef BP_FUZZ_FILE_H
#define BP_FUZZ_FILE_H

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* Writes data[0..size) to a new temporary file, runs fn on its path, removes it. */
static inline void bp_fuzz_with_file(const uint8_t *data, size_t size, void (*fn)(const char *))
{
    char path[] = "/tmp/bp_fuzz_file_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return;
    ssize_t w = write(fd, data, size);
    close(fd);
    if (w == (ssize_t)size)
        fn(path);
    unlink(path);
}

#endif
