/*
 * Unit tests for the store (store.c, store_sqlite.c): open and schema, group
 * commit and read back, queue order and paging, retry times, the error
 * queue, reprocess (default, named, by filter, dry run), edit, prune,
 * duplicate lookup, search plans over 200k rows, failure paths (busy, not a
 * store, newer schema), and a kill -9 crash test.
 *
 * The SQLite backend is #included so the tests can look at its pragmas and
 * query plans through its handle; it has no other external symbol, so the
 * copy in libternlib is simply not linked. Every test works in its own
 * directory under /tmp, removed afterwards.
 *
 * TERN_STORE_BENCH=N (e.g. 300000) adds a throughput run of store_put_batch;
 * run it in the release build: TERN_STORE_BENCH=300000 build/tests/test_store
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sec/keys.h"
#include "store/store.h"
#include "store/store_sqlite.c"

/* The whole suite runs twice: in clear, then with encryption at rest
 * (every store_open below goes through topen, which adds this keyring). */
static keyring *g_keys;

static store_status topen(const char *loc, const store_options *opt, store **out,
                          store_error *err)
{
    store_options o = {0};
    if (opt) o = *opt;
    o.keys = g_keys;
    return store_open(loc, &o, out, err);
}

#define T0 INT64_C(1767225600000) /* 2026-01-01T00:00:00Z */
#define DAY INT64_C(86400000)

static const store_audit WHO = {"alice", "ticket 42"};

typedef struct fixture {
    char dir[64];
    char path[128];
    store *s;
} fixture;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(p);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/tern-store-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/var/db/tern.db", f->dir);
    store_error err;
    if (topen(f->path, NULL, &f->s, &err) != STORE_OK) {
        fprintf(stderr, "%s\n", err.text);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_close(f->s);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void reopen(fixture *f)
{
    store_error err;
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(topen(f->path, NULL, &f->s, &err), STORE_OK);
}

static sqlite3 *db_of(fixture *f)
{
    return sq(f->s)->db;
}

static int64_t pragma(fixture *f, const char *sql)
{
    int64_t v = -1;
    assert_int_equal(query_int(sq(f->s), sql, &v), SQLITE_OK);
    return v;
}

static void ok(store_status st, const store_error *err)
{
    if (st != STORE_OK) fprintf(stderr, "store: %s\n", err->text);
    assert_int_equal(st, STORE_OK);
}

/* A message put with the usual shape; text fields point at static or
 * caller-owned strings. */
static store_put msg(const char *channel, const char *raw, int64_t at, const store_dest *dests,
                     size_t n_dests)
{
    store_put p = {
        .channel = channel,
        .raw = raw,
        .raw_len = strlen(raw),
        .received_at = at,
        .meta = {.msh9 = "ADT^A01", .control_id = "CTRL1", .send_app = "SENDAPP", .send_fac = "SENDFAC",
                 .recv_app = "RECVAPP", .recv_fac = "RECVFAC", .patient_id = "PAT1"},
        .state = STORE_MSG_RECEIVED,
        .dests = dests,
        .n_dests = n_dests,
    };
    return p;
}

static int64_t put1(fixture *f, const store_put *p)
{
    int64_t id = 0;
    store_error err;
    ok(store_put_batch(f->s, p, 1, &id, &err), &err);
    return id;
}

static void mark(fixture *f, const char *channel, const char *dest, int64_t id,
                 store_outcome outcome, int64_t next, const char *why, int64_t now)
{
    store_mark m = {channel, dest, id, outcome, next, why};
    store_error err;
    ok(store_mark_batch(f->s, &m, 1, now, &err), &err);
}

static const store_delivery *delivery(const store_message *m, const char *dest)
{
    for (size_t i = 0; i < m->n_deliveries; i++)
        if (strcmp(m->deliveries[i].dest, dest) == 0) return &m->deliveries[i];
    fail_msg("no delivery to %s", dest);
    return NULL;
}

static void get(fixture *f, int64_t id, store_message *m)
{
    store_error err;
    ok(store_get(f->s, id, m, &err), &err);
}

static uint64_t queued(fixture *f, const char *channel, const char *dest)
{
    uint64_t n = 99;
    store_error err;
    ok(store_queue_count(f->s, channel, dest, &n, &err), &err);
    return n;
}

/* --- open, schema, failure paths -------------------------------------------- */

static void test_open_schema_and_pragmas(void **state)
{
    fixture *f = *state;
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_string_equal(store_backend(f->s), "sqlite");
    assert_int_equal(pragma(f, "PRAGMA user_version"), SCHEMA_VERSION);
    assert_int_equal(pragma(f, "PRAGMA auto_vacuum"), 2); /* incremental */
    assert_int_equal(pragma(f, "PRAGMA synchronous"), 2); /* full */
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db_of(f), "PRAGMA journal_mode", -1, &st, NULL), 0);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    reopen(f); /* an existing store opens without migrating again */
    assert_int_equal(pragma(f, "PRAGMA user_version"), SCHEMA_VERSION);

    store_error err;
    store *s2 = NULL;
    char loc[160];
    snprintf(loc, sizeof loc, "sqlite://%s", f->path);
    store_options opt = {.checkpoint_pages = -1};
    ok(topen(loc, &opt, &s2, &err), &err);
    int64_t pages = -1;
    query_int(sq(s2), "PRAGMA wal_autocheckpoint", &pages);
    assert_int_equal(pages, 0); /* left to store_checkpoint on another handle */
    assert_int_equal(pragma(f, "PRAGMA wal_autocheckpoint"), STORE_CHECKPOINT_PAGES);
    store_dest d = {"down", STORE_DLV_QUEUED};
    store_put p = msg("adt", "MSH|x", T0, &d, 1);
    ok(store_put_batch(s2, &p, 1, NULL, &err), &err);
    ok(store_checkpoint(f->s, &err), &err);
    store_close(s2);
}

