/* test_sink_files.c - the etl-csv and jsonl outputs: exact ethereum-etl lines (hand-built
 * blocks and the conformance answers), lazy headers, reverts, checkpoint.json and
 * truncate-on-reopen, JSON lines with exact big numbers. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <yajl/yajl_tree.h>

#include "chain/decode.h"
#include "sink/filesink.h"
#include "sink/format.h"
#include "sink_fixture.h"

extern const bp_sink_ops bp_sink_etlcsv_ops;
extern const bp_sink_ops bp_sink_jsonl_ops;

#define ETL BP_CONFORMANCE_DIR "/ethereum-etl"

typedef struct fixture {
    char dir[64];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/bp_files_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Whole file as a NUL-terminated string (caller frees); NULL when absent. */
static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(fp);
    fclose(m);
    return out;
}

static char *slurp_in(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return slurp(path);
}

static void assert_file(const char *dir, const char *name, const char *expected)
{
    char *got = slurp_in(dir, name);
    if (!got)
        fail_msg("%s/%s: missing", dir, name);
    if (strcmp(got, expected) != 0)
        fail_msg("%s differs:\n--- got\n%s--- expected\n%s", name, got, expected);
    free(got);
}

static long file_size(const char *dir, const char *name)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void append_junk(const char *dir, const char *name, const char *junk)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "ab");
    assert_non_null(fp);
    fputs(junk, fp);
    fclose(fp);
}

static bp_sink *open_sink(const bp_sink_ops *ops, const char *dir)
{
    bp_sink *s = NULL;
    bp_error err = {0};
    if (ops->open(&s, dir, NULL, &err) != 0)
        fail_msg("open %s: %s", dir, err.msg);
    s->ops = ops;
    return s;
}

static void write_batch(bp_sink *s, const char *chain, const bp_event *ev, size_t n,
                        bp_checkpoint cp)
{
    bp_batch batch = {.chain = chain, .events = ev, .count = n, .checkpoint = cp};
    bp_error err = {0};
    if (s->ops->write(s, &batch, &err) != 0)
        fail_msg("write: %s", err.msg);
}

static void apply_one(bp_sink *s, const char *chain, bp_block *b)
{
    bp_event ev = {BP_EVENT_APPLY, b};
    bp_checkpoint cp = {.set = true, .number = b->number};
    snprintf(cp.hash, sizeof(cp.hash), "%s", b->hash);
    write_batch(s, chain, &ev, 1, cp);
}

/* ---- etl-csv: hand-built block ---------------------------------------------------------- */

static void test_csv_exact_lines(void **state)
{
    fixture *f = *state;
    bp_sink *s = open_sink(&bp_sink_etlcsv_ops, f->dir);
    bp_block *b = fx_block(1, 0, true, true);
    apply_one(s, "main", b);
    bp_block_free(b);
    bp_sink_close(s);
    char want[8192];
    snprintf(want, sizeof(want),
             "number,hash,parent_hash,nonce,sha3_uncles,logs_bloom,transactions_root,"
             "state_root,receipts_root,miner,difficulty,total_difficulty,size,extra_data,"
             "gas_limit,gas_used,timestamp,transaction_count,base_fee_per_gas,"
             "withdrawals_root,withdrawals\n"
             "1,%s,%s,0x0000000000000042,%s,0x00ff,%s,%s,%s,%s,7298514125186,"
             "58750003716598352816469,1113,0xd783,30000000,143706,1683030000,4,80869370967,%s,"
             "\"{\"\"index\"\":2210752,\"\"validator_index\"\":540230,\"\"address\"\":"
             "\"\"%s\"\",\"\"amount\"\":45762059},{\"\"index\"\":2210753,"
             "\"\"validator_index\"\":540231,\"\"address\"\":\"\"%s\"\",\"\"amount\"\":45762058}"
             "\"\n",
             H(0xb0, 1), H(0xb0, 0), H(0x5a, 0), H(0x70, 1), H(0x71, 1), H(0x72, 1), A(0xaa, 1),
             H(0x74, 1), A(0xb9, 7), A(0xb9, 7));
    assert_file(f->dir, "blocks.csv", want);
    const char *bh = H(0xb0, 1);
    snprintf(want, sizeof(want),
             "hash,nonce,block_hash,block_number,transaction_index,from_address,to_address,"
             "value,gas,gas_price,input,block_timestamp,max_fee_per_gas,"
             "max_priority_fee_per_gas,transaction_type\n"
             "%s,18446744073709551615,%s,1,0,%s,%s,55340232221128654853,21000,91022338812,0x,"
             "1683030000,91022338812,100000000,2\n"
             "%s,1,%s,1,1,%s,,0,21000,50000000000,0x6060604052,1683030000,,,0\n"
             "%s,2,%s,1,2,%s,%s,0,21000,50000000000,0x,1683030000,,,\n"
             "%s,3,%s,1,3,%s,%s,0,21000,50000000000,0x,1683030000,3000000000,1000000000,3\n",
             H(0xe0, 1), bh, A(0xf0, 0), A(0x70, 0), H(0xe1, 1), bh, A(0xf0, 1), H(0xe2, 1), bh,
             A(0xf0, 2), A(0x70, 2), H(0xe3, 1), bh, A(0xf0, 3), A(0x70, 3));
    assert_file(f->dir, "transactions.csv", want);
    snprintf(want, sizeof(want),
             "transaction_hash,transaction_index,block_hash,block_number,cumulative_gas_used,"
             "gas_used,contract_address,root,status,effective_gas_price,l1_fee,l1_gas_used,"
             "l1_gas_price,l1_fee_scalar\n"
             "%s,0,%s,1,21000,21000,,,1,91022338812,,,,\n"
             "%s,1,%s,1,42000,21000,%s,,0,50000000000,,,,\n"
             "%s,2,%s,1,63000,21000,,%s,,50000000000,,,,\n"
             "%s,3,%s,1,84000,21000,,,1,50000000000,,,,\n",
             H(0xe0, 1), bh, H(0xe1, 1), bh, A(0xcc, 1), H(0xe2, 1), bh, H(0x2f, 1), H(0xe3, 1),
             bh);
    assert_file(f->dir, "receipts.csv", want);
    snprintf(want, sizeof(want),
             "log_index,transaction_hash,transaction_index,block_hash,block_number,address,"
             "data,topics\n"
             "0,%s,0,%s,1,%s,%s,\n"
             "1,%s,0,%s,1,%s,0x,%s\n"
             "2,%s,2,%s,1,%s,%s,\"%s,%s\"\n"
             "3,%s,2,%s,1,%s,0x,\"%s,%s,%s\"\n"
             "4,%s,2,%s,1,%s,%s,\"%s,%s,%s,%s\"\n",
             H(0xe0, 1), bh, A(0xf4, 0), H(0xda, 0), H(0xe0, 1), bh, A(0xf4, 1), H(0x10, 1),
             H(0xe2, 1), bh, A(0xf4, 2), H(0xda, 2), H(0x10, 2), H(0x11, 2), H(0xe2, 1), bh,
             A(0xf4, 3), H(0x10, 3), H(0x11, 3), H(0x12, 3), H(0xe2, 1), bh, A(0xf4, 4), H(0xda, 4),
             H(0x10, 4), H(0x11, 4), H(0x12, 4), H(0x13, 4));
    assert_file(f->dir, "logs.csv", want);
    assert_file(f->dir, "reverts.csv", "");
}

