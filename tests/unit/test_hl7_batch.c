/*
 * Unit tests for the streaming reader (hl7_batch.c): plain multi-message
 * files, FHS/BHS envelopes and their checks, junk and bad messages, the
 * three input paths (memory, mapped file, pipe) giving the same results,
 * size limits over a pipe, random junk always terminating, memory staying
 * bounded on a big file, and the shared public corpora.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/mem.h"
#include "hl7/hl7_batch.h"

/* A small valid message with control id ID and segments ending in END. */
#define MSG_END(id, end)                                                                           \
    "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01|" id "|P|2.5" end "PID|1||" id             \
    "^^^MRN||DOE^JOHN" end "PV1|1|I" end
#define MSG(id) MSG_END(id, "\r")

/* --- collecting what a reader returns ------------------------------------ */

typedef struct event {
    hl7_status st;
    bool done;
    size_t offset; /* of the message, or err.offset */
    uint32_t segs;
    char id[32]; /* MSH-10 of a message */
    char text[224];
    size_t fhs_len, bhs_len;
} event;

typedef struct events {
    event *v;
    size_t n, cap;
    hl7_reader_stats stats;
} events;

static void events_free(events *e)
{
    free(e->v);
    memset(e, 0, sizeof(*e));
}

static void control_id(const hl7_msg *m, char *out, size_t size)
{
    hl7_path p;
    hl7_error err;
    tbuf b = TBUF_INIT;
    assert_int_equal(hl7_path_parse("MSH-10", &p, &err), HL7_OK);
    hl7_get(m, &p, &b);
    snprintf(out, size, "%s", b.p ? b.p : "");
    tbuf_free(&b);
}

/* Loops over r until done; fails if it takes more than max_calls calls. */
static void collect(hl7_reader *r, const hl7_limits *lim, size_t max_calls, events *out)
{
    hl7_msg *m = hl7_msg_new(lim);
    memset(out, 0, sizeof(*out));
    for (size_t calls = 0;; calls++) {
        assert_true(calls <= max_calls);
        event ev;
        memset(&ev, 0, sizeof(ev));
        hl7_error err;
        size_t off = 12345;
        ev.st = hl7_reader_next(r, m, &off, &ev.done, &err);
        if (ev.st == HL7_OK && !ev.done) {
            ev.offset = off;
            ev.segs = hl7_seg_count(m);
            control_id(m, ev.id, sizeof(ev.id));
        } else if (ev.st != HL7_OK) {
            assert_false(ev.done);
            assert_true(err.code == ev.st);
            assert_true(err.text[0] != '\0');
            ev.offset = err.offset;
            snprintf(ev.text, sizeof(ev.text), "%s", err.text);
        }
        ev.fhs_len = hl7_reader_fhs(r).len;
        ev.bhs_len = hl7_reader_bhs(r).len;
        out->v = xgrow(out->v, &out->cap, out->n + 1, sizeof(*out->v));
        out->v[out->n++] = ev;
        if (ev.done) break;
    }
    hl7_reader_stats_get(r, &out->stats);
    hl7_msg_free(m);
}

/* Enough calls for any input of n bytes: each consumes a byte or closes an
 * envelope. */
static size_t call_bound(size_t n)
{
    return n + 8;
}

static void collect_mem(const char *buf, size_t len, const hl7_limits *lim, events *out)
{
    hl7_reader *r = hl7_reader_mem(buf, len, lim);
    collect(r, lim, call_bound(len), out);
    hl7_reader_free(r);
}

/* Starts a child that writes buf into a pipe `chunk` bytes per write (with
 * a pause every few writes so reads really straddle); returns the read end. */
static int spawn_writer(const char *buf, size_t len, size_t chunk, pid_t *pid)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    *pid = fork();
    assert_true(*pid >= 0);
    if (*pid == 0) {
        close(p[0]);
        signal(SIGPIPE, SIG_DFL);
        size_t k = 0;
        for (size_t off = 0; off < len; off += chunk, k++) {
            size_t n = len - off < chunk ? len - off : chunk;
            for (size_t done = 0; done < n;) {
                ssize_t w = write(p[1], buf + off + done, n - done);
                if (w < 0 && errno == EINTR) continue;
                if (w < 0) _exit(1);
                done += (size_t)w;
            }
            if (chunk < 64 && k % 16 == 0) usleep(20);
        }
        _exit(0);
    }
    close(p[1]);
    return p[0];
}

static void collect_pipe(const char *buf, size_t len, const hl7_limits *lim, size_t chunk,
                         events *out)
{
    pid_t pid;
    int fd = spawn_writer(buf, len, chunk, &pid);
    hl7_reader *r = hl7_reader_fd(fd, lim);
    collect(r, lim, call_bound(len), out);
    hl7_reader_free(r);
    close(fd);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
}

