/*
 * source_file: a channel's directory poller (eng_source_file_ops).
 *
 * Every `poll` the directory is listed. Each regular file (symbolic links
 * are skipped, never followed) whose name
 * matches `glob` (fnmatch with FNM_PERIOD: `*` does not match a leading
 * dot, as in a shell) and does not end with an ignored suffix becomes a
 * candidate; candidates live in an array sorted by name, rebuilt from each
 * listing, remembering identity (device, inode), size, mtime and since when
 * those have been unchanged. A candidate unchanged for `settle` is ready;
 * ready files are queued oldest mtime first and read one after another.
 *
 * Reading is streamed with hl7_reader (single messages, many, batches), so a
 * file of any size costs the memory of one message. Each message is handed
 * to eng_submit(); at most MAX_INFLIGHT messages (and MAX_INFLIGHT_BYTES)
 * wait for their answer at once, and reading resumes as answers come back,
 * so a 2 GB batch never sits in memory. A file is a job: once read to the
 * end and every submission answered, it is moved to `move_to` (never over
 * an existing file: NAME-1.EXT, NAME-2.EXT... instead) or deleted. If any
 * message could not be stored, the file stays and is read again after a
 * pause: delivery is at least once, so messages stored before the failure
 * (or before a crash or stop mid-file) are stored again then.
 *
 * Valid messages are submitted with CR after each segment, whatever line
 * ends the file used. A message that fails to parse is submitted as the raw
 * bytes the file holds (the engine stores it as rejected); text that is not
 * a message (junk, batch envelope errors, a message over limits.max_message)
 * is logged with the file name and byte offset and skipped.
 *
 * Everything runs on the engine's loop; the only blocking calls are file
 * system ones. A file must not be truncated while it is read (the reader
 * maps it): writers should write NAME.tmp and rename it when complete.
 */
#include "engine/engine_int.h"

#include "base/mem.h"
#include "hl7/hl7_batch.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

/* Submissions waiting for their answer, in messages and in bytes. */
#define MAX_INFLIGHT 1000
#define MAX_INFLIGHT_BYTES ((size_t)32 << 20)
/* hl7_reader_next() calls per loop turn, so junk cannot hog the loop. */
#define READS_PER_TURN 2000
/* Reader problems logged one by one per file; the rest are counted. */
#define LOGGED_PROBLEMS 10
/* A file whose messages could not all be stored waits at least this long. */
#define RETRY_PAUSE_MS 5000
/* Bytes read at a time when looking for the end of an unparseable message. */
#define SCAN_CHUNK ((size_t)64 << 10)

typedef enum cand_state {
    CAND_WAITING, /* settling */
    CAND_QUEUED,  /* ready, waiting for its turn to be read */
    CAND_BUSY,    /* a job is reading it or waiting for answers */
    CAND_DONE,    /* all stored, but moving or deleting it failed: retried each poll */
} cand_state;

typedef struct cand {
    char *name;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    uint64_t since;      /* monotonic ms: size and mtime unchanged since */
    uint64_t not_before; /* monotonic ms: not read again before (after a failure) */
    cand_state state;
    unsigned finish_failures; /* CAND_DONE: failed attempts to move or delete */
    bool seen;                /* listed by the scan in progress */
} cand;

typedef struct job job;

struct eng_source {
    eng_channel *ch;
    const config_channel *cc;
    struct event_base *base;
    struct event *poll_ev;
    struct event *kick_ev; /* runs pump() and the stop check from the loop */
    hl7_msg *msg;
    tbuf wire;

    cand *cands; /* sorted by name */
    size_t ncands;
    char **queue; /* names of ready files, oldest first */
    size_t nqueue, qhead, qcap;
    job *jobs;    /* every job not finished, reading one first */
    job *reading; /* the job being read, or NULL */

    size_t inflight, inflight_bytes;
    int dir_errno; /* last error listing the directory, to log changes only */

