/* pg_watchdog.c - the PostgreSQL watchdog (sink/pg_conn.c) cuts the connection whose call
 * overran, never a descriptor number libpq closed inside the call and the kernel gave to another
 * file. cmocka tests against a server: BP_PG_TARGET ("user:pass@host:port/db"), which
 * tests/integration/test_pg_cut_session.py starts and sets (they fail without it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sink/pg_conn.h"

static PGconn *connect_with_timeout(bp_pg_target *t, const char *timeout)
{
    const char *target = getenv("BP_PG_TARGET");
    if (!target)
        fail_msg("BP_PG_TARGET is not set: tests/integration/test_pg_cut_session.py runs this");
    static const bp_sink_option defs[] = {{.name = "timeout"}};
    bp_sink_opts opts = {.defs = defs, .count = 1, .values = {timeout}};
    bp_error err = {0};
    assert_int_equal(bp_pg_target_init(t, target, &opts, &err), 0);
    PGconn *c = NULL;
    assert_int_equal(bp_pg_connect(t, &c, &err), 0);
    return c;
}

static void test_cut_spares_a_reused_number(void **state)
{
    (void)state;
    bp_pg_target t;
    PGconn *c = connect_with_timeout(&t, "1");
    int sock = PQsocket(c);
    bp_pg_wait_begin(c); /* a call starts */
    /* libpq drops the connection inside the call (it closes its socket), and another thread's
     * file gets the number */
    close(sock);
    int pair[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    if (pair[0] != sock) { /* the number is the pair's end whichever the kernel gave */
        assert_int_equal(dup2(pair[0], sock), sock);
        close(pair[0]);
    }
    /* the call overruns its second: the watchdog cuts (a guard of 60 s, not a measure) */
    for (int i = 0; i < 600 && !bp_pg_timed_out(c); i++)
        nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
    assert_int_equal(bp_pg_timed_out(c), 1);
    bp_pg_wait_end(c);
    /* the other file was not shut down */
    char ch = 0;
    assert_int_equal(send(sock, "x", 1, MSG_NOSIGNAL), 1);
    assert_int_equal(recv(pair[1], &ch, 1, 0), 1);
    assert_int_equal(ch, 'x');
    assert_int_equal(send(pair[1], "y", 1, MSG_NOSIGNAL), 1);
    assert_int_equal(recv(sock, &ch, 1, 0), 1);
    assert_int_equal(ch, 'y');
    PQfinish(c); /* closes the number: the pair's end now */
    close(pair[1]);
    bp_pg_target_release(&t);
}

/* A call that ended is not cut when its deadline would have passed; a call that overran is, and
 * the connection fails as a lost one, naming the timeout. */
static void test_cut_only_overrun(void **state)
{
    (void)state;
    bp_pg_target t;
    PGconn *c = connect_with_timeout(&t, "1");
    bp_error err = {0};
    assert_int_equal(bp_pg_exec(c, "SELECT 1", NULL, "a quick call", &err), 0);
    nanosleep(&(struct timespec){1, 500 * 1000000L}, NULL); /* past its deadline, ended */
    assert_int_equal(bp_pg_timed_out(c), 0);
    assert_int_equal(bp_pg_exec(c, "SELECT 1", NULL, "the next call", &err), 0);
    assert_int_equal(bp_pg_exec(c, "SELECT pg_sleep(30)", NULL, "a slow call", &err),
                     BP_ETRANSPORT);
    assert_int_equal(bp_pg_timed_out(c), 1);
    assert_non_null(strstr(err.msg, "a slow call: no answer within 1 s (timeout=1)"));
    PQfinish(c);
    bp_pg_target_release(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cut_spares_a_reused_number),
        cmocka_unit_test(test_cut_only_overrun),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