static void test_csv_lazy_header_and_reverts(void **state)
{
    fixture *f = *state;
    bp_sink *s = open_sink(&bp_sink_etlcsv_ops, f->dir);
    bp_block *b1 = fx_block(1, 0, false, true); /* no txs */
    apply_one(s, "main", b1);
    assert_int_equal(file_size(f->dir, "transactions.csv"), 0);
    assert_int_equal(file_size(f->dir, "receipts.csv"), 0);
    assert_int_equal(file_size(f->dir, "logs.csv"), 0);
    assert_int_equal(file_size(f->dir, "reverts.csv"), 0);
    bp_block *b2 = fx_block(2, 0, true, false); /* txs, no receipts */
    bp_block *b3 = fx_block(3, 0, true, false);
    apply_one(s, "main", b2);
    apply_one(s, "main", b3);
    char *txs = slurp_in(f->dir, "transactions.csv");
    assert_int_equal(strncmp(txs, "hash,nonce,", 11), 0);
    assert_null(strstr(txs + 1, "hash,nonce,")); /* one header */
    free(txs);
    assert_int_equal(file_size(f->dir, "receipts.csv"), 0);
    /* Reorg: 3 and 2 leave, 2' arrives. */
    bp_event ev[] = {{BP_EVENT_REVERT, b3}, {BP_EVENT_REVERT, b2}};
    write_batch(s, "main", ev, 2, fx_cp(1, 0));
    char want[512];
    snprintf(want, sizeof(want), "block_number,block_hash,parent_hash\n3,%s,%s\n2,%s,%s\n",
             H(0xb0, 3), H(0xb0, 2), H(0xb0, 2), H(0xb0, 1));
    assert_file(f->dir, "reverts.csv", want);
    bp_checkpoint cp;
    bp_error err = {0};
    assert_int_equal(s->ops->checkpoint(s, "main", &cp, &err), 0);
    assert_true(cp.set);
    assert_int_equal(cp.number, 1);
    bp_block_free(b1);
    bp_block_free(b2);
    bp_block_free(b3);
    bp_sink_close(s);
}

/* The blocks kept for the reorg window survive a reopen; a REVERT cuts them back. */
static void test_recent_kept_across_reopen(void **state)
{
    fixture *f = *state;
    bp_sink *s = open_sink(&bp_sink_jsonl_ops, f->dir);
    bp_block *b[4];
    for (int i = 0; i < 4; i++) {
        b[i] = fx_block((uint64_t)i + 1, 0, false, false);
        apply_one(s, "main", b[i]);
    }
    bp_event ev = {BP_EVENT_REVERT, b[3]};
    write_batch(s, "main", &ev, 1, fx_cp(3, 0));
    bp_sink_close(s);
    s = open_sink(&bp_sink_jsonl_ops, f->dir);
    bp_checkpoint got[8];
    size_t n = 0;
    bp_error err = {0};
    assert_int_equal(s->ops->recent(s, "main", got, 8, &n, &err), 0);
    assert_int_equal(n, 3); /* 3, 2, 1: block 4 was reverted */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(got[i].number, 3 - i);
        assert_string_equal(got[i].hash, b[2 - i]->hash);
    }
    assert_int_equal(s->ops->recent(s, "other", got, 8, &n, &err), 0);
    assert_int_equal(n, 0);
    for (int i = 0; i < 4; i++)
        bp_block_free(b[i]);
    bp_sink_close(s);
}

/* One writer per directory: a second handle on it reads nothing and is refused its claim,
 * naming the holder, until the first closes; then it takes the lock and reads the files. */
static void test_directory_lock(void **state)
{
    fixture *f = *state;
    bp_sink *a = open_sink(&bp_sink_jsonl_ops, f->dir);
    bp_block *b = fx_block(1, 0, false, false);
    apply_one(a, "main", b);
    bp_sink *w = open_sink(&bp_sink_jsonl_ops, f->dir); /* opens, waiting for the lock */
    char holder[256] = "", self[64];
    bp_error err = {0};
    assert_int_equal(w->ops->claim(w, "main", holder, sizeof(holder), &err), BP_EBUSY);
    snprintf(self, sizeof(self), "pid %ld start", (long)getpid());
    assert_non_null(strstr(holder, self));
    assert_non_null(strstr(err.msg, "blockpipe.lock"));
    bp_checkpoint cp;
    assert_int_equal(w->ops->checkpoint(w, "main", &cp, &err), BP_EBUSY);
    assert_int_equal(a->ops->claim(a, "main", holder, sizeof(holder), &err), 0); /* ours */
    bp_sink_close(a);
    assert_int_equal(w->ops->claim(w, "main", holder, sizeof(holder), &err), 0);
    assert_int_equal(w->ops->checkpoint(w, "main", &cp, &err), 0);
    assert_true(cp.set);
    assert_int_equal(cp.number, 1);
    bp_block_free(b);
    bp_sink_close(w);
}

/* Whether DIR/blockpipe.lock is free now (a flock of our own, given back at once). */
static bool lock_free(const char *dir)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/blockpipe.lock", dir);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    bool free_now = flock(fd, LOCK_EX | LOCK_NB) == 0;
    close(fd);
    return free_now;
}

/* The lock is held while a chain claims the directory, not until close: a chain that waits
 * for another of its locks must not keep it (docs/ARCHITECTURE.md, "Files"). */