static void test_open_failures(void **state)
{
    fixture *f = *state;
    store *s = (store *)1;
    store_error err;
    char p[160];

    assert_int_equal(topen("postgres://db/tern", NULL, &s, &err), STORE_ERR_UNSUPPORTED);
    assert_null(s);
    assert_non_null(strstr(err.text, "PostgreSQL"));
    assert_int_equal(topen("mysql://x", NULL, &s, &err), STORE_ERR_UNSUPPORTED);
    assert_int_equal(topen("", NULL, &s, &err), STORE_ERR_ARG);

    /* a file where a directory should be */
    snprintf(p, sizeof p, "%s/plain", f->dir);
    FILE *fp = fopen(p, "w");
    fputs("not a directory", fp);
    fclose(fp);
    snprintf(p, sizeof p, "%s/plain/sub/tern.db", f->dir);
    assert_int_equal(topen(p, NULL, &s, &err), STORE_ERR_IO);
    assert_non_null(strstr(err.text, "plain"));

    /* garbage in the file */
    snprintf(p, sizeof p, "%s/garbage.db", f->dir);
    fp = fopen(p, "w");
    for (int i = 0; i < 200; i++)
        fputs("this is not an sqlite database ", fp);
    fclose(fp);
    assert_int_equal(topen(p, NULL, &s, &err), STORE_ERR_CORRUPT);
    assert_non_null(strstr(err.text, "garbage.db"));

    /* someone else's database */
    snprintf(p, sizeof p, "%s/other.db", f->dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(topen(p, NULL, &s, &err), STORE_ERR_CORRUPT);
    assert_non_null(strstr(err.text, "not a Tern store"));

    /* written by a newer Tern */
    assert_int_equal(sqlite3_exec(db_of(f), "PRAGMA user_version = 99", NULL, NULL, NULL), 0);
    assert_int_equal(topen(f->path, NULL, &s, &err), STORE_ERR_SCHEMA);
    assert_non_null(strstr(err.text, "99"));
    assert_string_equal(store_strerror(STORE_ERR_SCHEMA), "schema too new");
}

static void test_busy_and_invalid_puts(void **state)
{
    fixture *f = *state;
    store_dest d = {"down", STORE_DLV_QUEUED};
    store_put p = msg("adt", "MSH|x", T0, &d, 1);
    store_error err;

    /* Validation happens before anything is written: the batch is refused. */
    store_put bad[2] = {p, p};
    bad[1].channel = "";
    assert_int_equal(store_put_batch(f->s, bad, 2, NULL, &err), STORE_ERR_ARG);
    assert_non_null(strstr(err.text, "message 1"));
    store_dest twice[2] = {d, d};
    bad[1] = msg("adt", "MSH|x", T0, twice, 2);
    assert_int_equal(store_put_batch(f->s, bad, 2, NULL, &err), STORE_ERR_ARG);
    assert_non_null(strstr(err.text, "given twice"));
    bad[1] = p;
    bad[1].state = STORE_MSG_NONE;
    assert_int_equal(store_put_batch(f->s, bad, 2, NULL, &err), STORE_ERR_ARG);
    assert_int_equal(queued(f, "adt", "down"), 0);

    /* Another process holds the write lock longer than our busy timeout. */
    store *s2;
    store_options opt = {.busy_timeout_ms = 50};
    ok(topen(f->path, &opt, &s2, &err), &err);
    put1(f, &p); /* registers the destination */
    assert_int_equal(sqlite3_exec(db_of(f), "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(store_put_batch(s2, &p, 1, NULL, &err), STORE_ERR_BUSY);
    assert_non_null(strstr(err.text, "storing a batch of 1 messages"));
    assert_non_null(strstr(err.text, "tern.db"));
    assert_int_equal(sqlite3_exec(db_of(f), "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    ok(store_put_batch(s2, &p, 1, NULL, &err), &err); /* and works once it is released */
    store_close(s2);
    assert_int_equal(queued(f, "adt", "down"), 2);
}

/* --- writing and reading ------------------------------------------------------ */

static void test_put_batch_and_read_back(void **state)
{
    fixture *f = *state;
    store_dest dests[] = {{"archive", STORE_DLV_QUEUED}, {"down", STORE_DLV_FILTERED}};
    const char raw_nul[] = "MSH|^~\\&|A\0B|\rPID|1\r";
    store_put items[3] = {
        msg("adt", "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|C1|P|2.5\r", T0, dests, 2),
        msg("adt", "garbage", T0 + 1, NULL, 0),
        msg("lab", "x", T0 + 2, NULL, 0),
    };
    items[1].state = STORE_MSG_REJECTED;
    items[1].error = "does not start with MSH";
    items[1].meta = (store_meta){0};
    items[2].raw = raw_nul;
    items[2].raw_len = sizeof raw_nul - 1;
    items[2].meta.patient_id = ""; /* empty is absent */
    int64_t ids[3];
    store_error err;
    ok(store_put_batch(f->s, items, 3, ids, &err), &err);
    assert_true(ids[0] > 0 && ids[1] == ids[0] + 1 && ids[2] == ids[1] + 1);

    store_message m = STORE_MESSAGE_INIT;
    get(f, ids[0], &m);
    assert_int_equal(m.sum.id, ids[0]);
    assert_string_equal(m.sum.channel, "adt");
    assert_int_equal(m.sum.received_at, T0);
    assert_int_equal(m.sum.state, STORE_MSG_RECEIVED);
    assert_string_equal(m.sum.meta.msh9, "ADT^A01");
    assert_string_equal(m.sum.meta.control_id, "CTRL1");
    assert_string_equal(m.sum.meta.send_app, "SENDAPP");
    assert_string_equal(m.sum.meta.send_fac, "SENDFAC");
    assert_string_equal(m.sum.meta.recv_app, "RECVAPP");
    assert_string_equal(m.sum.meta.recv_fac, "RECVFAC");
    assert_string_equal(m.sum.meta.patient_id, "PAT1");
    assert_null(m.sum.error);
    assert_int_equal(m.sum.revision, 1);
    assert_int_equal(m.sum.original_id, ids[0]);
    assert_int_equal(m.sum.raw_len, strlen(items[0].raw));
    assert_memory_equal(m.raw, items[0].raw, m.sum.raw_len);
    assert_int_equal(m.n_deliveries, 2);
    assert_string_equal(m.deliveries[0].dest, "archive");
    assert_int_equal(m.deliveries[0].state, STORE_DLV_QUEUED);
    assert_int_equal(m.deliveries[0].attempts, 0);
    assert_null(m.deliveries[0].last_error);
    assert_string_equal(m.deliveries[1].dest, "down");
    assert_int_equal(m.deliveries[1].state, STORE_DLV_FILTERED);

    get(f, ids[1], &m); /* reuses m */
    assert_int_equal(m.sum.state, STORE_MSG_REJECTED);
    assert_string_equal(m.sum.error, "does not start with MSH");
    assert_null(m.sum.meta.msh9);
    assert_null(m.sum.meta.send_fac);
    assert_int_equal(m.n_deliveries, 0);

    get(f, ids[2], &m);
    assert_int_equal(m.sum.raw_len, sizeof raw_nul - 1);
    assert_memory_equal(m.raw, raw_nul, sizeof raw_nul - 1);
    assert_null(m.sum.meta.patient_id);
    store_message_free(&m);

    assert_int_equal(store_get(f->s, 999999, &m, &err), STORE_ERR_NOT_FOUND);
    assert_non_null(strstr(err.text, "999999"));
    store_message_free(&m);
}

typedef struct collected {
    int64_t ids[64];
    size_t n;
    size_t stop_after;
} collected;

static bool collect(void *ctx, const store_summary *m)
{
    collected *c = ctx;
    c->ids[c->n++] = m->id;
    return c->n != c->stop_after;
}

static size_t list(fixture *f, const store_filter *flt, collected *c)
{
    store_error err;
    c->n = 0;
    ok(store_list(f->s, flt, collect, c, &err), &err);
    return c->n;
}

/* A batch of 71 rows goes in as two multi-row statements of 32 and seven
 * single rows (store_sqlite.c, PUT_CHUNK): every id must name its own
 * message, with its own text, keys, state and deliveries. */
static void test_put_batch_multi_row(void **state)
{
    fixture *f = *state;
    enum { N = 71 };
    store_dest two[] = {{"archive", STORE_DLV_QUEUED}, {"down", STORE_DLV_FILTERED}};
    store_dest one[] = {{"archive", STORE_DLV_ERROR}};
    char raws[N][32], ctls[N][16], orders[N][16];
    const char *order_ids[N][1];
    store_put items[N];
    for (int i = 0; i < N; i++) {
        snprintf(raws[i], sizeof raws[i], "MSH|^~\\&|raw %d|\r", i);
        snprintf(ctls[i], sizeof ctls[i], "C%d", i);
        snprintf(orders[i], sizeof orders[i], "ORD-%d", i);
        items[i] = msg(i % 3 ? "adt" : "lab", raws[i], T0 + i, i % 2 ? two : one, i % 2 ? 2 : 1);
        items[i].meta.control_id = ctls[i];
        order_ids[i][0] = orders[i];
        items[i].meta.order_ids = order_ids[i];
        items[i].meta.n_order_ids = 1;
        if (i % 2 == 0) items[i].error = "bad";
        if (i == 40) items[i].state = STORE_MSG_FILTERED;
    }
    int64_t ids[N];
    store_error err;
    ok(store_put_batch(f->s, items, N, ids, &err), &err);
    store_message m = STORE_MESSAGE_INIT;
    for (int i = 0; i < N; i++) {
        if (i) assert_int_equal(ids[i], ids[i - 1] + 1);
        get(f, ids[i], &m);
        assert_string_equal(m.raw, raws[i]);
        assert_string_equal(m.sum.meta.control_id, ctls[i]);
        assert_string_equal(m.sum.channel, i % 3 ? "adt" : "lab");
        assert_int_equal(m.sum.received_at, T0 + i);
        assert_int_equal(m.sum.state, i == 40 ? STORE_MSG_FILTERED : STORE_MSG_RECEIVED);
        assert_int_equal(m.n_deliveries, i % 2 ? 2 : 1);
        assert_int_equal(delivery(&m, "archive")->state, i % 2 ? STORE_DLV_QUEUED : STORE_DLV_ERROR);
        if (i % 2 == 0) assert_string_equal(delivery(&m, "archive")->last_error, "bad");
        collected c = {.stop_after = 0};
        store_filter flt = {.order_id = orders[i]};
        assert_int_equal(list(f, &flt, &c), 1);
        assert_int_equal(c.ids[0], ids[i]);
    }
    store_message_free(&m);
    assert_int_equal(pragma(f, "SELECT count(*) FROM deliveries"), N + N / 2);
}

static void test_list_filters(void **state)
{
    fixture *f = *state;
    store_dest d = {"down", STORE_DLV_QUEUED};
    store_put p[6];
    const char *types[] = {"ADT^A01", "ADT^A08", "ADTX^A01", "ORU^R01", "ADT", "ORU^R01"};
    const char *pats[] = {"P1", "P2", "P1", "P3", "P1", "P1"};
    for (int i = 0; i < 6; i++) {
        p[i] = msg(i < 4 ? "adt" : "lab", "MSH|x", T0 + i * 1000, &d, 1);
        p[i].meta.msh9 = types[i];
        p[i].meta.patient_id = pats[i];
    }
    p[3].meta.control_id = "UNIQUE";
    p[3].meta.send_fac = "OTHERFAC";
    p[5].state = STORE_MSG_DUPLICATE;
    int64_t ids[6];
    store_error err;
    ok(store_put_batch(f->s, p, 6, ids, &err), &err);
    mark(f, "adt", "down", ids[1], STORE_FAILED, 0, "AE: unknown patient", T0);

    collected c = {.stop_after = 0};
    assert_int_equal(list(f, &(store_filter){0}, &c), 6);
    assert_int_equal(c.ids[0], ids[5]); /* newest first */
    assert_int_equal(list(f, &(store_filter){.channel = "lab"}, &c), 2);
    assert_int_equal(list(f, &(store_filter){.msh9 = "ADT"}, &c), 3); /* not ADTX */
    assert_int_equal(list(f, &(store_filter){.msh9 = "ADT^A08"}, &c), 1);
    assert_int_equal(list(f, &(store_filter){.patient_id = "P1"}, &c), 4);
    assert_int_equal(list(f, &(store_filter){.patient_id = "P1", .channel = "adt"}, &c), 2);
    assert_int_equal(list(f, &(store_filter){.control_id = "UNIQUE"}, &c), 1);
    assert_int_equal(c.ids[0], ids[3]);
    assert_int_equal(list(f, &(store_filter){.send_fac = "OTHERFAC"}, &c), 1);
    assert_int_equal(list(f, &(store_filter){.control_id = "CTRL1", .send_fac = "SENDFAC"}, &c), 5);
    assert_int_equal(list(f, &(store_filter){.since = T0 + 4000}, &c), 2);
    assert_int_equal(list(f, &(store_filter){.state = STORE_MSG_DUPLICATE}, &c), 1);
    assert_int_equal(list(f, &(store_filter){.dlv_state = STORE_DLV_ERROR}, &c), 1);
    assert_int_equal(c.ids[0], ids[1]);
    assert_int_equal(list(f, &(store_filter){.dlv_state = STORE_DLV_ERROR, .channel = "lab"}, &c),
                     0);
    assert_int_equal(
        list(f, &(store_filter){.dlv_state = STORE_DLV_QUEUED, .patient_id = "P1"}, &c), 4);
    /* paging and early stop */
    assert_int_equal(list(f, &(store_filter){.limit = 2}, &c), 2);
    assert_int_equal(list(f, &(store_filter){.limit = 2, .before_id = c.ids[1]}, &c), 2);
    assert_int_equal(c.ids[0], ids[3]);
    c.stop_after = 1;
    assert_int_equal(list(f, &(store_filter){0}, &c), 1);
}

/* --- queues ------------------------------------------------------------------- */

/* Order numbers: several per message, each searchable; pruning removes
 * them with their message; the search uses the keys index. */
static void test_order_numbers(void **state)
{
    fixture *f = *state;
    store_dest d = {"down", STORE_DLV_QUEUED};
    const char *o1[] = {"PL-1", "FI-1"}, *o2[] = {"PL-2", "FI-1"};
    store_put p[3];
    p[0] = msg("lab", "MSH|a", T0, &d, 1);
    p[0].meta.order_ids = o1;
    p[0].meta.n_order_ids = 2;
    p[1] = msg("lab", "MSH|b", T0 + 1, &d, 1);
    p[1].meta.order_ids = o2;
    p[1].meta.n_order_ids = 2;
    p[2] = msg("lab", "MSH|c", T0 + 2, &d, 1);
    int64_t ids[3];
    store_error err;
    ok(store_put_batch(f->s, p, 3, ids, &err), &err);
    collected c = {.stop_after = 0};
    store_filter flt = {.order_id = "PL-1"};
    assert_int_equal(list(f, &flt, &c), 1);
    assert_int_equal(c.ids[0], ids[0]);
    flt.order_id = "FI-1";
    assert_int_equal(list(f, &flt, &c), 2);
    flt.order_id = "NONE";
    assert_int_equal(list(f, &flt, &c), 0);
    tbuf plan = TBUF_INIT;
    flt.order_id = "FI-1";
    ok(store_list_plan(f->s, &flt, &plan, &err), &err);
    assert_non_null(strstr(plan.p, "message_keys_value"));
    tbuf_free(&plan);
    mark(f, "lab", "down", ids[0], STORE_SENT, 0, NULL, T0);
    mark(f, "lab", "down", ids[1], STORE_SENT, 0, NULL, T0);
    mark(f, "lab", "down", ids[2], STORE_SENT, 0, NULL, T0);
    store_audit who = {"test", "cleanup"};
    store_prune_result pr;
    ok(store_prune(f->s, T0 + 10, &who, T0 + 20, &pr, &err), &err);
    assert_int_equal(pragma(f, "SELECT count(*) FROM message_keys"), 0);
}

/* The patient index takes rows in sorted bulk every key_merge_rows rows;
 * a search finds merged rows and the ones past the mark alike, pruning
 * takes rows out of it, and a reopened handle merges what waits. */
static void test_patient_keys_merge(void **state)
{
    fixture *f = *state;
    store_close(f->s);
    f->s = NULL;
    store_options o = {.key_merge_rows = 10};
    store_error err;
    ok(topen(f->path, &o, &f->s, &err), &err);
    static const char *pats[] = {"P0", "P1", "P2", "P3"};
    for (int b = 0; b < 9; b++) { /* 27 rows, batches of 3 */
        store_put items[3];
        for (int i = 0; i < 3; i++) {
            int n = b * 3 + i;
            items[i] = msg("adt", "MSH|x", T0 + n * 1000, NULL, 0);
            items[i].meta.patient_id = pats[n % 4];
        }
        ok(store_put_batch(f->s, items, 3, NULL, &err), &err);
    }
    int64_t upto = pragma(f, "SELECT upto FROM key_marks WHERE name = 'patient'");
    assert_true(upto >= 20 && upto < 27); /* merged twice, the rest waits */
    assert_int_equal(pragma(f, "SELECT count(*) FROM patient_keys"), upto);
    collected c = {0};
    assert_int_equal(list(f, &(store_filter){.patient_id = "P1"}, &c), 7); /* 1, 5, ..., 25 */
    for (size_t i = 0; i < c.n; i++) assert_int_equal((c.ids[i] - 1) % 4, 1);
    assert_int_equal(list(f, &(store_filter){.patient_id = "P1", .channel = "adt"}, &c), 7);
    assert_int_equal(list(f, &(store_filter){.patient_id = "P9"}, &c), 0);
    /* pruning the first ten rows takes them out of the index too */
    store_prune_result pr;
    ok(store_prune(f->s, T0 + 10 * 1000, &WHO, T0 + DAY, &pr, &err), &err);
    assert_int_equal(pr.messages, 10);
    assert_int_equal(pragma(f, "SELECT count(*) FROM patient_keys WHERE message_id <= 10"), 0);
    assert_int_equal(list(f, &(store_filter){.patient_id = "P1"}, &c), 4); /* 13, 17, 21, 25 */
    /* a new handle looks at the rows waiting at its first batch */
    store_close(f->s);
    f->s = NULL;
    o.key_merge_rows = 3;
    ok(topen(f->path, &o, &f->s, &err), &err);
    store_put one = msg("adt", "MSH|x", T0 + 99 * 1000, NULL, 0);
    one.meta.patient_id = "P1";
    ok(store_put_batch(f->s, &one, 1, NULL, &err), &err);
    assert_int_equal(pragma(f, "SELECT upto FROM key_marks WHERE name = 'patient'"), 28);
    assert_int_equal(list(f, &(store_filter){.patient_id = "P1"}, &c), 5);
}

static void test_queue_order_and_paging(void **state)
{
    fixture *f = *state;
    store_dest dests[] = {{"down", STORE_DLV_QUEUED}, {"arch", STORE_DLV_FILTERED}};
    store_put items[25];
    char raws[25][32];
    for (int i = 0; i < 25; i++) {
        snprintf(raws[i], sizeof raws[i], "MSH|message %d", i);
        items[i] = msg("adt", raws[i], T0 + i, dests, 2);
    }
    int64_t ids[25];
    store_error err;
    ok(store_put_batch(f->s, items, 25, ids, &err), &err);
    store_put lab[3] = {msg("lab", "L", T0, dests, 1), msg("lab", "L", T0, dests, 1),
                        msg("lab", "L", T0, dests, 1)};
    ok(store_put_batch(f->s, lab, 3, NULL, &err), &err);

    assert_int_equal(queued(f, "adt", "down"), 25);
    assert_int_equal(queued(f, "lab", "down"), 3); /* same name, other channel */
    assert_int_equal(queued(f, "adt", "arch"), 0);
    assert_int_equal(queued(f, "adt", "nowhere"), 0);

    store_queue_batch b = STORE_QUEUE_BATCH_INIT;
    int64_t cursor = 0;
    size_t seen = 0;
    for (int page = 0; page < 4; page++) {
        ok(store_queue_next(f->s, "adt", "down", cursor, T0 + 100, 10, &b, &err), &err);
        assert_int_equal(b.n, page < 2 ? 10 : page == 2 ? 5 : 0);
        for (size_t i = 0; i < b.n; i++) {
            assert_int_equal(b.items[i].message_id, ids[seen]);
            assert_int_equal(b.items[i].attempts, 0);
            assert_int_equal(b.items[i].received_at, T0 + (int64_t)seen);
            assert_int_equal(b.items[i].raw_len, strlen(raws[seen]));
            assert_memory_equal(b.items[i].raw, raws[seen], b.items[i].raw_len);
            seen++;
        }
        if (b.n) cursor = b.items[b.n - 1].message_id;
    }
    assert_int_equal(seen, 25);
    ok(store_queue_next(f->s, "adt", "nowhere", 0, T0, 10, &b, &err), &err);
    assert_int_equal(b.n, 0);
    assert_int_equal(store_queue_next(f->s, "adt", NULL, 0, T0, 10, &b, &err), STORE_ERR_ARG);

    /* a batch of outcomes in one transaction */
    store_mark marks[3] = {{"adt", "down", ids[0], STORE_SENT, 0, NULL},
                           {"adt", "down", ids[1], STORE_SENT, 0, NULL},
                           {"adt", "gone", ids[2], STORE_SENT, 0, NULL}}; /* skipped */
    ok(store_mark_batch(f->s, marks, 3, T0 + 200, &err), &err);
    assert_int_equal(queued(f, "adt", "down"), 23);
    ok(store_queue_next(f->s, "adt", "down", 0, T0 + 300, 1, &b, &err), &err);
    assert_int_equal(b.items[0].message_id, ids[2]);
    store_queue_batch_free(&b);

    /* The queue is read from its partial index, in id order, without a sort. */
    sqlite3_stmt *st;
    char sql[1024];
    snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", SQL[ST_QUEUE_NEXT]);
    assert_int_equal(sqlite3_prepare_v2(db_of(f), sql, -1, &st, NULL), SQLITE_OK);
    tbuf plan = TBUF_INIT;
    while (sqlite3_step(st) == SQLITE_ROW)
        tbuf_printf(&plan, "%s\n", sqlite3_column_text(st, 3));
    sqlite3_finalize(st);
    assert_non_null(strstr(plan.p, "deliveries_queued"));
    assert_null(strstr(plan.p, "TEMP B-TREE"));
    tbuf_free(&plan);
}

static void test_retry_schedule(void **state)
{
    fixture *f = *state;
    store_dest d = {"down", STORE_DLV_QUEUED};
    store_put items[3] = {msg("adt", "A", T0, &d, 1), msg("adt", "B", T0, &d, 1),
                          msg("adt", "C", T0, &d, 1)};
    int64_t ids[3];
    store_error err;
    ok(store_put_batch(f->s, items, 3, ids, &err), &err);
    mark(f, "adt", "down", ids[0], STORE_RETRY, T0 + 5000, "connection refused", T0 + 10);

    store_queue_batch b = STORE_QUEUE_BATCH_INIT;
    ok(store_queue_next(f->s, "adt", "down", 0, T0 + 4999, 10, &b, &err), &err);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.items[0].message_id, ids[1]);
    ok(store_queue_next(f->s, "adt", "down", 0, T0 + 5000, 10, &b, &err), &err);
    assert_int_equal(b.n, 3);
    assert_int_equal(b.items[0].message_id, ids[0]);
    assert_int_equal(b.items[0].attempts, 1);
    assert_int_equal(b.items[0].next_attempt_at, T0 + 5000);
    /* strict order: the head, whatever its retry time */
    ok(store_queue_next(f->s, "adt", "down", 0, INT64_MAX, 1, &b, &err), &err);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.items[0].message_id, ids[0]);
    assert_int_equal(b.items[0].next_attempt_at, T0 + 5000);
    store_queue_batch_free(&b);
    assert_int_equal(queued(f, "adt", "down"), 3);

    store_message m = STORE_MESSAGE_INIT;
    get(f, ids[0], &m);
    assert_int_equal(m.deliveries[0].state, STORE_DLV_QUEUED);
    assert_string_equal(m.deliveries[0].last_error, "connection refused");
    assert_int_equal(m.deliveries[0].updated_at, T0 + 10);
    mark(f, "adt", "down", ids[0], STORE_SENT, 0, NULL, T0 + 5001);
    get(f, ids[0], &m);
    assert_int_equal(m.deliveries[0].state, STORE_DLV_SENT);
    assert_int_equal(m.deliveries[0].attempts, 2);
    assert_null(m.deliveries[0].last_error);
    /* a late RETRY for a delivery that is no longer queued changes nothing */
    mark(f, "adt", "down", ids[0], STORE_RETRY, T0 + 9000, "late", T0 + 5002);
    get(f, ids[0], &m);
    assert_int_equal(m.deliveries[0].state, STORE_DLV_SENT);
    store_message_free(&m);
}

static void test_error_queue(void **state)
{
    fixture *f = *state;
    store_dest d = {"down", STORE_DLV_QUEUED};
    store_put items[2] = {msg("adt", "A", T0, &d, 1), msg("adt", "B", T0, &d, 1)};
    int64_t ids[2];
    store_error err;
    ok(store_put_batch(f->s, items, 2, ids, &err), &err);
    mark(f, "adt", "down", ids[0], STORE_FAILED, 0, "AR: MSH-9 not supported", T0 + 1);

    assert_int_equal(queued(f, "adt", "down"), 1);
    store_queue_batch b = STORE_QUEUE_BATCH_INIT;
    ok(store_queue_next(f->s, "adt", "down", 0, INT64_MAX, 10, &b, &err), &err);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.items[0].message_id, ids[1]);
    store_queue_batch_free(&b);

    store_message m = STORE_MESSAGE_INIT;
    get(f, ids[0], &m);
    assert_int_equal(m.deliveries[0].state, STORE_DLV_ERROR);
    assert_int_equal(m.deliveries[0].attempts, 1);
    assert_string_equal(m.deliveries[0].last_error, "AR: MSH-9 not supported");
    store_message_free(&m);

    collected c = {0};
    assert_int_equal(list(f, &(store_filter){.dlv_state = STORE_DLV_ERROR}, &c), 1);
    assert_int_equal(c.ids[0], ids[0]);
}

static void test_reopen_resumes_queues(void **state)
{
    fixture *f = *state;
    store_dest d[] = {{"down", STORE_DLV_QUEUED}, {"arch", STORE_DLV_QUEUED}};
    store_put items[5];
    for (int i = 0; i < 5; i++)
        items[i] = msg("adt", "M", T0 + i, d, 2);
    int64_t ids[5];
    store_error err;
    ok(store_put_batch(f->s, items, 5, ids, &err), &err);
    mark(f, "adt", "down", ids[0], STORE_SENT, 0, NULL, T0);
    mark(f, "adt", "down", ids[1], STORE_SENT, 0, NULL, T0);
    mark(f, "adt", "down", ids[2], STORE_RETRY, T0 + 60000, "timeout", T0);
    reopen(f);
    assert_int_equal(queued(f, "adt", "down"), 3);
    assert_int_equal(queued(f, "adt", "arch"), 5);
    store_queue_batch b = STORE_QUEUE_BATCH_INIT;
    ok(store_queue_next(f->s, "adt", "down", 0, T0 + 1, 10, &b, &err), &err);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.items[0].message_id, ids[3]);
    assert_int_equal(b.items[1].message_id, ids[4]);
    ok(store_queue_next(f->s, "adt", "down", 0, T0 + 60000, 10, &b, &err), &err);
    assert_int_equal(b.n, 3);
    assert_int_equal(b.items[0].attempts, 1);
    store_queue_batch_free(&b);
}

/* Several handles in one process (the engine's writer, reader and
 * checkpointer) must not disturb each other's POSIX locks: opening a second
 * handle once dropped the first one's locks, so another process (here a
 * child doing what the sqlite3 shell does) believed it was alone, and on
 * closing checkpointed and deleted the WAL that the first handle went on
 * writing to; later commits were lost. */
static void test_second_handle_keeps_locks(void **state)
{
    fixture *f = *state;
    store_error err;
    store_options o = {.checkpoint_pages = -1};
    store *writer = NULL, *other = NULL;
    ok(topen(f->path, &o, &writer, &err), &err);
    store_dest d[] = {{"down", STORE_DLV_QUEUED}};
    store_put p = msg("adt", "MSH|first", T0, d, 1);
    ok(store_put_batch(writer, &p, 1, NULL, &err), &err);
    ok(topen(f->path, &o, &other, &err), &err); /* the second handle */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* a fresh process (exec: a forked copy would inherit SQLite's idea
         * of this process's locks); on closing it would checkpoint and
         * delete the WAL if it believed it was alone */
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
        execlp("sqlite3", "sqlite3", f->path, "SELECT count(*) FROM messages", (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        store_close(other);
        store_close(writer);
        skip(); /* no sqlite3 shell (scripts/deps.sh installs it) */
    }
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char wal[sizeof f->path + 8];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    assert_int_equal(access(wal, F_OK), 0); /* still there: our locks held */
    p = msg("adt", "MSH|second", T0 + 1, d, 1);
    ok(store_put_batch(writer, &p, 1, NULL, &err), &err);
    store_close(other);
    /* and a new handle sees both commits */
    uint64_t n = 0;
    ok(store_queue_count(f->s, "adt", "down", &n, &err), &err);
    assert_int_equal(n, 2);
    store_close(writer);
}

/* --- operator actions ----------------------------------------------------------- */

typedef struct audits {
    char action[4][16];
    char who[4][16];
    char why[4][32];
    char what[4][160];
    size_t n;
} audits;

static bool collect_audit(void *ctx, const store_audit_entry *e)
{
    audits *a = ctx;
    if (a->n == 4) return false;
    snprintf(a->action[a->n], sizeof a->action[0], "%s", e->action);
    snprintf(a->who[a->n], sizeof a->who[0], "%s", e->who);
    snprintf(a->why[a->n], sizeof a->why[0], "%s", e->why);
    snprintf(a->what[a->n], sizeof a->what[0], "%s", e->what);
    a->n++;
    return true;
}

static void read_audit(fixture *f, audits *a)
{
    store_error err;
    memset(a, 0, sizeof *a);
    ok(store_audit_list(f->s, 4, collect_audit, a, &err), &err);
}

/* One message with archive sent, down failed, lab filtered. */
static int64_t delivered_partly(fixture *f, const char *channel)
{
    store_dest d[] = {
        {"archive", STORE_DLV_QUEUED}, {"down", STORE_DLV_QUEUED}, {"lab", STORE_DLV_FILTERED}};
    store_put p = msg(channel, "MSH|original", T0, d, 3);
    int64_t id = put1(f, &p);
    mark(f, channel, "archive", id, STORE_SENT, 0, NULL, T0 + 1);
    mark(f, channel, "down", id, STORE_FAILED, 0, "AE: bad PID", T0 + 1);
    return id;
}

static void test_reprocess(void **state)
{
    fixture *f = *state;
    int64_t id = delivered_partly(f, "adt");
    store_counts c;
    store_error err;

    /* default: only what did not succeed */
    store_reprocess_req req = {.ids = &id, .n_ids = 1};
    ok(store_reprocess_count(f->s, &req, &c, &err), &err);
    assert_int_equal(c.messages, 1);
    assert_int_equal(c.deliveries, 1);
    store_message m = STORE_MESSAGE_INIT;
    get(f, id, &m);
    assert_int_equal(delivery(&m, "down")->state, STORE_DLV_ERROR); /* dry run changed nothing */
    ok(store_reprocess(f->s, &req, &WHO, T0 + 100, &c, &err), &err);
    assert_int_equal(c.deliveries, 1);
    get(f, id, &m);
    assert_int_equal(delivery(&m, "archive")->state, STORE_DLV_SENT);
    assert_int_equal(delivery(&m, "down")->state, STORE_DLV_QUEUED);
    assert_int_equal(delivery(&m, "down")->attempts, 0);
    assert_int_equal(delivery(&m, "down")->next_attempt_at, T0 + 100);
    assert_int_equal(delivery(&m, "lab")->state, STORE_DLV_FILTERED);

    /* a named destination is resent even though it succeeded */
    const char *archive = "archive";
    req = (store_reprocess_req){.ids = &id, .n_ids = 1, .dests = &archive, .n_dests = 1};
    ok(store_reprocess_count(f->s, &req, &c, &err), &err);
    assert_int_equal(c.deliveries, 1);
    ok(store_reprocess(f->s, &req, &WHO, T0 + 200, &c, &err), &err);
    get(f, id, &m);
    assert_int_equal(delivery(&m, "archive")->state, STORE_DLV_QUEUED);
    store_message_free(&m);
    assert_int_equal(queued(f, "adt", "archive"), 1);

    /* by filter: the error queue of one channel */
    int64_t e1 = delivered_partly(f, "adt");
    int64_t e2 = delivered_partly(f, "adt");
    delivered_partly(f, "lab-in");
    req = (store_reprocess_req){.dlv_state = STORE_DLV_ERROR, .channel = "adt"};
    ok(store_reprocess_count(f->s, &req, &c, &err), &err);
    assert_int_equal(c.messages, 2);
    assert_int_equal(c.deliveries, 2);
    req.channel = NULL;
    ok(store_reprocess_count(f->s, &req, &c, &err), &err);
    assert_int_equal(c.messages, 3);
    req.channel = "adt";
    ok(store_reprocess(f->s, &req, &(store_audit){"bob", NULL}, T0 + 300, &c, &err), &err);
    assert_int_equal(c.messages, 2);
    store_queue_batch b = STORE_QUEUE_BATCH_INIT;
    ok(store_queue_next(f->s, "adt", "down", id, T0 + 300, 10, &b, &err), &err);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.items[0].message_id, e1);
    assert_int_equal(b.items[1].message_id, e2);
    store_queue_batch_free(&b);

    audits a;
    read_audit(f, &a);
    assert_int_equal(a.n, 3);
    assert_string_equal(a.action[0], "reprocess");
    assert_string_equal(a.who[0], "bob");
    assert_string_equal(a.why[0], "");
    assert_non_null(strstr(a.what[0], "state error of channel adt"));
    assert_non_null(strstr(a.what[0], "2 messages, 2 deliveries"));
    assert_string_equal(a.who[1], "alice");
    assert_string_equal(a.why[1], "ticket 42");
    assert_non_null(strstr(a.what[1], "destinations archive"));

    /* refused without a user or a selection */
    assert_int_equal(store_reprocess(f->s, &req, &(store_audit){"", NULL}, T0, &c, &err),
                     STORE_ERR_ARG);
    assert_int_equal(store_reprocess_count(f->s, &(store_reprocess_req){0}, &c, &err),
                     STORE_ERR_ARG);
}

static void test_reprocess_by_filter_in_chunks(void **state)
{
    fixture *f = *state;
    size_t n = STORE_CHUNK + 37;
    store_dest d = {"down", STORE_DLV_QUEUED};
    store_put *items = calloc(n, sizeof *items);
    int64_t *ids = calloc(n, sizeof *ids);
    store_mark *marks = calloc(n, sizeof *marks);
    for (size_t i = 0; i < n; i++)
        items[i] = msg("adt", "M", T0, &d, 1);
    store_error err;
    ok(store_put_batch(f->s, items, n, ids, &err), &err);
    for (size_t i = 0; i < n; i++)
        marks[i] = (store_mark){"adt", "down", ids[i], STORE_FAILED, 0, "x"};
    ok(store_mark_batch(f->s, marks, n, T0, &err), &err);
    assert_int_equal(queued(f, "adt", "down"), 0);
    store_counts c;
    store_reprocess_req req = {.dlv_state = STORE_DLV_ERROR};
    ok(store_reprocess_count(f->s, &req, &c, &err), &err);
    assert_int_equal(c.messages, n);
    ok(store_reprocess(f->s, &req, &WHO, T0, &c, &err), &err);
    assert_int_equal(c.deliveries, n);
    assert_int_equal(queued(f, "adt", "down"), n);
    free(items);
    free(ids);
    free(marks);
}

static void test_edit_keeps_original(void **state)
{
    fixture *f = *state;
    int64_t id = delivered_partly(f, "adt");
    const char *fixed = "MSH|corrected\rPID|1||NEWPAT\r";
    store_meta meta = {"ADT^A08", "CTRL2", "SENDAPP", "SENDFAC", NULL, NULL, "NEWPAT", NULL, 0, NULL};
    int64_t rev2 = 0;
    size_t requeued = 0;
    store_error err;
    ok(store_edit(f->s, id, fixed, strlen(fixed), &meta, NULL, 0, &WHO, T0 + 50, &rev2, &requeued,
                  &err),
       &err);
    assert_true(rev2 > id);
    assert_int_equal(requeued, 1);

    store_message m = STORE_MESSAGE_INIT;
    get(f, id, &m);
    assert_memory_equal(m.raw, "MSH|original", 12);
    assert_int_equal(m.sum.revision, 1);
    assert_int_equal(delivery(&m, "archive")->state, STORE_DLV_SENT);
    assert_int_equal(delivery(&m, "down")->state, STORE_DLV_SUPERSEDED);
    assert_non_null(strstr(delivery(&m, "down")->last_error, "superseded by message"));

    get(f, rev2, &m);
    assert_int_equal(m.sum.revision, 2);
    assert_int_equal(m.sum.original_id, id);
    assert_int_equal(m.sum.received_at, T0);
    assert_string_equal(m.sum.meta.patient_id, "NEWPAT");
    assert_string_equal(m.sum.meta.msh9, "ADT^A08");
    assert_int_equal(m.sum.raw_len, strlen(fixed));
    assert_memory_equal(m.raw, fixed, strlen(fixed));
    assert_int_equal(m.n_deliveries, 1);
    assert_int_equal(delivery(&m, "down")->state, STORE_DLV_QUEUED);

    store_queue_batch b = STORE_QUEUE_BATCH_INIT;
    ok(store_queue_next(f->s, "adt", "down", 0, T0 + 50, 10, &b, &err), &err);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.items[0].message_id, rev2);
    store_queue_batch_free(&b);

    /* Reprocessing the original cannot resend the superseded delivery. */
    store_counts c;
    ok(store_reprocess_count(f->s, &(store_reprocess_req){.ids = &id, .n_ids = 1}, &c, &err), &err);
    assert_int_equal(c.deliveries, 0);

    /* A second edit, naming a destination that had succeeded, is revision 3. */
    const char *archive = "archive";
    int64_t rev3;
    ok(store_edit(f->s, rev2, fixed, strlen(fixed), &meta, &archive, 1, &WHO, T0 + 60, &rev3,
                  &requeued, &err),
       &err);
    assert_int_equal(requeued, 1);
    get(f, rev3, &m);
    assert_int_equal(m.sum.revision, 3);
    assert_int_equal(m.sum.original_id, id);
    get(f, id, &m);
    assert_int_equal(delivery(&m, "archive")->state, STORE_DLV_SENT); /* history stays */
    assert_int_equal(queued(f, "adt", "archive"), 1);

    /* A rejected message has no deliveries: naming them routes the fix. */
    store_put rej = msg("adt", "broken", T0, NULL, 0);
    rej.state = STORE_MSG_REJECTED;
    int64_t rid = put1(f, &rej);
    const char *down = "down";
    int64_t rfix;
    ok(store_edit(f->s, rid, fixed, strlen(fixed), &meta, &down, 1, &WHO, T0, &rfix, NULL, &err),
       &err);
    get(f, rfix, &m);
    assert_int_equal(delivery(&m, "down")->state, STORE_DLV_QUEUED);
    store_message_free(&m);

    audits a;
    read_audit(f, &a);
    assert_string_equal(a.action[0], "edit");
    assert_non_null(strstr(a.what[2], "revision 2"));

    assert_int_equal(
        store_edit(f->s, 424242, fixed, 3, &meta, NULL, 0, &WHO, T0, &rfix, NULL, &err),
        STORE_ERR_NOT_FOUND);
    assert_int_equal(rfix, 0);
}

static off_t file_size(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_size;
}

/* The number of NNNNNNNN.seg files in the body log directory dir. */
static int count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".seg") != NULL;
    closedir(d);
    return n;
}

