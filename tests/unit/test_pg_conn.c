/* test_pg_conn.c - the postgres URL's parameters: ours taken out (percent-decoded), the rest
 * passed to libpq as written. No server needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "blockpipe/error.h"
#include "sink/pg_conn.h"

static void test_params_percent_decoded(void **state)
{
    (void)state;
    bp_pg_target t;
    bp_error err = {0};
    assert_int_equal(bp_pg_target_parse(&t,
                                        "u:p@db:5432/x?sch%65ma=a%2Db%5f%41&sslmode=disable&"
                                        "checkpoint=c%zz%4&wait_for_db=%31%30",
                                        &err),
                     0);
    assert_string_equal(t.schema, "a-b_A");
    assert_string_equal(t.checkpoint, "c%zz%4"); /* not escapes: kept as written */
    assert_int_equal(t.wait_for_db, 10);
    assert_string_equal(t.where, "db:5432/x");
    /* libpq's parameters follow the '?' (the first one used to get '&': part of the path) */
    assert_string_equal(t.conninfo, "postgresql://u:p@db:5432/x?sslmode=disable");
    bp_pg_target_release(&t);
    assert_int_equal(bp_pg_target_parse(&t, "db/x?a=1&schema=s&b=2", &err), 0);
    assert_string_equal(t.conninfo, "postgresql://db/x?a=1&b=2");
    bp_pg_target_release(&t);

    assert_int_equal(bp_pg_target_parse(&t, "db/x?wait_for_db=%3", &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "wait_for_db='%3'"));
    bp_pg_target_release(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_percent_decoded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