static void test_directory_lock_follows_claims(void **state)
{
    fixture *f = *state;
    bp_sink *a = open_sink(&bp_sink_jsonl_ops, f->dir);
    assert_true(lock_free(f->dir)); /* open read the files and let the lock go */
    char holder[256] = "";
    bp_error err = {0};
    assert_int_equal(a->ops->claim(a, "main", holder, sizeof(holder), &err), 0);
    assert_int_equal(a->ops->claim(a, "side", holder, sizeof(holder), &err), 0);
    assert_false(lock_free(f->dir));
    bp_block *b = fx_block(1, 0, false, false);
    apply_one(a, "main", b);
    a->ops->unclaim(a, "main");
    assert_false(lock_free(f->dir)); /* "side" still claims it */
    bp_sink *w = open_sink(&bp_sink_jsonl_ops, f->dir);
    assert_int_equal(w->ops->claim(w, "main", holder, sizeof(holder), &err), BP_EBUSY);
    a->ops->unclaim(a, "side");
    a->ops->unclaim(a, "side"); /* not claimed: nothing */
    assert_true(lock_free(f->dir));
    assert_int_equal(w->ops->claim(w, "main", holder, sizeof(holder), &err), 0);
    bp_checkpoint cp;
    assert_int_equal(w->ops->checkpoint(w, "main", &cp, &err), 0);
    assert_int_equal(cp.number, 1);
    assert_int_equal(a->ops->claim(a, "main", holder, sizeof(holder), &err), BP_EBUSY);
    bp_block *c = fx_block(2, 0, false, false);
    apply_one(w, "main", c); /* w writes on */
    w->ops->unclaim(w, "main");
    /* a takes it again and reads what w wrote meanwhile */
    assert_int_equal(a->ops->claim(a, "main", holder, sizeof(holder), &err), 0);
    assert_int_equal(a->ops->checkpoint(a, "main", &cp, &err), 0);
    assert_int_equal(cp.number, 2);
    bp_block_free(c);
    c = fx_block(3, 0, false, false);
    apply_one(a, "main", c);
    char *blocks = slurp_in(f->dir, "blocks.jsonl");
    assert_non_null(blocks);
    int lines = 0;
    for (const char *p = blocks; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 3); /* 1 (a), 2 (w), 3 (a) */
    free(blocks);
    bp_block_free(b);
    bp_block_free(c);
    bp_sink_close(w);
    bp_sink_close(a);
    assert_true(lock_free(f->dir));
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* A claim whose reading of the files fails (here a file shorter than checkpoint.json records)
 * after an open that found the directory busy: each retry (the pipeline claims again and
 * again while it waits) must leave no descriptor open and the lock free. */
static void test_failed_load_leaks_nothing(void **state)
{
    fixture *f = *state;
    bp_sink *a = open_sink(&bp_sink_jsonl_ops, f->dir);
    bp_block *b = fx_block(1, 0, true, true);
    apply_one(a, "main", b);
    bp_block_free(b);
    bp_sink *w = open_sink(&bp_sink_jsonl_ops, f->dir); /* busy: nothing read */
    bp_sink_close(a);
    /* the last file's record made longer than the file: the first two load, the last fails */
    char *cp = slurp_in(f->dir, "checkpoint.json"), path[256];
    assert_non_null(cp);
    char *at = strstr(cp, "\"logs.jsonl\":");
    assert_non_null(at);
    snprintf(path, sizeof(path), "%s/checkpoint.json", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "%.*s\"logs.jsonl\":99999999}}\n", (int)(at - cp), cp);
    fclose(fp);
    int before = count_fds();
    char holder[256] = "";
    bp_error err = {0};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(w->ops->claim(w, "main", holder, sizeof(holder), &err), BP_EIO);
        assert_non_null(strstr(err.msg, "data was lost"));
        bp_checkpoint c;
        assert_int_equal(w->ops->checkpoint(w, "main", &c, &err), BP_EIO);
        assert_int_equal(count_fds(), before);
        assert_true(lock_free(f->dir));
    }
    /* put right, the claim reads it all */
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(cp, fp);
    fclose(fp);
    free(cp);
    assert_int_equal(w->ops->claim(w, "main", holder, sizeof(holder), &err), 0);
    assert_int_equal(count_fds(), before + 7); /* its files: 3, and 4 for Arch chains */
    w->ops->unclaim(w, "main");
    assert_int_equal(count_fds(), before);
    bp_sink_close(w);
}

/* ---- checkpoint.json and recovery ------------------------------------------------------- */

static void test_truncate_on_reopen(void **state)
{
    fixture *f = *state;
    bp_sink *s = open_sink(&bp_sink_etlcsv_ops, f->dir);
    bp_block *b = fx_block(1, 0, true, true);
    apply_one(s, "main", b);
    bp_block_free(b);
    bp_sink_close(s);
    char *blocks = slurp_in(f->dir, "blocks.csv"), *logs = slurp_in(f->dir, "logs.csv");
    long reverts = file_size(f->dir, "reverts.csv");
    /* A crash in the middle of the next batch: rows after the recorded sizes. */
    append_junk(f->dir, "blocks.csv", "2,0xtorn");
    append_junk(f->dir, "logs.csv", "9,0xdead,0,0x");
    append_junk(f->dir, "reverts.csv", "block_number,block_hash,parent_hash\n7,0x");
    s = open_sink(&bp_sink_etlcsv_ops, f->dir);
    assert_file(f->dir, "blocks.csv", blocks);
    assert_file(f->dir, "logs.csv", logs);
    assert_int_equal(file_size(f->dir, "reverts.csv"), reverts);
    bp_checkpoint cp;
    bp_error err = {0};
    assert_int_equal(s->ops->checkpoint(s, "main", &cp, &err), 0);
    assert_true(cp.set);
    assert_int_equal(cp.number, 1);
    assert_string_equal(cp.hash, H(0xb0, 1));
    /* Appending goes on from the clean end; the header of reverts.csv comes back. */
    b = fx_block(1, 0, false, false);
    bp_event ev = {BP_EVENT_REVERT, b};
    write_batch(s, "main", &ev, 1, (bp_checkpoint){0});
    bp_block_free(b);
    char want[256];
    snprintf(want, sizeof(want), "block_number,block_hash,parent_hash\n1,%s,%s\n", H(0xb0, 1),
             H(0xb0, 0));
    assert_file(f->dir, "reverts.csv", want);
    assert_int_equal(s->ops->checkpoint(s, "main", &cp, &err), 0);
    assert_false(cp.set);
    bp_sink_close(s);
    free(blocks);
    free(logs);
}