static void test_prune_frees_space(void **state)
{
    fixture *f = *state;
    enum { OLD = 2500 };
    static char big[2048];
    memset(big, 'x', sizeof big - 1);
    store_dest sent = {"arch", STORE_DLV_FILTERED};
    store_dest waiting = {"down", STORE_DLV_QUEUED};
    store_put *items = calloc(OLD, sizeof *items);
    for (int i = 0; i < OLD; i++)
        items[i] = msg("adt", big, T0 - 40 * DAY + i, &sent, 1);
    items[7].dests = &waiting; /* old but still queued: kept */
    int64_t *ids = calloc(OLD, sizeof *ids);
    store_error err;
    /* Small body segments, so that pruning can free whole ones: batches of
     * 100 bodies (200 KB) fill about one segment each. */
    store_close(f->s);
    store_options opt = {.segment_bytes = 256 << 10};
    ok(topen(f->path, &opt, &f->s, &err), &err);
    for (int i = 0; i < OLD; i += 100)
        ok(store_put_batch(f->s, items + i, 100, ids + i, &err), &err);
    store_put fresh = msg("adt", big, T0, &sent, 1);
    int64_t fresh_id = put1(f, &fresh);
    char bodies[160];
    snprintf(bodies, sizeof bodies, "%s-bodies", f->path);
    int segs_before = count_segments(bodies);
    assert_true(segs_before >= OLD / 200);

    sqlite3_wal_checkpoint_v2(db_of(f), NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    off_t before = file_size(f->path);
    store_prune_result r;
    ok(store_prune(f->s, T0 - 30 * DAY, &WHO, T0, &r, &err), &err);
    assert_int_equal(r.messages, OLD - 1);
    assert_true(r.bytes_freed > (uint64_t)OLD * 1024);
    off_t after = file_size(f->path);
    assert_true(after < before / 4);
    /* what is left: the segment of the queued message and the newest one */
    assert_int_equal(count_segments(bodies), 2);
    assert_int_equal(pragma(f, "PRAGMA freelist_count"), 0);

    store_message m = STORE_MESSAGE_INIT;
    assert_int_equal(store_get(f->s, ids[0], &m, &err), STORE_ERR_NOT_FOUND);
    get(f, ids[7], &m);
    get(f, fresh_id, &m);
    store_message_free(&m);
    assert_int_equal(queued(f, "adt", "down"), 1);
    assert_int_equal(pragma(f, "SELECT count(*) FROM deliveries"), 2);

    audits a;
    read_audit(f, &a);
    assert_string_equal(a.action[0], "prune");
    assert_non_null(strstr(a.what[0], "2499 deleted"));

    /* nothing left to prune */
    ok(store_prune(f->s, T0 - 30 * DAY, &WHO, T0, &r, &err), &err);
    assert_int_equal(r.messages, 0);
    free(items);
    free(ids);
}

static bool dir_holds(const char *dir, const char *needle, char *where, size_t cap);

/* True when some file of the body log holds text. */
static bool bodies_hold(const char *dir, const char *text)
{
    char where[512];
    return dir_holds(dir, text, where, sizeof where);
}

/* Pruning blanks the bodies of deleted messages in a segment that still
 * holds live ones; the live ones stay readable, also after a reopen, whose
 * recovery walks over the blanked record; a channel is pruned alone when
 * named. */
static void test_prune_wipes_bodies(void **state)
{
    fixture *f = *state;
    store_dest sent = {"arch", STORE_DLV_FILTERED};
    store_put a = msg("a", "MSH|^~\\&|OLD-SECRET-A", T0 - 40 * DAY, &sent, 1);
    store_put b = msg("b", "MSH|^~\\&|OLD-SECRET-B", T0 - 40 * DAY, &sent, 1);
    store_put c = msg("a", "MSH|^~\\&|YOUNG-KEPT-C", T0, &sent, 1);
    int64_t ia = put1(f, &a), ib = put1(f, &b), ic = put1(f, &c);
    char bodies[160];
    snprintf(bodies, sizeof bodies, "%s-bodies", f->path);
    assert_int_equal(count_segments(bodies), 1);
    if (!g_keys) assert_true(bodies_hold(bodies, "OLD-SECRET-A"));

    store_error err;
    store_prune_result r;
    uint64_t n;
    ok(store_prune_count_channel(f->s, "a", T0 - 30 * DAY, &n, &err), &err);
    assert_int_equal(n, 1);
    ok(store_prune_channel(f->s, "a", T0 - 30 * DAY, &WHO, T0, &r, &err), &err);
    assert_int_equal(r.messages, 1);
    ok(store_prune_count_channel(f->s, "b", T0 - 30 * DAY, &n, &err), &err);
    assert_int_equal(n, 1);
    store_message m = STORE_MESSAGE_INIT;
    assert_int_equal(store_get(f->s, ia, &m, &err), STORE_ERR_NOT_FOUND);
    assert_false(bodies_hold(bodies, "OLD-SECRET-A"));
    if (!g_keys) assert_true(bodies_hold(bodies, "OLD-SECRET-B"));

    reopen(f);
    get(f, ib, &m);
    assert_non_null(strstr(m.raw, "OLD-SECRET-B"));
    get(f, ic, &m);
    assert_non_null(strstr(m.raw, "YOUNG-KEPT-C"));
    assert_int_equal(store_get(f->s, ia, &m, &err), STORE_ERR_NOT_FOUND);
    store_message_free(&m);
}

/* The body log: bodies are outside the rows, read back exactly, and a
 * damaged record is reported, never returned. */
static void test_body_log_damage(void **state)
{
    fixture *f = *state;
    store_put p = msg("adt", "MSH|^~\\&|A|B\rPID|1||SECRET-BODY\r", T0, NULL, 0);
    int64_t id = put1(f, &p);
    assert_int_equal(pragma(f, "SELECT count(*) FROM messages WHERE length(raw) = 0"
                               " AND body_seg = 1 AND body_off = 0"),
                     1);
    store_message m = STORE_MESSAGE_INIT;
    get(f, id, &m);
    assert_int_equal(m.sum.raw_len, strlen(p.raw));
    assert_memory_equal(m.raw, p.raw, strlen(p.raw));

    char seg[192];
    snprintf(seg, sizeof seg, "%s-bodies/00000001.seg", f->path);
    int fd = open(seg, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "X", 1, BLOB_HEADER + 20), 1);
    close(fd);
    store_error err;
    assert_int_equal(store_get(f->s, id, &m, &err), STORE_ERR_CORRUPT);
    assert_non_null(strstr(err.text, "checksum mismatch"));
    assert_non_null(strstr(err.text, "message "));
    assert_int_equal(truncate(seg, BLOB_HEADER + 5), 0);
    assert_int_equal(store_get(f->s, id, &m, &err), STORE_ERR_CORRUPT);
    assert_non_null(strstr(err.text, "ends early"));
    store_message_free(&m);
}

