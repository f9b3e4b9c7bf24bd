/* test_holder.c - a process's name in the writer locks it holds, and telling a dead holder of
 * this host from a live one or one elsewhere (util/holder.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/holder.h"

static void test_self_is_alive(void **state)
{
    (void)state;
    char self[128], want[64];
    bp_holder_self(self, sizeof(self));
    snprintf(want, sizeof(want), " pid %ld start ", (long)getpid());
    assert_int_equal(strncmp(self, "blockpipe ", 10), 0);
    assert_non_null(strstr(self, want));
    assert_false(bp_holder_gone(self));
    strcat(self, " lease 3"); /* what follows the name does not matter */
    assert_false(bp_holder_gone(self));
}

/* A child's name, read before it exits: gone once it is reaped. */
static void test_dead_child_is_gone(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char name[128];
        bp_holder_self(name, sizeof(name));
        ssize_t w = write(fds[1], name, strlen(name) + 1);
        _exit(w > 0 ? 0 : 1);
    }
    close(fds[1]);
    char name[128] = "";
    assert_true(read(fds[0], name, sizeof(name)) > 0);
    close(fds[0]);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_false(bp_holder_gone("blockpipe elsewhere pid 1 start 1")); /* another host */
    assert_true(bp_holder_gone(name));
}

/* Our pid with another start time: a later process that got the pid, not the holder. */
static void test_reused_pid_is_gone(void **state)
{
    (void)state;
    char self[128], other[160];
    bp_holder_self(self, sizeof(self));
    char *start = strstr(self, " start ");
    assert_non_null(start);
    snprintf(other, sizeof(other), "%.*s start 1", (int)(start - self), self);
    assert_true(bp_holder_gone(other));
    assert_false(bp_holder_gone("not ours at all"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self_is_alive),
        cmocka_unit_test(test_dead_child_is_gone),
        cmocka_unit_test(test_reused_pid_is_gone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
