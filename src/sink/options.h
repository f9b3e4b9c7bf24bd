/* options.h - option descriptors several outputs share (sink.h: a shared key is one flag, one
 * environment variable and one config key for every output that has it, so their names and
 * meaning must be the same everywhere: they are written once, here). Each output gives its
 * own default. */
#ifndef BP_SINK_OPTIONS_H
#define BP_SINK_OPTIONS_H

#include "blockpipe/sink.h"

/* How long a server that is down is waited for (at start and after a lost connection). */
#define BP_SINK_OPTION_WAIT_FOR_DB(default_seconds)                                                \
    {                                                                                              \
        .name = "wait_for_db", .flag = "wait-for-db", .env = "WAIT_FOR_DB", .key = "wait_for_db",  \
        .type = BP_SINK_OPT_INT, .arg = "S", .def = default_seconds, .min = 0, .max = 86400,       \
        .help = "keep retrying a database that is down (at start and after a lost connection) "    \
                "for S seconds; 0: try once"                                                       \
    }

/* The name of this process's checkpoint in an output several processes may write. */
#define BP_SINK_OPTION_CHECKPOINT_NAME(default_name)                                               \
    {                                                                                              \
        .name = "checkpoint", .flag = "checkpoint-name", .env = "CHECKPOINT_NAME",                 \
        .key = "checkpoint_name", .type = BP_SINK_OPT_STRING, .arg = "NAME", .def = default_name,  \
        .help = "this process's checkpoint row, so that a follower and a backfill can share a "    \
                "database"                                                                         \
    }

#endif
