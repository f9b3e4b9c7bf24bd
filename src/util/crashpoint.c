/* crashpoint.c - test-only process deaths at named points (see crashpoint.h). */
#include "util/crashpoint.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static const char *g_armed; /* NULL: no point is armed (the normal case) */

static void load_env(void)
{
    const char *v = getenv("BP_CRASHPOINT");
    g_armed = v && *v ? v : NULL;
}

void bp_crashpoint(const char *name)
{
    pthread_once(&g_once, load_env);
    if (g_armed && strcmp(g_armed, name) == 0)
        _exit(BP_CRASHPOINT_EXIT);
}

void bp_crashpoint_arm(const char *name)
{
    pthread_once(&g_once, load_env);
    g_armed = name;
}