static void write_file(const char *path, const char *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void collect_file(const char *buf, size_t len, const hl7_limits *lim, events *out)
{
    char path[] = "/tmp/tern_batch_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_file(path, buf, len);
    hl7_error err;
    hl7_reader *r = hl7_reader_open(path, lim, &err);
    assert_non_null(r);
    collect(r, lim, call_bound(len), out);
    hl7_reader_free(r);
    unlink(path);
}

static void dump(const char *name, const events *e)
{
    fprintf(stderr, "--- %s: %zu events\n", name, e->n);
    for (size_t i = 0; i < e->n; i++)
        fprintf(stderr, "  st=%d done=%d off=%zu segs=%u id=%s fhs=%zu bhs=%zu %s\n", e->v[i].st,
                e->v[i].done, e->v[i].offset, e->v[i].segs, e->v[i].id, e->v[i].fhs_len,
                e->v[i].bhs_len, e->v[i].text);
}

static void assert_same(const events *a, const events *b)
{
    bool same = a->n == b->n && a->stats.messages == b->stats.messages &&
                a->stats.errors == b->stats.errors && a->stats.batches == b->stats.batches &&
                a->stats.files == b->stats.files && a->stats.bytes == b->stats.bytes;
    for (size_t i = 0; same && i < a->n; i++) {
        const event *x = &a->v[i], *y = &b->v[i];
        same = x->st == y->st && x->done == y->done && x->offset == y->offset &&
               x->segs == y->segs && !strcmp(x->id, y->id) && !strcmp(x->text, y->text) &&
               x->fhs_len == y->fhs_len && x->bhs_len == y->bhs_len;
    }
    if (!same) {
        dump("expected", a);
        dump("got", b);
    }
    assert_true(same);
}

/* The same input through memory, a mapped file and pipes with several chunk
 * sizes must give the same events. Returns the memory result in out. */
static void collect_all_ways(const char *buf, size_t len, const hl7_limits *lim, events *out)
{
    static const size_t chunks[] = {1, 7, 4096};
    collect_mem(buf, len, lim, out);
    events other;
    if (len > 0) {
        collect_file(buf, len, lim, &other);
        assert_same(out, &other);
        events_free(&other);
    }
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        collect_pipe(buf, len, lim, chunks[i], &other);
        assert_same(out, &other);
        events_free(&other);
    }
}

static void expect_msg(const events *e, size_t i, const char *id, size_t offset)
{
    assert_true(i < e->n);
    if (e->v[i].st != HL7_OK || e->v[i].done) dump("unexpected", e);
    assert_int_equal(e->v[i].st, HL7_OK);
    assert_false(e->v[i].done);
    assert_string_equal(e->v[i].id, id);
    assert_int_equal(e->v[i].offset, offset);
}

static void expect_err(const events *e, size_t i, hl7_status st, size_t offset)
{
    assert_true(i < e->n);
    if (e->v[i].st != st || e->v[i].offset != offset) dump("unexpected", e);
    assert_int_equal(e->v[i].st, st);
    assert_int_equal(e->v[i].offset, offset);
}

static void expect_done(const events *e, size_t i)
{
    if (i + 1 != e->n) dump("unexpected", e);
    assert_int_equal(e->n, i + 1);
    assert_int_equal(e->v[i].st, HL7_OK);
    assert_true(e->v[i].done);
}

static size_t offset_in(const char *hay, size_t len, const char *needle)
{
    const char *p = memmem(hay, len, needle, strlen(needle));
    assert_non_null(p);
    return (size_t)(p - hay);
}

/* Offset of needle in a string literal array (which may hold NUL bytes). */
#define AT(arr, needle) offset_in(arr, sizeof(arr) - 1, needle)

/* --- plain files -------------------------------------------------------- */

static void test_single_message(void **state)
{
    (void)state;
    static const char in[] = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|ONE|P|2.5\rPID|1";
    events e;
    collect_all_ways(in, sizeof(in) - 1, NULL, &e);
    expect_msg(&e, 0, "ONE", 0);
    assert_int_equal(e.v[0].segs, 2);
    expect_done(&e, 1);
    assert_int_equal(e.stats.messages, 1);
    assert_int_equal(e.stats.errors, 0);
    assert_int_equal(e.stats.bytes, sizeof(in) - 1);
    events_free(&e);
}

static void test_many_messages_blank_lines(void **state)
{
    (void)state;
    // clang-format off
    static const char in[] = "\xEF\xBB\xBF\r\n  \n" MSG("M1") "\r\n\r\n" MSG_END("M2", "\n")
        "\n\n\t\n" MSG_END("M3", "\r\n") "\r\n" MSG("M4") MSG("M5") "  \r\n\r\n";
    // clang-format on
    events e;
    collect_all_ways(in, sizeof(in) - 1, NULL, &e);
    const char *ids[] = {"M1", "M2", "M3", "M4", "M5"};
    for (size_t i = 0; i < 5; i++) {
        char needle[64];
        snprintf(needle, sizeof(needle), "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01|%s",
                 ids[i]);
        expect_msg(&e, i, ids[i], AT(in, needle));
        assert_int_equal(e.v[i].segs, 3);
        assert_int_equal(e.v[i].fhs_len, 0);
        assert_int_equal(e.v[i].bhs_len, 0);
    }
    expect_done(&e, 5);
    assert_int_equal(e.stats.messages, 5);
    assert_int_equal(e.stats.errors, 0);
    assert_int_equal(e.stats.batches, 0);
    assert_int_equal(e.stats.bytes, sizeof(in) - 1);
    events_free(&e);
}

static void test_empty_inputs(void **state)
{
    (void)state;
    static const char *const ins[] = {"", "\r\n\r\n  \t\n", "\xEF\xBB\xBF", "\xEF\xBB\xBF\n"};
    for (size_t i = 0; i < sizeof(ins) / sizeof(ins[0]); i++) {
        events e;
        collect_all_ways(ins[i], strlen(ins[i]), NULL, &e);
        expect_done(&e, 0);
        assert_int_equal(e.stats.errors, 0);
        events_free(&e);
    }
    hl7_reader *r = hl7_reader_mem(NULL, 0, NULL);
    events e;
    collect(r, NULL, 2, &e);
    expect_done(&e, 0);
    events_free(&e);
    hl7_reader_free(r);
}