static void test_checkpoint_json_chains(void **state)
{
    fixture *f = *state;
    bp_sink *s = open_sink(&bp_sink_jsonl_ops, f->dir);
    bp_block *a = fx_block(5, 0, false, true), *b = fx_block(7, 1, false, true);
    apply_one(s, "alpha", a);
    apply_one(s, "beta \"quoted\"", b);
    bp_block_free(a);
    bp_block_free(b);
    bp_sink_close(s);
    char *text = slurp_in(f->dir, "checkpoint.json");
    char msg[128];
    yajl_val root = yajl_tree_parse(text, msg, sizeof(msg));
    assert_non_null(root);
    const char *pa[] = {"chains", "alpha", "number", NULL};
    const char *ps[] = {"sizes", "blocks.jsonl", NULL};
    assert_string_equal(YAJL_GET_NUMBER(yajl_tree_get(root, pa, yajl_t_number)), "5");
    long long sz = YAJL_GET_INTEGER(yajl_tree_get(root, ps, yajl_t_number));
    assert_int_equal(sz, file_size(f->dir, "blocks.jsonl"));
    yajl_tree_free(root);
    free(text);
    s = open_sink(&bp_sink_jsonl_ops, f->dir);
    bp_checkpoint cp;
    bp_error err = {0};
    assert_int_equal(s->ops->checkpoint(s, "beta \"quoted\"", &cp, &err), 0);
    assert_true(cp.set);
    assert_int_equal(cp.number, 7);
    assert_string_equal(cp.hash, H(0xb1, 7));
    assert_int_equal(s->ops->checkpoint(s, "alpha", &cp, &err), 0);
    assert_int_equal(cp.number, 5);
    bp_sink_close(s);
}

/* etl-csv:DIR/{chain}: each chain's rows and checkpoint in a directory of its own, found
 * again on reopening; a name that is not a file name cannot stand for {chain}. */
static void test_etlcsv_dir_per_chain(void **state)
{
    fixture *f = *state;
    char pattern[128], da[128], db[128];
    snprintf(pattern, sizeof(pattern), "%s/{chain}", f->dir);
    snprintf(da, sizeof(da), "%s/alpha", f->dir);
    snprintf(db, sizeof(db), "%s/beta", f->dir);
    bp_sink *s = open_sink(&bp_sink_etlcsv_ops, pattern);
    bp_block *a = fx_block(5, 0, false, true), *b = fx_block(9, 1, false, true);
    apply_one(s, "alpha", a);
    apply_one(s, "beta", b);
    bp_error err = {0};
    bp_checkpoint cp;
    assert_int_equal(s->ops->checkpoint(s, "..", &cp, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "'..'"));
    bp_sink_close(s);
    char *rows = slurp_in(da, "blocks.csv"), *other = slurp_in(db, "blocks.csv");
    assert_non_null(strstr(rows, a->hash));
    assert_null(strstr(rows, b->hash));
    assert_non_null(strstr(other, b->hash));
    assert_null(strstr(other, a->hash));
    free(rows);
    free(other);
    s = open_sink(&bp_sink_etlcsv_ops, pattern);
    assert_int_equal(s->ops->checkpoint(s, "beta", &cp, &err), 0);
    assert_true(cp.set);
    assert_int_equal(cp.number, 9);
    assert_int_equal(s->ops->checkpoint(s, "gamma", &cp, &err), 0);
    assert_false(cp.set);
    bp_sink_close(s);
    s = open_sink(&bp_sink_etlcsv_ops, da); /* a chain's directory is a plain etl-csv one */
    assert_int_equal(s->ops->checkpoint(s, "alpha", &cp, &err), 0);
    assert_int_equal(cp.number, 5);
    bp_sink_close(s);
    bp_block_free(a);
    bp_block_free(b);
}

/* ethereum-etl's files have no chain column: a directory holds one chain, even reopened. */
static void test_etlcsv_one_chain(void **state)
{
    fixture *f = *state;
    bp_sink *s = open_sink(&bp_sink_etlcsv_ops, f->dir);
    bp_block *a = fx_block(5, 0, false, true), *b = fx_block(6, 1, false, true);
    apply_one(s, "alpha", a);
    bp_sink_close(s);
    s = open_sink(&bp_sink_etlcsv_ops, f->dir);
    long before = file_size(f->dir, "blocks.csv");
    bp_event ev = {BP_EVENT_APPLY, b};
    bp_batch batch = {.chain = "beta", .events = &ev, .count = 1, .checkpoint = {.set = true}};
    bp_error err = {0};
    assert_int_equal(s->ops->write(s, &batch, &err), BP_EINVAL);
    assert_non_null(strstr(err.msg, "holds chain 'alpha'"));
    assert_non_null(strstr(err.msg, "chain 'beta'"));
    assert_int_equal(file_size(f->dir, "blocks.csv"), before);
    apply_one(s, "alpha", b); /* its own chain goes on */
    assert_true(file_size(f->dir, "blocks.csv") > before);
    bp_block_free(a);
    bp_block_free(b);
    bp_sink_close(s);
}

static void test_refuses_foreign_or_lost_data(void **state)
{
    fixture *f = *state;
    bp_sink *s = NULL;
    bp_error err = {0};
    append_junk(f->dir, "blocks.csv", "someone else's data\n");
    assert_int_equal(bp_sink_etlcsv_ops.open(&s, f->dir, NULL, &err), BP_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err.msg, "blocks.csv"));
    /* Ours, but a file is shorter than its record. */
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/sub/dir", f->dir); /* created with its parents */
    s = open_sink(&bp_sink_etlcsv_ops, sub);
    bp_block *b = fx_block(1, 0, false, false);
    apply_one(s, "main", b);
    bp_block_free(b);
    bp_sink_close(s);
    char path[256];
    snprintf(path, sizeof(path), "%s/blocks.csv", sub);
    assert_int_equal(truncate(path, 10), 0);
    s = NULL;
    assert_int_equal(bp_sink_etlcsv_ops.open(&s, sub, NULL, &err), BP_EIO);
    assert_non_null(strstr(err.msg, "data was lost"));
    /* A damaged checkpoint.json. */
    snprintf(path, sizeof(path), "%s/checkpoint.json", sub);
    FILE *fp = fopen(path, "w");
    fputs("{\"chains\":", fp);
    fclose(fp);
    assert_int_equal(bp_sink_etlcsv_ops.open(&s, sub, NULL, &err), BP_EPARSE);
    assert_non_null(strstr(err.msg, "checkpoint.json"));
}

