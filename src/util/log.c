/* log.c - stderr logger. Each line is written under a lock so lines from threads never mix. */
#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/jsonw.h"
#include "util/url.h"

static enum bp_log_level g_level = BP_LOG_INFO;
static int g_json;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const g_names[] = {"debug", "info", "warn", "error"};
static _Thread_local char t_context[64];

/* The progress line's parts, one per log context (chain), in the order they came. */
#define STATUS_PARTS 32
static struct {
    char ctx[64];
    char text[192];
} g_status[STATUS_PARTS];
static int g_status_n;
/* -1 until the first progress call decides; chains' threads may ask at once */
static _Atomic int g_status_tty = -1;
/* The program wants the line (the CLI does; an embedding program only when it asks: the
 * terminal is its own, and a line redrawn under its output would not be wanted) */
static _Atomic int g_status_on;
static int g_status_drawn; /* the line is on the screen (under g_lock) */

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

void bp_log_set_status(int on)
{
    g_status_on = on;
}

int bp_log_status_shown(void)
{
    if (!g_status_on)
        return 0;
    int shown = g_status_tty;
    if (shown < 0) { /* every thread finds the same answer: a race to store it is harmless */
        const char *term = getenv("TERM");
        shown = !g_json && isatty(STDERR_FILENO) && term && strcmp(term, "dumb") != 0;
        g_status_tty = shown;
    }
    return shown;
}

/* Draws the parts on one line, cut to the terminal's width (a wrapped line could not be
 * taken back with \r). Under g_lock. */
static void status_draw(void)
{
    struct winsize ws;
    size_t width = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 ? ws.ws_col : 80;
    char line[1024];
    size_t n = 0;
    for (int i = 0; i < g_status_n && n < sizeof(line); i++)
        n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s%s%s", i ? " | " : "",
                              g_status[i].ctx, g_status[i].ctx[0] ? " " : "", g_status[i].text);
    if (n >= sizeof(line))
        n = sizeof(line) - 1;
    if (n > width - 1)
        n = width - 1;
    fprintf(stderr, "\r\033[K%.*s", (int)n, line);
    g_status_drawn = 1;
}

void bp_log_status(const char *text)
{
    if (!bp_log_status_shown())
        return;
    pthread_mutex_lock(&g_lock);
    int i = 0;
    while (i < g_status_n && strcmp(g_status[i].ctx, t_context) != 0)
        i++;
    if (!text) {
        if (i < g_status_n) {
            memmove(&g_status[i], &g_status[i + 1],
                    (size_t)(g_status_n - i - 1) * sizeof(g_status[0]));
            g_status_n--;
        }
    } else if (i < g_status_n || g_status_n < STATUS_PARTS) {
        if (i == g_status_n)
            snprintf(g_status[g_status_n++].ctx, sizeof(g_status[0].ctx), "%s", t_context);
        snprintf(g_status[i].text, sizeof(g_status[i].text), "%s", text);
    }
    if (g_status_n)
        status_draw();
    else if (g_status_drawn) {
        fputs("\r\033[K", stderr);
        g_status_drawn = 0;
    }
    fflush(stderr);
    pthread_mutex_unlock(&g_lock);
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
        if (g_status_drawn)
            fputs("\r\033[K", stderr); /* the line goes above the progress line */
        fprintf(stderr, "%s.%03ldZ %-5s %s%s%s%s\n", when, ts.tv_nsec / 1000000, g_names[level],
                t_context[0] ? "[" : "", t_context, t_context[0] ? "] " : "", msg);
        if (g_status_drawn)
            status_draw();
    }
    fflush(stderr);
    pthread_mutex_unlock(&g_lock);
}