    bool stopping;
    void (*done)(void *);
    void *done_arg;
};

struct job {
    eng_source *s;
    job *next;
    char *name;
    char *path;
    int fd;
    hl7_reader *r;
    bool read_all;  /* the reader reached the end */
    bool abandoned; /* stopped before the end */
    bool io_failed;
    size_t submitted, answered, not_stored, not_accepted, problems;
};

/* One submission; freed when answered. */
typedef struct sub {
    job *j;
    size_t len;
} sub;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs on_kick soon, from the loop. A zero timeout rather than
 * event_active(): timers fire after the loop has polled for I/O, so reading
 * a large file never starves the other channels' sockets (or signals). */
static void kick(eng_source *s)
{
    static const struct timeval now = {0, 0};
    if (!evtimer_pending(s->kick_ev, NULL)) evtimer_add(s->kick_ev, &now);
}

static int cand_cmp(const void *a, const void *b)
{
    return strcmp(((const cand *)a)->name, ((const cand *)b)->name);
}

static cand *cand_find(eng_source *s, const char *name)
{
    cand key = {.name = (char *)name};
    return s->ncands ? bsearch(&key, s->cands, s->ncands, sizeof(cand), cand_cmp) : NULL;
}

static bool same_content(const cand *c, const struct stat *st)
{
    return c->dev == st->st_dev && c->ino == st->st_ino && c->size == st->st_size &&
           c->mtime.tv_sec == st->st_mtim.tv_sec && c->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static void cand_set(cand *c, const struct stat *st)
{
    c->dev = st->st_dev;
    c->ino = st->st_ino;
    c->size = st->st_size;
    c->mtime = st->st_mtim;
}

static char *path_of(const char *dir, const char *name)
{
    tbuf p = TBUF_INIT;
    tbuf_printf(&p, "%s/%s", dir, name);
    return tbuf_detach(&p, NULL);
}

/* --- moving a finished file ------------------------------------------------- */

static int mkdirs(const char *path)
{
    tbuf b = TBUF_INIT;
    tbuf_puts(&b, path);
    int rc = 0;
    for (size_t i = 1; i <= b.len && rc == 0; i++) {
        if (b.p[i] != '/' && b.p[i] != '\0') continue;
        char c = b.p[i];
        b.p[i] = '\0';
        if (mkdir(b.p, 0750) != 0 && errno != EEXIST) rc = -1;
        b.p[i] = c;
    }
    int saved = errno;
    tbuf_free(&b);
    errno = saved;
    return rc;
}

/* Renames src to dst unless dst exists. Returns 0, or an errno: EEXIST when
 * dst is taken, EXDEV across file systems. */
static int rename_noreplace(const char *src, const char *dst)
{
#ifdef RENAME_NOREPLACE
    if (renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) return errno;
#endif
    /* File systems without RENAME_NOREPLACE: link fails on an existing name. */
    if (link(src, dst) == 0) {
        if (unlink(src) == 0) return 0;
        int e = errno;
        unlink(dst);
        return e;
    }
    if (errno == EEXIST || errno == EXDEV) return errno;
    struct stat st;
    if (lstat(dst, &st) == 0) return EEXIST;
    return rename(src, dst) == 0 ? 0 : errno;
}

/* dir/name, or dir/BASE-n.EXT for n >= 1. */
static void target_name(const char *dir, const char *name, unsigned n, tbuf *out)
{
    tbuf_reset(out);
    if (n == 0) {
        tbuf_printf(out, "%s/%s", dir, name);
        return;
    }
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) dot = name + strlen(name);
    tbuf_printf(out, "%s/%.*s-%u%s", dir, (int)(dot - name), name, n, dot);
}

/* Places src (a file on the same file system as dir) in dir under name or
 * the first free variant of it; the final path goes to dst. 0 or an errno. */
