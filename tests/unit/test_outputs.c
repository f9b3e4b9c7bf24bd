/* test_outputs.c - one event stream, several outputs at different checkpoints and on
 * different branches (what a kill between two outputs' writes leaves): each output gets
 * REVERTs of exactly the blocks it holds that left the chain, and APPLYs of exactly the
 * blocks it lacks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/budget.h"
#include "core/outputs.h"

/* Block n of branch b has hash "0x<b>..<n>". */
static void hash_of(char out[67], int branch, uint64_t n)
{
    snprintf(out, 67, "0x%02x%062" PRIx64, branch, n);
}

/* A fake output: holds blocks (number, branch) as a stack and checks that every event fits
 * it: an APPLY extends its tip (parent hash), a REVERT removes exactly its tip. */
typedef struct fake {
    bp_sink base;
    char held[64][67];
    size_t n; /* blocks 0..n-1 */
    int reverts, applies;
    const struct bp_budget *budget; /* the last write's bp_batch.budget */
} fake;

static int fake_checkpoint(bp_sink *s, const char *chain, bp_checkpoint *out, bp_error *err)
{
    fake *f = (fake *)s;
    (void)chain, (void)err;
    memset(out, 0, sizeof(*out));
    if (f->n) {
        out->set = true;
        out->number = f->n - 1;
        snprintf(out->hash, sizeof(out->hash), "%s", f->held[f->n - 1]);
    }
    return 0;
}

static int fake_recent(bp_sink *s, const char *chain, bp_checkpoint *out, size_t max, size_t *n,
                       bp_error *err)
{
    fake *f = (fake *)s;
    (void)chain, (void)err;
    *n = 0;
    for (size_t k = f->n; k-- > 0 && *n < max;) {
        out[*n].set = true;
        out[*n].number = k;
        snprintf(out[*n].hash, sizeof(out[*n].hash), "%s", f->held[k]);
        (*n)++;
    }
    return 0;
}

static enum bp_family g_family; /* of the blocks header() makes */

static int fake_write(bp_sink *s, const bp_batch *b, bp_error *err)
{
    fake *f = (fake *)s;
    f->budget = b->budget;
    for (size_t i = 0; i < b->count; i++) {
        const bp_block *blk = b->events[i].block;
        if (blk->family != g_family) /* an Arch output reverts arch_* rows, not EVM ones */
            return bp_error_set(err, BP_EINVAL, "block %" PRIu64 " of family %d, the chain's is %d",
                                blk->number, (int)blk->family, (int)g_family);
        if (b->events[i].kind == BP_EVENT_APPLY) {
            if (blk->number != f->n || (f->n && strcmp(blk->parent_hash, f->held[f->n - 1])))
                return bp_error_set(err, BP_EINVAL, "APPLY %" PRIu64 " does not extend %zu",
                                    blk->number, f->n);
            snprintf(f->held[f->n++], 67, "%s", blk->hash);
            f->applies++;
        } else {
            if (f->n == 0 || blk->number != f->n - 1 || strcmp(blk->hash, f->held[f->n - 1]) ||
                (f->n > 1 && strcmp(blk->parent_hash, f->held[f->n - 2])))
                return bp_error_set(err, BP_EINVAL, "REVERT %" PRIu64 " %s is not the tip",
                                    blk->number, blk->hash);
            f->n--;
            f->reverts++;
        }
    }
    if (b->checkpoint.number != f->n - 1 || strcmp(b->checkpoint.hash, f->held[f->n - 1]))
        return bp_error_set(err, BP_EINVAL, "checkpoint %" PRIu64 " is not the tip %zu",
                            b->checkpoint.number, f->n - 1);
    return 0;
}

static const bp_sink_ops fake_ops = {
    .scheme = "fake",
    .checkpoint = fake_checkpoint,
    .recent = fake_recent,
    .write = fake_write,
};

/* Output f holds blocks 0..top: branch 0 up to fork-1, then `branch`. */
static void hold(fake *f, uint64_t top, int branch, uint64_t fork)
{
    memset(f, 0, sizeof(*f));
    f->base.ops = &fake_ops;
    f->base.url = "fake:";
    for (uint64_t k = 0; k <= top; k++)
        hash_of(f->held[f->n++], k >= fork ? branch : 0, k);
}