/* A crash can leave a torn record at the end of the newest segment: the
 * next writer appends after it and everything committed reads back. A
 * second handle cannot write the log and keeps its bodies in the rows. */
static void test_body_log_torn_tail_and_second_writer(void **state)
{
    fixture *f = *state;
    store_put a = msg("adt", "MSH|^~\\&|FIRST\r", T0, NULL, 0);
    int64_t id_a = put1(f, &a);
    store_close(f->s);
    char seg[192];
    snprintf(seg, sizeof seg, "%s-bodies/00000001.seg", f->path);
    int fd = open(seg, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "TBR1\x40\0\0\0torn", 12), 12); /* half a record */
    close(fd);

    store_error err;
    ok(topen(f->path, NULL, &f->s, &err), &err);
    store_put b = msg("adt", "MSH|^~\\&|SECOND\r", T0 + 1, NULL, 0);
    int64_t id_b = put1(f, &b);
    store *other;
    ok(topen(f->path, NULL, &other, &err), &err);
    store_put c = msg("adt", "MSH|^~\\&|THIRD\r", T0 + 2, NULL, 0);
    int64_t id_c = 0;
    ok(store_put_batch(other, &c, 1, &id_c, &err), &err);
    assert_int_equal(pragma(f, "SELECT count(*) FROM messages WHERE body_seg IS NULL"), 1);

    const store_put *want[] = {&a, &b, &c};
    int64_t ids[] = {id_a, id_b, id_c};
    store_message m = STORE_MESSAGE_INIT;
    for (int i = 0; i < 3; i++) {
        store *h = i % 2 ? other : f->s;
        ok(store_get(h, ids[i], &m, &err), &err);
        assert_int_equal(m.sum.raw_len, strlen(want[i]->raw));
        assert_memory_equal(m.raw, want[i]->raw, m.sum.raw_len);
    }
    store_message_free(&m);
    store_close(other);
}

