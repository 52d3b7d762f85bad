/*
 * store_blob: the body log. See store_blob.h for the format and the rules.
 *
 * The writer keeps the newest segment open and its size in memory (`size`,
 * what has been written; `synced`, what blob_sync made durable). Readers
 * keep a few segment descriptors open (a tiny cache, replaced round-robin):
 * a queue worker reads bodies in id order, so nearly every read hits the
 * segment it read last.
 */
#include "store/store_blob.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "base/mem.h"

#define MAGIC 0x31524254u /* "TBR1" read as a little-endian u32 */
#define READ_FDS 4
/* The writer extends its segment this many bytes at a time, ahead of its
 * appends (see preallocate). */
#define PREALLOC_BYTES (4u << 20)
/* ... and this many when the chunk is written as zeros (small appends):
 * the sync after it writes them all out, and the ACKs waiting on that sync
 * wait for it; 256 kB costs them about 0.2 ms, 4 MB cost them 3 to 5 ms. */
#define PREALLOC_ZEROS (256u << 10)
/* Appends of at least this many bytes (a loaded engine's batches) get their
 * space from fallocate rather than from written zeros. */
#define PREALLOC_BIG_APPEND (64u << 10)

typedef struct read_fd {
    int64_t seg;
    int fd;
} read_fd;

struct blob_log {
    char *dir;
    uint64_t segment_bytes;
    int lock_fd;     /* >= 0 when this handle is the writer */
    int64_t seg;     /* writer: the newest segment */
    int seg_fd;      /* writer: open on it */
    uint64_t size;   /* writer: bytes written to it */
    uint64_t alloc;  /* writer: its file size: size, then zeros (preallocated) */
    uint64_t synced; /* writer: bytes of it known durable */
    uint64_t mark;   /* writer: where the last blob_append started */
    /* writer: the syncer thread (blob_sync_start), started on first use */
    bool syncer_started, sync_pending;
    pthread_t syncer;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool sync_asked, sync_done, sync_quit; /* under mu */
    int sync_fd, sync_errno;               /* under mu */
    int64_t sync_seg;
    uint64_t sync_target;
    bool dir_dirty;  /* writer: a segment was created since the last sync */
    read_fd rd[READ_FDS];
    unsigned rd_next;
    struct iovec *iov; /* writer: scratch for blob_append */
    unsigned char *hdr;
    size_t cap_iov, cap_hdr;
};

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void seg_path(const blob_log *b, int64_t seg, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%08" PRId64 ".seg", b->dir, seg);
}

/* The segment number of a directory entry name, or 0 if it is not one. */
static int64_t seg_number(const char *name)
{
    size_t n = strlen(name);
    if (n < 5 || strcmp(name + n - 4, ".seg") != 0) return 0;
    int64_t v = 0;
    for (size_t i = 0; i < n - 4; i++) {
        if (name[i] < '0' || name[i] > '9' || v > INT64_MAX / 10 - 10) return 0;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* The highest segment number in the directory; 0 when there is none. */
static store_status newest_segment(const blob_log *b, int64_t *out, store_error *err)
{
    *out = 0;
    DIR *d = opendir(b->dir);
    if (!d) {
        if (errno == ENOENT) return STORE_OK;
        return store_fail(err, STORE_ERR_IO, "reading the body log %s: %s", b->dir,
                          strerror(errno));
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t n = seg_number(e->d_name);
        if (n > *out) *out = n;
    }
    closedir(d);
    return STORE_OK;
}

/* Writer: makes seg the segment appended to, creating it if needed. */
static store_status open_segment(blob_log *b, int64_t seg, store_error *err)
{
    char path[PATH_MAX];
    seg_path(b, seg, path, sizeof path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return store_fail(err, STORE_ERR_IO, "opening body segment %s: %s", path, strerror(e));
    }
    if (b->seg_fd >= 0) close(b->seg_fd);
    b->seg = seg;
    b->seg_fd = fd;
    b->size = b->synced = b->mark = b->alloc = (uint64_t)sb.st_size;
    b->dir_dirty = true; /* created, or found after a crash: sync the entry once */
    return STORE_OK;
}

static store_status make_dir(const char *dir, store_error *err)
{
    if (mkdir(dir, 0750) == 0) {
        char *parent = xstrdup(dir);
        char *slash = strrchr(parent, '/');
        if (slash) *(slash == parent ? slash + 1 : slash) = '\0';
        sync_dir(slash ? parent : ".");
        free(parent);
        return STORE_OK;
    }
    struct stat sb;
    if (errno == EEXIST && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) return STORE_OK;
    return store_fail(err, STORE_ERR_IO, "creating the body log %s: %s", dir,
                      errno == EEXIST ? "not a directory" : strerror(errno));
}

/* Tries to become the writer: the flock is released when lock_fd closes. */
static store_status take_writer_lock(blob_log *b, store_error *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/LOCK", b->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return store_fail(err, STORE_ERR_IO, "opening %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) return STORE_OK; /* someone else writes */
        return store_fail(err, STORE_ERR_IO, "locking %s: %s", path, strerror(e));
    }
    b->lock_fd = fd;
    return STORE_OK;
}