static int place(const char *src, const char *dir, const char *name, tbuf *dst)
{
    int e = EEXIST;
    for (unsigned n = 0; n < 100000 && e == EEXIST; n++) {
        target_name(dir, name, n, dst);
        e = rename_noreplace(src, dst->p);
    }
    return e;
}

/* Copies src into a hidden file in dir and fsyncs it (moves across file
 * systems). The copy's path goes to tmp. 0 or an errno. */
static int copy_into(const char *src, const char *dir, const char *name, tbuf *tmp)
{
    tbuf_reset(tmp);
    tbuf_printf(tmp, "%s/.tern-%d-%s.tmp", dir, (int)getpid(), name);
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return errno;
    int out = open(tmp->p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    int e = 0;
    if (out < 0) {
        e = errno;
        close(in);
        return e;
    }
    char buf[SCAN_CHUNK];
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            e = errno;
            break;
        }
        for (ssize_t off = 0; off < n && e == 0;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno != EINTR) e = errno;
            if (w > 0) off += w;
        }
        if (e) break;
    }
    if (e == 0 && fsync(out) != 0) e = errno;
    if (close(out) != 0 && e == 0) e = errno;
    close(in);
    if (e) unlink(tmp->p);
    return e;
}

/* Moves or deletes a file whose messages are all stored. On success logs
 * where it went; on failure returns -1 (retried next poll) and logs why if
 * `loud`. */
static int finish_file(eng_source *s, const char *name, const char *summary, bool loud)
{
    const char *dir = s->cc->source.file.dir;
    char *src = path_of(dir, name);
    int rc = 0;
    if (s->cc->source.file.after == CONFIG_AFTER_DELETE) {
        if (unlink(src) == 0 || errno == ENOENT) {
            eng_log(s->ch, "%s: %s; deleted", src, summary);
        } else {
            if (loud)
                eng_log(s->ch, "%s: %s, but deleting it failed: %s; retrying at every poll", src,
                        summary, strerror(errno));
            rc = -1;
        }
        free(src);
        return rc;
    }
    const char *to = s->cc->source.file.move_to;
    tbuf dst = TBUF_INIT, tmp = TBUF_INIT;
    int e = place(src, to, name, &dst);
    if (e == ENOENT && access(src, F_OK) == 0) {
        if (mkdirs(to) != 0)
            e = errno;
        else
            e = place(src, to, name, &dst);
    }
    if (e == EXDEV) {
        /* move_to is on another file system: copy, then remove the original */
        e = copy_into(src, to, name, &tmp);
        if (e == 0) {
            e = place(tmp.p, to, name, &dst);
            if (e != 0) unlink(tmp.p);
        }
        if (e == 0 && unlink(src) != 0 && errno != ENOENT) {
            e = errno;
            unlink(dst.p);
        }
    }
    if (e == 0) {
        eng_log(s->ch, "%s: %s; moved to %s", src, summary, dst.p);
    } else if (e == ENOENT && access(src, F_OK) != 0) {
        eng_log(s->ch, "%s: %s; the file is gone (removed by someone else)", src, summary);
    } else {
        if (loud)
            eng_log(s->ch, "%s: %s, but moving it to %s failed: %s; retrying at every poll", src,
                    summary, to, strerror(e));
        rc = -1;
    }
    tbuf_free(&dst);
    tbuf_free(&tmp);
    free(src);
    return rc;
}

/* --- jobs -------------------------------------------------------------------- */

static void job_close_reader(job *j)
{
    hl7_reader_free(j->r);
    j->r = NULL;
    if (j->fd >= 0) close(j->fd);
    j->fd = -1;
}

static void job_free(job *j)
{
    job_close_reader(j);
    free(j->name);
    free(j->path);
    free(j);
}

