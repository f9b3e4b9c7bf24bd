/* log.c - stderr logger. Each line is written under a lock so lines from threads never mix. */
#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/buf.h"
#include "util/jsonw.h"
#include "util/url.h"

static enum bp_log_level g_level = BP_LOG_INFO;
static int g_json;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const g_names[] = {"debug", "info", "warn", "error"};
static _Thread_local char t_context[64];

void bp_log_set_context(const char *name)
{
    snprintf(t_context, sizeof(t_context), "%s", name ? name : "");
}

const char *bp_log_context(void)
{
    return t_context;
}

typedef struct thread_start {
    void *(*fn)(void *);
    void *arg;
    char context[sizeof(t_context)];
} thread_start;

static void *thread_main(void *p)
{
    thread_start st = *(thread_start *)p;
    free(p);
    bp_log_set_context(st.context);
    return st.fn(st.arg);
}

int bp_thread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    thread_start *st = malloc(sizeof(*st));
    if (!st)
        return -1;
    *st = (thread_start){.fn = fn, .arg = arg};
    memcpy(st->context, t_context, sizeof(st->context));
    int rc = pthread_create(t, attr, thread_main, st);
    if (rc != 0)
        free(st);
    return rc;
}

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

/* A JSON line: {"ts":..,"level":..,"msg":..}. Built in one buffer kept for every line
 * (under g_lock), so logging allocates only when a line is longer than any before. */
static void put_json_line(const char *when, long ms, const char *level, const char *msg)
{
    static bp_buf line;
    char ts[64];
    snprintf(ts, sizeof(ts), "%s.%03ldZ", when, ms);
    bp_buf_reset(&line);
    bp_jsonw w;
    bp_jsonw_init(&w, &line, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "ts");
    bp_jsonw_str(&w, ts);
    bp_jsonw_key(&w, "level");
    bp_jsonw_str(&w, level);
    if (t_context[0]) {
        bp_jsonw_key(&w, "chain");
        bp_jsonw_str(&w, t_context);
    }
    bp_jsonw_key(&w, "msg");
    bp_jsonw_str(&w, msg);
    bp_jsonw_end_object(&w);
    if (bp_jsonw_finish(&w) == 0 && bp_buf_putc(&line, '\n') == 0)
        fwrite(line.data, 1, line.len, stderr);
    else
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"(out of memory)\"}\n", ts,
                level);
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
    bp_secret_scrub(msg); /* the last guard: a node's answer may quote the key */

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);

    pthread_mutex_lock(&g_lock);
    if (g_json) {
        put_json_line(when, ts.tv_nsec / 1000000, g_names[level], msg);
    } else {
        fprintf(stderr, "%s.%03ldZ %-5s %s%s%s%s\n", when, ts.tv_nsec / 1000000, g_names[level],
                t_context[0] ? "[" : "", t_context, t_context[0] ? "] " : "", msg);
    }
    fflush(stderr);
    pthread_mutex_unlock(&g_lock);
}
