/* test_error.c - the error convention: messages, prefixes, and which codes are transient
 * (the one test of "worth retrying"), code by code over the whole table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "blockpipe/error.h"

static void test_transient(void **state)
{
    (void)state;
    /* Every code of the table, each with the answer error.h documents. */
    static const int codes[] = {
#define BP_X_CODE(name, value, text) name,
        BP_ERRORS(BP_X_CODE)
#undef BP_X_CODE
    };
    static const int yes[] = {BP_EPARSE,   BP_ERPC,      BP_EHTTP, BP_ETRANSPORT,
                              BP_ETIMEOUT, BP_ENOTFOUND, BP_EIO,   BP_ERATELIMIT};
    size_t found = 0;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        int expect = 0;
        for (size_t j = 0; j < sizeof(yes) / sizeof(yes[0]); j++)
            expect |= codes[i] == yes[j];
        found += (size_t)expect;
        assert_int_equal(!!bp_error_is_transient(codes[i]), expect);
    }
    assert_int_equal(found, sizeof(yes) / sizeof(yes[0]));
    assert_false(bp_error_is_transient(12345));
}

static void test_set_and_prefix(void **state)
{
    (void)state;
    bp_error err = {0};
    assert_int_equal(bp_error_set(&err, BP_EDB, "row %d", 7), BP_EDB);
    assert_int_equal(bp_error_prefix(&err, "output '%s': ", "x"), BP_EDB);
    assert_string_equal(err.msg, "output 'x': row 7");
    assert_string_equal(bp_strerror(BP_EIO), "I/O error");
    bp_error_clear(&err);
    assert_int_equal(err.code, BP_OK);
    assert_string_equal(err.msg, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transient),
        cmocka_unit_test(test_set_and_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
