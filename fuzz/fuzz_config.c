/* fuzz_config.c - the config file parser (YAML/JSON through libyaml) on arbitrary bytes: any
 * input must give either a config or an error message, never a crash or a leak. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/config.h"
#include "fuzz_file.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void load(const char *path)
{
    char *argv[] = {"run", "--config", (char *)path, NULL};
    bp_config cfg;
    bp_error err = {0};
    if (bp_config_load(&cfg, BP_CMD_RUN, 3, argv, &err) != 0 && !err.msg[0])
        abort(); /* an error must say what was wrong */
    bp_config_release(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bp_fuzz_with_file(data, size, load);
    return 0;
}