static void job_unlink(eng_source *s, job *j)
{
    for (job **pp = &s->jobs; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    if (s->reading == j) s->reading = NULL;
}

/* Ends a job whose submissions are all answered. */
static void job_finish(eng_source *s, job *j)
{
    assert(j->answered == j->submitted && !j->r);
    cand *c = cand_find(s, j->name);
    uint64_t now = mono_ms();
    if (j->abandoned) {
        eng_log(s->ch,
                "%s: stopped after %zu messages; the file stays and is read again from the "
                "start next time (those messages will be stored twice)",
                j->path, j->submitted);
        if (c) c->state = CAND_WAITING;
    } else if (j->not_stored || j->io_failed) {
        eng_log(s->ch,
                "%s: %zu of %zu messages could not be stored%s; the file stays and is read "
                "again in %llu s (the messages that were stored will be stored again)",
                j->path, j->not_stored, j->submitted, j->io_failed ? " or read" : "",
                (unsigned long long)(RETRY_PAUSE_MS / 1000));
        if (c) {
            c->state = CAND_WAITING;
            c->since = now;
            c->not_before = now + RETRY_PAUSE_MS;
        }
    } else {
        tbuf sum = TBUF_INIT;
        tbuf_printf(&sum, "%zu message%s stored", j->submitted, j->submitted == 1 ? "" : "s");
        if (j->not_accepted) tbuf_printf(&sum, " (%zu rejected)", j->not_accepted);
        if (j->problems)
            tbuf_printf(&sum, ", %zu unreadable part%s skipped", j->problems,
                        j->problems == 1 ? "" : "s");
        int rc = finish_file(s, j->name, sum.p, true);
        tbuf_free(&sum);
        if (c) {
            c->state = rc == 0 ? CAND_WAITING : CAND_DONE;
            c->since = now;
            c->finish_failures = rc == 0 ? 0 : 1;
        }
    }
    job_unlink(s, j);
    job_free(j);
}

static void on_answer(void *arg, bool stored, bool accepted, const char *ack, size_t ack_len)
{
    sub *sb = arg;
    job *j = sb->j;
    eng_source *s = j->s;
    assert(s->inflight > 0);
    s->inflight--;
    s->inflight_bytes -= sb->len;
    free(sb);
    j->answered++;
    if (!stored)
        j->not_stored++;
    else if (!accepted)
        j->not_accepted++;
    if (j->answered == j->submitted && !j->r) job_finish(s, j);
    kick(s);
}

static void submit(eng_source *s, job *j, const char *raw, size_t len)
{
    sub *sb = xmalloc(sizeof(*sb));
    sb->j = j;
    sb->len = len;
    j->submitted++;
    s->inflight++;
    s->inflight_bytes += len;
    eng_submit(s->ch, raw, len, on_answer, sb);
}

static void problem(eng_source *s, job *j, const hl7_error *err)
{
    if (j->problems++ >= LOGGED_PROBLEMS) return;
    char where[128];
    const char *more =
        j->problems == LOGGED_PROBLEMS ? " (further problems in this file are only counted)" : "";
    eng_log(s->ch, "%s: %s: %s%s", j->path, hl7_error_where(err, where, sizeof(where)), err->text,
            more);
}

/* A message that failed to parse: the reader has skipped 3 bytes past its
 * MSH and will skip to the next boundary line. Reads its raw bytes back
 * from the file, from that MSH to the next line that starts a message or
 * envelope segment (or the end), trailing blank lines trimmed, into out.
 * False when they cannot be found or exceed the message limit. */
static bool bad_message_bytes(eng_source *s, job *j, size_t err_offset, tbuf *out)
{
    hl7_reader_stats st;
    hl7_reader_stats_get(j->r, &st);
    if (st.bytes < 3) return false;
    size_t start = st.bytes - 3;
    if (start > err_offset) return false;
    size_t limit = s->cc->limits.max_message;
    tbuf_reset(out);
    char buf[SCAN_CHUNK];
    size_t at = start;
    for (;;) {
        ssize_t n = pread(j->fd, buf, sizeof(buf), (off_t)at);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        tbuf_put(out, buf, (size_t)n);
        at += (size_t)n;
        /* look for a line end followed by a boundary id; keep 3 bytes of
         * look-ahead unless the file ended */
        size_t from = out->len - (size_t)n;
        from = from > 3 ? from - 3 : 3;
        bool found = false;
        for (size_t i = from; i < out->len; i++) {
            if (out->p[i] != '\r' && out->p[i] != '\n') continue;
            if (out->len - (i + 1) < 3) break;
            if (hl7_is_boundary_id(out->p + i + 1)) {
                out->len = i + 1;
                found = true;
                break;
            }
        }
        if (found) break;
        if (out->len > limit) return false;
    }
    if (out->len < 3 || memcmp(out->p, "MSH", 3) != 0) return false;
    while (out->len > 0 && (out->p[out->len - 1] == '\r' || out->p[out->len - 1] == '\n' ||
                            out->p[out->len - 1] == ' ' || out->p[out->len - 1] == '\t'))
        out->len--;
    out->p[out->len] = '\0';
    return out->len <= limit;
}


/* Reads one step of the job's file; false once the reader is finished. */
static bool read_step(eng_source *s, job *j)
{
    bool done = false;
    hl7_error err;
    hl7_status st = hl7_reader_next(j->r, s->msg, NULL, &done, &err);
    if (st == HL7_OK && done) return false;
    if (st == HL7_OK) {
        tbuf_reset(&s->wire);
        hl7_serialize_cr(s->msg, &s->wire);
        submit(s, j, s->wire.p, s->wire.len);
        return true;
    }
    switch (st) {
    case HL7_ERR_IO:
        problem(s, j, &err);
        j->io_failed = true;
        return false;
    case HL7_ERR_NO_MSH:
    case HL7_ERR_BATCH:
    case HL7_ERR_TOO_LARGE:
    case HL7_ERR_EMPTY:
        problem(s, j, &err);
        return true;
    default:
        /* a message that does not parse: store it as rejected */
        if (bad_message_bytes(s, j, err.offset, &s->wire)) {
            submit(s, j, s->wire.p, s->wire.len);
        } else {
            problem(s, j, &err);
        }
        return true;
    }
}

/* Opens the next queued file that is still what was seen settling. */
static job *next_job(eng_source *s)
{
    while (s->qhead < s->nqueue) {
        char *name = s->queue[s->qhead];
        s->queue[s->qhead++] = NULL;
        cand *c = cand_find(s, name);
        if (!c || c->state != CAND_QUEUED) {
            free(name);
            continue;
        }
        char *path = path_of(s->cc->source.file.dir, name);
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !same_content(c, &st)) {
            /* gone or changed since it settled: watch it again */
            if (fd >= 0) close(fd);
            c->state = CAND_WAITING;
            c->since = mono_ms();
            if (fd >= 0 && S_ISREG(st.st_mode)) cand_set(c, &st);
            free(path);
            free(name);
            continue;
        }
        job *j = xcalloc(1, sizeof(*j));
        j->s = s;
        j->name = name;
        j->path = path;
        j->fd = fd;
        j->r = hl7_reader_fd_stream(fd, &s->cc->limits);
        c->state = CAND_BUSY;
        j->next = s->jobs;
        s->jobs = j;
        return j;
    }
    s->nqueue = s->qhead = 0;
    return NULL;
}

