/* fuzz_config.c - the config file parser (YAML/JSON through libyaml) on arbitrary bytes: any
 * input must give either a config or an error message, never a crash or a leak. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/config.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/bp_fuzz_config_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    ssize_t w = write(fd, data, size);
    close(fd);
    if (w == (ssize_t)size) {
        char *argv[] = {"run", "--config", path, NULL};
        bp_config cfg;
        bp_error err = {0};
        if (bp_config_load(&cfg, BP_CMD_RUN, 3, argv, &err) != 0 && !err.msg[0])
            abort(); /* an error must say what was wrong */
        bp_config_release(&cfg);
    }
    unlink(path);
    return 0;
}