/* --- batches ------------------------------------------------------------ */

static void test_batch_counts(void **state)
{
    (void)state;
    // clang-format off
    static const char in[] = "FHS|^~\\&|APP|FAC|||20240101||F1\r"
                             "BHS|^~\\&|APP|FAC|||20240101||B1\r" MSG("A1") MSG("A2") "BTS|2\r"
                             "BHS|^~\\&|APP|FAC|||20240101||B2\r\n" MSG("B1") "BTS|1|done\r\n"
                             "FTS|2\r\n" MSG("OUT");
    // clang-format on
    events e;
    collect_all_ways(in, sizeof(in) - 1, NULL, &e);
    expect_msg(&e, 0, "A1", AT(in, "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01|A1"));
    expect_msg(&e, 1, "A2", AT(in, "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01|A2"));
    expect_msg(&e, 2, "B1", AT(in, "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01|B1"));
    expect_msg(&e, 3, "OUT", AT(in, "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01|OUT"));
    /* The open envelope is visible next to each message. */
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(e.v[i].fhs_len, strlen("FHS|^~\\&|APP|FAC|||20240101||F1"));
        assert_int_equal(e.v[i].bhs_len, strlen("BHS|^~\\&|APP|FAC|||20240101||B1"));
    }
    assert_int_equal(e.v[3].fhs_len, 0);
    assert_int_equal(e.v[3].bhs_len, 0);
    expect_done(&e, 4);
    assert_int_equal(e.stats.messages, 4);
    assert_int_equal(e.stats.errors, 0);
    assert_int_equal(e.stats.batches, 2);
    assert_int_equal(e.stats.files, 1);
    assert_int_equal(e.stats.bytes, sizeof(in) - 1);
    events_free(&e);
}

/* A message with '#' as field separator and control id ID. */
#define HASH_MSG(id) "MSH#^~\\&#A#B#C#D#2024##ADT^A01#" id "#P#2.5\rPID#1\r"

static void test_envelope_text(void **state)
{
    (void)state;
    static const char in[] = "FHS#^~\\&#F\rBHS#^~\\&#B7\r" HASH_MSG("X1") "BTS#1\rFTS#1\r";
    hl7_reader *r = hl7_reader_mem(in, sizeof(in) - 1, NULL);
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_error err;
    bool done;
    size_t off;
    assert_int_equal(hl7_reader_next(r, m, &off, &done, &err), HL7_OK);
    assert_false(done);
    assert_int_equal(off, 23);
    hl7_span f = hl7_reader_fhs(r), b = hl7_reader_bhs(r);
    assert_int_equal(f.len, 10);
    assert_memory_equal(f.p, "FHS#^~\\&#F", 10);
    assert_int_equal(b.len, 11);
    assert_memory_equal(b.p, "BHS#^~\\&#B7", 11);
    assert_int_equal(hl7_reader_next(r, m, &off, &done, &err), HL7_OK);
    assert_true(done);
    assert_int_equal(hl7_reader_fhs(r).len, 0);
    assert_int_equal(hl7_reader_bhs(r).len, 0);
    hl7_msg_free(m);
    hl7_reader_free(r);
}

static void test_wrong_counts(void **state)
{
    (void)state;
    // clang-format off
    static const char in[] = "FHS|^~\\&\rBHS|^~\\&\r" MSG("A1") MSG("A2") "BTS|3\r"
                             "BHS|^~\\&\r" MSG("B1") "BTS|one\r"
                             "BHS|^~\\&\r" MSG("C1") "BTS|\r"
                             "FTS|2\r" MSG("D1");
    // clang-format on
    events e;
    collect_all_ways(in, sizeof(in) - 1, NULL, &e);
    size_t i = 0;
    expect_msg(&e, i++, "A1", AT(in, "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01|A1"));
    expect_msg(&e, i++, "A2", AT(in, "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01|A2"));
    expect_err(&e, i, HL7_ERR_BATCH, AT(in, "BTS|3"));
    assert_non_null(strstr(e.v[i++].text, "BTS-1 says 3 messages but 2 were read"));
    expect_msg(&e, i++, "B1", AT(in, "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01|B1"));
    expect_err(&e, i, HL7_ERR_BATCH, AT(in, "BTS|one"));
    assert_non_null(strstr(e.v[i++].text, "'one', not a number"));
    expect_msg(&e, i++, "C1", AT(in, "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01|C1"));
    /* BTS| with an empty count is not checked; FTS|2 is wrong: 3 batches. */
    expect_err(&e, i, HL7_ERR_BATCH, AT(in, "FTS|2"));
    assert_non_null(strstr(e.v[i++].text, "FTS-1 says 2 batches but 3 were read"));
    expect_msg(&e, i++, "D1", AT(in, "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01|D1"));
    expect_done(&e, i);
    assert_int_equal(e.stats.messages, 5);
    assert_int_equal(e.stats.errors, 3);
    assert_int_equal(e.stats.batches, 3);
    events_free(&e);
}