/* Reads and submits while the in-flight bounds allow. */
static void pump(eng_source *s)
{
    for (int steps = 0;
         !s->stopping && s->inflight < MAX_INFLIGHT && s->inflight_bytes < MAX_INFLIGHT_BYTES;
         steps++) {
        if (steps == READS_PER_TURN) {
            kick(s); /* go on in the next loop turn */
            return;
        }
        job *j = s->reading;
        if (!j) {
            j = s->reading = next_job(s);
            if (!j) return;
        }
        if (!read_step(s, j)) {
            job_close_reader(j);
            j->read_all = true;
            s->reading = NULL;
            if (j->answered == j->submitted) job_finish(s, j);
        }
    }
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    eng_source *s = arg;
    pump(s);
    if (s->stopping && s->inflight == 0 && s->done) {
        void (*done)(void *) = s->done;
        s->done = NULL;
        done(s->done_arg);
    }
}

/* --- polling -------------------------------------------------------------------- */

static bool ignored(const config_source *src, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < src->file.nignore_suffixes; i++) {
        size_t k = strlen(src->file.ignore_suffixes[i]);
        if (k <= n && !memcmp(name + n - k, src->file.ignore_suffixes[i], k)) return true;
    }
    return false;
}

static int cand_age_cmp(const void *a, const void *b)
{
    const cand *x = *(const cand *const *)a, *y = *(const cand *const *)b;
    if (x->mtime.tv_sec != y->mtime.tv_sec) return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec) return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Lists the directory into a new sorted candidate array, carrying over
 * what was known of each file. False when the directory cannot be read. */