static bp_block *header(int branch, uint64_t fork, uint64_t n)
{
    bp_block *b = calloc(1, sizeof(*b) + 2 * 67);
    assert_non_null(b);
    char *h = (char *)(b + 1), *p = h + 67;
    hash_of(h, n >= fork ? branch : 0, n);
    hash_of(p, n - 1 >= fork ? branch : 0, n - 1);
    b->number = n;
    b->hash = h;
    b->parent_hash = p;
    b->family = g_family;
    return b;
}

/* The stream: REVERTs of `rev_branch` from..down (highest first), then APPLYs of branch
 * `branch` (leaving 0 at fork) from apply_from to apply_to. */
static int write_stream(bp_outputs *o, int rev_branch, uint64_t rev_fork, uint64_t rev_from,
                        uint64_t rev_down, int branch, uint64_t fork, uint64_t apply_from,
                        uint64_t apply_to, bp_error *err)
{
    bp_event ev[64];
    size_t n = 0;
    for (uint64_t k = rev_from; rev_from && k >= rev_down; k--)
        ev[n++] = (bp_event){BP_EVENT_REVERT, header(rev_branch, rev_fork, k)};
    for (uint64_t k = apply_from; k <= apply_to; k++)
        ev[n++] = (bp_event){BP_EVENT_APPLY, header(branch, fork, k)};
    bp_batch b = {.chain = "c", .events = ev, .count = n};
    int rc = bp_outputs_write(o, &b, err);
    for (size_t i = 0; i < n; i++)
        free((void *)ev[i].block);
    return rc;
}

static void check_on_branch(const fake *f, uint64_t top, int branch, uint64_t fork)
{
    assert_int_equal(f->n, top + 1);
    for (uint64_t k = 0; k <= top; k++) {
        char want[67];
        hash_of(want, k >= fork ? branch : 0, k);
        assert_string_equal(f->held[k], want);
    }
}

/* A kill in the middle of a reorg's batch: A wrote it (reverted 14..11, applied branch 1 at
 * 11..12), B did not (branch 0 up to 14). A is the lowest, but B holds another block at 11,
 * so the stream starts there: A skips what it has, B first reverts its own 14..11. */
static void test_output_behind_a_reorg_heals(void **state)
{
    (void)state;
    fake a, b;
    hold(&a, 12, 1, 11);
    hold(&b, 14, 0, 99);
    bp_sink *list[2] = {&a.base, &b.base};
    bp_outputs o;
    bp_error err;
    assert_int_equal(bp_outputs_init(&o, list, 2, "c", false, &err), 0);
    /* A is the lowest at 12, but B holds another block at 11: the stream starts there */
    assert_int_equal(bp_outputs_agreed(&o, 0), 11);
    assert_int_equal(write_stream(&o, 0, 0, 0, 0, 1, 11, 11, 16, &err), 0);
    check_on_branch(&a, 16, 1, 11);
    check_on_branch(&b, 16, 1, 11);
    assert_int_equal(a.reverts, 0);
    assert_int_equal(a.applies, 4); /* 13..16 */
    assert_int_equal(b.reverts, 4); /* 14..11 of branch 0, its own */
    assert_int_equal(b.applies, 6); /* 11..16 */
    assert_int_equal(o.cps[1].number, 16);
    bp_outputs_release(&o);
}

/* The same with an Arch chain: the REVERTs made from what B holds are Arch blocks too (an
 * SQLite output given EVM ones deleted no arch_* row, then refused the new branch's APPLY). */
static void test_own_reverts_have_the_chains_family(void **state)
{
    g_family = BP_FAMILY_ARCH;
    test_output_behind_a_reorg_heals(state);
    g_family = BP_FAMILY_EVM;
}

/* The other way round: B (lowest, branch 0 up to 12) still holds orphans, A already wrote
 * the new branch 1 up to 14. The pipeline reverts B's 12..11 (from its canon, seeded from
 * B) and applies branch 1: A must skip REVERTs of blocks it does not hold and the APPLYs it
 * has. */