typedef struct id_list {
    int64_t *ids;
    size_t n, cap;
} id_list;

static bool collect_id(void *ctx, const store_summary *m)
{
    id_list *l = ctx;
    if (l->n < l->cap) l->ids[l->n++] = m->id;
    return true;
}

static size_t list_ids(fixture *f, const store_filter *flt, int64_t *ids, size_t cap)
{
    id_list l = {ids, 0, cap};
    store_error err;
    ok(store_list(f->s, flt, collect_id, &l, &err), &err);
    return l.n;
}

/* A power loss may take the last commits from the database (the writer does
 * not sync it) but not from the body log, which was synced before the ACK:
 * reopening as the writer rebuilds those rows from the log's records. */
static void test_body_log_recovery(void **state)
{
    fixture *f = *state;
    store_error err;
    store_close(f->s);
    store_options wo = {.writer = true};
    ok(topen(f->path, &wo, &f->s, &err), &err);
    assert_int_equal(pragma(f, "PRAGMA synchronous"), 1); /* NORMAL: the log syncs */

    store_dest dests[2] = {{"out", STORE_DLV_QUEUED}, {"arch", STORE_DLV_FILTERED}};
    const char *orders[] = {"ORD-1", "FIL-9"};
    store_put p[4];
    int64_t ids[4];
    for (int i = 0; i < 4; i++) {
        static char raws[4][32];
        snprintf(raws[i], sizeof raws[i], "MSH|^~\\&|R%d\rPID|1||P%d\r", i, i);
        p[i] = msg("lab", raws[i], T0 + i, dests, 2);
        if (i == 3) {
            p[i].state = STORE_MSG_REJECTED;
            p[i].error = "PID-3 missing";
            p[i].meta.order_ids = orders;
            p[i].meta.n_order_ids = 2;
            p[i].meta.patient_id = NULL;
        }
    }
    ok(store_put_batch(f->s, p, 2, ids, &err), &err);
    ok(store_put_batch(f->s, p + 2, 2, ids + 2, &err), &err);

    /* What a lost last commit looks like: rows and end mark of batch 2 gone. */
    char sql[256];
    int64_t end2 = pragma(f, "SELECT off FROM body_log");
    int64_t start2 = 0;
    {
        char q2[128];
        snprintf(q2, sizeof q2, "SELECT body_off FROM messages WHERE id = %" PRId64, ids[2]);
        start2 = pragma(f, q2);
    }
    assert_true(start2 > 0 && end2 > start2);
    snprintf(sql, sizeof sql,
             "DELETE FROM deliveries WHERE message_id >= %" PRId64 ";"
             "DELETE FROM message_keys WHERE message_id >= %" PRId64 ";"
             "DELETE FROM messages WHERE id >= %" PRId64 ";"
             "UPDATE body_log SET off = %" PRId64,
             ids[2], ids[2], ids[2], start2);
    assert_int_equal(sqlite3_exec(db_of(f), sql, NULL, NULL, NULL), SQLITE_OK);
    store_close(f->s);
    /* and a torn record after them, as a crash mid-append leaves */
    char seg[192];
    snprintf(seg, sizeof seg, "%s-bodies/00000001.seg", f->path);
    int fd = open(seg, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "TBR1\x40\0\0\0\0\0\0\0torn", 16), 16);
    close(fd);

    ok(topen(f->path, &wo, &f->s, &err), &err);
    assert_int_equal(sq(f->s)->recovered, 2);
    assert_int_equal(file_size(seg), end2); /* the torn record is cut off */
    assert_int_equal(pragma(f, "SELECT off FROM body_log"), end2);
    assert_int_equal(pragma(f, "SELECT count(*) FROM messages"), 4);
    assert_int_equal(queued(f, "lab", "out"), 4);

    store_filter flt = {.order_id = "FIL-9"};
    int64_t found[2];
    size_t nfound = list_ids(f, &flt, found, 2);
    assert_int_equal(nfound, 1);
    store_message m = STORE_MESSAGE_INIT;
    get(f, found[0], &m);
    assert_int_equal(m.sum.state, STORE_MSG_REJECTED);
    assert_string_equal(m.sum.error, "PID-3 missing");
    assert_null(m.sum.meta.patient_id);
    assert_string_equal(m.sum.meta.control_id, "CTRL1");
    assert_int_equal(m.sum.received_at, T0 + 3);
    assert_memory_equal(m.raw, p[3].raw, strlen(p[3].raw));
    assert_int_equal(m.n_deliveries, 2);
    assert_int_equal(m.deliveries[1].state, STORE_DLV_FILTERED);
    store_message_free(&m);

    /* reopening again brings back nothing more, and appending goes on */
    store_close(f->s);
    ok(topen(f->path, &wo, &f->s, &err), &err);
    assert_int_equal(sq(f->s)->recovered, 0);
    int64_t id5 = put1(f, &p[0]);
    get(f, id5, &m);
    assert_memory_equal(m.raw, p[0].raw, strlen(p[0].raw));
    store_message_free(&m);
}