static void test_missing_trailers(void **state)
{
    (void)state;
    static const char in[] = "FHS|^~\\&\rBHS|^~\\&\r" MSG("A1") "\r\n";
    events e;
    collect_all_ways(in, sizeof(in) - 1, NULL, &e);
    expect_msg(&e, 0, "A1", AT(in, "MSH"));
    expect_err(&e, 1, HL7_ERR_BATCH, sizeof(in) - 1);
    assert_non_null(strstr(e.v[1].text, "BHS at byte 9"));
    expect_err(&e, 2, HL7_ERR_BATCH, sizeof(in) - 1);
    assert_non_null(strstr(e.v[2].text, "FHS at byte 0"));
    expect_done(&e, 3);
    events_free(&e);

    static const char only_batch[] = "BHS|^~\\&\r" MSG("A1");
    collect_all_ways(only_batch, sizeof(only_batch) - 1, NULL, &e);
    expect_msg(&e, 0, "A1", 9);
    expect_err(&e, 1, HL7_ERR_BATCH, sizeof(only_batch) - 1);
    expect_done(&e, 2);
    events_free(&e);
}

static void test_trailer_without_header(void **state)
{
    (void)state;
    static const char in[] = MSG("A1") "BTS|1\r" MSG("A2") "FTS|1\r" MSG("A3");
    events e;
    collect_all_ways(in, sizeof(in) - 1, NULL, &e);
    expect_msg(&e, 0, "A1", 0);
    expect_err(&e, 1, HL7_ERR_BATCH, AT(in, "BTS"));
    assert_non_null(strstr(e.v[1].text, "BTS without a batch"));
    expect_msg(&e, 2, "A2", AT(in, "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01|A2"));
    expect_err(&e, 3, HL7_ERR_BATCH, AT(in, "FTS"));
    assert_non_null(strstr(e.v[3].text, "FTS without a file"));
    expect_msg(&e, 4, "A3", AT(in, "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01|A3"));
    expect_done(&e, 5);
    events_free(&e);
}

static void test_bad_nesting(void **state)
{
    (void)state;
    /* A BHS while a batch is open, an FTS while one is open, a second FHS
     * while a file is open: each reported, reading carries on. */
    // clang-format off
    static const char in[] = "FHS|^~\\&\rBHS|^~\\&\r" MSG("A1") "BHS|^~\\&\r" MSG("B1")
        "FTS|2\rFHS|^~\\&\rFHS|^~\\&\rBHS|^~\\&\r" MSG("C1") "BTS|1\rFTS|1\r";
    // clang-format on
    events e;
    collect_all_ways(in, sizeof(in) - 1, NULL, &e);
    size_t i = 0;
    expect_msg(&e, i++, "A1", 18);
    size_t bhs2 = 18 + strlen(MSG("A1"));
    expect_err(&e, i, HL7_ERR_BATCH, bhs2);
    assert_non_null(strstr(e.v[i++].text, "batch opened by BHS at byte 9 has no BTS"));
    expect_msg(&e, i++, "B1", bhs2 + 9);
    size_t fts = bhs2 + 9 + strlen(MSG("B1"));
    expect_err(&e, i, HL7_ERR_BATCH, fts);
    assert_non_null(strstr(e.v[i++].text, "FTS closes the file but the batch"));
    expect_err(&e, i, HL7_ERR_BATCH, fts + 15);
    assert_non_null(strstr(e.v[i++].text, "file opened by FHS at byte"));
    expect_msg(&e, i++, "C1", fts + 33);
    expect_done(&e, i);
    assert_int_equal(e.stats.files, 3);
    assert_int_equal(e.stats.batches, 3);
    events_free(&e);
}

static void test_several_files_and_direct_messages(void **state)
{
    (void)state;
    /* Two files in one input; the second holds messages without BHS and
     * counts them in FTS-1, which is accepted. */
    // clang-format off
    static const char in[] = "FHS|^~\\&\rBHS|^~\\&\r" MSG("A1") "BTS|1\rFTS|1\r"
                             "FHS|^~\\&\r" MSG("B1") MSG("B2") "FTS|2\r"
                             "FHS|^~\\&\r" MSG("C1") "FTS|0\r";
    // clang-format on
    events e;
    collect_all_ways(in, sizeof(in) - 1, NULL, &e);
    assert_int_equal(e.stats.messages, 4);
    assert_int_equal(e.stats.errors, 0);
    assert_int_equal(e.stats.files, 3);
    assert_int_equal(e.stats.batches, 1);
    expect_done(&e, 4);
    events_free(&e);
}

static void test_envelope_separator(void **state)
{
    (void)state;
    /* Headers with '#': trailers must use '#'. A trailer with another
     * separator is reported; one followed by a letter is junk. */
    // clang-format off
    static const char in[] = "BHS#^~\\&\r" HASH_MSG("A1") "BTS#1\r"
                             "BHS#^~\\&\rBTS|0\r"
                             "BTSX\r" MSG("A3");
    // clang-format on
    events e;
    collect_all_ways(in, sizeof(in) - 1, NULL, &e);
    size_t i = 0;
    expect_msg(&e, i++, "A1", 9);
    expect_err(&e, i, HL7_ERR_BATCH, AT(in, "BTS|0"));
    assert_non_null(strstr(e.v[i++].text, "field separator '|'"));
    expect_err(&e, i++, HL7_ERR_NO_MSH, AT(in, "BTSX"));
    expect_msg(&e, i++, "A3", AT(in, "MSH|"));
    expect_done(&e, i);
    events_free(&e);
}

