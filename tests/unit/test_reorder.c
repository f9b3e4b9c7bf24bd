/* test_reorder.c - the reorder buffer: out-of-order puts, in-order takes, stale results. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/reorder.h"
#include "util/arena.h"

static bp_block *blk(uint64_t n)
{
    bp_block *b = bp_block_new();
    assert_non_null(b);
    b->number = n;
    return b;
}

static void fetching(bp_reorder *r, uint64_t n)
{
    bp_slot *s = bp_reorder_slot(r, n);
    assert_non_null(s);
    bp_reorder_set_state(r, s, BP_SLOT_FETCHING);
}

static void test_in_order_take(void **state)
{
    (void)state;
    bp_reorder r;
    assert_int_equal(bp_reorder_init(&r, 8, 100), 0);
    assert_null(bp_reorder_slot(&r, 99));
    assert_null(bp_reorder_slot(&r, 108));
    for (uint64_t n = 100; n < 108; n++)
        fetching(&r, n);
    uint64_t order[] = {103, 101, 107, 100, 102, 106, 104, 105};
    uint64_t next = 100;
    for (size_t i = 0; i < 8; i++) {
        bp_slot *s = bp_reorder_slot(&r, order[i]);
        assert_true(bp_reorder_put(&r, order[i], s->epoch, blk(order[i])));
        bp_block *b;
        while ((b = bp_reorder_take(&r)) != NULL) {
            assert_int_equal(b->number, next++);
            bp_block_free(b);
        }
    }
    assert_int_equal(next, 108);
    assert_int_equal(r.base, 108);
    assert_int_equal(r.counts[BP_SLOT_EMPTY], 8);
    /* the window moved: 108..115 are addressable now */
    assert_non_null(bp_reorder_slot(&r, 115));
    bp_reorder_release(&r);
}

static void test_stale_result_dropped(void **state)
{
    (void)state;
    bp_reorder r;
    assert_int_equal(bp_reorder_init(&r, 4, 10), 0);
    fetching(&r, 10);
    fetching(&r, 11);
    uint32_t old = bp_reorder_slot(&r, 11)->epoch;
    bp_reorder_reset_from(&r, 9); /* a reorg: everything from 9 is fetched again */
    assert_int_equal(r.base, 9);
    assert_int_equal(r.counts[BP_SLOT_EMPTY], 4);
    fetching(&r, 11);
    assert_false(bp_reorder_put(&r, 11, old, blk(11))); /* the old fetch comes back: dropped */
    assert_int_equal(bp_reorder_slot(&r, 11)->state, BP_SLOT_FETCHING);
    assert_true(bp_reorder_put(&r, 11, bp_reorder_slot(&r, 11)->epoch, blk(11)));
    assert_null(bp_reorder_take(&r)); /* 9 is not there yet */
    bp_reorder_release(&r);           /* frees the parked block */
}

static void test_put_outside_window(void **state)
{
    (void)state;
    bp_reorder r;
    assert_int_equal(bp_reorder_init(&r, 4, 0), 0);
    assert_false(bp_reorder_put(&r, 4, 0, blk(4)));
    assert_false(bp_reorder_put(&r, 0, 0, blk(0))); /* not FETCHING: never asked for */
    bp_reorder_release(&r);
}

/* parked_bytes follows the DONE blocks through take, discard and reset, and so does the
 * budget they are charged to: a taken block keeps its charge until its taker frees it. */
