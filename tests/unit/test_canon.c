/* test_canon.c - the canonical chain window and the reorg walk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/canon.h"

static void mkhash(char out[67], uint64_t n, char branch)
{
    snprintf(out, 67, "0x%c%063llx", branch, (unsigned long long)n);
}

static void push_chain(bp_canon *c, uint64_t from, uint64_t to, char branch)
{
    for (uint64_t n = from; n <= to; n++) {
        bp_canon_entry e = {.number = n};
        mkhash(e.hash, n, branch);
        mkhash(e.parent_hash, n - 1, branch);
        bp_canon_push(c, &e);
    }
}

static void test_window_evicts_lowest(void **state)
{
    (void)state;
    bp_canon c;
    assert_int_equal(bp_canon_init(&c, 4), 0);
    assert_null(bp_canon_tip(&c));
    push_chain(&c, 10, 15, 'a');
    assert_int_equal(bp_canon_tip(&c)->number, 15);
    assert_int_equal(bp_canon_lowest(&c)->number, 12);
    assert_null(bp_canon_at(&c, 11));
    assert_non_null(bp_canon_at(&c, 12));
    assert_null(bp_canon_at(&c, 16));
    char h[67];
    mkhash(h, 13, 'a');
    assert_string_equal(bp_canon_at(&c, 13)->hash, h);
    bp_canon_release(&c);
}

static void test_extends(void **state)
{
    (void)state;
    bp_canon c;
    assert_int_equal(bp_canon_init(&c, 8), 0);
    assert_true(bp_canon_extends(&c, 5, "0xanything")); /* empty: nothing to check */
    push_chain(&c, 1, 5, 'a');
    char h[67];
    mkhash(h, 5, 'a');
    assert_true(bp_canon_extends(&c, 6, h));
    assert_false(bp_canon_extends(&c, 7, h)); /* wrong height */
    mkhash(h, 5, 'b');
    assert_false(bp_canon_extends(&c, 6, h)); /* wrong parent */
    bp_canon_release(&c);
}

static void test_truncate_and_gap_restart(void **state)
{
    (void)state;
    bp_canon c;
    assert_int_equal(bp_canon_init(&c, 8), 0);
    push_chain(&c, 1, 6, 'a');
    bp_canon_truncate(&c, 3);
    assert_int_equal(bp_canon_tip(&c)->number, 3);
    push_chain(&c, 4, 4, 'b');
    assert_int_equal(bp_canon_tip(&c)->number, 4);
    assert_int_equal(bp_canon_lowest(&c)->number, 1);
    /* a push that does not follow the tip restarts the window rather than leaving a hole */
    push_chain(&c, 9, 9, 'a');
    assert_int_equal(bp_canon_lowest(&c)->number, 9);
    assert_int_equal(bp_canon_tip(&c)->number, 9);
    bp_canon_release(&c);
}

/* The node's chain in these tests: branch 'a' up to fork, branch 'b' above it. */
typedef struct node {
    uint64_t fork;
    int calls;
    int fail_at; /* height whose lookup fails, or -1 */
} node;

static int node_lookup(void *ctx, uint64_t k, char hash[67], bp_error *err)
{
    node *nd = ctx;
    nd->calls++;
    if ((int)k == nd->fail_at)
        return bp_error_set(err, BP_ETIMEOUT, "timed out");
    mkhash(hash, k, k <= nd->fork ? 'a' : 'b');
    return 0;
}

static void test_find_ancestor_depths(void **state)
{
    (void)state;
    for (uint64_t depth = 0; depth <= 5; depth++) {
        bp_canon c;
        assert_int_equal(bp_canon_init(&c, 16), 0);
        push_chain(&c, 100, 120, 'a');
        node nd = {.fork = 120 - depth, .fail_at = -1};
        uint64_t anc = 0;
        bp_error err = {0};
        assert_int_equal(bp_canon_find_ancestor(&c, 120, node_lookup, &nd, &anc, &err), 0);
        assert_int_equal(anc, 120 - depth);
        assert_int_equal(nd.calls, (int)depth + 1);
        bp_canon_release(&c);
    }
}