/* ---- batches larger than a buffer (filesink.h: BP_FILESINK_SPILL) ----------------------- */

#define BIG_BATCH 500 /* fixture blocks: > 2 x BP_FILESINK_SPILL of transactions.csv */

static bp_block **big_blocks(void)
{
    bp_block **b = calloc(BIG_BATCH, sizeof(*b));
    assert_non_null(b);
    for (size_t i = 0; i < BIG_BATCH; i++)
        assert_non_null(b[i] = fx_block(i + 1, 0, true, true));
    return b;
}

static void free_blocks(bp_block **b)
{
    for (size_t i = 0; i < BIG_BATCH; i++)
        bp_block_free(b[i]);
    free(b);
}

static int write_big(bp_sink *s, bp_block **b, bp_error *err)
{
    bp_event ev[BIG_BATCH];
    for (size_t i = 0; i < BIG_BATCH; i++)
        ev[i] = (bp_event){BP_EVENT_APPLY, b[i]};
    bp_batch batch = {.chain = "main", .events = ev, .count = BIG_BATCH};
    batch.checkpoint = fx_cp(BIG_BATCH, 0);
    return s->ops->write(s, &batch, err);
}

/* Rows appended early in a big batch land exactly where the same rows one batch per block
 * land, and checkpoint.json covers all of them. */
static void test_big_batch_same_bytes(void **state)
{
    fixture *f = *state;
    static const char *const names[] = {"blocks.csv", "transactions.csv", "receipts.csv",
                                        "logs.csv", "checkpoint.json"};
    char one[128], big[128];
    snprintf(one, sizeof(one), "%s/one", f->dir);
    snprintf(big, sizeof(big), "%s/big", f->dir);
    bp_block **b = big_blocks();
    bp_sink *s = open_sink(&bp_sink_etlcsv_ops, one);
    for (size_t i = 0; i < BIG_BATCH; i++)
        apply_one(s, "main", b[i]);
    bp_sink_close(s);
    s = open_sink(&bp_sink_etlcsv_ops, big);
    bp_error err = {0};
    assert_int_equal(write_big(s, b, &err), 0);
    bp_sink_close(s);
    free_blocks(b);
    assert_true(file_size(big, "transactions.csv") > 2 * (long)BP_FILESINK_SPILL);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char *want = slurp_in(one, names[i]);
        assert_non_null(want);
        assert_file(big, names[i], want);
        free(want);
    }
    /* Reopening finds nothing past the recorded sizes to cut. */
    long size = file_size(big, "transactions.csv");
    s = open_sink(&bp_sink_etlcsv_ops, big);
    bp_sink_close(s);
    assert_int_equal(file_size(big, "transactions.csv"), size);
}

/* An early append that fails fails the batch at commit, and every file goes back to what
 * checkpoint.json covers (the rows other files had already appended included). */
static void test_big_batch_append_fails(void **state)
{
    fixture *f = *state;
    bp_sink *s = open_sink(&bp_sink_etlcsv_ops, f->dir);
    bp_block *first = fx_block(BIG_BATCH + 1, 0, true, true);
    apply_one(s, "main", first);
    long blocks = file_size(f->dir, "blocks.csv"), logs = file_size(f->dir, "logs.csv");
    bp_filesink *fs = (bp_filesink *)s;
    size_t txs = 0;
    while (strcmp(fs->files[txs].name, "transactions.csv") != 0)
        txs++;
    int fd = fs->files[txs].fd;
    fs->files[txs].fd = open("/dev/null", O_RDONLY); /* write() fails with EBADF */
    assert_true(fs->files[txs].fd >= 0);
    bp_block **b = big_blocks();
    bp_error err = {0};
    assert_int_equal(write_big(s, b, &err), BP_EIO);
    assert_non_null(strstr(err.msg, "transactions.csv: cannot append"));
    close(fs->files[txs].fd);
    fs->files[txs].fd = fd;
    assert_int_equal(file_size(f->dir, "blocks.csv"), blocks);
    assert_int_equal(file_size(f->dir, "logs.csv"), logs);
    bp_checkpoint cp;
    assert_int_equal(s->ops->checkpoint(s, "main", &cp, &err), 0);
    assert_int_equal(cp.number, BIG_BATCH + 1);
    /* The next batch goes on from the clean end. */
    assert_int_equal(write_big(s, b, &err), 0);
    bp_sink_close(s);
    free_blocks(b);
    bp_block_free(first);
    char *text = slurp_in(f->dir, "blocks.csv");
    char want[160];
    snprintf(want, sizeof(want), "\n%d,%s,", BIG_BATCH + 1, H(0xb0, BIG_BATCH + 1));
    char *at = strstr(text, want);
    assert_non_null(at);
    snprintf(want, sizeof(want), "\n1,%s,", H(0xb0, 1));
    assert_non_null(strstr(at + 1, want));
    free(text);
}

/* ---- cell formatting (format.h) ---------------------------------------------------------- */

static void check_u64(uint64_t v)
{
    char want[32], got[BP_PUT_U64_MAX + 1];
    snprintf(want, sizeof(want), "%" PRIu64, v);
    *bp_put_u64(got, v) = '\0';
    assert_string_equal(got, want);
}

/* The digit count comes from the bit length: every power of ten and its neighbours. */
static void test_fmt_numbers(void **state)
{
    (void)state;
    uint64_t p = 1;
    for (int k = 0; k < 20; k++, p *= 10) {
        check_u64(p - 1);
        check_u64(p);
        check_u64(p + 1);
        if (k == 19)
            break;
    }
    check_u64(0);
    check_u64(UINT64_MAX);
    check_u64(UINT64_MAX - 1);
    for (uint64_t v = 1; v < 70000; v = v * 3 + 1)
        check_u64(v);
    char out[BP_PUT_QTY_MAX];
    bp_qty q = fx_qty_dec("115792089237316195423570985008687907853269984665640564039457584007913"
                          "129639935"); /* 2^256 - 1: the widest quantity */
    assert_true(q.set);
    *bp_put_qty(out, &q) = '\0';
    assert_string_equal(out, "1157920892373161954235709850086879078532699846656405640394575840079"
                             "13129639935");
    q = fx_qty_dec("18446744073709551616"); /* 2^64: just past u64 */
    *bp_put_qty(out, &q) = '\0';
    assert_string_equal(out, "18446744073709551616");
    q.set = false;
    assert_ptr_equal(bp_put_qty(out, &q), out);
}

