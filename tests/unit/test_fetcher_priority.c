/* test_fetcher_priority.c - the fetch workers run at a lower priority than the thread that
 * started them (the coordinator and the writer must get the CPU when they have work). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "chain/fetch.h"
#include "core/fetcher.h"
#include "core/pool.h"

/* The nice value of every thread of this process but the caller's. */
static size_t thread_nices(int *out, size_t max, long self)
{
    size_t n = 0;
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        long tid = strtol(e->d_name, NULL, 10);
        if (tid <= 0 || tid == self)
            continue;
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/self/task/%ld/stat", tid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        /* fields after "(comm)": state is field 3, nice is field 19 */
        char *p = strrchr(buf, ')');
        assert_non_null(p);
        int field = 2, nice = 0;
        for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " "))
            if (++field == 19) {
                nice = atoi(tok);
                break;
            }
        out[n++] = nice;
    }
    closedir(d);
    return n;
}

static long self_tid(void)
{
    FILE *f = fopen("/proc/thread-self/stat", "r");
    assert_non_null(f);
    long tid = 0;
    assert_int_equal(fscanf(f, "%ld", &tid), 1);
    fclose(f);
    return tid;
}

static void test_workers_are_nicer(void **state)
{
    (void)state;
    bp_endpoint_spec spec = {.url = "http://127.0.0.1:9"};
    bp_pool pool;
    bp_error err;
    assert_int_equal(bp_pool_init(&pool, &spec, 1, 3, BP_JOB_MAX, &err), 0);
    bp_fetch_shared shared;
    bp_fetch_shared_init(&shared, BP_FETCH_ALL);
    volatile sig_atomic_t stop = 0;
    bp_fetcher_config fc = {.pool = &pool,
                            .shared = &shared,
                            .threads = 3,
                            .queue_cap = 8,
                            .rpc_timeout = 1,
                            .stop = &stop};
    errno = 0;
    int mine = getpriority(PRIO_PROCESS, 0);
    assert_int_equal(errno, 0);
    bp_fetcher *f;
    assert_int_equal(bp_fetcher_start(&f, &fc, &err), 0);
    int nices[16];
    size_t n = 0;
    /* the workers lower their priority as they start: wait for it (up to 30 s, a hang guard) */
    for (int tries = 0; tries < 6000; tries++) {
        n = thread_nices(nices, 16, self_tid());
        size_t lowered = 0;
        for (size_t i = 0; i < n; i++)
            lowered += nices[i] > mine;
        if (n == 3 && lowered == 3)
            break;
        struct timespec ts = {0, 5000000L};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        assert_true(nices[i] > mine || mine >= 19);
    assert_int_equal(getpriority(PRIO_PROCESS, 0), mine); /* the caller keeps its own */
    bp_fetcher_stop(f);
    bp_pool_release(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workers_are_nicer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