/* --- junk and bad messages ---------------------------------------------- */

static void test_junk(void **state)
{
    (void)state;
    // clang-format off
    static const char in[] = "# a comment line\r\nPID|1||no msh\r\n" MSG("A1")
        "BHS|^~\\&\rgarbage after a header\r\n\x01\x02\x00\xff\r\n" MSG("A2")
        "BTS|1\r\n" MSG("A3") "this line belongs to A3 and is bad\r\n" MSG("A4");
    // clang-format on
    events e;
    collect_all_ways(in, sizeof(in) - 1, NULL, &e);
    size_t i = 0;
    expect_err(&e, i, HL7_ERR_NO_MSH, 0);
    assert_non_null(strstr(e.v[i++].text, "found '# a comment line'"));
    expect_msg(&e, i++, "A1", AT(in, "MSH"));
    expect_err(&e, i, HL7_ERR_NO_MSH, AT(in, "garbage"));
    i++;
    expect_msg(&e, i++, "A2", AT(in, "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01|A2"));
    /* A bad line after a message's segments is that message's bad segment. */
    expect_err(&e, i++, HL7_ERR_SEGMENT_ID, AT(in, "this line"));
    expect_msg(&e, i++, "A4", AT(in, "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01|A4"));
    expect_done(&e, i);
    assert_int_equal(e.stats.messages, 3);
    assert_int_equal(e.stats.errors, 3);
    events_free(&e);
}

static void test_bad_message_in_the_middle(void **state)
{
    (void)state;
    tbuf in = TBUF_INIT;
    size_t nul_at = 0, trunc_at = 0;
    for (int i = 0; i < 20; i++) {
        if (i == 7) {
            tbuf_puts(&in, "MSH|^~\\&|APP|FAC|RCV|RFAC|2024||ADT^A01|BAD7|P|2.5\rPID|1||x");
            nul_at = in.len;
            tbuf_put(&in, "\0y\r", 3);
        } else if (i == 12) {
            trunc_at = in.len;
            tbuf_puts(&in, "MSH|^~\\&|APP|FAC\r\n");
        } else {
            tbuf_puts(&in, MSG("X") "\n");
        }
    }
    events e;
    collect_all_ways(in.p, in.len, NULL, &e);
    assert_int_equal(e.stats.messages, 18);
    assert_int_equal(e.stats.errors, 2);
    expect_err(&e, 7, HL7_ERR_NUL, nul_at);
    expect_err(&e, 12, HL7_ERR_TRUNCATED, trunc_at + strlen("MSH|^~\\&|APP|FAC"));
    expect_done(&e, 20);
    tbuf_free(&in);
    events_free(&e);
}

static void test_offsets(void **state)
{
    (void)state;
    /* Offsets count from the first byte of the input, BOM included. */
    tbuf in = TBUF_INIT;
    size_t at[50];
    tbuf_puts(&in, "\xEF\xBB\xBF");
    for (int i = 0; i < 50; i++) {
        tbuf_puts(&in, i % 3 == 0 ? "\r\n" : "");
        at[i] = in.len;
        tbuf_printf(&in, "MSH|^~\\&|A|B|C|D|2024||ADT^A01|ID%d|P|2.5\rPID|1||%0*d\r", i, i * 37, 0);
    }
    events e;
    collect_all_ways(in.p, in.len, NULL, &e);
    for (int i = 0; i < 50; i++) {
        char id[16];
        snprintf(id, sizeof(id), "ID%d", i);
        expect_msg(&e, (size_t)i, id, at[i]);
    }
    expect_done(&e, 50);
    tbuf_free(&in);
    events_free(&e);
}

/* Builds random inputs from pieces that look like HL7 and pieces that do
 * not; every one must end within the call bound, and pipes must agree with
 * memory. */
static void test_random_junk(void **state)
{
    (void)state;
    // clang-format off
    static const char *const pieces[] = {
        "MSH|^~\\&|A|B|C|D|2024||ADT^A01|R|P|2.5", "MSH|", "MSH#^~\\&#", "MSH", "FHS|^~\\&",
        "BHS|^~\\&", "BTS|1", "BTS|", "FTS|1", "FTS|x", "BHS", "PID|1||x", "\r", "\n", "\r\n",
        "  ", "\t", "|", "^", "\xEF\xBB\xBF", "junk", "BT", "FH", "EVN|A01", "ZZZ|", "\xff",
        "MSH|^~\\&|A|B|C|D|2024||ADT^A01|R|P|2.5\rPID|1\r", "MSH#^~\\&#A#B#C#D#2024##X#R#P#2.5\r",
        "MSH|^~\\&|A|B|C|D|2024|", "BHS#^~\\&", "BTS#0", "FTS|0", "OBX|1|ST|||x\r\n", "\r\n\r\n",
    };
    // clang-format on
    const size_t npieces = sizeof(pieces) / sizeof(pieces[0]);
    unsigned seed = 20240101u;
    tbuf in = TBUF_INIT;
    for (int round = 0; round < 1000; round++) {
        tbuf_reset(&in);
        size_t n = (size_t)(rand_r(&seed) % 200);
        for (size_t k = 0; k < n; k++) {
            int pick = rand_r(&seed) % 10;
            if (pick == 0) {
                char c = (char)(rand_r(&seed) & 0xff);
                tbuf_put(&in, &c, 1);
            } else {
                tbuf_puts(&in, pieces[(size_t)rand_r(&seed) % npieces]);
            }
        }
        events e;
        hl7_limits lim;
        hl7_limits_default(&lim);
        lim.max_message = 1 + (size_t)(rand_r(&seed) % 400);
        collect_mem(in.p ? in.p : "", in.len, &lim, &e);
        assert_int_equal(e.stats.bytes, in.len);
        for (size_t i = 0; i < e.n; i++)
            if (e.v[i].st != HL7_OK) assert_true(e.v[i].offset <= in.len + lim.max_message);
        /* Memory and pipes agree except in one corner, left as it is: a
         * message that is both over a limit smaller than the parser's
         * 64-byte scan blocks can show and malformed in the block that
         * crosses the limit may be reported as either problem, depending on
         * how far the stream's window reached. Real limits are megabytes. */
        if (round % 10 == 0 && lim.max_message >= 256) {
            events p;
            collect_pipe(in.p ? in.p : "", in.len, &lim, 1 + (size_t)(rand_r(&seed) % 13), &p);
            assert_same(&e, &p);
            events_free(&p);
        }
        events_free(&e);
    }
    tbuf_free(&in);
}

