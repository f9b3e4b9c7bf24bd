/* test_url.c - credentials never shown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/url.h"

static void check(const char *in, const char *want)
{
    char out[256];
    bp_url_redact(in, out, sizeof(out));
    assert_string_equal(out, want);
}

static void test_redact(void **state)
{
    (void)state;
    check("postgres://bp:s3cret@127.0.0.1:5432/chain", "postgres://bp:***@127.0.0.1:5432/chain");
    check("https://mainnet.example/v3/abc", "https://mainnet.example/v3/abc");
    check("https://TOKEN@node.example/rpc", "https://***@node.example/rpc");
    check("http://h/x?apikey=zzz&n=1&token=t", "http://h/x?apikey=***&n=1&token=***");
    check("sqlite:blockpipe.db", "sqlite:blockpipe.db");
    check("postgres://u:p@h/db?schema=x&password=p2",
          "postgres://u:***@h/db?schema=x&password=***");
    check("http://h/a@b", "http://h/a@b"); /* an @ in the path is not userinfo */
    char small[8];
    bp_url_redact("postgres://u:p@h/db", small, sizeof(small));
    assert_string_equal(small, "postgre");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_redact)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