static void test_output_ahead_skips_reverts_it_does_not_hold(void **state)
{
    (void)state;
    fake a, b;
    hold(&a, 14, 1, 11);
    hold(&b, 12, 0, 99);
    bp_sink *list[2] = {&a.base, &b.base};
    bp_outputs o;
    bp_error err;
    assert_int_equal(bp_outputs_init(&o, list, 2, "c", false, &err), 0);
    assert_int_equal(bp_outputs_agreed(&o, 1), 11);
    assert_int_equal(write_stream(&o, 0, 99, 12, 11, 1, 11, 11, 15, &err), 0);
    check_on_branch(&a, 15, 1, 11);
    check_on_branch(&b, 15, 1, 11);
    assert_int_equal(a.reverts, 0);
    assert_int_equal(a.applies, 1);
    assert_int_equal(b.reverts, 2);
    assert_int_equal(b.applies, 5);
    bp_outputs_release(&o);
}

/* An output ahead on a branch the chain left while blockpipe was stopped (above the other
 * outputs' checkpoint) reverts its own blocks when the stream reaches the fork height. */
static void test_output_ahead_on_orphans_reverts_them(void **state)
{
    (void)state;
    fake a, b;
    hold(&a, 20, 2, 18);
    hold(&b, 10, 0, 99);
    bp_sink *list[2] = {&a.base, &b.base};
    bp_outputs o;
    bp_error err;
    assert_int_equal(bp_outputs_init(&o, list, 2, "c", false, &err), 0);
    assert_int_equal(bp_outputs_agreed(&o, 1), 11);
    assert_int_equal(write_stream(&o, 0, 0, 0, 0, 1, 19, 11, 22, &err), 0);
    check_on_branch(&a, 22, 1, 19);
    check_on_branch(&b, 22, 1, 19);
    assert_int_equal(a.reverts, 3); /* 20..18 of branch 2 */
    assert_int_equal(a.applies, 5); /* 18..22 */
    bp_outputs_release(&o);
}

/* In step: a REVERT is passed to every output holding the block. */
static void test_in_step(void **state)
{
    (void)state;
    fake a, b;
    hold(&a, 5, 0, 99);
    hold(&b, 5, 0, 99);
    bp_sink *list[2] = {&a.base, &b.base};
    bp_outputs o;
    bp_error err;
    assert_int_equal(bp_outputs_init(&o, list, 2, "c", false, &err), 0);
    assert_int_equal(bp_outputs_agreed(&o, 0), 6);
    assert_int_equal(write_stream(&o, 0, 99, 5, 4, 3, 4, 4, 7, &err), 0);
    check_on_branch(&a, 7, 3, 4);
    check_on_branch(&b, 7, 3, 4);
    assert_int_equal(a.reverts + b.reverts, 4);
    bp_outputs_release(&o);
}

/* Every write is handed the pipeline's budget (bp_batch.budget), where an output charges what
 * its buffers hold beyond its fixed part (the ClickHouse output). */
static void test_writes_get_the_budget(void **state)
{
    (void)state;
    fake a, b;
    hold(&a, 5, 0, 99);
    hold(&b, 3, 0, 99);
    bp_sink *list[2] = {&a.base, &b.base};
    bp_outputs o;
    bp_error err;
    bp_budget budget;
    bp_budget_init(&budget, (size_t)64 << 20);
    assert_int_equal(bp_outputs_init(&o, list, 2, "c", false, &err), 0);
    o.budget = &budget;
    assert_int_equal(write_stream(&o, 0, 99, 0, 0, 0, 99, 4, 7, &err), 0);
    assert_ptr_equal(a.budget, &budget);
    assert_ptr_equal(b.budget, &budget);
    bp_outputs_release(&o);
    bp_budget_release(&budget);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_behind_a_reorg_heals),
        cmocka_unit_test(test_own_reverts_have_the_chains_family),
        cmocka_unit_test(test_output_ahead_skips_reverts_it_does_not_hold),
        cmocka_unit_test(test_output_ahead_on_orphans_reverts_them),
        cmocka_unit_test(test_in_step),
        cmocka_unit_test(test_writes_get_the_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
