/* callsink.h - the output that calls a library user's callbacks (include/blockpipe/blockpipe.h):
 * a bp_sink like the others, written by the pipeline's writer thread after the configured
 * outputs, so the callbacks see the same exactly-once, ordered event stream they commit. */
#ifndef BP_LIB_CALLSINK_H
#define BP_LIB_CALLSINK_H

#include "blockpipe/blockpipe.h"
#include "blockpipe/sink.h"

/* The callbacks' output (cb copied; cb->user not owned). Close it with bp_sink_close. */
int bp_callsink_open(const bp_callbacks *cb, bp_sink **out, bp_error *err);

#endif
