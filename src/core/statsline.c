/* statsline.c - the stats log lines from a snapshot. */
#include "core/statsline.h"

#include <inttypes.h>
#include <stdio.h>

/* "45s", "3m20s", "2h05m", "3d04h": how long the blocks left take at the rate now; "?" when
 * nothing is committed at the moment (a stall, a start) and the rate says nothing. */
static void eta_text(uint64_t left, double bps, char *out, size_t cap)
{
    if (bps <= 0) {
        snprintf(out, cap, "?");
        return;
    }
    if ((double)left / bps > 99.0 * 86400) {
        snprintf(out, cap, ">99d");
        return;
    }
    uint64_t t = (uint64_t)((double)left / bps + 0.5);
    if (t < 60)
        snprintf(out, cap, "%" PRIu64 "s", t);
    else if (t < 3600)
        snprintf(out, cap, "%" PRIu64 "m%02" PRIu64 "s", t / 60, t % 60);
    else if (t < 86400)
        snprintf(out, cap, "%" PRIu64 "h%02" PRIu64 "m", t / 3600, t % 3600 / 60);
    else
        snprintf(out, cap, "%" PRIu64 "d%02" PRIu64 "h", t / 86400, t % 86400 / 3600);
}

/* 12345678 -> "12,345,678": the progress line is read at a glance. */
static void grouped(uint64_t v, char *out, size_t cap)
{
    char digits[24];
    int n = snprintf(digits, sizeof(digits), "%" PRIu64, v);
    size_t o = 0;
    for (int i = 0; i < n && o + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
}

void bp_progress_text(bool have_target, uint64_t start, uint64_t next, uint64_t target,
                      uint64_t lag, double blocks_per_s, char *out, size_t cap)
{
    char a[32], b[32];
    if (!have_target) {
        snprintf(out, cap, "waiting for the node's head");
        return;
    }
    if (next > target) {
        grouped(target, a, sizeof(a));
        snprintf(out, cap, "head %s  lag %" PRIu64 "  %.1f blocks/s", a, lag, blocks_per_s);
        return;
    }
    uint64_t total = target >= start ? target - start + 1 : 1;
    uint64_t done = next > start ? next - start : 0;
    double frac = (double)done / (double)total;
    char bar[21];
    int full = (int)(frac * 20.0);
    for (int i = 0; i < 20; i++)
        bar[i] = i < full ? '#' : '.';
    bar[20] = '\0';
    char eta[24];
    eta_text(total - done, blocks_per_s, eta, sizeof(eta));
    grouped(done, a, sizeof(a));
    grouped(total, b, sizeof(b));
    snprintf(out, cap, "[%s] %5.1f%%  %s/%s blocks  %.1f blocks/s  eta %s", bar, frac * 100.0, a, b,
             blocks_per_s, eta);
}

static void main_line(const bp_stats *s, double bps, double tps, uint64_t left, bp_buf *out)
{
    bp_buf_printf(out,
                  "head=%" PRIu64 " indexed=%" PRIu64 " lag=%" PRIu64 " pending=%" PRIu64
                  " processing=%" PRIu64 " done=%" PRIu64 " failed=%" PRIu64
                  " blocks/s=%.1f tx/s=%.1f workers=%d reorgs=%" PRIu64,
                  s->have_head ? s->head : 0, s->have_indexed ? s->indexed : 0, s->lag, s->pending,
                  s->processing, s->done, s->failed, bps, tps, s->workers, s->reorgs);
    /* What a backfill (to --to) or a run catching up (to the head) has left, and when it is
     * done at this line's rate: the first thing one asks of a long sync. At the head: none. */
    if (left > 0) {
        char eta[24];
        eta_text(left, bps, eta, sizeof(eta));
        bp_buf_printf(out, " left=%" PRIu64 " eta=%s", left, eta);
    }
    if (s->memory_budget)
        bp_buf_printf(out, " mem=%.1f/%.0fMiB mem_blocks=%.0fMiB",
                      (double)s->memory_used / 1048576.0, (double)s->memory_budget / 1048576.0,
                      (double)s->memory_blocks / 1048576.0);
    if (s->memory_budget && s->memory_push_ring)
        bp_buf_printf(out, " push_ring=%.1fMiB", (double)s->memory_push_ring / 1048576.0);
    if (s->memory_budget && s->memory_push)
        bp_buf_printf(out, " push_mem=%.1f/%.0fMiB", (double)s->memory_push_held / 1048576.0,
                      (double)s->memory_push / 1048576.0);
    bool first = true;
    for (size_t i = 0; i < s->endpoint_count; i++) {
        if (!s->endpoints[i].rate_limited)
            continue;
        bp_buf_printf(out, "%srpc[%zu]@%.2frps", first ? " rate_limited=" : ",", i,
                      s->endpoints[i].rps);
        first = false;
    }
    first = true;
    for (size_t i = 0; i < s->endpoint_count; i++) {
        if (!s->endpoints[i].limits[0])
            continue;
        bp_buf_printf(out, "%srpc[%zu]:%s", first ? " limits=" : ";", i, s->endpoints[i].limits);
        first = false;
    }
    if (s->waiting)
        bp_buf_printf(out, " waiting_on=%" PRIu64 " (%.250s)", s->waiting_on, s->waiting_error);
    else if (s->outputs_set_aside)
        bp_buf_printf(out, " outputs_set_aside=%zu", s->outputs_set_aside);
}

static void endpoint_line(size_t i, const bp_stats_endpoint *e, bp_buf *out)
{
    char head[24] = "?", rps[24] = "-";
    if (e->head_known)
        snprintf(head, sizeof(head), "%" PRIu64, e->head);
    if (e->rps > 0)
        snprintf(rps, sizeof(rps), "%.2f", e->rps);
    bp_buf_printf(out,
                  "\nrpc[%zu] %s state=%s head=%s in_flight=%d limit=%d batch=%d rps=%s "
                  "requests=%" PRIu64 " errors=%" PRIu64 " 429s=%" PRIu64 " ejections=%" PRIu64
                  " blocks=%" PRIu64 " p50=%.1fms p99=%.1fms",
                  i, e->url, e->state, head, e->in_flight, e->limit, e->batch, rps, e->requests,
                  e->errors, e->rate_limits, e->ejections, e->blocks, e->latency.p50_ms,
                  e->latency.p99_ms);
    if (e->limits[0])
        bp_buf_printf(out, " limits=%s", e->limits);
}

static void realtime_line(const bp_stats_realtime *r, bp_buf *out)
{
    bp_buf_printf(out, "\nrealtime mode=%s", r->websocket ? "websocket" : "polling");
    if (r->ws_configured) {
        bp_buf_printf(out,
                      " ws=%s endpoint=%s connected=%s messages=%" PRIu64 " heads=%" PRIu64
                      " reconnects=%" PRIu64 " heads/s=%.2f",
                      r->ws_state, r->ws_endpoint, r->connected ? "yes" : "no", r->messages,
                      r->heads, r->reconnects, r->heads_per_s);
        if (r->have_last_head)
            bp_buf_printf(out, " last_head=%" PRIu64, r->last_head);
        if (!r->subscribed && r->last_error[0]) {
            /* The error may quote the peer's text: escape " and \ so the value ends at its
             * own closing quote (a bad message's quotes used to cut the field short). */
            bp_buf_puts(out, " last_error=\"");
            for (size_t i = 0; i < 160 && r->last_error[i]; i++) {
                char c = r->last_error[i];
                if (c == '"' || c == '\\')
                    bp_buf_putc(out, '\\');
                bp_buf_putc(out, c);
            }
            bp_buf_putc(out, '"');
        }
    }
    const bp_stats_latency *l = &r->head_to_commit;
    bp_buf_printf(out,
                  " gaps_filled=%" PRIu64 " switches=%" PRIu64 " head_to_commit_ms count=%" PRIu64
                  " p50=%.1f p90=%.1f p99=%.1f max=%.1f",
                  r->gaps_filled, r->switches, l->count, l->p50_ms, l->p90_ms, l->p99_ms,
                  l->max_ms);
}

void bp_stats_lines(const bp_stats *s, double blocks_per_s, double txs_per_s, uint64_t left,
                    bp_buf *out)
{
    main_line(s, blocks_per_s, txs_per_s, left, out);
    for (size_t i = 0; i < s->endpoint_count; i++)
        endpoint_line(i, &s->endpoints[i], out);
    if (s->following)
        realtime_line(&s->realtime, out);
}