/* --- limits over a pipe --------------------------------------------------- */

static void test_too_large_over_pipe(void **state)
{
    (void)state;
    hl7_limits lim;
    hl7_limits_default(&lim);
    lim.max_message = 4096;
    tbuf in = TBUF_INIT;
    tbuf_puts(&in, MSG("A1"));
    size_t big = in.len;
    tbuf_puts(&in, "MSH|^~\\&|A|B|C|D|2024||ADT^A01|BIG|P|2.5\r");
    for (int i = 0; i < 3000; i++)
        tbuf_printf(&in, "OBX|%d|ST|X||value %d\r", i, i);
    tbuf_puts(&in, MSG("A2"));
    size_t long_line = in.len;
    tbuf_puts(&in, "MSH|^~\\&|A|B|C|D|2024||ADT^A01|LONG|P|2.5|");
    for (int i = 0; i < 20000; i++)
        tbuf_putc(&in, 'x');
    tbuf_puts(&in, "\rPID|1\r" MSG("A3"));
    size_t long_bhs = in.len;
    tbuf_puts(&in, "BHS|");
    for (int i = 0; i < 9000; i++)
        tbuf_putc(&in, 'y');
    tbuf_puts(&in, "\n" MSG("A4"));
    events e;
    collect_all_ways(in.p, in.len, &lim, &e);
    size_t i = 0;
    expect_msg(&e, i++, "A1", 0);
    expect_err(&e, i++, HL7_ERR_TOO_LARGE, big + lim.max_message);
    expect_msg(&e, i++, "A2",
               offset_in(in.p, in.len, "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01|A2"));
    assert_int_equal(e.v[i].st, HL7_ERR_TOO_LARGE);
    assert_true(e.v[i++].offset >= long_line);
    expect_msg(&e, i++, "A3",
               offset_in(in.p, in.len, "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01|A3"));
    expect_err(&e, i++, HL7_ERR_TOO_LARGE, long_bhs);
    expect_msg(&e, i++, "A4",
               offset_in(in.p, in.len, "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01|A4"));
    expect_done(&e, i);
    events_free(&e);

    /* The message's own limit may be larger than the reader's: the reader
     * still stops at its own. */
    hl7_limits big_lim;
    hl7_limits_default(&big_lim);
    pid_t pid;
    int fd = spawn_writer(in.p, in.len, 4096, &pid);
    hl7_reader *r = hl7_reader_fd(fd, &lim);
    hl7_msg *m = hl7_msg_new(&big_lim);
    hl7_error err;
    bool done;
    size_t off;
    assert_int_equal(hl7_reader_next(r, m, &off, &done, &err), HL7_OK);
    assert_int_equal(hl7_reader_next(r, m, &off, &done, &err), HL7_ERR_TOO_LARGE);
    assert_int_equal(err.offset, big + lim.max_message);
    assert_int_equal(hl7_reader_next(r, m, &off, &done, &err), HL7_OK);
    assert_int_equal(
        off, offset_in(in.p, in.len, "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01|A2"));
    hl7_msg_free(m);
    hl7_reader_free(r);
    close(fd);
    waitpid(pid, NULL, 0);
    tbuf_free(&in);
}

static void test_large_message_within_limit_over_pipe(void **state)
{
    (void)state;
    /* A 5 MB message read 7 bytes at a time: the buffer grows by doubling
     * and the message comes out whole. */
    tbuf in = TBUF_INIT;
    tbuf_puts(&in, MSG("A1"));
    size_t big = in.len;
    tbuf_puts(&in, "MSH|^~\\&|A|B|C|D|2024||ADT^A01|BIG|P|2.5\r");
    for (int i = 0; i < 60000; i++)
        tbuf_printf(&in, "OBX|%d|NM|GLU^Glucose||%d.5|mmol/L\r", i, i % 100);
    tbuf_puts(&in, MSG("A2"));
    events e, p;
    collect_mem(in.p, in.len, NULL, &e);
    expect_msg(&e, 1, "BIG", big);
    assert_int_equal(e.v[1].segs, 60001);
    collect_pipe(in.p, in.len, NULL, 4093, &p);
    assert_same(&e, &p);
    events_free(&e);
    events_free(&p);
    tbuf_free(&in);
}