static bool rescan(eng_source *s, uint64_t now)
{
    const config_source *src = &s->cc->source;
    DIR *d = opendir(src->file.dir);
    if (!d) {
        if (errno != s->dir_errno)
            eng_log(s->ch, "cannot read the directory %s: %s; retrying at every poll",
                    src->file.dir, strerror(errno));
        s->dir_errno = errno;
        return false;
    }
    if (s->dir_errno) eng_log(s->ch, "the directory %s can be read again", src->file.dir);
    s->dir_errno = 0;
    cand *next = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (fnmatch(src->file.glob, name, FNM_PERIOD) != 0 || ignored(src, name)) continue;
        struct stat st;
        /* a symbolic link is never followed: whoever may drop files here
         * must not make the engine read (and move or delete) a file elsewhere */
        if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        cand *old = cand_find(s, name);
        next = xgrow(next, &cap, n + 1, sizeof(*next));
        cand *c = &next[n++];
        if (old) old->seen = true;
        if (old && (old->state == CAND_BUSY || old->state == CAND_QUEUED)) {
            *c = *old; /* what the job or the queue relies on */
            c->name = xstrdup(name);
            continue;
        }
        memset(c, 0, sizeof(*c));
        c->name = xstrdup(name);
        if (old && same_content(old, &st)) {
            c->since = old->since;
            c->not_before = old->not_before;
            c->state = old->state;
            c->finish_failures = old->finish_failures;
        } else {
            c->since = now;
            c->not_before = old ? old->not_before : 0;
            c->state = CAND_WAITING;
        }
        cand_set(c, &st);
    }
    closedir(d);
    /* A file being read that vanished from the listing keeps its entry
     * until its job ends. */
    for (size_t i = 0; i < s->ncands; i++) {
        cand *old = &s->cands[i];
        if (!old->seen && old->state == CAND_BUSY) {
            next = xgrow(next, &cap, n + 1, sizeof(*next));
            next[n++] = *old;
            old->name = NULL;
        }
        free(old->name);
    }
    free(s->cands);
    for (size_t i = 0; i < n; i++)
        next[i].seen = false;
    if (n) qsort(next, n, sizeof(*next), cand_cmp);
    s->cands = next;
    s->ncands = n;
    return true;
}

