/*
 * dest_file: writes each message to a file in the destination's directory,
 * named by its filename template. The write is atomic: the bytes go to a
 * hidden temporary file in the same directory, are fsynced, and the file is
 * renamed into place, so a reader never sees half a message and a crash
 * leaves either nothing or the whole file. Subdirectories named by the
 * template are created. An existing file of the same name is replaced (a
 * message sent twice after a crash gives the same file, not two).
 *
 * Errors: a full disk, missing permissions and the like are transient
 * (STORE_RETRY): an operator can fix them and the queue goes on.
 */
#include "engine/engine_int.h"

#include "base/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct file_dest {
    hl7_msg *msg;
    unsigned long long seq;
} file_dest;

static int mkdirs(const char *path, char *why, size_t whylen)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof(buf)) {
        snprintf(why, whylen, "path too long: %.200s", path);
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST) {
            snprintf(why, whylen, "cannot create directory %.300s: %s", buf, strerror(errno));
            return -1;
        }
        buf[i] = c;
    }
    return 0;
}

static int file_open(eng_dest *d, tbuf *err)
{
    char why[512];
    if (mkdirs(eng_dest_config(d)->file.dir, why, sizeof(why)) != 0) {
        tbuf_puts(err, why);
        return -1;
    }
    file_dest *f = xcalloc(1, sizeof(*f));
    f->msg = hl7_msg_new(NULL);
    eng_dest_set_impl(d, f);
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void file_deliver(eng_dest *d, const eng_delivery *dl)
{
    file_dest *f = eng_dest_impl(d);
    const config_destination *c = eng_dest_config(d);
    const config_channel *cc = eng_channel_config(eng_dest_channel(d));
    bool parsed = hl7_parse(f->msg, dl->raw, dl->len, NULL) == HL7_OK;
    tbuf name = TBUF_INIT, path = TBUF_INIT, tmp = TBUF_INIT;
    config_template_render(&c->file.filename, parsed ? f->msg : NULL, cc->name, (uint64_t)dl->id,
                           (time_t)(dl->received_at / 1000), &name);
    tbuf_printf(&path, "%s/%s", c->file.dir, name.p);
    char why[1024] = "";
    /* subdirectories from the template */
    char *slash = strrchr(path.p, '/');
    *slash = '\0';
    int rc = mkdirs(path.p, why, sizeof(why));
    *slash = '/';
    if (rc == 0) {
        tbuf_printf(&tmp, "%.*s/.tern-%d-%llu.tmp", (int)(slash - path.p), path.p, (int)getpid(),
                    ++f->seq);
        int fd = open(tmp.p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        if (fd < 0 || write_all(fd, dl->raw, dl->len) != 0 || fsync(fd) != 0) {
            snprintf(why, sizeof(why), "cannot write %.300s: %s", tmp.p, strerror(errno));
            rc = -1;
        }
        if (fd >= 0) close(fd);
        if (rc == 0 && rename(tmp.p, path.p) != 0) {
            snprintf(why, sizeof(why), "cannot rename %.250s to %.250s: %s", tmp.p, path.p,
                     strerror(errno));
            rc = -1;
        }
        if (rc != 0) unlink(tmp.p);
    }
    tbuf_free(&name);
    tbuf_free(&path);
    tbuf_free(&tmp);
    eng_dest_result(d, dl->id, rc == 0 ? STORE_SENT : STORE_RETRY, rc == 0 ? NULL : why);
}

static void file_close(eng_dest *d)
{
    file_dest *f = eng_dest_impl(d);
    if (!f) return;
    hl7_msg_free(f->msg);
    free(f);
    eng_dest_set_impl(d, NULL);
}

const eng_dest_ops eng_dest_file_ops = {file_open, file_deliver, file_close};