/* Two-phase storing: logged batches are durable but unseen until indexed,
 * several are indexed in one transaction, a failed index can be retried,
 * and what was logged but never indexed comes back at the next open. */
static void test_log_then_index(void **state)
{
    fixture *f = *state;
    store_error err;
    store_close(f->s);
    store_options wo = {.writer = true};
    ok(topen(f->path, &wo, &f->s, &err), &err);
    store_dest dests[1] = {{"out", STORE_DLV_QUEUED}};
    static char raws[5][48];
    store_put p[5];
    for (int i = 0; i < 5; i++) {
        snprintf(raws[i], sizeof raws[i], "MSH|^~\\&|L%d\rPID|1||P%d\r", i, i);
        p[i] = msg("lab", raws[i], T0 + i, dests, 1);
    }
    store_logged *b[3];
    ok(store_log_batch(f->s, p, 2, &b[0], &err), &err);
    ok(store_log_batch(f->s, p + 2, 1, &b[1], &err), &err);
    assert_true(b[0]->durable && b[1]->durable);
    assert_int_equal(pragma(f, "SELECT count(*) FROM messages"), 0); /* not yet seen */

    /* a reader opened now waits for the rows, up to its limit */
    store *rd;
    store_options ro = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ok(topen(f->path, &ro, &rd, &err), &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 1500);
    store_close(rd);

    ok(store_index_batches(f->s, b, 2, &err), &err);
    assert_int_equal(pragma(f, "SELECT count(*) FROM messages"), 3);
    assert_int_equal(queued(f, "lab", "out"), 3);
    assert_int_equal(pragma(f, "SELECT last_id - first_id FROM body_segments"), 2);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ok(topen(f->path, &ro, &rd, &err), &err); /* caught up: no wait */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 1000);
    store_close(rd);
    store_logged_free(f->s, b[0]);
    store_logged_free(f->s, b[1]);

    /* logged, never indexed: the next writer brings the rows back */
    ok(store_log_batch(f->s, p + 3, 2, &b[2], &err), &err);
    store_logged_free(f->s, b[2]);
    store_close(f->s);
    ok(topen(f->path, &wo, &f->s, &err), &err);
    assert_int_equal(sq(f->s)->recovered, 2);
    assert_int_equal(pragma(f, "SELECT count(*) FROM messages"), 5);
    store_message m = STORE_MESSAGE_INIT;
    get(f, 5, &m);
    assert_memory_equal(m.raw, p[4].raw, strlen(p[4].raw));
    store_message_free(&m);

    /* without the writer lock, nothing is logged: the rows make it durable */
    store *other;
    ok(topen(f->path, &wo, &other, &err), &err);
    store_logged *inl;
    ok(store_log_batch(other, p, 1, &inl, &err), &err);
    assert_false(inl->durable);
    ok(store_index_batches(other, &inl, 1, &err), &err);
    store_logged_free(other, inl);
    store_close(other);
    assert_int_equal(pragma(f, "SELECT count(*) FROM messages"), 6);
}

/* Several logged batches are indexed as one run of rows (multi-row
 * statements across batch ends, store_sqlite.c flatten_logged), over body
 * segments that change between batches: every row keeps its own body and
 * deliveries, and body_segments covers each segment's ids exactly. */
static void test_index_batches_as_one_run(void **state)
{
    fixture *f = *state;
    store_error err;
    store_close(f->s);
    store_options wo = {.writer = true, .segment_bytes = 8192};
    ok(topen(f->path, &wo, &f->s, &err), &err);
    enum { N = 75 };
    static const size_t sizes[] = {20, 30, 25};
    store_dest dests[2] = {{"out", STORE_DLV_QUEUED}, {"arch", STORE_DLV_FILTERED}};
    static char raws[N][64];
    store_put p[N];
    for (int i = 0; i < N; i++) {
        snprintf(raws[i], sizeof raws[i], "MSH|^~\\&|R%d\rPID|1||P%d\r", i, i);
        p[i] = msg("lab", raws[i], T0 + i, dests, i % 3 ? 1 : 2);
    }
    store_logged *b[3];
    size_t at = 0;
    for (int i = 0; i < 3; i++) {
        ok(store_log_batch(f->s, p + at, sizes[i], &b[i], &err), &err);
        at += sizes[i];
    }
    ok(store_index_batches(f->s, b, 3, &err), &err);
    for (int i = 0; i < 3; i++) store_logged_free(f->s, b[i]);
    assert_int_equal(pragma(f, "SELECT count(*) FROM messages"), N);
    assert_true(pragma(f, "SELECT count(DISTINCT body_seg) FROM messages") >= 2);
    assert_int_equal(pragma(f, "SELECT count(*) FROM body_segments"),
                     pragma(f, "SELECT count(DISTINCT body_seg) FROM messages"));
    assert_int_equal(pragma(f, "SELECT count(*) FROM messages m JOIN body_segments s"
                               " ON s.seg = m.body_seg WHERE m.id BETWEEN s.first_id AND s.last_id"),
                     N);
    assert_int_equal(pragma(f, "SELECT count(*) FROM messages m, body_segments s WHERE"
                               " m.id BETWEEN s.first_id AND s.last_id AND m.body_seg <> s.seg"),
                     0);
    assert_int_equal(queued(f, "lab", "out"), N);
    store_message m = STORE_MESSAGE_INIT;
    for (int i = 0; i < N; i++) {
        get(f, i + 1, &m);
        assert_string_equal(m.raw, raws[i]);
        assert_int_equal(m.n_deliveries, i % 3 ? 1 : 2);
    }
    store_message_free(&m);
}

