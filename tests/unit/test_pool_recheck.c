/* test_pool_recheck.c - an ejected endpoint gets no request until the coordinator has heard
 * it name the chain again (the node behind the URL may have been replaced while it was
 * down); one that names another chain never gets one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/pool.h"

static void eject(bp_pool *p, int ep)
{
    int batch;
    bp_pool_outcome down = {.rc = BP_ETRANSPORT, .blocks = 1, .need = 1, .error_text = "reset"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(bp_pool_acquire(p, 1, -1, 0, &batch), ep);
        bp_pool_done(p, ep, &down);
    }
    assert_int_equal(p->eps[ep].state, BP_EP_EJECTED);
}

static void test_ejected_is_rechecked(void **state)
{
    (void)state;
    bp_endpoint_spec specs[] = {{.url = "http://a:1", .max_workers = 1}};
    bp_pool p;
    bp_error err = {0};
    assert_int_equal(bp_pool_init(&p, specs, 1, 4, 8, &err), 0);
    bool due = true;
    assert_false(bp_pool_needs_recheck(&p, 0, &due));
    eject(&p, 0);
    assert_true(bp_pool_needs_recheck(&p, 0, &due));
    assert_false(due); /* in its pause */
    p.eps[0].not_before_ms = 0;
    assert_true(bp_pool_needs_recheck(&p, 0, &due));
    assert_true(due);
    int batch;
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), -1); /* not before the recheck */
    /* eth_chainId failed: a failed probe, paused again */
    bp_pool_recheck_failed(&p, 0, "connection refused");
    assert_int_equal(p.eps[0].ejections, 2);
    assert_true(bp_pool_needs_recheck(&p, 0, &due));
    assert_false(due);
    p.eps[0].not_before_ms = 0;
    bp_pool_set_chain(&p, 0, BP_EP_CHAIN_OK); /* it named the chain */
    assert_false(bp_pool_needs_recheck(&p, 0, &due));
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0); /* the probe */
    assert_int_equal(p.eps[0].state, BP_EP_PROBING);
    bp_pool_release(&p);
}

static void test_back_on_another_chain_never_used(void **state)
{
    (void)state;
    bp_endpoint_spec specs[] = {{.url = "http://a:1", .max_workers = 1},
                                {.url = "http://b:1", .max_workers = 1, .priority = 9}};
    bp_pool p;
    bp_error err = {0};
    assert_int_equal(bp_pool_init(&p, specs, 2, 4, 8, &err), 0);
    eject(&p, 0);
    p.eps[0].not_before_ms = 0;
    bp_pool_set_chain(&p, 0, BP_EP_CHAIN_OTHER);
    int batch;
    for (int i = 0; i < 3; i++) { /* only b, however often */
        assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 1);
        bp_pool_done(&p, 1, &(bp_pool_outcome){.rc = 0, .blocks = 1, .bytes = 10, .need = 1});
    }
    bp_pool_release(&p);
}

/* No block request comes to probe it (an idle chain): the coordinator's head request does,
 * only once it named the chain and its pause is over; failed, it is ejected for longer. */
static void test_idle_probe_by_coordinator(void **state)
{
    (void)state;
    bp_endpoint_spec specs[] = {{.url = "http://a:1", .max_workers = 1},
                                {.url = "http://b:1", .max_workers = 1}};
    bp_pool p;
    bp_error err = {0};
    assert_int_equal(bp_pool_init(&p, specs, 2, 4, 8, &err), 0);
    eject(&p, 0);
    long first = p.eps[0].backoff_ms;
    assert_false(bp_pool_probe_due(&p, 0)); /* not before the recheck */
    p.eps[0].not_before_ms = 0;
    assert_false(bp_pool_probe_due(&p, 0));
    bp_pool_set_chain(&p, 0, BP_EP_CHAIN_OK);
    assert_true(bp_pool_probe_due(&p, 0));
    assert_false(bp_pool_probe_due(&p, 1)); /* healthy: nothing to probe */
    bp_pool_probed(&p, 0, BP_ETRANSPORT, "connection refused");
    assert_int_equal(p.eps[0].state, BP_EP_EJECTED);
    assert_int_equal(p.eps[0].ejections, 2);
    assert_int_equal(p.eps[0].backoff_ms, 2 * first); /* b is healthy: the backoff doubles */
    assert_false(bp_pool_probe_due(&p, 0));           /* in its pause, to be rechecked */
    p.eps[0].not_before_ms = 0;
    bp_pool_set_chain(&p, 0, BP_EP_CHAIN_OK);
    bp_pool_probed(&p, 0, 0, NULL);
    assert_int_equal(p.eps[0].state, BP_EP_HEALTHY);
    assert_false(bp_pool_probe_due(&p, 0));
    bp_pool_release(&p);
}

/* An answered probe of the coordinator's resets the backoff, as a worker's answered probe
 * does: the next outage is ejected for the first backoff, not for twice the last one (a backup
 * endpoint that no block request reaches would keep an old outage's 60 s for good). */
static void test_probe_resets_backoff(void **state)
{
    (void)state;
    bp_endpoint_spec specs[] = {{.url = "http://a:1", .max_workers = 1},
                                {.url = "http://b:1", .max_workers = 1}};
    bp_pool p;
    bp_error err = {0};
    assert_int_equal(bp_pool_init(&p, specs, 2, 4, 8, &err), 0);
    eject(&p, 0);
    long first = p.eps[0].backoff_ms;
    for (int i = 0; i < 3; i++) { /* a long outage: the backoff grows */
        p.eps[0].not_before_ms = 0;
        bp_pool_set_chain(&p, 0, BP_EP_CHAIN_OK);
        bp_pool_probed(&p, 0, BP_ETIMEOUT, "timed out");
    }
    assert_int_equal(p.eps[0].backoff_ms, 8 * first);
    p.eps[0].not_before_ms = 0;
    bp_pool_set_chain(&p, 0, BP_EP_CHAIN_OK);
    bp_pool_probed(&p, 0, 0, NULL); /* back */
    assert_int_equal(p.eps[0].state, BP_EP_HEALTHY);
    assert_int_equal(p.eps[0].backoff_ms, 0);
    eject(&p, 0); /* a new outage, much later */
    assert_int_equal(p.eps[0].backoff_ms, first);
    bp_pool_release(&p);
}

/* A worker's probe in flight: the coordinator neither probes nor judges it. */
static void test_no_probe_beside_a_worker(void **state)
{
    (void)state;
    bp_endpoint_spec specs[] = {{.url = "http://a:1", .max_workers = 1}};
    bp_pool p;
    bp_error err = {0};
    assert_int_equal(bp_pool_init(&p, specs, 1, 4, 8, &err), 0);
    eject(&p, 0);
    p.eps[0].not_before_ms = 0;
    bp_pool_set_chain(&p, 0, BP_EP_CHAIN_OK);
    int batch;
    assert_int_equal(bp_pool_acquire(&p, 1, -1, 0, &batch), 0);
    assert_false(bp_pool_probe_due(&p, 0));
    bp_pool_probed(&p, 0, BP_ETRANSPORT, "late");
    assert_int_equal(p.eps[0].state, BP_EP_PROBING);
    assert_int_equal(p.eps[0].ejections, 1);
    bp_pool_release(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ejected_is_rechecked),
        cmocka_unit_test(test_back_on_another_chain_never_used),
        cmocka_unit_test(test_idle_probe_by_coordinator),
        cmocka_unit_test(test_probe_resets_backoff),
        cmocka_unit_test(test_no_probe_beside_a_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
