/* webhooks.c - the alert webhooks: one sender thread drives every POST through one libcurl
 * multi handle, so webhooks are served side by side and posting never waits. */
#include "api/webhooks.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "util/url.h"

typedef struct msg {
    struct msg *next;
    size_t len;
    char body[]; /* NUL-terminated */
} msg;

typedef struct hook {
    char *url;
    char shown[512];  /* masked: for log lines */
    msg *head, *tail; /* waiting to be sent, under the lock */
    size_t queued;
    uint64_t dropped;
    CURL *easy; /* the sender thread's alone: the message in flight */
    msg *sending;
    char error[CURL_ERROR_SIZE];
} hook;

struct bp_webhooks {
    hook *hooks;
    size_t n;
    CURLM *multi;
    struct curl_slist *headers;
    pthread_t thread;
    pthread_mutex_t lock;
    bool stop, started;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* Takes the oldest waiting message of h, under the lock. */
static msg *take(hook *h)
{
    msg *m = h->head;
    if (m) {
        h->head = m->next;
        if (!h->head)
            h->tail = NULL;
        h->queued--;
    }
    return m;
}

/* Puts m in flight to h; false (m freed) when libcurl cannot. */
static bool send_one(bp_webhooks *w, hook *h, msg *m)
{
    CURL *c = curl_easy_init();
    if (!c) {
        bp_warn("alert webhook %s: cannot make a request (out of memory): an alert is lost",
                h->shown);
        free(m);
        return false;
    }
    h->error[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, h->url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, (char *)&m->body[0]);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)m->len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, w->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)BP_WEBHOOK_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->error);
    curl_easy_setopt(c, CURLOPT_PRIVATE, h);
    if (curl_multi_add_handle(w->multi, c) != CURLM_OK) {
        bp_warn("alert webhook %s: cannot start a request: an alert is lost", h->shown);
        curl_easy_cleanup(c);
        free(m);
        return false;
    }
    h->easy = c;
    h->sending = m;
    return true;
}

/* Every webhook with nothing in flight gets its oldest waiting message; true when any
 * message is in flight or waiting afterwards. */
static bool start_ready(bp_webhooks *w)
{
    bool busy = false;
    for (size_t i = 0; i < w->n; i++) {
        hook *h = &w->hooks[i];
        if (!h->easy) {
            pthread_mutex_lock(&w->lock);
            msg *m = take(h);
            pthread_mutex_unlock(&w->lock);
            if (m)
                (void)send_one(w, h, m);
        }
        pthread_mutex_lock(&w->lock);
        busy = busy || h->easy || h->head;
        pthread_mutex_unlock(&w->lock);
    }
    return busy;
}

static void finish(bp_webhooks *w, hook *h, CURLcode rc)
{
    long status = 0;
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK)
        bp_warn("alert webhook %s: %s (%s): this alert is not sent to it again", h->shown,
                curl_easy_strerror(rc), h->error[0] ? h->error : "no detail");
    else if (status >= 300)
        bp_warn("alert webhook %s: answered HTTP %ld: this alert is not sent to it again", h->shown,
                status);
    curl_multi_remove_handle(w->multi, h->easy);
    curl_easy_cleanup(h->easy);
    free(h->sending);
    h->easy = NULL;
    h->sending = NULL;
}