/* --- sources ---------------------------------------------------------------- */

static void test_open_errors(void **state)
{
    (void)state;
    hl7_error err;
    assert_null(hl7_reader_open("/nonexistent/tern/file.hl7", NULL, &err));
    assert_int_equal(err.code, HL7_ERR_IO);
    assert_non_null(strstr(err.text, "/nonexistent/tern/file.hl7"));
    assert_null(hl7_reader_open("/tmp", NULL, &err));
    assert_int_equal(err.code, HL7_ERR_IO);
    assert_non_null(strstr(err.text, "directory"));

    /* A read error is reported once, then the input ends. */
    int fd = open("/tmp", O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    hl7_reader *r = hl7_reader_fd(fd, NULL);
    events e;
    collect(r, NULL, 4, &e);
    expect_err(&e, 0, HL7_ERR_IO, 0);
    expect_done(&e, 1);
    hl7_reader_free(r);
    close(fd);
    events_free(&e);
}

static void test_fd_current_position(void **state)
{
    (void)state;
    /* hl7_reader_fd reads from the fd's position; offsets count from it. */
    static const char in[] = "skipped header\n" MSG("A1") MSG("A2");
    char path[] = "/tmp/tern_batch_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, in, sizeof(in) - 1), (ssize_t)(sizeof(in) - 1));
    assert_int_equal(lseek(fd, 15, SEEK_SET), 15);
    hl7_reader *r = hl7_reader_fd(fd, NULL);
    events e;
    collect(r, NULL, 10, &e);
    expect_msg(&e, 0, "A1", 0);
    expect_msg(&e, 1, "A2", strlen(MSG("A1")));
    expect_done(&e, 2);
    hl7_reader_free(r);
    close(fd);
    unlink(path);
    events_free(&e);
}

/* Peak resident size in bytes. */
static size_t peak_rss(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (size_t)ru.ru_maxrss * 1024;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Big file size in MB; TERN_BIG_MB overrides (0 skips the test). */
static size_t big_file_mb(void)
{
    const char *v = getenv("TERN_BIG_MB");
    return v ? (size_t)strtoul(v, NULL, 10) : 200;
}

static void test_big_file_bounded_memory(void **state)
{
    (void)state;
    size_t mb = big_file_mb();
    if (mb == 0) skip();
    char path[] = "/tmp/tern_big_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    assert_non_null(f);
    /* Streamed out message by message: about 1 KB each, one in ten
     * batches of 5 inside FHS/BHS. */
    char obx[900];
    memset(obx, 'v', sizeof(obx) - 1);
    obx[sizeof(obx) - 1] = '\0';
    size_t written = 0, messages = 0, batches = 0;
    for (size_t n = 0; written < mb * 1000000; n++) {
        bool batch = n % 10 == 0;
        int k = batch ? 5 : 1;
        if (batch) written += (size_t)fprintf(f, "FHS|^~\\&\rBHS|^~\\&\r");
        for (int i = 0; i < k; i++)
            written += (size_t)fprintf(f,
                                       "MSH|^~\\&|A|B|C|D|2024||ADT^A01|%zu-%d|P|2.5\r"
                                       "PID|1||%zu\rOBX|1|ST|X||%s\r\n",
                                       n, i, n, obx);
        if (batch) written += (size_t)fprintf(f, "BTS|5\rFTS|1\r");
        messages += (size_t)k;
        batches += batch;
    }
    assert_int_equal(fclose(f), 0);

    size_t before = peak_rss();
    double t0 = now();
    hl7_error err;
    hl7_reader *r = hl7_reader_open(path, NULL, &err);
    assert_non_null(r);
    hl7_msg *m = hl7_msg_new(NULL);
    size_t got = 0, errors = 0;
    for (;;) {
        bool done;
        hl7_status st = hl7_reader_next(r, m, NULL, &done, &err);
        if (st != HL7_OK) errors++;
        if (done) break;
        if (st == HL7_OK) got++;
    }
    double secs = now() - t0;
    hl7_reader_stats rs;
    hl7_reader_stats_get(r, &rs);
    hl7_msg_free(m);
    hl7_reader_free(r);
    size_t growth = peak_rss() - before;
    fprintf(stderr, "big file: %zu MB, %zu messages in %.2f s (%.0f MB/s), peak RSS +%zu MB\n",
            written / 1000000, got, secs, (double)written / 1e6 / secs, growth >> 20);
    unlink(path);
    assert_int_equal(errors, 0);
    assert_int_equal(got, messages);
    assert_int_equal(rs.batches, batches);
    assert_int_equal(rs.bytes, written);
    assert_true(growth < ((size_t)64 << 20));
}

/* --- shared corpora ------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    tbuf b = TBUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        tbuf_put(&b, chunk, n);
    fclose(f);
    if (!b.p) tbuf_grow(&b, 0);
    return tbuf_detach(&b, len);
}

static bool shared_present(const char *sub)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/corpora/%s", TERN_SHARED_DIR, sub);
    struct stat sb;
    if (stat(path, &sb) == 0) return true;
    fprintf(stderr, "skipping: %s is missing (the shared corpora live outside the repository)\n",
            path);
    return false;
}

static void test_edge_corpus(void **state)
{
    (void)state;
    if (!shared_present("hl7-edge")) skip();
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/corpora/hl7-edge", TERN_SHARED_DIR);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    size_t files = 0;
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl < 4 || strcmp(de->d_name + nl - 4, ".hl7") != 0) continue;
        char path[2048];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        size_t len;
        char *buf = slurp(path, &len);
        assert_non_null(buf);
        events e;
        collect_all_ways(buf, len, NULL, &e);
        const char *name = de->d_name;
        bool must_fail = !strcmp(name, "invalid-missing-msh.hl7") ||
                         !strcmp(name, "invalid-segment-header-length.hl7");
        if (must_fail) {
            if (e.stats.messages != 0 || e.stats.errors == 0) dump(name, &e);
            assert_int_equal(e.stats.messages, 0);
            assert_true(e.stats.errors > 0);
            for (size_t i = 0; i < e.n; i++)
                assert_true(e.v[i].offset <= len);
        } else {
            if (e.stats.messages != 1 || e.stats.errors != 0) dump(name, &e);
            assert_int_equal(e.stats.messages, 1);
            assert_int_equal(e.stats.errors, 0);
        }
        if (!strcmp(name, "invalid-missing-msh.hl7")) assert_int_equal(e.v[0].st, HL7_ERR_NO_MSH);
        if (!strcmp(name, "invalid-segment-header-length.hl7"))
            assert_int_equal(e.v[0].st, HL7_ERR_SEGMENT_ID);
        events_free(&e);
        free(buf);
        files++;
    }
    closedir(d);
    assert_int_equal(files, 18);
}

static void test_edge_corpus_concatenated(void **state)
{
    (void)state;
    /* All the valid '|' messages one after another in one input. */
    if (!shared_present("hl7-edge")) skip();
    // clang-format off
    static const char *const names[] = {
        "adt-a01-basic.hl7",         "adt-a01-full.hl7",          "dft-p03-charge.hl7",
        "edge-crlf-line-endings.hl7", "edge-empty-segments.hl7",   "edge-escaped-delimiters.hl7",
        "edge-field-repetitions.hl7", "edge-non-ascii.hl7",        "edge-z-segments.hl7",
        "invalid-trailing-empty-fields.hl7", "invalid-wrong-version.hl7", "mdm-t02-document.hl7",
        "orm-o01-order.hl7",         "oru-r01-lab.hl7",           "siu-s12-schedule.hl7",
    };
    // clang-format on
    const size_t n = sizeof(names) / sizeof(names[0]);
    tbuf all = TBUF_INIT;
    size_t starts[sizeof(names) / sizeof(names[0])];
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/corpora/hl7-edge/%s", TERN_SHARED_DIR, names[i]);
        size_t len;
        char *buf = slurp(path, &len);
        assert_non_null(buf);
        const char *msh = strstr(buf, "MSH");
        assert_non_null(msh);
        starts[i] = all.len + (size_t)(msh - buf);
        tbuf_put(&all, buf, len);
        if (i % 2) tbuf_puts(&all, "\r\n");
        free(buf);
    }
    events e;
    collect_all_ways(all.p, all.len, NULL, &e);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(e.v[i].st, HL7_OK);
        assert_int_equal(e.v[i].offset, starts[i]);
    }
    expect_done(&e, n);
    events_free(&e);
    tbuf_free(&all);
}