static void test_parked_bytes(void **state)
{
    (void)state;
    bp_reorder r;
    bp_budget budget;
    bp_budget_init(&budget, (size_t)1 << 30);
    assert_int_equal(bp_reorder_init(&r, 8, 10), 0);
    r.budget = &budget;
    size_t sizes[3];
    for (uint64_t n = 10; n < 13; n++) {
        fetching(&r, n);
        bp_block *b = blk(n);
        /* (past the first 16 KiB chunk: the cost is what the arena holds) */
        assert_non_null(bp_arena_alloc(b->arena, 20000 * (n - 9)));
        sizes[n - 10] = bp_budget_block_cost(b);
        assert_true(bp_reorder_put(&r, n, bp_reorder_slot(&r, n)->epoch, b));
    }
    assert_true(sizes[0] < sizes[1] && sizes[1] < sizes[2]);
    assert_int_equal(r.parked_bytes, sizes[0] + sizes[1] + sizes[2]);
    assert_int_equal(bp_budget_used(&budget), sizes[0] + sizes[1] + sizes[2]);
    bp_block *taken = bp_reorder_take(&r);
    assert_int_equal(r.parked_bytes, sizes[1] + sizes[2]);
    assert_int_equal(bp_budget_used(&budget), sizes[0] + sizes[1] + sizes[2]);
    bp_budget_free_block(&budget, taken);
    assert_int_equal(bp_budget_used(&budget), sizes[1] + sizes[2]);
    bp_slot *s = bp_reorder_slot(&r, 11);
    bp_reorder_discard(&r, s);
    bp_reorder_set_state(&r, s, BP_SLOT_RETRY);
    assert_null(s->block);
    assert_int_equal(r.parked_bytes, sizes[2]);
    assert_int_equal(bp_budget_used(&budget), sizes[2]);
    bp_reorder_reset_from(&r, 11);
    assert_int_equal(r.parked_bytes, 0);
    assert_int_equal(bp_budget_used(&budget), 0);
    assert_int_equal(bp_budget_peak(&budget), sizes[0] + sizes[1] + sizes[2]);
    bp_reorder_release(&r);
    bp_budget_release(&budget);
}

/* A returning job's blocks are paid out of its grant, which the budget holds already: the
 * counter never holds the grant and the blocks at once (its peak stays the grant), a block of
 * an invalidated slot takes nothing, what is left is the caller's to refund; a block bigger
 * than what is left is charged the difference. */
static void test_prepaid_grant(void **state)
{
    (void)state;
    bp_reorder r;
    bp_budget budget;
    bp_budget_init(&budget, (size_t)1 << 30);
    assert_int_equal(bp_reorder_init(&r, 8, 10), 0);
    r.budget = &budget;
    size_t grant = 3 * 100000;
    bp_budget_charge(&budget, grant); /* the coordinator's, when it sent the job */
    size_t cost[3] = {0};
    bp_reorder_prepay(&r, grant);
    for (uint64_t n = 10; n < 13; n++) {
        fetching(&r, n);
        bp_block *b = blk(n);
        assert_non_null(bp_arena_alloc(b->arena, 20000 * (n - 9)));
        cost[n - 10] = bp_budget_block_cost(b);
        /* block 11's slot was invalidated meanwhile (a reorg): freed, nothing charged */
        uint32_t epoch = bp_reorder_slot(&r, n)->epoch + (n == 11);
        assert_int_equal(bp_reorder_put(&r, n, epoch, b), n != 11);
        assert_int_equal(bp_budget_used(&budget), grant);
    }
    size_t parked = cost[0] + cost[2];
    assert_true(parked < grant);
    size_t left = bp_reorder_prepaid_left(&r);
    assert_int_equal(left, grant - parked);
    assert_int_equal(bp_reorder_prepaid_left(&r), 0);
    bp_budget_refund(&budget, left);
    assert_int_equal(bp_budget_used(&budget), parked);
    assert_int_equal(bp_budget_peak(&budget), grant);
    /* a grant smaller than the block: the rest is charged */
    bp_budget_charge(&budget, 1000);
    bp_reorder_prepay(&r, 1000);
    fetching(&r, 13);
    bp_block *b = blk(13);
    size_t c = bp_budget_block_cost(b);
    assert_true(c > 1000);
    assert_true(bp_reorder_put(&r, 13, bp_reorder_slot(&r, 13)->epoch, b));
    assert_int_equal(bp_reorder_prepaid_left(&r), 0);
    assert_int_equal(bp_budget_used(&budget), parked + c);
    assert_int_equal(r.parked_bytes, parked + c);
    bp_reorder_reset_from(&r, 10);
    assert_int_equal(bp_budget_used(&budget), 0);
    bp_reorder_release(&r);
    bp_budget_release(&budget);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order_take),      cmocka_unit_test(test_stale_result_dropped),
        cmocka_unit_test(test_put_outside_window), cmocka_unit_test(test_parked_bytes),
        cmocka_unit_test(test_prepaid_grant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