/* Journal records survive a round trip, and garbage never decodes. */
static void test_journal_decode(void **state)
{
    (void)state;
    store_dest dests[1] = {{"out", STORE_DLV_QUEUED}};
    store_put p = msg("adt", "x", T0, dests, 1);
    p.quality = (store_quality){STORE_Q_WARNINGS, 0x85, 0x05};
    tbuf b = TBUF_INIT;
    journal_encode(&p, &b);
    journal_scratch sc = {0};
    store_put back;
    assert_true(journal_decode(b.p, b.len, &back, &sc));
    assert_string_equal(back.channel, "adt");
    assert_string_equal(back.dests[0].name, "out");
    assert_int_equal(back.received_at, T0);
    assert_int_equal(back.quality.outcome, STORE_Q_WARNINGS);
    assert_int_equal(back.quality.applicable, 0x85);
    assert_int_equal(back.quality.present, 0x05);
    for (size_t cut = 0; cut < b.len; cut++)
        assert_false(journal_decode(b.p, cut, &back, &sc));
    for (size_t i = 0; i < b.len; i++) { /* flipping bytes must never crash */
        char *c = b.p + i;
        *c ^= 0x5a;
        (void)journal_decode(b.p, b.len, &back, &sc);
        *c ^= 0x5a;
    }
    journal_scratch_free(&sc);
    tbuf_free(&b);
}

static void test_duplicate_lookup(void **state)
{
    fixture *f = *state;
    store_put p[4] = {msg("adt", "A", T0, NULL, 0), msg("adt", "B", T0 + 10, NULL, 0),
                      msg("adt", "C", T0 + 20, NULL, 0), msg("adt", "D", T0 + 30, NULL, 0)};
    p[0].meta.send_fac = "FAC1";
    p[0].meta.control_id = "C1";
    p[1].meta.send_fac = "FAC2";
    p[1].meta.control_id = "C1";
    p[2].meta.send_fac = "FAC3";
    p[2].meta.control_id = "C3";
    p[2].state = STORE_MSG_REJECTED;
    p[3].meta.send_fac = NULL;
    p[3].meta.control_id = "C4";
    int64_t ids[4], found;
    store_error err;
    ok(store_put_batch(f->s, p, 4, ids, &err), &err);

    ok(store_find_duplicate(f->s, "FAC1", "C1", T0 - DAY, &found, &err), &err);
    assert_int_equal(found, ids[0]);
    ok(store_find_duplicate(f->s, "FAC2", "C1", T0 - DAY, &found, &err), &err);
    assert_int_equal(found, ids[1]);
    ok(store_find_duplicate(f->s, "FAC1", "C1", T0 + 1, &found, &err), &err); /* outside window */
    assert_int_equal(found, 0);
    ok(store_find_duplicate(f->s, "FAC3", "C3", 0, &found, &err), &err); /* rejected */
    assert_int_equal(found, 0);
    ok(store_find_duplicate(f->s, NULL, "C4", 0, &found, &err), &err);
    assert_int_equal(found, ids[3]);
    ok(store_find_duplicate(f->s, "", "C4", 0, &found, &err), &err);
    assert_int_equal(found, ids[3]);
    ok(store_find_duplicate(f->s, "FAC1", "", 0, &found, &err), &err);
    assert_int_equal(found, 0);

    sqlite3_stmt *st;
    char sql[512];
    snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", SQL[ST_DUP]);
    assert_int_equal(sqlite3_prepare_v2(db_of(f), sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_non_null(strstr((const char *)sqlite3_column_text(st, 3), "messages_control"));
    sqlite3_finalize(st);
}

/* --- scale: plans over 200k rows ----------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void expect_plan(fixture *f, const store_filter *flt, const char *index)
{
    tbuf plan = TBUF_INIT;
    store_error err;
    ok(store_list_plan(f->s, flt, &plan, &err), &err);
    if (!strstr(plan.p, index)) fail_msg("plan does not use %s:\n%s", index, plan.p);
    tbuf_free(&plan);
}

static void test_search_uses_indexes(void **state)
{
    fixture *f = *state;
    enum { ROWS = 200000, BATCH = 1000 };
    store_dest d = {"down", STORE_DLV_QUEUED};
    store_put items[BATCH];
    char keys[BATCH][3][16];
    double t = now_s();
    for (int base = 0; base < ROWS; base += BATCH) {
        for (int i = 0; i < BATCH; i++) {
            int n = base + i;
            snprintf(keys[i][0], 16, "PAT%d", n % 50000);
            snprintf(keys[i][1], 16, "CTL%d", n);
            snprintf(keys[i][2], 16, "FAC%d", n % 40);
            items[i] = msg(n % 2 ? "adt" : "lab", "MSH|^~\\&|A|B|C|D", T0 + n, &d, 1);
            items[i].meta.patient_id = keys[i][0];
            items[i].meta.control_id = keys[i][1];
            items[i].meta.send_fac = keys[i][2];
        }
        store_error err;
        ok(store_put_batch(f->s, items, BATCH, NULL, &err), &err);
    }
    double put_s = now_s() - t;

    expect_plan(f, &(store_filter){.patient_id = "PAT123"}, "patient_keys");
    expect_plan(f, &(store_filter){.patient_id = "PAT123", .channel = "adt", .since = T0},
                "patient_keys");
    expect_plan(f, &(store_filter){.control_id = "CTL99"}, "messages_control");
    expect_plan(f, &(store_filter){.control_id = "CTL99", .send_fac = "FAC19"}, "messages_control");
    expect_plan(f, &(store_filter){.send_fac = "FAC7", .channel = "adt"}, "messages_send_fac");
    expect_plan(f, &(store_filter){.send_fac = "FAC7", .patient_id = "PAT7"}, "patient_keys");
    expect_plan(f, &(store_filter){.channel = "adt"}, "messages_channel");
    expect_plan(f, &(store_filter){.dlv_state = STORE_DLV_ERROR}, "deliveries_error");

    collected c = {0};
    t = now_s();
    assert_int_equal(list(f, &(store_filter){.patient_id = "PAT123", .limit = 50}, &c), 4);
    assert_int_equal(list(f, &(store_filter){.control_id = "CTL199999"}, &c), 1);
    double search_ms = (now_s() - t) * 1e3;

    /* the queue of 100k: the last page costs what the first did */
    store_queue_batch b = STORE_QUEUE_BATCH_INIT;
    store_error err;
    t = now_s();
    ok(store_queue_next(f->s, "adt", "down", 0, T0, 100, &b, &err), &err);
    assert_int_equal(b.n, 100);
    ok(store_queue_next(f->s, "adt", "down", b.items[99].message_id + 99800, T0, 100, &b, &err),
       &err);
    assert_int_equal(b.n, 100);
    double queue_ms = (now_s() - t) * 1e3;
    store_queue_batch_free(&b);
    print_message("    %d rows stored in %.1f s; two searches %.2f ms; two queue pages %.2f ms\n",
                  ROWS, put_s, search_ms, queue_ms);
}

/* --- crash: kill -9 while writing ----------------------------------------------- */

/* The crash tests' message body: the payload, padded with 'x' to len. */
static char *crash_body(size_t len)
{
    static const char head[] = "MSH|^~\\&|crash test payload";
    if (len < sizeof head - 1) len = sizeof head - 1;
    char *b = malloc(len + 1);
    memset(b, 'x', len);
    memcpy(b, head, sizeof head - 1);
    b[len] = '\0';
    return b;
}

/* The child stores batches of 50 bodies of body_len bytes forever and,
 * after each commit returns, writes the batch's first and last id to the
 * pipe. */
static void crash_child(const char *path, int fd, size_t body_len)
{
    store *s;
    store_error err;
    if (topen(path, NULL, &s, &err) != STORE_OK) _exit(2);
    store_dest d = {"down", STORE_DLV_QUEUED};
    store_put items[50];
    int64_t ids[50];
    char *body = crash_body(body_len);
    for (int i = 0; i < 50; i++)
        items[i] = msg("adt", body, T0, &d, 1);
    for (;;) {
        if (store_put_batch(s, items, 50, ids, &err) != STORE_OK) _exit(3);
        int64_t range[2] = {ids[0], ids[49]};
        if (write(fd, range, sizeof range) != sizeof range) _exit(4);
    }
}

/* kill -9 while a child stores: every batch it reported is there, whole.
 * Bodies of 3,000 bytes make batches of 150 kB, whose segment space comes
 * from fallocate rather than written zeros (store_blob.c). */
static void crash_test(fixture *f, size_t body_len)
{
    store_close(f->s); /* the child is the only writer */
    f->s = NULL;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(seed);
    int delay_ms = 150 + rand() % 500;

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        crash_child(f->path, fds[1], body_len);
    }
    close(fds[1]);
    usleep((useconds_t)delay_ms * 1000);
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    /* Everything reported before the kill is still in the pipe. Writes of
     * 16 bytes are atomic, so there are no torn records. */
    size_t cap = 4096, n = 0;
    int64_t *ranges = malloc(cap * sizeof *ranges);
    ssize_t got;
    while ((got = read(fds[0], ranges + n, (cap - n) * sizeof *ranges)) > 0) {
        n += (size_t)got / sizeof *ranges;
        if (n == cap) ranges = realloc(ranges, (cap *= 2) * sizeof *ranges);
    }
    close(fds[0]);
    assert_true(n >= 2);

    store_error err;
    ok(topen(f->path, NULL, &f->s, &err), &err);
    int64_t last = ranges[n - 1];
    uint64_t expected = (uint64_t)(last - ranges[0] + 1);
    char sql[128];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM messages WHERE id BETWEEN %" PRId64 " AND %" PRId64, ranges[0],
             last);
    assert_int_equal(pragma(f, sql), (int64_t)expected);
    store_message m = STORE_MESSAGE_INIT;
    char *body = crash_body(body_len);
    get(f, last, &m);
    assert_int_equal(m.sum.raw_len, strlen(body));
    assert_memory_equal(m.raw, body, m.sum.raw_len);
    get(f, ranges[0], &m);
    assert_memory_equal(m.raw, body, m.sum.raw_len);
    free(body);
    store_message_free(&m);
    uint64_t q = queued(f, "adt", "down");
    assert_true(q >= expected);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db_of(f), "PRAGMA integrity_check", -1, &st, NULL), 0);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    print_message("    killed after %d ms (seed %u, bodies of %zu bytes): %" PRIu64
                  " acknowledged messages, all present; %" PRIu64 " queued\n",
                  delay_ms, seed, body_len, expected, q);
    free(ranges);
}

static void test_crash_durability(void **state)
{
    crash_test(*state, 0);
}

static void test_crash_durability_big_batches(void **state)
{
    crash_test(*state, 3000);
}

/* --- throughput (opt-in) ------------------------------------------------------------ */

/* Replaces the fixture's store by a new, empty one. */
static void fresh_store(fixture *f)
{
    char p[160];
    store_close(f->s);
    f->s = NULL;
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", f->path, (const char *[]){"", "-wal", "-shm"}[i]);
        unlink(p);
    }
    store_error err;
    ok(topen(f->path, NULL, &f->s, &err), &err);
}

