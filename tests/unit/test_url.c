/* test_url.c - credentials never shown: URLs, headers and free text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

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
    check("http://h/x?apikey=zzz&n=1&token=t", "http://h/x?apikey=***&n=***&token=***");
    check("sqlite:blockpipe.db", "sqlite:blockpipe.db");
    check("postgres://u:p@h/db?schema=x&password=p2",
          "postgres://u:***@h/db?schema=x&password=***");
    check("http://h/a@b", "http://h/a@b");              /* an @ in the path is not userinfo */
    check("http://u:p@ss@h/rpc", "http://u:***@h/rpc"); /* the last @ ends the userinfo */
    char small[8];
    bp_url_redact("postgres://u:p@h/db", small, sizeof(small));
    assert_string_equal(small, "postgre");
}

/* The case: the key in the path was printed in full. */
static void test_path_keys(void **state)
{
    (void)state;
    check("https://host/v2/SECRETKEY123?apikey=abc", "https://host/v2/***?apikey=***");
    check("https://mainnet.infura.io/v3/9aa3d95b3bc440fa88ea12eaa4456161",
          "https://mainnet.infura.io/v3/***");
    check("https://eth-mainnet.g.alchemy.com/v2/Zx8_-kq1V0yHq3Zg7sLqX2m4ZP8e9s1r",
          "https://eth-mainnet.g.alchemy.com/v2/***");
    check("https://rpc.ankr.com/eth/"
          "5c1f9f4e3b0a4f6e8d2c7b9a1e0f3d5c7b9a1e0f3d5c7b9a1e0f3d5c7b9a1e0f",
          "https://rpc.ankr.com/eth/***");
    check("https://red-cool-sky.quiknode.pro/0123456789abcdef0123456789abcdef01234567/",
          "https://red-cool-sky.quiknode.pro/***/");
    check("wss://node.example:8546/ws/abcdefabcdefabcdefabcdefabcdefabcd",
          "wss://node.example:8546/ws/***");
    /* words and short versions are kept: they say which endpoint it is */
    check("https://polygon-mainnet.example/ext/bc/C/rpc",
          "https://polygon-mainnet.example/ext/bc/C/rpc");
    check("http://127.0.0.1:8545/eth-mainnet/v2", "http://127.0.0.1:8545/eth-mainnet/v2");
    check("http://h/rpc#frag", "http://h/rpc#***");
    check("http://h/rpc?KEYONLY", "http://h/rpc?***");
    assert_true(bp_url_key_like("SECRETKEY123", 12));
    assert_false(bp_url_key_like("mainnet123", 7));
    assert_false(bp_url_key_like("polygon-zkevm-mainnet", 21));
    assert_true(bp_url_key_like("abcdefabcdefabcdefabcdefabcdefab", 32));
    assert_false(bp_url_key_like("abc/def123456", 13));
    /* the audit's shapes: letters of both cases, digits alone, a path parameter */
    check("http://h/v3/abcdefghijklmnopqrstuvwxyzABCD", "http://h/v3/***");
    check("http://h/1234567890123456789012", "http://h/***");
    check("http://h/;apikey=Secret123x", "http://h/***");
    check("http://h/ethereum-mainnet-archive-node/1", "http://h/ethereum-mainnet-archive-node/1");
    check("http://h/EthereumMainnet", "http://h/EthereumMainnet"); /* a CamelCase name, < 20 */
    check("http://h/chain/8453", "http://h/chain/8453");           /* a chain id */
}

/* An output's URL: its password and secret-named settings, whatever the library calls them,
 * shown masked and registered for free text; its database and other settings kept. */
static void test_output_urls(void **state)
{
    (void)state;
    check("postgres://bp@h/db?sslpassword=PgKeyPass99&sslmode=require",
          "postgres://***@h/db?sslpassword=***&sslmode=require"); /* a bare userinfo: masked */
    check("kafka://b:9092/t?ssl.key.password=Hunter2Secret&sasl.password=Saslpw77&acks=all",
          "kafka://b:9092/t?ssl.key.password=***&sasl.password=***&acks=all");
    check("kafka://b/t?sasl.oauthbearer.client.secret=CS123456",
          "kafka://b/t?sasl.oauthbearer.client.secret=***");
    bp_secret_clear();
    bp_secret_add_dsn("postgresql://bp:secretpw@[::1/blockpipe2024?sslpassword=PgKeyPass99&"
                      "application_name=indexer");
    bp_secret_add_dsn("kafka://b/t?ssl.key.password=Hunter2Secret&linger.ms=100000");
    char text[512];
    snprintf(text, sizeof(text),
             "invalid URI \"postgresql://bp:secretpw@[::1/blockpipe2024\" PgKeyPass99 "
             "Hunter2Secret indexer 100000");
    bp_secret_scrub(text);
    assert_string_equal(text, "invalid URI \"postgresql://bp:***@[::1/blockpipe2024\" *** *** "
                              "indexer 100000");
    bp_secret_clear();
    assert_true(bp_secret_name("sasl.pasword", 12)); /* mistyped, still a password */
    assert_true(bp_secret_name("x-api-key", 9));
    assert_false(bp_secret_name("sslmode", 7));
    assert_false(bp_secret_name("linger.ms", 9));
}

static void check_header(const char *in, const char *want)
{
    char out[128];
    bp_header_redact(in, out, sizeof(out));
    assert_string_equal(out, want);
}

static void test_headers(void **state)
{
    (void)state;
    check_header("Authorization: Bearer HDRSECRET99", "Authorization: ***");
    check_header("x-api-key:k", "x-api-key: ***");
    check_header("X-Empty:", "X-Empty:");
    check_header("garbage", "***");
}

static void test_scrub(void **state)
{
    (void)state;
    bp_secret_clear();
    bp_secret_add_url("https://user:PASSW0RD9@host/v2/SECRETKEY123?apikey=QUERYKEY77&n=1&net="
                      "mainnet");
    bp_secret_add_header("Authorization: Bearer HDRSECRET99");
    bp_secret_add("short");
    char text[512];
    snprintf(text, sizeof(text),
             "POST https://host/v2/SECRETKEY123: HTTP 401: invalid key SECRETKEY123, password "
             "PASSW0RD9, QUERYKEY77 / HDRSECRET99 (Bearer HDRSECRET99) on mainnet, n=1, short");
    bp_secret_scrub(text);
    assert_string_equal(text, "POST https://host/v2/***: HTTP 401: invalid key ***, password "
                              "***, *** / *** (***) on mainnet, n=1, short");
    bp_secret_clear();
    strcpy(text, "SECRETKEY123");
    bp_secret_scrub(text);
    assert_string_equal(text, "SECRETKEY123");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_redact),
                                       cmocka_unit_test(test_path_keys),
                                       cmocka_unit_test(test_headers), cmocka_unit_test(test_scrub),
                                       cmocka_unit_test(test_output_urls)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