static void poll_dir(eng_source *s)
{
    uint64_t now = mono_ms();
    if (!rescan(s, now)) return;
    const config_source *src = &s->cc->source;
    cand **ready = NULL;
    size_t nready = 0, cap = 0;
    for (size_t i = 0; i < s->ncands; i++) {
        cand *c = &s->cands[i];
        if (c->state == CAND_DONE) {
            /* stored, but not yet moved away; log the 1st, 10th, 100th... failure */
            unsigned f = ++c->finish_failures;
            bool loud = f == 1 || f == 10 || f == 100 || f % 1000 == 0;
            if (finish_file(s, c->name, "all messages stored earlier", loud) == 0) {
                c->state = CAND_WAITING;
                c->since = now;
                c->finish_failures = 0;
            }
            continue;
        }
        if (c->state != CAND_WAITING || now < c->not_before) continue;
        if (now - c->since < src->file.settle_ms) continue;
        ready = xgrow(ready, &cap, nready + 1, sizeof(*ready));
        ready[nready++] = c;
    }
    if (nready) {
        qsort(ready, nready, sizeof(*ready), cand_age_cmp);
        if (s->qhead == s->nqueue) s->qhead = s->nqueue = 0;
        s->queue = xgrow(s->queue, &s->qcap, s->nqueue + nready, sizeof(*s->queue));
        for (size_t i = 0; i < nready; i++) {
            ready[i]->state = CAND_QUEUED;
            s->queue[s->nqueue++] = xstrdup(ready[i]->name);
        }
        kick(s);
    }
    free(ready);
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    eng_source *s = arg;
    if (!s->stopping) poll_dir(s);
}

/* --- lifecycle -------------------------------------------------------------------- */

static void file_free(eng_source *s)
{
    if (!s) return;
    while (s->jobs) {
        job *j = s->jobs;
        s->jobs = j->next;
        job_free(j);
    }
    for (size_t i = 0; i < s->ncands; i++)
        free(s->cands[i].name);
    free(s->cands);
    for (size_t i = s->qhead; i < s->nqueue; i++)
        free(s->queue[i]);
    free(s->queue);
    if (s->poll_ev) event_free(s->poll_ev);
    if (s->kick_ev) event_free(s->kick_ev);
    hl7_msg_free(s->msg);
    tbuf_free(&s->wire);
    free(s);
}

static eng_source *file_start(eng_channel *ch, tbuf *err)
{
    const config_channel *cc = eng_channel_config(ch);
    const config_source *src = &cc->source;
    assert(src->type == CONFIG_SOURCE_FILE && src->file.dir && src->file.glob);
    /* A directory that is missing now (a share not mounted yet) is not
     * fatal: every poll tries again, and logs when that changes. */
    if (src->file.after == CONFIG_AFTER_MOVE && mkdirs(src->file.move_to) != 0)
        eng_log(ch, "cannot create the move_to directory %s yet: %s", src->file.move_to,
                strerror(errno));
    eng_source *s = xcalloc(1, sizeof(*s));
    s->ch = ch;
    s->cc = cc;
    s->base = eng_channel_base(ch);
    s->msg = hl7_msg_new(&cc->limits);
    s->poll_ev = event_new(s->base, -1, EV_PERSIST, on_poll, s);
    s->kick_ev = evtimer_new(s->base, on_kick, s);
    if (!s->poll_ev || !s->kick_ev) {
        tbuf_puts(err, "cannot create the file source's events");
        file_free(s);
        return NULL;
    }
    uint64_t ms = src->file.poll_ms ? src->file.poll_ms : 1000;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(s->poll_ev, &tv);
    char poll[32], settle[32];
    eng_log(ch, "polling %s for %s every %s (settle %s), then %s%s", src->file.dir, src->file.glob,
            config_format_duration(ms, poll, sizeof(poll)),
            config_format_duration(src->file.settle_ms, settle, sizeof(settle)),
            src->file.after == CONFIG_AFTER_DELETE ? "deleting" : "moving to ",
            src->file.after == CONFIG_AFTER_DELETE ? "" : src->file.move_to);
    poll_dir(s); /* the first look right away */
    return s;
}

static void file_stop(eng_source *s, void (*done)(void *), void *arg)
{
    s->stopping = true;
    s->done = done;
    s->done_arg = arg;
    event_del(s->poll_ev);
    job *j = s->reading;
    if (j) {
        job_close_reader(j);
        j->abandoned = true;
        s->reading = NULL;
        if (j->answered == j->submitted) job_finish(s, j);
    }
    kick(s);
}

const eng_source_ops eng_source_file_ops = {file_start, file_stop, file_free};