static void test_bench_put_batch(void **state)
{
    const char *env = getenv("TERN_STORE_BENCH");
    if (!env) skip();
    fixture *f = *state;
    size_t total = (size_t)strtoul(env, NULL, 10);
    static const char adt[] =
        "MSH|^~\\&|EPIC|HOSP|TERN|LAB|20260101120000||ADT^A01^ADT_A01|MSG00001|P|2.5.1\r"
        "EVN|A01|20260101120000\r"
        "PID|1||123456^^^HOSP^MR~987654^^^SSA^SS||DOE^JOHN^Q^JR||19700101|M|||"
        "123 MAIN ST^^SPRINGFIELD^IL^62701^USA||(555)555-1234|||M|CHR|1234567890\r"
        "NK1|1|DOE^JANE|SPO|123 MAIN ST^^SPRINGFIELD^IL^62701^USA|(555)555-4321\r"
        "PV1|1|I|4WEST^401^A^HOSP||||1234^SMITH^JOHN^A^^^MD|||MED||||1|||"
        "1234^SMITH^JOHN^A^^^MD|IN||||||||||||||||||HOSP||||||20260101120000\r"
        "AL1|1|DA|PENICILLIN|SV|HIVES\r"
        "DG1|1|I10|R07.9^CHEST PAIN^I10|CHEST PAIN||A\r";
    store_dest d[] = {{"archive", STORE_DLV_QUEUED}, {"down", STORE_DLV_QUEUED}};
    size_t sizes[] = {100, 500, 1000};
    store_put *items = calloc(1000, sizeof *items);
    int64_t *ids = calloc(1000, sizeof *ids);
    char(*ctl)[24] = calloc(1000, sizeof *ctl);
    char(*pat)[24] = calloc(1000, sizeof *pat);
    size_t seq = 0;
    for (size_t k = 0; k < 3; k++) {
        size_t batch = sizes[k];
        fresh_store(f);
        double t = now_s();
        for (size_t done = 0; done < total; done += batch) {
            for (size_t i = 0; i < batch; i++, seq++) {
                snprintf(ctl[i], sizeof ctl[i], "MSG%zu", seq);
                snprintf(pat[i], sizeof pat[i], "%zu", (seq * 7919) % 1000003);
                items[i] = msg("adt-in", adt, T0 + (int64_t)seq, d, 2);
                items[i].meta.control_id = ctl[i];
                items[i].meta.patient_id = pat[i];
            }
            store_error err;
            ok(store_put_batch(f->s, items, batch, ids, &err), &err);
        }
        double s = now_s() - t;
        print_message("    store_put_batch, new store: %zu messages (%zu B, 2 destinations) in "
                      "batches of %zu: %.0f msgs/s\n",
                      total, sizeof adt - 1, batch, (double)total / s);
    }
    free(items);
    free(ids);
    free(ctl);
    free(pat);
}


/* Scans every file under dir for needle; returns the first path holding it. */
static bool dir_holds(const char *dir, const char *needle, char *where, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d) return false;
    struct dirent *e;
    bool found = false;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) {
            found = dir_holds(p, needle, where, cap);
            continue;
        }
        FILE *fp = fopen(p, "rb");
        if (!fp) continue;
        char *buf = malloc((size_t)sb.st_size + 1);
        size_t n = fread(buf, 1, (size_t)sb.st_size, fp);
        fclose(fp);
        if (memmem(buf, n, needle, strlen(needle))) {
            found = true;
            snprintf(where, cap, "%s", p);
        }
        free(buf);
    }
    closedir(d);
    return found;
}

/* Reopens the fixture's store as the writer, with the keyring (skips the
 * test when this run has none). */
static void keyed_writer(fixture *f, store_options *wo)
{
    if (!g_keys) skip();
    store_error err;
    store_close(f->s);
    *wo = (store_options){.writer = true};
    ok(topen(f->path, wo, &f->s, &err), &err);
}

/* With encryption, a logged batch's sealed copies are made in the scratch
 * of a batch freed before it (store_crypt.c's pool): reused memory must
 * hold the new batch's data, batch after batch, bigger and smaller. */
static void test_encryption_scratch_reuse(void **state)
{
    fixture *f = *state;
    store_error err;
    store_options wo;
    keyed_writer(f, &wo);
    static char raws[3][40][80];
    static char pats[3][40][40];
    static const size_t sizes[3] = {10, 40, 5};
    struct store_crypt *prev = NULL;
    int64_t id = 0;
    for (int r = 0; r < 3; r++) {
        store_put p[40];
        for (size_t i = 0; i < sizes[r]; i++) {
            snprintf(raws[r][i], sizeof raws[r][i], "MSH|^~\\&|round %d message %zu\r", r, i);
            snprintf(pats[r][i], sizeof pats[r][i], "MRN-%d-%zu", r, i);
            p[i] = msg("adt", raws[r][i], T0 + r, NULL, 0);
            p[i].meta.patient_id = pats[r][i];
        }
        store_logged *b;
        ok(store_log_batch(f->s, p, sizes[r], &b, &err), &err);
        if (prev) assert_ptr_equal(b->crypt, prev); /* the freed batch's scratch */
        ok(store_index_batches(f->s, &b, 1, &err), &err);
        prev = b->crypt;
        store_logged_free(f->s, b);
        store_message m = STORE_MESSAGE_INIT;
        for (size_t i = 0; i < sizes[r]; i++) {
            ok(store_get(f->s, ++id, &m, &err), &err);
            assert_string_equal(m.raw, raws[r][i]);
            assert_string_equal(m.sum.meta.patient_id, pats[r][i]);
        }
        store_message_free(&m);
    }
}

/* With a keyring: no PHI in any file of the store (database, WAL, body
 * log), searches by patient id and order number still work, and a handle
 * without the key refuses to hand out the sealed data. */
static void test_encryption_at_rest(void **state)
{
    fixture *f = *state;
    store_error err;
    store_options wo;
    keyed_writer(f, &wo);
    store_dest dests[1] = {{"out", STORE_DLV_QUEUED}};
    const char *orders[] = {"PLACER-SECRET-5"};
    const char *raw = "MSH|^~\\&|A|B\rPID|1||MRN-SECRET-77||SECRETSURNAME^JANE\r";
    store_put p[2];
    p[0] = msg("adt", raw, T0, dests, 1);
    p[0].meta.patient_id = "MRN-SECRET-77";
    p[0].meta.order_ids = orders;
    p[0].meta.n_order_ids = 1;
    p[1] = msg("adt", raw, T0 + 1, NULL, 0);
    p[1].state = STORE_MSG_REJECTED;
    p[1].error = "PID-5: SECRETSURNAME is too long";
    p[1].meta.patient_id = "MRN-SECRET-77";
    int64_t ids[2];
    ok(store_put_batch(f->s, p, 2, ids, &err), &err);
    store_mark mk = {"adt", "out", ids[0], STORE_FAILED, 0, "AE: SECRETSURNAME unknown"};
    ok(store_mark_batch(f->s, &mk, 1, T0 + 5, &err), &err);

    /* read back in clear */
    store_message m = STORE_MESSAGE_INIT;
    ok(store_get(f->s, ids[0], &m, &err), &err);
    assert_int_equal(m.sum.raw_len, strlen(raw));
    assert_memory_equal(m.raw, raw, strlen(raw));
    assert_string_equal(m.sum.meta.patient_id, "MRN-SECRET-77");
    assert_int_equal(m.n_deliveries, 1);
    assert_string_equal(m.deliveries[0].last_error, "AE: SECRETSURNAME unknown");
    ok(store_get(f->s, ids[1], &m, &err), &err);
    assert_string_equal(m.sum.error, "PID-5: SECRETSURNAME is too long");
    store_filter by_pat = {.patient_id = "MRN-SECRET-77"}, by_order = {.order_id = "PLACER-SECRET-5"};
    int64_t found[4];
    assert_int_equal(list_ids(f, &by_pat, found, 4), 2);
    assert_int_equal(list_ids(f, &by_order, found, 4), 1);
    assert_int_equal(found[0], ids[0]);
    store_filter by_other = {.patient_id = "MRN-SECRET-78"};
    assert_int_equal(list_ids(f, &by_other, found, 4), 0);

    /* a requeued delivery comes out of the queue in clear */
    store_reprocess_req rq = {.ids = ids, .n_ids = 1};
    store_counts cnt;
    ok(store_reprocess(f->s, &rq, &WHO, T0 + 6, &cnt, &err), &err);
    store_queue_batch b = STORE_QUEUE_BATCH_INIT;
    ok(store_queue_next(f->s, "adt", "out", 0, INT64_MAX, 10, &b, &err), &err);
    assert_int_equal(b.n, 1);
    assert_memory_equal(b.items[0].raw, raw, strlen(raw));

    /* nothing in clear on disk, WAL included (checked before and after a
     * checkpoint) */
    char where[512];
    assert_true(dir_holds(f->dir, "SQLite format 3", where, sizeof where)); /* the scan sees */
    const char *secrets[] = {"SECRETSURNAME", "MRN-SECRET-77", "PLACER-SECRET-5"};
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < 3; i++)
            if (dir_holds(f->dir, secrets[i], where, sizeof where))
                fail_msg("%s found in clear in %s", secrets[i], where);
        ok(store_checkpoint(f->s, &err), &err);
    }

    /* without the key: an error, never the sealed bytes */
    store *bare;
    store_options none = {0};
    ok(store_open(f->path, &none, &bare, &err), &err);
    assert_int_equal(store_get(bare, ids[0], &m, &err), STORE_ERR_KEY);
    assert_non_null(strstr(err.text, "master key"));
    assert_int_equal(store_queue_next(bare, "adt", "out", 0, INT64_MAX, 10, &b, &err), STORE_ERR_KEY);
    assert_int_equal(b.n, 0);
    store_close(bare);
    store_queue_batch_free(&b);
    store_message_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_schema_and_pragmas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_and_invalid_puts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_batch_multi_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_batches_as_one_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_batch_and_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patient_keys_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_order_and_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_schedule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_resumes_queues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_handle_keeps_locks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reprocess, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reprocess_by_filter_in_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edit_keeps_original, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_frees_space, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_wipes_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_log_damage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_log_torn_tail_and_second_writer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_body_log_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_then_index, setup, teardown),
        cmocka_unit_test(test_journal_decode),
        cmocka_unit_test_setup_teardown(test_duplicate_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_uses_indexes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_durability, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_durability_big_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bench_put_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encryption_scratch_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encryption_at_rest, setup, teardown),
    };
    int failed = cmocka_run_group_tests_name("store", tests, NULL, NULL);

    char dir[] = "/tmp/tern-keys-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char ring[128];
    snprintf(ring, sizeof ring, "%s/ring.json", dir);
    unsigned char master[KEYS_LEN];
    for (int i = 0; i < KEYS_LEN; i++) master[i] = (unsigned char)(i * 7 + 1);
    tbuf kerr = TBUF_INIT;
    if (keyring_open(ring, master, true, &g_keys, &kerr) != 0) {
        fprintf(stderr, "keyring: %s\n", kerr.p);
        return 1;
    }
    failed += cmocka_run_group_tests_name("store, encrypted at rest", tests, NULL, NULL);
    keyring_close(g_keys);
    tbuf_free(&kerr);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed;
}