static void reap(bp_webhooks *w)
{
    CURLMsg *cm;
    int left;
    while ((cm = curl_multi_info_read(w->multi, &left)) != NULL) {
        if (cm->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        curl_easy_getinfo(cm->easy_handle, CURLINFO_PRIVATE, &priv);
        if (priv)
            finish(w, (hook *)priv, cm->data.result);
    }
}

/* At stop, what did not finish in time: given up, said once per webhook. */
static void abandon(bp_webhooks *w)
{
    for (size_t i = 0; i < w->n; i++) {
        hook *h = &w->hooks[i];
        size_t lost = h->easy != NULL;
        if (h->easy) {
            curl_multi_remove_handle(w->multi, h->easy);
            curl_easy_cleanup(h->easy);
            free(h->sending);
            h->easy = NULL;
            h->sending = NULL;
        }
        for (msg *m; (m = take(h)) != NULL; lost++)
            free(m);
        if (lost)
            bp_warn("alert webhook %s: %zu alert(s) not delivered at stop", h->shown, lost);
    }
}

static void *sender_main(void *arg)
{
    bp_webhooks *w = arg;
    int64_t give_up = 0;
    for (;;) {
        bool busy = start_ready(w);
        pthread_mutex_lock(&w->lock);
        bool stop = w->stop;
        pthread_mutex_unlock(&w->lock);
        if (stop && !give_up)
            give_up = now_ms() + BP_WEBHOOK_TIMEOUT_S * 1000L;
        if (stop && (!busy || now_ms() >= give_up))
            break;
        int running, wait_ms = 1000;
        curl_multi_perform(w->multi, &running);
        reap(w);
        (void)start_ready(w); /* a webhook that just freed up sends its next one now */
        if (give_up && give_up - now_ms() < wait_ms)
            wait_ms = give_up > now_ms() ? (int)(give_up - now_ms()) : 0;
        curl_multi_poll(w->multi, NULL, 0, wait_ms, NULL); /* or a post's wake-up */
    }
    pthread_mutex_lock(&w->lock);
    abandon(w);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static void free_all(bp_webhooks *w)
{
    for (size_t i = 0; w->hooks && i < w->n; i++) {
        for (msg *m; (m = take(&w->hooks[i])) != NULL;)
            free(m);
        free(w->hooks[i].url);
    }
    free(w->hooks);
    curl_slist_free_all(w->headers);
    if (w->multi)
        curl_multi_cleanup(w->multi);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

int bp_webhooks_start(const char *const *urls, size_t n, bp_webhooks **out, bp_error *err)
{
    *out = NULL;
    bp_webhooks *w = calloc(1, sizeof(*w));
    if (!w)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    pthread_mutex_init(&w->lock, NULL);
    w->n = n;
    w->hooks = calloc(n ? n : 1, sizeof(*w->hooks));
    w->multi = curl_multi_init();
    w->headers = curl_slist_append(NULL, "Content-Type: application/json");
    bool ok = w->hooks && w->multi && w->headers;
    for (size_t i = 0; ok && i < n; i++) {
        bp_secret_add_url(urls[i]); /* a Slack webhook's path is its key: never in a log */
        bp_url_redact(urls[i], w->hooks[i].shown, sizeof(w->hooks[i].shown));
        ok = (w->hooks[i].url = strdup(urls[i])) != NULL;
    }
    if (!ok) {
        free_all(w);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    if (pthread_create(&w->thread, NULL, sender_main, w) != 0) {
        free_all(w);
        return bp_error_set(err, BP_ENOMEM, "cannot start the alert webhooks' thread");
    }
    w->started = true;
    *out = w;
    return 0;
}

/* Appends a copy of the body to h's queue, dropping the oldest when it is full; under the
 * lock. */
static void enqueue(hook *h, const char *json, size_t len)
{
    msg *m = malloc(sizeof(*m) + len + 1);
    if (!m) {
        bp_warn("alert webhook %s: out of memory: an alert is lost", h->shown);
        return;
    }
    m->next = NULL;
    m->len = len;
    memcpy(m->body, json, len);
    m->body[len] = '\0';
    if (h->queued == BP_WEBHOOK_QUEUE) {
        free(take(h));
        h->dropped++;
        if ((h->dropped & (h->dropped - 1)) == 0) /* 1, 2, 4, ...: not a line per alert */
            bp_warn("alert webhook %s: %d alerts wait for it already: the oldest dropped "
                    "(%llu so far)",
                    h->shown, BP_WEBHOOK_QUEUE, (unsigned long long)h->dropped);
    }
    if (h->tail)
        h->tail->next = m;
    else
        h->head = m;
    h->tail = m;
    h->queued++;
}

void bp_webhooks_post(bp_webhooks *w, const char *json, size_t len)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->n; i++)
        enqueue(&w->hooks[i], json, len);
    pthread_mutex_unlock(&w->lock);
    curl_multi_wakeup(w->multi);
}

void bp_webhooks_stop(bp_webhooks *w)
{
    if (!w)
        return;
    if (w->started) {
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        pthread_mutex_unlock(&w->lock);
        curl_multi_wakeup(w->multi);
        pthread_join(w->thread, NULL);
    }
    free_all(w);
}
