/* sqlite_arch.c - the Arch tables of the SQLite output. */
#include "sink/sqlite_arch.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch_rows.h"
#include "arch/arch_tables.h"
#include "sink/sqlgen.h"

enum {
    A_INS_BLOCK,
    A_INS_TX,
    A_INS_ACCOUNT,
    A_INS_EVENT,
    A_ROLLBACK,
    A_SEL_HASH,
    A_DEL_ACCOUNTS,
    A_DEL_TXS,
    A_DEL_BLOCK,
    A_COUNT
};

/* The fixed statements (the inserts are made from the column table). The rollback UPDATE is
 * what a rolledback / reapplied_transactions event does to one listed txid (arch/arch_rows.h):
 * ?1 the new rolled_back, which keeps rollback_reason when 1 and clears it when 0. */
static const char *const g_fixed[] = {
    [A_ROLLBACK] = "UPDATE arch_transactions SET rolled_back = ?1, rollback_reason = CASE WHEN ?1 "
                   "THEN rollback_reason END WHERE chain = ?2 AND txid = ?3",
    [A_SEL_HASH] = "SELECT hash FROM arch_blocks WHERE chain = ? AND height = ?",
    [A_DEL_ACCOUNTS] = "DELETE FROM arch_account_updates WHERE chain = ? AND block_height = ?",
    [A_DEL_TXS] = "DELETE FROM arch_transactions WHERE chain = ? AND block_height = ?",
    [A_DEL_BLOCK] = "DELETE FROM arch_blocks WHERE chain = ? AND height = ?",
};

struct bp_sqlite_arch {
    sqlite3 *db;
    const char *path;
    sqlite3_stmt *st[A_COUNT];
};

int bp_sqlite_arch_schema(bp_buf *sql, const char *(*type_of)(bp_col_type t))
{
    if (bp_sql_create_set(sql, &bp_tables_arch, "IF NOT EXISTS ", type_of) != 0)
        return BP_ENOMEM;
    return bp_arch_txid_index(sql, "IF NOT EXISTS ");
}

