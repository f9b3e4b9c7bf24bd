/* migrate.c - `blockpipe migrate`: create or upgrade the schema of outputs, print what it did. */
#include "cli/commands_migrate.h"

#include <stdio.h>

#include "blockpipe/sink.h"
#include "cli/config.h"
#include "util/log.h"
#include "util/url.h"

int bp_cmd_migrate(int argc, char **argv)
{
    bp_config cfg;
    bp_error err = {0};
    int status = 0;
    if (bp_config_load(&cfg, BP_CMD_MIGRATE, argc, argv, &err) != 0) {
        bp_secret_scrub(err.msg);
        fprintf(stderr, "blockpipe migrate: %s\n", err.msg);
        bp_config_release(&cfg);
        return 2;
    }
    if (cfg.help) {
        fputs(bp_config_usage(BP_CMD_MIGRATE), stdout);
        bp_config_release(&cfg);
        return 0;
    }
    bp_log_set_level((enum bp_log_level)cfg.log_level);
    bp_log_set_json(cfg.log_json);
    bp_sink_settings set = {cfg.sink_settings, cfg.sink_setting_count, NULL};
    for (int i = 0; i < cfg.output_count && status == 0; i++) {
        char report[512] = "";
        int rc = bp_sink_migrate(cfg.outputs[i], &set, report, sizeof(report), &err);
        if (rc == 0) {
            printf("%s\n", report);
        } else {
            bp_secret_scrub(err.msg);
            fprintf(stderr, "blockpipe migrate: %s\n", err.msg);
            status = rc == BP_EINVAL ? 2 : 1;
        }
    }
    bp_config_release(&cfg);
    return status;
}
