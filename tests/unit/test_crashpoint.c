/* test_crashpoint.c - a crash point ends the process only when armed with its name, from
 * BP_CRASHPOINT or bp_crashpoint_arm(), with BP_CRASHPOINT_EXIT. Each case is a forked child
 * (the environment is read once per process). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/crashpoint.h"

/* Runs in a child: env (NULL: unset) as BP_CRASHPOINT, arm (NULL: no call), then passes
 * the points "a.one", "b.two" and "a.one" again and exits 0. Returns the child's exit status. */
static int child(const char *env, const char *arm)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (env)
            setenv("BP_CRASHPOINT", env, 1);
        else
            unsetenv("BP_CRASHPOINT");
        if (arm)
            bp_crashpoint_arm(arm);
        bp_crashpoint("a.one");
        bp_crashpoint("b.two");
        bp_crashpoint("a.one");
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_points(void **state)
{
    (void)state;
    assert_int_equal(child(NULL, NULL), 0);
    assert_int_equal(child("", NULL), 0);
    assert_int_equal(child("a.on", NULL), 0); /* whole names only */
    assert_int_equal(child("b.two", NULL), BP_CRASHPOINT_EXIT);
    assert_int_equal(child(NULL, "a.one"), BP_CRASHPOINT_EXIT);
    assert_int_equal(child("a.one", "c.three"), 0); /* arm overrides the environment */
    assert_int_equal(child("a.one", NULL), BP_CRASHPOINT_EXIT);
    assert_int_equal(child("a.one:2", NULL), BP_CRASHPOINT_EXIT); /* its second pass */
    assert_int_equal(child("a.one:3", NULL), 0);                  /* no third */
    assert_int_equal(child("b.two:1", NULL), BP_CRASHPOINT_EXIT);
    assert_int_equal(child("a.on:1", NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_points)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