static void test_find_ancestor_too_deep(void **state)
{
    (void)state;
    bp_canon c;
    assert_int_equal(bp_canon_init(&c, 8), 0);
    push_chain(&c, 100, 120, 'a'); /* window keeps 113..120 */
    node nd = {.fork = 110, .fail_at = -1};
    uint64_t anc = 0;
    bp_error err = {0};
    assert_int_equal(bp_canon_find_ancestor(&c, 120, node_lookup, &nd, &anc, &err), BP_EREORG);
    assert_non_null(strstr(err.msg, "deeper than the reorg window"));
    assert_non_null(strstr(err.msg, "(8 blocks, 113..120): blocks 113..120, the lowest it holds "
                                    "and above, all differ from the node's"));
    assert_non_null(strstr(err.msg, "Raise --reorg-window"));
    bp_canon_release(&c);
}

/* The message names what was compared as it was: one block (a window that a start seeded with
 * an output's checkpoint alone: it used to read "between block 33 and block 33"), a range of a
 * window not full yet, and a block the window does not reach. */
static void test_find_ancestor_too_deep_message(void **state)
{
    (void)state;
    static const struct {
        uint64_t first, last, start_k;
        const char *want;
    } cases[] = {
        {33, 33, 33,
         "reorg deeper than the reorg window (it holds block 33 alone, of up to 8): block 33, the "
         "lowest it holds, differs from the node's, so the common ancestor is below what can be "
         "compared; stopped rather than writing a fork, the outputs keep the old branch. Raise "
         "--reorg-window (reorg_window) to walk further back, or --confirmations to write only "
         "blocks that far below the head"},
        {30, 33, 33,
         "(it holds 4 blocks, 30..33, of up to 8): blocks 30..33, the lowest it holds and above, "
         "all differ from the node's"},
        {30, 33, 29,
         "(it holds 4 blocks, 30..33, of up to 8): block 29, where the walk starts, is not in it, "
         "so the common ancestor"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bp_canon c;
        assert_int_equal(bp_canon_init(&c, 8), 0);
        push_chain(&c, cases[i].first, cases[i].last, 'a');
        node nd = {.fork = 10, .fail_at = -1};
        uint64_t anc = 0;
        bp_error err = {0};
        assert_int_equal(bp_canon_find_ancestor(&c, cases[i].start_k, node_lookup, &nd, &anc, &err),
                         BP_EREORG);
        if (!strstr(err.msg, cases[i].want))
            fail_msg("case %zu: want ...%s...\n got: %s", i, cases[i].want, err.msg);
        assert_null(strstr(err.msg, "and block")); /* the old "between block A and block B" */
        bp_canon_release(&c);
    }
}

static void test_find_ancestor_lookup_error(void **state)
{
    (void)state;
    bp_canon c;
    assert_int_equal(bp_canon_init(&c, 8), 0);
    push_chain(&c, 1, 8, 'a');
    node nd = {.fork = 3, .fail_at = 6};
    uint64_t anc = 0;
    bp_error err = {0};
    assert_int_equal(bp_canon_find_ancestor(&c, 8, node_lookup, &nd, &anc, &err), BP_ETIMEOUT);
    assert_non_null(strstr(err.msg, "reorg walk at block 6"));
    bp_canon_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_evicts_lowest),
        cmocka_unit_test(test_extends),
        cmocka_unit_test(test_truncate_and_gap_restart),
        cmocka_unit_test(test_find_ancestor_depths),
        cmocka_unit_test(test_find_ancestor_too_deep),
        cmocka_unit_test(test_find_ancestor_too_deep_message),
        cmocka_unit_test(test_find_ancestor_lookup_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