static void test_immunization_corpus(void **state)
{
    (void)state;
    if (!shared_present("immunization/messages.txt")) skip();
    char path[1024];
    snprintf(path, sizeof(path), "%s/corpora/immunization/messages.txt", TERN_SHARED_DIR);
    size_t len;
    char *buf = slurp(path, &len);
    assert_non_null(buf);
    events e;
    collect_all_ways(buf, len, NULL, &e);
    size_t last = 0;
    for (size_t i = 0; i + 1 < e.n; i++) {
        assert_true(e.v[i].offset < len);
        assert_true(e.v[i].offset >= last);
        last = e.v[i].offset;
        if (e.v[i].st != HL7_OK) assert_true(e.v[i].text[0] != '\0');
    }
    assert_true(e.stats.messages + e.stats.errors > 0);
    assert_int_equal(e.stats.bytes, len);
    fprintf(stderr, "immunization: %zu messages, %zu errors\n", e.stats.messages, e.stats.errors);
    events_free(&e);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_big_file_bounded_memory),
        cmocka_unit_test(test_single_message),
        cmocka_unit_test(test_many_messages_blank_lines),
        cmocka_unit_test(test_empty_inputs),
        cmocka_unit_test(test_batch_counts),
        cmocka_unit_test(test_envelope_text),
        cmocka_unit_test(test_wrong_counts),
        cmocka_unit_test(test_missing_trailers),
        cmocka_unit_test(test_trailer_without_header),
        cmocka_unit_test(test_bad_nesting),
        cmocka_unit_test(test_several_files_and_direct_messages),
        cmocka_unit_test(test_envelope_separator),
        cmocka_unit_test(test_junk),
        cmocka_unit_test(test_bad_message_in_the_middle),
        cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_random_junk),
        cmocka_unit_test(test_too_large_over_pipe),
        cmocka_unit_test(test_large_message_within_limit_over_pipe),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_fd_current_position),
        cmocka_unit_test(test_edge_corpus),
        cmocka_unit_test(test_edge_corpus_concatenated),
        cmocka_unit_test(test_immunization_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