void blob_publish(blob_log *b)
{
    if (b->lock_fd < 0) return;
    unsigned char buf[16];
    uint64_t seg = (uint64_t)b->seg, off = b->size;
    for (int i = 0; i < 8; i++) {
        buf[i] = (unsigned char)(seg >> (8 * i));
        buf[8 + i] = (unsigned char)(off >> (8 * i));
    }
    (void)!pwrite(b->lock_fd, buf, sizeof buf, 0); /* a hint for readers: no sync */
}

bool blob_published(const char *dir, blob_ref *end)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    unsigned char buf[16];
    bool ok = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK && /* a writer runs */
              pread(fd, buf, sizeof buf, 0) == (ssize_t)sizeof buf;
    close(fd); /* also drops the shared lock, if we got it */
    if (!ok) return false;
    uint64_t seg = 0, off = 0;
    for (int i = 0; i < 8; i++) {
        seg |= (uint64_t)buf[i] << (8 * i);
        off |= (uint64_t)buf[8 + i] << (8 * i);
    }
    *end = (blob_ref){(int64_t)seg, (int64_t)off};
    return true;
}

store_status blob_open(const char *dir, bool write, uint64_t segment_bytes, blob_log **out,
                       bool *writer, store_error *err)
{
    blob_log *b = xcalloc(1, sizeof *b);
    b->dir = xstrdup(dir);
    b->segment_bytes = segment_bytes ? segment_bytes : BLOB_SEGMENT_BYTES;
    b->lock_fd = b->seg_fd = -1;
    for (int i = 0; i < READ_FDS; i++)
        b->rd[i].fd = -1;
    store_status st = STORE_OK;
    if (write) {
        st = make_dir(dir, err);
        if (st == STORE_OK) st = take_writer_lock(b, err);
        int64_t newest = 0;
        if (st == STORE_OK && b->lock_fd >= 0) st = newest_segment(b, &newest, err);
        if (st == STORE_OK && b->lock_fd >= 0) st = open_segment(b, newest ? newest : 1, err);
    }
    if (st != STORE_OK) {
        blob_close(b);
        *out = NULL;
        return st;
    }
    if (writer) *writer = b->lock_fd >= 0;
    *out = b;
    return STORE_OK;
}

static int sync_wait(blob_log *b);

void blob_close(blob_log *b)
{
    if (!b) return;
    if (b->syncer_started) {
        if (b->sync_pending) sync_wait(b);
        pthread_mutex_lock(&b->mu);
        b->sync_quit = true;
        pthread_cond_broadcast(&b->cv);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->syncer, NULL);
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
    }
    for (int i = 0; i < READ_FDS; i++)
        if (b->rd[i].fd >= 0) close(b->rd[i].fd);
    /* leave no zeros behind (not synced: a crash leaves them in the newest
     * segment, where recovery cuts them, and trim_segment syncs it) */
    if (b->seg_fd >= 0 && b->lock_fd >= 0 && b->alloc > b->size)
        (void)!ftruncate(b->seg_fd, (off_t)b->size);
    if (b->seg_fd >= 0) close(b->seg_fd);
    if (b->lock_fd >= 0) close(b->lock_fd);
    free(b->iov);
    free(b->hdr);
    free(b->dir);
    free(b);
}

