/* crashpoint.c - test-only process deaths at named points (see crashpoint.h). */
#include "util/crashpoint.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static const char *g_armed;  /* NULL: no point is armed (the normal case) */
static size_t g_len;         /* of the name in g_armed (a ":N" may follow) */
static unsigned long g_hits; /* passes of the point let by before the one that dies */

static void load_env(void)
{
    const char *v = getenv("BP_CRASHPOINT");
    g_armed = v && *v ? v : NULL;
    const char *colon = g_armed ? strchr(g_armed, ':') : NULL;
    g_len = g_armed ? (colon ? (size_t)(colon - g_armed) : strlen(g_armed)) : 0;
    unsigned long n = colon ? strtoul(colon + 1, NULL, 10) : 1;
    g_hits = n > 1 ? n - 1 : 0; /* "name:N": the N-th pass dies */
}

void bp_crashpoint(const char *name)
{
    pthread_once(&g_once, load_env);
    if (g_armed && strncmp(g_armed, name, g_len) == 0 && name[g_len] == '\0' && g_hits-- == 0)
        _exit(BP_CRASHPOINT_EXIT);
}

void bp_crashpoint_arm(const char *name)
{
    pthread_once(&g_once, load_env);
    g_armed = name;
    g_len = name ? strlen(name) : 0;
    g_hits = 0;
}