int bp_sqlite_arch_upgrade(sqlite3 *db, const char *path, bp_buf *sql,
                           const char *(*type_of)(bp_col_type t), bp_error *err)
{
    sqlite3_stmt *st = NULL;
    bool notnull = false;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT \"notnull\" FROM pragma_table_info('arch_blocks')"
                                " WHERE name = 'merkle_root'",
                                -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        notnull = sqlite3_column_int(st, 0) != 0;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        bp_error_set(err, BP_EDB, "%s: reading the columns of arch_blocks: %s", path,
                     sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return BP_EDB;
    if (!notnull)
        return 0;
    /* the same columns in the same order: SELECT * copies them (its indexes go with the old
     * table; arch_open makes them again) */
    if (bp_buf_puts(sql, "ALTER TABLE arch_blocks RENAME TO arch_blocks_notnull;") != 0 ||
        bp_sql_create_set_table(sql, &bp_tables_arch.tables[BP_ARCH_BLOCKS], "", "", type_of, "") !=
            0 ||
        bp_buf_puts(sql, "INSERT INTO arch_blocks SELECT * FROM arch_blocks_notnull;"
                         "DROP TABLE arch_blocks_notnull;") != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    return 0;
}

void bp_sqlite_arch_close(bp_sqlite_arch *a)
{
    if (!a)
        return;
    for (int i = 0; i < A_COUNT; i++)
        sqlite3_finalize(a->st[i]);
    free(a);
}

int bp_sqlite_arch_open(sqlite3 *db, const char *path, bp_sqlite_arch **out, bp_error *err)
{
    static const enum bp_arch_table ins[] = {[A_INS_BLOCK] = BP_ARCH_BLOCKS,
                                             [A_INS_TX] = BP_ARCH_TRANSACTIONS,
                                             [A_INS_ACCOUNT] = BP_ARCH_ACCOUNT_UPDATES,
                                             [A_INS_EVENT] = BP_ARCH_EVENTS};
    bp_buf sql;
    bp_buf_init(&sql, 0);
    bp_sqlite_arch *a = calloc(1, sizeof(*a));
    int rc = a ? 0 : bp_error_set(err, BP_ENOMEM, "out of memory");
    for (int i = 0; rc == 0 && i < A_COUNT; i++) {
        bp_buf_reset(&sql);
        const char *text = g_fixed[i];
        if (i < A_ROLLBACK) {
            /* an account a transaction lists twice (simnode's sender = receiver) is one
             * update; an event seen again (its key) is the row there */
            const char *verb =
                i == A_INS_ACCOUNT || i == A_INS_EVENT ? "INSERT OR IGNORE" : "INSERT";
            if (bp_arch_insert(&sql, verb, ins[i], false) != 0) {
                rc = bp_error_set(err, BP_ENOMEM, "out of memory");
                break;
            }
            text = sql.data;
        }
        if (sqlite3_prepare_v3(db, text, -1, SQLITE_PREPARE_PERSISTENT, &a->st[i], NULL) !=
            SQLITE_OK)
            rc = bp_error_set(err, BP_EDB, "%s: preparing \"%.60s...\": %s", path, text,
                              sqlite3_errmsg(db));
    }
    bp_buf_release(&sql);
    if (rc != 0) {
        bp_sqlite_arch_close(a);
        return rc;
    }
    a->db = db;
    a->path = path;
    *out = a;
    return 0;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static int bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
    return sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

/* Steps st once and resets it: SQLITE_DONE (or ROW) as SQLITE_OK, else SQLite's code. */
static int step(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int db_error(bp_sqlite_arch *a, const bp_block *b, const char *what, bp_error *err)
{
    return bp_error_set(err, BP_EDB, "%s: block %" PRIu64 ": %s: %s", a->path, b->number, what,
                        sqlite3_errmsg(a->db));
}

/* The block row exists: the same hash is the block stored already, another is an error. */
static int conflict(bp_sqlite_arch *a, const char *chain, const bp_block *b, bool *skip,
                    bp_error *err)
{
    sqlite3_stmt *st = a->st[A_SEL_HASH];
    char have[80] = "";
    int rc = bind_text(st, 1, chain) | bind_u64(st, 2, b->number);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(have, sizeof(have), "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    if (have[0] && strcmp(have, b->hash) == 0) {
        *skip = true;
        return 0;
    }
    return bp_error_set(err, BP_EDB,
                        "block %" PRIu64 " of chain '%s': table arch_blocks already holds hash "
                        "%s, cannot apply hash %s (was it reverted?)",
                        b->number, chain, have[0] ? have : "(unreadable)", b->hash);
}

/* Binds row r's values to st, whose parameters are its table's columns in order
 * (bp_arch_insert). An integer above INT64_MAX is stored as its bits, as it always was. */
static int bind_row(sqlite3_stmt *st, const bp_table_row *r)
{
    const bp_set_table *t = &r->set->tables[r->table];
    int rc = SQLITE_OK;
    for (size_t c = 0; rc == SQLITE_OK && c < t->column_count; c++) {
        bp_value v = r->set->value(r, c);
        int i = (int)c + 1;
        switch (v.kind) {
        case BP_VAL_NULL:
            rc = sqlite3_bind_null(st, i);
            break;
        case BP_VAL_U64:
            rc = bind_u64(st, i, v.u);
            break;
        case BP_VAL_STR:
            rc = bind_text(st, i, v.s);
            break;
        case BP_VAL_F64:
            rc = sqlite3_bind_double(st, i, v.f);
            break;
        default: /* no Arch column is a 256-bit amount or withdrawals */
            rc = SQLITE_MISUSE;
        }
    }
    return rc;
}

/* Inserts the rows ev brings to table t with st. */
static int insert_rows(sqlite3_stmt *st, const char *chain, const bp_event *ev,
                       enum bp_arch_table t)
{
    bp_table_row r;
    bp_table_rows(&r, &bp_tables_arch, chain, ev, t);
    int rc = SQLITE_OK;
    while (rc == SQLITE_OK && bp_table_next(&r)) {
        rc = bind_row(st, &r);
        rc = rc == SQLITE_OK ? step(st) : rc;
    }
    return rc;
}

int bp_sqlite_arch_apply(bp_sqlite_arch *a, const char *chain, const bp_block *b, bool *skip,
                         bp_error *err)
{
    if (!b->arch)
        return bp_error_set(err, BP_EINVAL, "block %" PRIu64 ": an Arch block without its rows",
                            b->number);
    const bp_event ev = {.kind = BP_EVENT_APPLY, .block = b};
    int rc = insert_rows(a->st[A_INS_BLOCK], chain, &ev, BP_ARCH_BLOCKS);
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return conflict(a, chain, b, skip, err);
    if (rc != SQLITE_OK)
        return db_error(a, b, "insert into arch_blocks", err);
    if (insert_rows(a->st[A_INS_TX], chain, &ev, BP_ARCH_TRANSACTIONS) != SQLITE_OK ||
        insert_rows(a->st[A_INS_ACCOUNT], chain, &ev, BP_ARCH_ACCOUNT_UPDATES) != SQLITE_OK)
        return db_error(a, b, "insert into arch_transactions / arch_account_updates", err);
    return 0;
}

int bp_sqlite_arch_revert(bp_sqlite_arch *a, const char *chain, const bp_block *b, bp_error *err)
{
    for (int i = A_DEL_ACCOUNTS; i <= A_DEL_BLOCK; i++) {
        sqlite3_stmt *st = a->st[i];
        int rc = bind_text(st, 1, chain) | bind_u64(st, 2, b->number);
        if ((rc == SQLITE_OK ? step(st) : rc) != SQLITE_OK)
            return db_error(a, b, "revert: delete from the arch tables", err);
    }
    return 0;
}

/* What a rollback / re-apply does to the transactions event e lists. */
static int write_state(bp_sqlite_arch *a, const char *chain, const bp_arch_event *e)
{
    bool back = e->topic == BP_ARCH_T_ROLLEDBACK;
    if (!back && e->topic != BP_ARCH_T_REAPPLIED)
        return SQLITE_OK;
    sqlite3_stmt *st = a->st[A_ROLLBACK];
    int rc = SQLITE_OK;
    for (size_t k = 0; rc == SQLITE_OK && k < e->hash_count; k++) {
        rc = sqlite3_bind_int(st, 1, back) | bind_text(st, 2, chain) |
             bind_text(st, 3, e->hashes[k]);
        rc = rc == SQLITE_OK ? step(st) : rc;
    }
    return rc;
}

int bp_sqlite_arch_events(bp_sqlite_arch *a, const char *chain, const bp_block *b, bp_error *err)
{
    const bp_arch_rows *r = b->arch;
    const bp_event ev = {.kind = BP_EVENT_ARCH_EVENTS, .block = b};
    /* the received events' rows (a resync is made from the node's state: none) */
    if (insert_rows(a->st[A_INS_EVENT], chain, &ev, BP_ARCH_EVENTS) != SQLITE_OK)
        return bp_error_set(err, BP_EDB, "%s: events: into arch_events: %s", a->path,
                            sqlite3_errmsg(a->db));
    for (size_t i = 0; r && i < r->event_count; i++)
        if (write_state(a, chain, &r->events[i]) != SQLITE_OK)
            return bp_error_set(err, BP_EDB, "%s: %s event %s: into arch_transactions: %s", a->path,
                                bp_arch_topic_name(r->events[i].topic), r->events[i].key,
                                sqlite3_errmsg(a->db));
    return 0;
}