static void check_csv(const char *s, const char *want)
{
    char got[64];
    size_t n = strlen(s);
    assert_true(2 * n + 2 < sizeof(got));
    *bp_put_csv(got, s, n) = '\0';
    assert_string_equal(got, want);
    bp_buf buf;
    bp_buf_init(&buf, 0);
    bp_fmt f = {.buf = &buf};
    bp_fmt_csv_text(&f, s);
    assert_int_equal(f.rc, 0);
    assert_string_equal(buf.data, want);
    bp_buf_release(&buf);
}

static void test_fmt_csv_cells(void **state)
{
    (void)state;
    check_csv("0xabc", "0xabc");
    check_csv("", "");
    check_csv("a,b", "\"a,b\"");
    check_csv("say \"hi\"", "\"say \"\"hi\"\"\"");
    check_csv("\"", "\"\"\"\"");
    check_csv("line\nbreak", "\"line\nbreak\"");
    check_csv("cr\r", "\"cr\r\"");
    /* Room for a row's worst case counts against the buffer's cap; the failure sticks. */
    bp_buf buf;
    bp_buf_init(&buf, 16);
    bp_fmt f = {.buf = &buf};
    char *p = bp_fmt_room(&f, 10);
    assert_non_null(p);
    memcpy(p, "0123456789", 10);
    bp_fmt_done(&f, p + 10);
    assert_string_equal(buf.data, "0123456789");
    assert_null(bp_fmt_room(&f, 7));
    assert_int_equal(f.rc, BP_ETOOBIG);
    bp_fmt_str(&f, "x");
    assert_null(bp_fmt_room(&f, 1));
    assert_int_equal(buf.len, 10);
    bp_buf_release(&buf);
}

/* Cells the decoder never produces still come out as Python's csv module writes them in the
 * one column that quotes (a tx hash), and missing texts are empty cells. */
static void test_csv_odd_cells(void **state)
{
    fixture *f = *state;
    bp_sink *s = open_sink(&bp_sink_etlcsv_ops, f->dir);
    bp_block *b = fx_block(1, 0, true, true);
    b->txs[0].hash = fx_str(b, "0xa,\"b");
    b->txs[0].from_address = NULL;
    b->txs[0].input = NULL;
    b->logs[0].transaction_hash = b->txs[0].hash;
    b->logs[0].data = NULL;
    apply_one(s, "main", b);
    bp_block_free(b);
    bp_sink_close(s);
    char *txs = slurp_in(f->dir, "transactions.csv");
    char want[512];
    snprintf(want, sizeof(want),
             "\n\"0xa,\"\"b\",18446744073709551615,%s,1,0,,%s,55340232221128654853,21000,"
             "91022338812,,1683030000,91022338812,100000000,2\n",
             H(0xb0, 1), A(0x70, 0));
    assert_non_null(strstr(txs, want));
    free(txs);
    char *rcpts = slurp_in(f->dir, "receipts.csv");
    snprintf(want, sizeof(want), "\n\"0xa,\"\"b\",0,%s,1,21000,21000,,,1,91022338812,,,,\n",
             H(0xb0, 1));
    assert_non_null(strstr(rcpts, want));
    free(rcpts);
    char *logs = slurp_in(f->dir, "logs.csv");
    snprintf(want, sizeof(want), "\n0,0xa,\"b,0,%s,1,%s,,\n", H(0xb0, 1), A(0xf4, 0));
    assert_non_null(strstr(logs, want));
    free(logs);
}

/* ---- etl-csv: conformance with ethereum-etl's expected files ---------------------------- */

static yajl_val load_result(const char *path, yajl_val *root)
{
    char *text = slurp(path);
    if (!text)
        fail_msg("%s: cannot read", path);
    char msg[256];
    *root = yajl_tree_parse(text, msg, sizeof(msg));
    free(text);
    if (!*root)
        fail_msg("%s: %s", path, msg);
    const char *p[] = {"result", NULL};
    return yajl_tree_get(*root, p, yajl_t_any);
}

static bp_block *decode_block(const char *path)
{
    yajl_val root;
    yajl_val result = load_result(path, &root);
    bp_block *b = bp_block_new();
    bp_error err = {0};
    if (bp_decode_block(result, true, b, &err) != 0)
        fail_msg("%s: %s", path, err.msg);
    yajl_tree_free(root);
    return b;
}

/* Receipts of every tx of b from the export_receipts_job case. */
static void decode_receipts(bp_block *b, const char *dir)
{
    yajl_val roots[16], results[16];
    assert_true(b->tx_count <= 16);
    for (size_t i = 0; i < b->tx_count; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/web3_response.eth_getTransactionReceipt_%s.json", dir,
                 b->txs[i].hash);
        results[i] = load_result(path, &roots[i]);
    }
    bp_error err = {0};
    if (bp_decode_receipt_list(results, b->tx_count, b, &err) != 0)
        fail_msg("receipts: %s", err.msg);
    for (size_t i = 0; i < b->tx_count; i++)
        yajl_tree_free(roots[i]);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Splits text into sorted lines (in place); returns the count. */
static size_t sorted_lines(char *text, char **lines, size_t max)
{
    size_t n = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l && n < max;
         l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    qsort(lines, n, sizeof(char *), cmp_str);
    return n;
}

static void assert_same_lines(const char *dir, const char *name, const char *expected_path)
{
    char *got = slurp_in(dir, name), *want = slurp(expected_path);
    assert_non_null(got);
    assert_non_null(want);
    char *gl[64], *wl[64];
    size_t gn = sorted_lines(got, gl, 64), wn = sorted_lines(want, wl, 64);
    if (gn != wn)
        fail_msg("%s: %zu lines, expected %zu (%s)", name, gn, wn, expected_path);
    for (size_t i = 0; i < gn; i++)
        if (strcmp(gl[i], wl[i]) != 0)
            fail_msg("%s line differs:\n  got      %s\n  expected %s", name, gl[i], wl[i]);
    free(got);
    free(want);
}

