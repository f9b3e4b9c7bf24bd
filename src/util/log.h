/* log.h - leveled logging to stderr, text or JSON lines. Thread-safe. */
#ifndef BP_UTIL_LOG_H
#define BP_UTIL_LOG_H

#include <pthread.h>

enum bp_log_level { BP_LOG_DEBUG = 0, BP_LOG_INFO, BP_LOG_WARN, BP_LOG_ERROR };

void bp_log_set_level(enum bp_log_level level);
void bp_log_set_json(int json);
/* Parses "debug|info|warn|error"; returns -1 if unknown. */
int bp_log_level_parse(const char *s);
void bp_logf(enum bp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A name every line this thread logs carries (text: "[NAME] " before the message; JSON: a
 * "chain" member): the chain of a pipeline when one process runs several. NULL or "": none.
 * Threads started by bp_thread_create take their creator's. */
void bp_log_set_context(const char *name);
const char *bp_log_context(void);
/* pthread_create (same arguments and result) whose thread starts with the creator's log
 * context. */
int bp_thread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

/* The progress line: once asked for (bp_log_set_status), on a terminal (stderr a tty, text
 * logs, TERM not "dumb") the last line shows `text` for this thread's log context (one part
 * per chain, joined), redrawn under every log line; elsewhere nothing is shown. NULL takes
 * this context's part away (and the line with the last one). */
void bp_log_status(const char *text);
/* Asks for the progress line (1) or not (0, the default: a program embedding the library
 * draws nothing on its terminal unless it asks); the CLI asks. Process-wide. */
void bp_log_set_status(int on);
/* Whether bp_log_status shows anything here (the terminal decided at the first call). */
int bp_log_status_shown(void);

#define bp_debug(...) bp_logf(BP_LOG_DEBUG, __VA_ARGS__)
#define bp_info(...) bp_logf(BP_LOG_INFO, __VA_ARGS__)
#define bp_warn(...) bp_logf(BP_LOG_WARN, __VA_ARGS__)
#define bp_err(...) bp_logf(BP_LOG_ERROR, __VA_ARGS__)

#endif
