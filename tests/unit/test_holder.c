/* test_holder.c - a process's name in the writer locks it holds, and telling a dead holder of
 * this host from a live one or one elsewhere (util/holder.h): the whole host name, the boot id
 * and the pid namespace must all be this process's before a pid is asked about. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/holder.h"

/* The pid of a child that has exited and been reaped. */
static long dead_pid(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return (long)pid;
}

static void holder_of(char *out, size_t cap, const bp_holder_id *id, long pid)
{
    snprintf(out, cap, "blockpipe %s boot %s pidns %llu pid %ld start 1", id->host, id->boot,
             id->pidns, pid);
}

static void test_self_is_alive(void **state)
{
    (void)state;
    char self[BP_HOLDER_MAX + 16], want[64], host[128] = "", boot[64] = "";
    bp_holder_self(self, sizeof(self));
    snprintf(want, sizeof(want), " pid %ld start ", (long)getpid());
    assert_int_equal(strncmp(self, "blockpipe ", 10), 0);
    assert_non_null(strstr(self, want));
    /* the whole host name, the boot id and the pid namespace's inode */
    assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
    assert_int_equal(strncmp(self + 10, host, strlen(host)), 0);
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    assert_non_null(f);
    assert_non_null(fgets(boot, sizeof(boot), f));
    fclose(f);
    boot[strcspn(boot, "\n")] = '\0';
    assert_non_null(strstr(self, boot));
    struct stat st;
    assert_int_equal(stat("/proc/self/ns/pid", &st), 0);
    snprintf(want, sizeof(want), " pidns %llu pid ", (unsigned long long)st.st_ino);
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
        char name[BP_HOLDER_MAX];
        bp_holder_self(name, sizeof(name));
        ssize_t w = write(fds[1], name, strlen(name) + 1);
        _exit(w > 0 ? 0 : 1);
    }
    close(fds[1]);
    char name[BP_HOLDER_MAX] = "";
    assert_true(read(fds[0], name, sizeof(name)) > 0);
    close(fds[0]);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(bp_holder_gone(name));
    /* the same pid elsewhere: another host, another boot, another pid namespace */
    bp_holder_id me, other;
    bp_holder_id_self(&me);
    char text[BP_HOLDER_MAX];
    other = me;
    snprintf(other.host, sizeof(other.host), "elsewhere");
    holder_of(text, sizeof(text), &other, (long)pid);
    assert_false(bp_holder_gone(text));
    other = me;
    snprintf(other.boot, sizeof(other.boot), "00000000-0000-0000-0000-000000000000");
    holder_of(text, sizeof(text), &other, (long)pid);
    assert_false(bp_holder_gone(text));
    other = me;
    other.pidns = me.pidns + 1;
    holder_of(text, sizeof(text), &other, (long)pid);
    assert_false(bp_holder_gone(text));
}

/* Our pid with another start time: a later process that got the pid, not the holder. */
static void test_reused_pid_is_gone(void **state)
{
    (void)state;
    char self[BP_HOLDER_MAX], other[BP_HOLDER_MAX + 16];
    bp_holder_self(self, sizeof(self));
    char *start = strstr(self, " start ");
    assert_non_null(start);
    snprintf(other, sizeof(other), "%.*s start 1", (int)(start - self), self);
    assert_true(bp_holder_gone(other));
    assert_false(bp_holder_gone("not ours at all"));
}

/* Two Kubernetes replicas whose names agree in their first 36 characters (the previous
 * format's cut): a live process of the other one, whose pid is dead here, is not gone. */
static void test_long_host_names(void **state)
{
    (void)state;
    bp_holder_id a, b;
    bp_holder_id_self(&a);
    snprintf(a.host, sizeof(a.host), "blockpipe-indexer-mainnet-statefulset-7f9c5d-0");
    b = a;
    snprintf(b.host, sizeof(b.host), "blockpipe-indexer-mainnet-statefulset-7f9c5d-1");
    assert_true(strlen(a.host) > 36);
    char text[BP_HOLDER_MAX];
    long pid = dead_pid();
    holder_of(text, sizeof(text), &b, pid);
    assert_false(bp_holder_gone_from(text, &a));
    holder_of(text, sizeof(text), &a, pid); /* the same replica: its dead process is gone */
    assert_true(bp_holder_gone_from(text, &a));
}

/* Containers sharing a host name (and a kernel) with pid namespaces of their own: the other's
 * pid says nothing here. */
static void test_other_pid_namespace(void **state)
{
    (void)state;
    bp_holder_id me, them;
    bp_holder_id_self(&me);
    assert_true(me.pidns != 0);
    them = me;
    them.pidns = me.pidns ^ 0x5a5a;
    char text[BP_HOLDER_MAX];
    holder_of(text, sizeof(text), &them, dead_pid());
    assert_false(bp_holder_gone_from(text, &me));
    /* what this side does not know never proves anything */
    bp_holder_id blind = me;
    blind.pidns = 0;
    holder_of(text, sizeof(text), &blind, dead_pid());
    assert_false(bp_holder_gone_from(text, &blind));
    blind = me;
    snprintf(blind.boot, sizeof(blind.boot), "?");
    holder_of(text, sizeof(text), &blind, dead_pid());
    assert_false(bp_holder_gone_from(text, &blind));
}

/* A holder named in the previous format ("blockpipe HOST pid N start T", the host cut to 36
 * characters) names neither boot nor namespace: never taken for gone, even with this host's
 * name and a dead pid (it is waited out, once, during an upgrade). */
static void test_previous_format(void **state)
{
    (void)state;
    bp_holder_id me;
    bp_holder_id_self(&me);
    char text[BP_HOLDER_MAX];
    snprintf(text, sizeof(text), "blockpipe %.36s pid %ld start 1 lease 2", me.host, dead_pid());
    assert_false(bp_holder_gone(text));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self_is_alive),       cmocka_unit_test(test_dead_child_is_gone),
        cmocka_unit_test(test_reused_pid_is_gone),  cmocka_unit_test(test_long_host_names),
        cmocka_unit_test(test_other_pid_namespace), cmocka_unit_test(test_previous_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