static void test_csv_conformance_block_with_logs(void **state)
{
    fixture *f = *state;
    const char *c = ETL "/export_blocks_job/block_with_logs";
    const char *r = ETL "/export_receipts_job/receipts_with_logs";
    bp_block *b = decode_block(ETL "/export_blocks_job/block_with_logs/"
                                   "web3_response.eth_getBlockByNumber_0x76250_true.json");
    decode_receipts(b, r);
    bp_sink *s = open_sink(&bp_sink_etlcsv_ops, f->dir);
    apply_one(s, "mainnet", b);
    bp_sink_close(s);
    bp_block_free(b);
    char path[512];
    snprintf(path, sizeof(path), "%s/expected_blocks.csv", c);
    assert_same_lines(f->dir, "blocks.csv", path);
    snprintf(path, sizeof(path), "%s/expected_transactions.csv", c);
    assert_same_lines(f->dir, "transactions.csv", path);
    snprintf(path, sizeof(path), "%s/expected_receipts.csv", r);
    assert_same_lines(f->dir, "receipts.csv", path);
    snprintf(path, sizeof(path), "%s/expected_logs.csv", r);
    assert_same_lines(f->dir, "logs.csv", path);
}

static void test_csv_conformance_genesis_and_pair(void **state)
{
    fixture *f = *state;
    const char *g = ETL "/export_blocks_job/block_without_transactions";
    const char *p = ETL "/export_blocks_job/blocks_with_transactions";
    char path[512], sub[128];
    snprintf(path, sizeof(path), "%s/web3_response.eth_getBlockByNumber_0x0_true.json", g);
    bp_block *b = decode_block(path);
    bp_sink *s = open_sink(&bp_sink_etlcsv_ops, f->dir);
    apply_one(s, "mainnet", b);
    bp_sink_close(s);
    bp_block_free(b);
    snprintf(path, sizeof(path), "%s/expected_blocks.csv", g);
    assert_same_lines(f->dir, "blocks.csv", path);
    snprintf(path, sizeof(path), "%s/expected_transactions.csv", g);
    char *want = slurp(path);
    assert_file(f->dir, "transactions.csv", want); /* empty, no header */
    free(want);
    /* Two blocks in one batch. */
    snprintf(sub, sizeof(sub), "%s/pair", f->dir);
    s = open_sink(&bp_sink_etlcsv_ops, sub);
    bp_block *bs[2];
    bp_event ev[2];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/web3_response.eth_getBlockByNumber_0x%s_true.json", p,
                 i ? "b873" : "b872");
        bs[i] = decode_block(path);
        ev[i] = (bp_event){BP_EVENT_APPLY, bs[i]};
    }
    bp_checkpoint cp = {.set = true, .number = bs[1]->number};
    snprintf(cp.hash, sizeof(cp.hash), "%s", bs[1]->hash);
    write_batch(s, "mainnet", ev, 2, cp);
    bp_sink_close(s);
    bp_block_free(bs[0]);
    bp_block_free(bs[1]);
    snprintf(path, sizeof(path), "%s/expected_blocks.csv", p);
    assert_same_lines(sub, "blocks.csv", path);
    snprintf(path, sizeof(path), "%s/expected_transactions.csv", p);
    assert_same_lines(sub, "transactions.csv", path);
}

/* ---- jsonl ------------------------------------------------------------------------------ */

/* Each line of a file parsed (caller frees the trees); returns the count. */
static size_t parse_lines(const char *dir, const char *name, yajl_val *out, size_t max)
{
    char *text = slurp_in(dir, name);
    assert_non_null(text);
    size_t n = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l && n < max;
         l = strtok_r(NULL, "\n", &save)) {
        char msg[256];
        out[n] = yajl_tree_parse(l, msg, sizeof(msg));
        if (!out[n])
            fail_msg("%s line %zu: %s: %s", name, n + 1, msg, l);
        n++;
    }
    free(text);
    return n;
}

static yajl_val get(yajl_val v, const char *key)
{
    const char *p[] = {key, NULL};
    return yajl_tree_get(v, p, yajl_t_any);
}

static const char *num(yajl_val v, const char *key)
{
    yajl_val x = get(v, key);
    if (!YAJL_IS_NUMBER(x))
        fail_msg("key %s: not a number", key);
    return YAJL_GET_NUMBER(x);
}

static const char *str(yajl_val v, const char *key)
{
    yajl_val x = get(v, key);
    if (!YAJL_IS_STRING(x))
        fail_msg("key %s: not a string", key);
    return YAJL_GET_STRING(x);
}

static void free_all(yajl_val *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        yajl_tree_free(v[i]);
}

static void check_jsonl_block(yajl_val v)
{
    assert_string_equal(str(v, "type"), "block");
    assert_string_equal(str(v, "chain"), "main\tnet");
    assert_string_equal(num(v, "number"), "1");
    assert_string_equal(num(v, "total_difficulty"), "58750003716598352816469");
    assert_string_equal(num(v, "base_fee_per_gas"), "80869370967");
    assert_string_equal(str(v, "item_timestamp"), "2023-05-02T12:20:00Z");
    yajl_val w = get(v, "withdrawals");
    assert_true(YAJL_IS_ARRAY(w));
    assert_int_equal(w->u.array.len, 2);
    assert_string_equal(num(w->u.array.values[1], "amount"), "45762058");
    assert_string_equal(str(w->u.array.values[1], "address"), A(0xb9, 7));
}

static void check_jsonl_txs(yajl_val *t)
{
    assert_string_equal(str(t[0], "type"), "transaction");
    assert_string_equal(num(t[0], "nonce"), "18446744073709551615");
    assert_string_equal(num(t[0], "value"), "55340232221128654853");
    assert_string_equal(num(t[0], "receipt_status"), "1");
    assert_true(YAJL_IS_NULL(get(t[0], "receipt_root")));
    assert_true(YAJL_IS_NULL(get(t[0], "receipt_l1_fee")));
    assert_true(YAJL_IS_NULL(get(t[1], "to_address")));
    assert_string_equal(str(t[1], "receipt_contract_address"), A(0xcc, 1));
    assert_true(YAJL_IS_NULL(get(t[2], "transaction_type")));
    assert_true(YAJL_IS_NULL(get(t[2], "receipt_status")));
    assert_string_equal(num(t[3], "max_priority_fee_per_gas"), "1000000000");
}

