/* clock.h - the API's clocks: monotonic for intervals, wall clock for what it shows. */
#ifndef BP_API_CLOCK_H
#define BP_API_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t bp_api_clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Monotonic milliseconds. */
static inline int64_t bp_api_mono_ms(void)
{
    return bp_api_clock_us(CLOCK_MONOTONIC) / 1000;
}

/* Unix time in milliseconds. */
static inline int64_t bp_api_unix_ms(void)
{
    return bp_api_clock_us(CLOCK_REALTIME) / 1000;
}

#endif
