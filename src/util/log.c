/* log.c - stderr logger. One fprintf per line under a lock so lines from threads never mix. */
#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum bp_log_level g_level = BP_LOG_INFO;
static int g_json;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const g_names[] = {"debug", "info", "warn", "error"};

void bp_log_set_level(enum bp_log_level level)
{
    g_level = level;
}

void bp_log_set_json(int json)
{
    g_json = json;
}

int bp_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, g_names[i]) == 0)
            return i;
    if (strcmp(s, "warning") == 0)
        return BP_LOG_WARN;
    return -1;
}

static void json_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

void bp_logf(enum bp_log_level level, const char *fmt, ...)
{
    if (level < g_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);

    pthread_mutex_lock(&g_lock);
    if (g_json) {
        fprintf(stderr, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":\"", when,
                ts.tv_nsec / 1000000, g_names[level]);
        json_escape(stderr, msg);
        fputs("\"}\n", stderr);
    } else {
        fprintf(stderr, "%s.%03ldZ %-5s %s\n", when, ts.tv_nsec / 1000000, g_names[level], msg);
    }
    fflush(stderr);
    pthread_mutex_unlock(&g_lock);
}