static void check_jsonl_logs(yajl_val *l)
{
    for (unsigned i = 0; i < 5; i++) {
        static const unsigned topics[] = {0, 1, 2, 3, 4};
        yajl_val tp = get(l[i], "topics");
        assert_true(YAJL_IS_ARRAY(tp));
        assert_int_equal(tp->u.array.len, topics[i]);
        assert_string_equal(str(l[i], "block_hash"), H(0xb0, 1));
    }
    assert_string_equal(YAJL_GET_STRING(get(l[4], "topics")->u.array.values[3]), H(0x13, 4));
}

static void test_jsonl_lines(void **state)
{
    fixture *f = *state;
    bp_sink *s = open_sink(&bp_sink_jsonl_ops, f->dir);
    bp_block *b = fx_block(1, 0, true, true), *r = fx_block(1, 0, false, false);
    apply_one(s, "main\tnet", b);
    bp_event ev = {BP_EVENT_REVERT, r};
    write_batch(s, "main\tnet", &ev, 1, (bp_checkpoint){0});
    bp_block_free(b);
    bp_block_free(r);
    bp_sink_close(s);
    yajl_val blocks[4], txs[8], logs[8];
    assert_int_equal(parse_lines(f->dir, "blocks.jsonl", blocks, 4), 2);
    assert_int_equal(parse_lines(f->dir, "transactions.jsonl", txs, 8), 4);
    assert_int_equal(parse_lines(f->dir, "logs.jsonl", logs, 8), 5);
    check_jsonl_block(blocks[0]);
    assert_string_equal(str(blocks[1], "type"), "revert");
    assert_string_equal(num(blocks[1], "number"), "1");
    assert_string_equal(str(blocks[1], "hash"), H(0xb0, 1));
    assert_string_equal(str(blocks[1], "parent_hash"), H(0xb0, 0));
    check_jsonl_txs(txs);
    check_jsonl_logs(logs);
    free_all(blocks, 2);
    free_all(txs, 4);
    free_all(logs, 5);
}

/* Deep equality of two JSON values; numbers by their exact text. */
static bool json_equal(yajl_val a, yajl_val b)
{
    if (!a || !b || a->type != b->type)
        return a == b;
    switch (a->type) {
    case yajl_t_string:
        return strcmp(a->u.string, b->u.string) == 0;
    case yajl_t_number:
        return strcmp(a->u.number.r, b->u.number.r) == 0;
    case yajl_t_array:
        if (a->u.array.len != b->u.array.len)
            return false;
        for (size_t i = 0; i < a->u.array.len; i++)
            if (!json_equal(a->u.array.values[i], b->u.array.values[i]))
                return false;
        return true;
    case yajl_t_object:
        if (a->u.object.len != b->u.object.len)
            return false;
        for (size_t i = 0; i < a->u.object.len; i++)
            if (!json_equal(a->u.object.values[i], get(b, a->u.object.keys[i])))
                return false;
        return true;
    default:
        return true;
    }
}

/* Drops "chain" (ours, not ethereum-etl's) from an object. */
static void drop_chain(yajl_val v)
{
    for (size_t i = 0; i < v->u.object.len; i++) {
        if (strcmp(v->u.object.keys[i], "chain") != 0)
            continue;
        free((void *)v->u.object.keys[i]);
        yajl_tree_free(v->u.object.values[i]);
        size_t rest = v->u.object.len - i - 1;
        memmove(&v->u.object.keys[i], &v->u.object.keys[i + 1], rest * sizeof(char *));
        memmove(&v->u.object.values[i], &v->u.object.values[i + 1], rest * sizeof(yajl_val));
        v->u.object.len--;
        return;
    }
}

static void assert_same_json_lines(const char *dir, const char *name, const char *expected)
{
    yajl_val got[8], want[8];
    size_t gn = parse_lines(dir, name, got, 8);
    char edir[512], ename[128];
    snprintf(edir, sizeof(edir), "%s", expected);
    char *slash = strrchr(edir, '/');
    *slash = '\0';
    snprintf(ename, sizeof(ename), "%s", slash + 1);
    size_t wn = parse_lines(edir, ename, want, 8);
    assert_int_equal(gn, wn);
    for (size_t i = 0; i < gn; i++) {
        drop_chain(got[i]);
        if (!json_equal(got[i], want[i]) || !json_equal(want[i], got[i]))
            fail_msg("%s line %zu differs from %s", name, i + 1, expected);
    }
    free_all(got, gn);
    free_all(want, wn);
}

static void test_jsonl_conformance_stream(void **state)
{
    fixture *f = *state;
    const char *c = ETL "/stream/blocks_1755634_1755635";
    bp_block *bs[2];
    bp_event ev[2];
    for (int i = 0; i < 2; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/web3_response.eth_getBlockByNumber_0x%s_true.json", c,
                 i ? "1ac9f3" : "1ac9f2");
        bs[i] = decode_block(path);
        decode_receipts(bs[i], c);
        ev[i] = (bp_event){BP_EVENT_APPLY, bs[i]};
    }
    bp_sink *s = open_sink(&bp_sink_jsonl_ops, f->dir);
    write_batch(s, "mainnet", ev, 2, fx_cp(1755635, 0));
    bp_sink_close(s);
    bp_block_free(bs[0]);
    bp_block_free(bs[1]);
    char path[512];
    snprintf(path, sizeof(path), "%s/expected_blocks.json", c);
    assert_same_json_lines(f->dir, "blocks.jsonl", path);
    snprintf(path, sizeof(path), "%s/expected_transactions.json", c);
    assert_same_json_lines(f->dir, "transactions.jsonl", path);
    snprintf(path, sizeof(path), "%s/expected_logs.json", c);
    assert_same_json_lines(f->dir, "logs.jsonl", path);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_csv_exact_lines),
        T(test_csv_lazy_header_and_reverts),
        T(test_recent_kept_across_reopen),
        T(test_directory_lock),
        T(test_directory_lock_follows_claims),
        T(test_failed_load_leaks_nothing),
        T(test_truncate_on_reopen),
        T(test_checkpoint_json_chains),
        T(test_etlcsv_one_chain),
        T(test_etlcsv_dir_per_chain),
        T(test_refuses_foreign_or_lost_data),
        T(test_csv_conformance_block_with_logs),
        T(test_csv_conformance_genesis_and_pair),
        T(test_jsonl_lines),
        T(test_jsonl_conformance_stream),
        T(test_fmt_numbers),
        T(test_fmt_csv_cells),
        T(test_csv_odd_cells),
        T(test_big_batch_same_bytes),
        T(test_big_batch_append_fails),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