/* Writes every iovec at offset off, however the kernel splits it. */
static int write_all(int fd, struct iovec *iov, size_t n, uint64_t off)
{
    while (n) {
        int cnt = n > IOV_MAX ? IOV_MAX : (int)n;
        ssize_t w = pwritev(fd, iov, cnt, (off_t)off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        off += (uint64_t)w;
        size_t left = (size_t)w;
        while (n && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n && left) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

/* Extends the writer's segment from alloc to at least need (a chunk of
 * PREALLOC_BYTES, not past the segment size unless need is), so that an
 * append's fdatasync finds the file size unchanged and the blocks there.
 * For small appends (light load, where a sync's latency is each ACK's) the
 * chunk (PREALLOC_ZEROS) is written with real zeros: the syncs then write
 * the data blocks only, while space from fallocate would make every sync also record which
 * blocks now hold data (ext4's unwritten extents). For big appends
 * (PREALLOC_BIG_APPEND: batches under load, where bytes per sync count)
 * the chunk comes from fallocate: zeros would double what goes to disk,
 * since a sync writes them out before the data that replaces them, and the
 * extra record is small next to the batch. Both read back as zeros. */
static store_status preallocate(blob_log *b, uint64_t need, uint64_t append, store_error *err)
{
    static const char zeros[65536];
    bool big = append >= PREALLOC_BIG_APPEND;
    uint64_t target = b->alloc + (big ? PREALLOC_BYTES : PREALLOC_ZEROS);
    if (target > b->segment_bytes) target = b->segment_bytes;
    if (target < need) target = need;
    if (big &&
        fallocate(b->seg_fd, 0, (off_t)b->alloc, (off_t)(target - b->alloc)) == 0) {
        b->alloc = target;
        return STORE_OK;
    } /* else (or where fallocate is not supported) zeros */
    while (b->alloc < target) {
        size_t n = target - b->alloc < sizeof zeros ? (size_t)(target - b->alloc) : sizeof zeros;
        ssize_t w = pwrite(b->seg_fd, zeros, n, (off_t)b->alloc);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            return store_fail(err, e == ENOSPC ? STORE_ERR_FULL : STORE_ERR_IO,
                              "extending segment %08" PRId64 " of %s: %s", b->seg, b->dir,
                              strerror(e));
        }
        b->alloc += (uint64_t)w;
    }
    return STORE_OK;
}

/* Cuts the unused zeros off the writer's segment, durably, before the
 * writer moves to the next one: recovery reads a segment that is not the
 * newest only to its end, and zeros there would look like damage. */
static store_status trim_segment(blob_log *b, store_error *err)
{
    if (b->alloc == b->size) return STORE_OK;
    if (ftruncate(b->seg_fd, (off_t)b->size) != 0 || fdatasync(b->seg_fd) != 0)
        return store_fail(err, STORE_ERR_IO, "closing segment %08" PRId64 " of %s: %s", b->seg,
                          b->dir, strerror(errno));
    b->alloc = b->size;
    return STORE_OK;
}

store_status blob_append(blob_log *b, const blob_body *bodies, size_t n, blob_ref *refs,
                         store_error *err)
{
    if (b->lock_fd < 0)
        return store_fail(err, STORE_ERR_ARG, "the body log %s is written by another handle",
                          b->dir);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (bodies[i].len > BLOB_MAX_BODY)
            return store_fail(err, STORE_ERR_ARG, "a message of %zu bytes is too large to store",
                              bodies[i].len);
        if (bodies[i].meta_len > BLOB_MAX_BODY)
            return store_fail(err, STORE_ERR_ARG, "metadata of %zu bytes is too large to store",
                              bodies[i].meta_len);
        total += BLOB_HEADER + bodies[i].len + bodies[i].meta_len;
    }
    if (b->size > 0 && b->size + total > b->segment_bytes) {
        store_status st = trim_segment(b, err);
        if (st == STORE_OK) st = open_segment(b, b->seg + 1, err);
        if (st != STORE_OK) return st;
    }
    if (b->size + total > b->alloc) {
        store_status st = preallocate(b, b->size + total, total, err);
        if (st != STORE_OK) return st;
    }
    b->iov = xgrow(b->iov, &b->cap_iov, 3 * n, sizeof *b->iov);
    b->hdr = xgrow(b->hdr, &b->cap_hdr, BLOB_HEADER * n, 1);
    uint64_t off = b->size;
    for (size_t i = 0; i < n; i++) {
        const blob_body *x = &bodies[i];
        unsigned char *h = b->hdr + BLOB_HEADER * i;
        put32(h, MAGIC);
        put32(h + 4, (uint32_t)x->len);
        put32(h + 8, (uint32_t)x->meta_len);
        put32(h + 12, crc32c(0, x->p, x->len));
        put32(h + 16, crc32c(0, x->meta, x->meta_len));
        put32(h + 20, 0);
        b->iov[3 * i] = (struct iovec){h, BLOB_HEADER};
        b->iov[3 * i + 1] = (struct iovec){(void *)x->p, x->len};
        b->iov[3 * i + 2] = (struct iovec){(void *)x->meta, x->meta_len};
        refs[i] = (blob_ref){b->seg, (int64_t)off};
        off += BLOB_HEADER + x->len + x->meta_len;
    }
    b->mark = b->size;
    if (write_all(b->seg_fd, b->iov, 3 * n, b->size) != 0) {
        int e = errno;
        blob_rollback(b);
        return store_fail(err, e == ENOSPC ? STORE_ERR_FULL : STORE_ERR_IO,
                          "appending %zu bodies to segment %08" PRId64 " of %s: %s", n, b->seg,
                          b->dir, strerror(e));
    }
    /* Start the write-back now; blob_sync then mostly waits for the flush. */
    sync_file_range(b->seg_fd, (off64_t)b->size, (off64_t)total, SYNC_FILE_RANGE_WRITE);
    b->size = off;
    return STORE_OK;
}

/* The syncer thread: runs fdatasync on the writer's segment when asked, so
 * that the flush overlaps with the caller's work (blob_sync_start). */
static void *syncer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "tern-sync");
    blob_log *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->sync_asked && !b->sync_quit)
            pthread_cond_wait(&b->cv, &b->mu);
        if (b->sync_quit) break;
        int fd = b->sync_fd;
        pthread_mutex_unlock(&b->mu);
        int rc = fdatasync(fd) == 0 ? 0 : errno;
        pthread_mutex_lock(&b->mu);
        b->sync_errno = rc;
        b->sync_asked = false;
        b->sync_done = true;
        pthread_cond_broadcast(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

void blob_sync_start(blob_log *b)
{
    if (b->lock_fd < 0 || b->synced == b->size || b->sync_pending) return;
    if (!b->syncer_started) {
        pthread_mutex_init(&b->mu, NULL);
        pthread_cond_init(&b->cv, NULL);
        if (pthread_create(&b->syncer, NULL, syncer_main, b) != 0) {
            pthread_cond_destroy(&b->cv);
            pthread_mutex_destroy(&b->mu);
            return; /* blob_sync syncs inline */
        }
        b->syncer_started = true;
    }
    pthread_mutex_lock(&b->mu);
    b->sync_fd = b->seg_fd;
    b->sync_target = b->size;
    b->sync_seg = b->seg;
    b->sync_asked = true;
    b->sync_done = false;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    b->sync_pending = true;
}

/* Waits for the sync blob_sync_start asked for; marks what it covered. */
static int sync_wait(blob_log *b)
{
    pthread_mutex_lock(&b->mu);
    while (!b->sync_done)
        pthread_cond_wait(&b->cv, &b->mu);
    int rc = b->sync_errno;
    pthread_mutex_unlock(&b->mu);
    b->sync_pending = false;
    if (rc == 0 && b->sync_seg == b->seg && b->sync_target > b->synced)
        b->synced = b->sync_target;
    return rc;
}

store_status blob_sync(blob_log *b, store_error *err)
{
    if (b->sync_pending) {
        int rc = sync_wait(b);
        if (rc != 0)
            return store_fail(err, rc == ENOSPC ? STORE_ERR_FULL : STORE_ERR_IO,
                              "syncing segment %08" PRId64 " of the body log %s: %s", b->seg,
                              b->dir, strerror(rc));
    }
    if (b->lock_fd < 0 || b->synced == b->size) {
        if (b->lock_fd >= 0 && b->dir_dirty) {
            sync_dir(b->dir);
            b->dir_dirty = false;
        }
        return STORE_OK;
    }
    if (fdatasync(b->seg_fd) != 0)
        return store_fail(err, errno == ENOSPC ? STORE_ERR_FULL : STORE_ERR_IO,
                          "syncing segment %08" PRId64 " of the body log %s: %s", b->seg, b->dir,
                          strerror(errno));
    if (b->dir_dirty) {
        sync_dir(b->dir);
        b->dir_dirty = false;
    }
    b->synced = b->size;
    return STORE_OK;
}

void blob_rollback(blob_log *b)
{
    if (b->sync_pending) sync_wait(b);
    if (b->lock_fd < 0 || b->size == b->mark) return;
    if (ftruncate(b->seg_fd, (off_t)b->mark) == 0) {
        b->size = b->alloc = b->mark;
        if (b->synced > b->size) b->synced = b->size;
        fdatasync(b->seg_fd);
    }
}

blob_ref blob_end(const blob_log *b)
{
    return (blob_ref){b->seg, (int64_t)b->size};
}

/* A reading descriptor for segment seg, from the cache or newly opened. */
static int read_fd_for(blob_log *b, int64_t seg)
{
    if (b->seg_fd >= 0 && seg == b->seg) return b->seg_fd;
    for (int i = 0; i < READ_FDS; i++)
        if (b->rd[i].fd >= 0 && b->rd[i].seg == seg) return b->rd[i].fd;
    char path[PATH_MAX];
    seg_path(b, seg, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    read_fd *slot = &b->rd[b->rd_next++ % READ_FDS];
    if (slot->fd >= 0) close(slot->fd);
    *slot = (read_fd){seg, fd};
    return fd;
}

static int read_all(int fd, void *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r == 0 ? 1 : -1; /* 1: the file ends early */
        p = (char *)p + r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

store_status blob_read(blob_log *b, blob_ref ref, size_t len, tbuf *out, store_error *err)
{
    int fd = read_fd_for(b, ref.seg);
    if (fd < 0)
        return store_fail(err, STORE_ERR_IO, "opening segment %08" PRId64 " of the body log %s: %s",
                          ref.seg, b->dir, strerror(errno));
    size_t at = out->len;
    tbuf_grow(out, BLOB_HEADER + len + 1);
    unsigned char *h = (unsigned char *)out->p + at;
    int rc = read_all(fd, h, BLOB_HEADER + len, (uint64_t)ref.off);
    if (rc < 0)
        return store_fail(err, STORE_ERR_IO,
                          "reading segment %08" PRId64 " of the body log %s at %" PRId64 ": %s",
                          ref.seg, b->dir, ref.off, strerror(errno));
    if (rc > 0 || get32(h) != MAGIC || get32(h + 4) != len || get32(h + 20) != 0 ||
        get32(h + 12) != crc32c(0, h + BLOB_HEADER, len))
        return store_fail(err, STORE_ERR_CORRUPT,
                          "the body at offset %" PRId64 " of segment %08" PRId64
                          " in %s is damaged (%s)",
                          ref.off, ref.seg, b->dir,
                          rc > 0                       ? "the file ends early"
                          : get32(h) != MAGIC          ? "no record header"
                          : get32(h + 4) != len        ? "wrong length"
                          : get32(h + 20) != 0         ? "unknown flags"
                                                       : "checksum mismatch");
    memmove(h, h + BLOB_HEADER, len);
    out->len = at + len;
    out->p[out->len] = '\0';
    return STORE_OK;
}

store_status blob_remove_unused(blob_log *b, blob_in_use_fn in_use, void *ctx, uint64_t *bytes,
                                store_error *err)
{
    int64_t newest;
    store_status st = newest_segment(b, &newest, err);
    if (st != STORE_OK) return st;
    DIR *d = opendir(b->dir);
    if (!d) return STORE_OK; /* no log at all */
    struct dirent *e;
    bool removed = false;
    while ((e = readdir(d)) != NULL) {
        int64_t seg = seg_number(e->d_name);
        if (seg == 0 || seg >= newest || in_use(ctx, seg)) continue;
        char path[PATH_MAX];
        seg_path(b, seg, path, sizeof path);
        struct stat sb;
        if (stat(path, &sb) == 0 && unlink(path) == 0) {
            *bytes += (uint64_t)sb.st_size;
            removed = true;
        }
        for (int i = 0; i < READ_FDS; i++)
            if (b->rd[i].fd >= 0 && b->rd[i].seg == seg) {
                close(b->rd[i].fd);
                b->rd[i].fd = -1;
            }
    }
    closedir(d);
    if (removed) sync_dir(b->dir);
    return STORE_OK;
}

/* Zeros n bytes of fd from off. 0 or -1 (errno). */
static int write_zeros(int fd, uint64_t off, uint64_t n)
{
    static const unsigned char zeros[65536];
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        ssize_t w = pwrite(fd, zeros, k, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        off += (uint64_t)w;
        n -= (uint64_t)w;
    }
    return 0;
}

/* CRC-32C of n zero bytes. */
static uint32_t crc_of_zeros(uint64_t n)
{
    static const unsigned char zeros[65536];
    uint32_t c = 0;
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        c = crc32c(c, zeros, k);
        n -= k;
    }
    return c;
}

/* Wipes one record of the open segment fd; 1 when it is not the record
 * described (left alone), -1 on an I/O error. */
static int wipe_one(int fd, const blob_span *sp)
{
    unsigned char h[BLOB_HEADER];
    if (read_all(fd, h, BLOB_HEADER, (uint64_t)sp->ref.off) != 0) return 1;
    uint32_t len = get32(h + 4), meta_len = get32(h + 8);
    if (get32(h) != MAGIC || len != sp->len || (get32(h + 20) & BLOB_WIPED)) return 1;
    if (write_zeros(fd, (uint64_t)sp->ref.off + BLOB_HEADER, (uint64_t)len + meta_len) != 0)
        return -1;
    put32(h + 12, crc_of_zeros(len));
    put32(h + 16, crc_of_zeros(meta_len));
    put32(h + 20, get32(h + 20) | BLOB_WIPED);
    return pwrite(fd, h, BLOB_HEADER, (off_t)sp->ref.off) == BLOB_HEADER ? 0 : -1;
}

store_status blob_wipe(blob_log *b, const blob_span *spans, size_t n, store_error *err)
{
    int fd = -1;
    int64_t seg = 0;
    store_status st = STORE_OK;
    for (size_t i = 0; i <= n && st == STORE_OK; i++) {
        if (fd >= 0 && (i == n || spans[i].ref.seg != seg)) {
            if (fdatasync(fd) != 0)
                st = store_fail(err, STORE_ERR_IO, "syncing segment %08" PRId64 " of %s: %s", seg,
                                b->dir, strerror(errno));
            close(fd);
            fd = -1;
        }
        if (i == n || st != STORE_OK) break;
        if (fd < 0) {
            char path[PATH_MAX];
            seg = spans[i].ref.seg;
            seg_path(b, seg, path, sizeof path);
            fd = open(path, O_RDWR | O_CLOEXEC);
            if (fd < 0) {
                if (errno == ENOENT) continue; /* the segment is gone already */
                st = store_fail(err, STORE_ERR_IO, "opening segment %08" PRId64 " of %s: %s",
                                seg, b->dir, strerror(errno));
                break;
            }
        }
        if (wipe_one(fd, &spans[i]) < 0)
            st = store_fail(err, STORE_ERR_IO,
                            "wiping a pruned body in segment %08" PRId64 " of %s: %s", seg,
                            b->dir, strerror(errno));
    }
    if (fd >= 0) close(fd);
    return st;
}

/* Reads the record at off of fd into buf (header, body, meta) if it is
 * whole and its checksums match; *next is where the following one starts;
 * *wiped says it was blanked by blob_wipe.
 * Returns 0 for a good record, 1 for the end of the segment (clean or torn:
 * *why says which), -1 for a read error. */
static int read_record(int fd, uint64_t off, tbuf *buf, size_t *body_len, uint64_t *next,
                       bool *wiped, const char **why)
{
    unsigned char h[BLOB_HEADER];
    *why = NULL;
    int rc = read_all(fd, h, BLOB_HEADER, off);
    if (rc != 0) {
        if (rc > 0) {
            struct stat sb;
            bool clean = fstat(fd, &sb) == 0 && (uint64_t)sb.st_size == off;
            *why = clean ? NULL : "a partial record header";
        }
        return rc;
    }
    uint32_t len = get32(h + 4), meta_len = get32(h + 8);
    if (get32(h) != MAGIC || (get32(h + 20) & ~BLOB_WIPED) != 0 || len > BLOB_MAX_BODY ||
        meta_len > BLOB_MAX_BODY) {
        *why = "no record header";
        return 1;
    }
    tbuf_reset(buf);
    tbuf_grow(buf, (size_t)len + meta_len);
    rc = read_all(fd, buf->p, (size_t)len + meta_len, off + BLOB_HEADER);
    if (rc != 0) {
        *why = "a partial record";
        return rc;
    }
    if (get32(h + 12) != crc32c(0, buf->p, len) ||
        get32(h + 16) != crc32c(0, buf->p + len, meta_len)) {
        *why = "a checksum mismatch";
        return 1;
    }
    buf->len = (size_t)len + meta_len;
    *body_len = len;
    *wiped = get32(h + 20) & BLOB_WIPED;
    *next = off + BLOB_HEADER + len + meta_len;
    return 0;
}

/* Hands the records of segment seg from off to fn; *end is where the last
 * good one ends, *why why reading stopped before the end of the file. */
static store_status recover_segment(blob_log *b, int64_t seg, uint64_t off, blob_record_fn fn,
                                    void *ctx, uint64_t *end, const char **why, store_error *err)
{
    int fd = read_fd_for(b, seg);
    if (fd < 0)
        return store_fail(err, STORE_ERR_IO, "opening segment %08" PRId64 " of the body log %s: %s",
                          seg, b->dir, strerror(errno));
    tbuf buf = TBUF_INIT;
    store_status st = STORE_OK;
    for (;;) {
        uint64_t next;
        size_t body_len;
        bool wiped;
        int rc = read_record(fd, off, &buf, &body_len, &next, &wiped, why);
        if (rc < 0)
            st = store_fail(err, STORE_ERR_IO, "reading segment %08" PRId64 " of %s: %s", seg,
                            b->dir, strerror(errno));
        if (rc != 0) break;
        if (wiped) { /* a pruned message's record: nothing to rebuild */
            off = next;
            continue;
        }
        st = fn(ctx, (blob_ref){seg, (int64_t)off}, (blob_ref){seg, (int64_t)next}, buf.p,
                body_len, buf.p + body_len, buf.len - body_len, err);
        if (st != STORE_OK) break;
        off = next;
    }
    tbuf_free(&buf);
    *end = off;
    return st;
}

store_status blob_recover(blob_log *b, blob_ref from, blob_record_fn fn, void *ctx,
                          store_error *err)
{
    if (b->lock_fd < 0)
        return store_fail(err, STORE_ERR_ARG, "the body log %s is written by another handle",
                          b->dir);
    for (int64_t seg = from.seg; seg <= b->seg; seg++) {
        uint64_t end = 0;
        const char *why = NULL;
        uint64_t start = seg == from.seg ? (uint64_t)from.off : 0;
        store_status st = recover_segment(b, seg, start, fn, ctx, &end, &why, err);
        if (st != STORE_OK) return st;
        if (why && seg < b->seg)
            return store_fail(err, STORE_ERR_CORRUPT,
                              "segment %08" PRId64 " of the body log %s holds %s at offset %" PRIu64,
                              seg, b->dir, why, end);
        if (why || (seg == b->seg && end < b->size)) {
            /* a torn tail of the newest segment: cut it off */
            if (ftruncate(b->seg_fd, (off_t)end) != 0 || fdatasync(b->seg_fd) != 0)
                return store_fail(err, STORE_ERR_IO, "cutting a torn record off %s: %s", b->dir,
                                  strerror(errno));
            b->size = b->synced = b->mark = b->alloc = end;
        }
    }
    return STORE_OK;
}
