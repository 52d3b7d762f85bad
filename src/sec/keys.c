/*
 * keys: see keys.h for the key hierarchy and the sealed format.
 *
 * The keyring file is small JSON (jansson) rewritten whole: written to
 * PATH.tmp, fsynced, renamed over PATH, and the directory fsynced, all while
 * holding flock on PATH.lock so that a server and a CLI never interleave.
 * Readers take the same lock only while reading, briefly.
 */
#include "sec/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/core_names.h>
#include <openssl/rand.h>

#include "base/mem.h"

#define MAGIC "TSE1"
#define SALT_LEN 16
#define NONCE_LEN 12
#define TAG_LEN 16
#define HEAD_LEN (4 + 4 + SALT_LEN + NONCE_LEN)
#define CACHE_SLOTS 8
#define POOL_SLOTS 4
#define MAX_DATA_KEYS 4096

typedef struct data_key {
    uint32_t id;
    unsigned char key[KEYS_LEN];
} data_key;

typedef struct session_key {
    uint32_t id;
    unsigned char salt[SALT_LEN];
    unsigned char key[KEYS_LEN];
    bool used;
} session_key;

struct keyring {
    data_key *data;
    size_t n_data;
    uint32_t current;
    unsigned char index_key[KEYS_LEN];
    /* this handle's sealing session */
    unsigned char salt[SALT_LEN];
    unsigned char session[KEYS_LEN];
    atomic_uint_fast64_t counter;
    /* fetched once: OpenSSL 3 looks an algorithm up on every implicit use */
    EVP_CIPHER *aes;         /* AES-256-GCM */
    EVP_MAC_CTX *index_mac;  /* HMAC-SHA256 keyed with index_key, duplicated per token */
    /* session keys of other handles, for opening */
    pthread_mutex_t lock;
    session_key cache[CACHE_SLOTS];
    size_t next_slot;
    /* under lock: contexts already keyed with session (AES key schedule
     * done) and with index_key, returned after each use; a seal or token
     * then costs no key setup and no allocation */
    EVP_CIPHER_CTX *sealers[POOL_SLOTS];
    size_t n_sealers;
    EVP_MAC_CTX *macs[POOL_SLOTS];
    size_t n_macs;
};

static int fail(tbuf *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(tbuf *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        tbuf_reset(err);
        tbuf_vprintf(err, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* --- small helpers ------------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Parses exactly 2*n hex digits (surrounding white space allowed). */
static bool parse_hex(const char *s, size_t len, unsigned char *out, size_t n)
{
    while (len && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n' ||
                   s[len - 1] == '\r'))
        len--;
    if (len != 2 * n) return false;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

static void to_hex(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void hmac256(const unsigned char *key, const void *a, size_t alen, const void *b,
                    size_t blen, unsigned char out[32])
{
    unsigned char buf[256];
    unsigned int len = 32;
    if (alen + blen <= sizeof buf) {
        memcpy(buf, a, alen);
        if (blen) memcpy(buf + alen, b, blen);
        HMAC(EVP_sha256(), key, KEYS_LEN, buf, alen + blen, out, &len);
        OPENSSL_cleanse(buf, sizeof buf);
        return;
    }
    unsigned char *big = xmalloc(alen + blen);
    memcpy(big, a, alen);
    memcpy(big + alen, b, blen);
    HMAC(EVP_sha256(), key, KEYS_LEN, big, alen + blen, out, &len);
    OPENSSL_cleanse(big, alen + blen);
    free(big);
}

static void derive_session(const unsigned char *dkey, const unsigned char salt[SALT_LEN],
                           unsigned char out[KEYS_LEN])
{
    hmac256(dkey, "tern-session", 12, salt, SALT_LEN, out);
}

/* AES-256-GCM of p[0..n) into out (n bytes) and tag. */
static bool gcm_with(const EVP_CIPHER *cipher, bool enc, const unsigned char *key,
                     const unsigned char *nonce, const void *aad, size_t aad_len,
                     const unsigned char *in, size_t n, unsigned char *out,
                     unsigned char tag[TAG_LEN])
{
    if (n > INT32_MAX || aad_len > INT32_MAX) return false;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c) return false;
    int len = 0;
    bool ok =
        (enc ? EVP_EncryptInit_ex(c, cipher, NULL, key, nonce)
             : EVP_DecryptInit_ex(c, cipher, NULL, key, nonce)) == 1 &&
        (enc ? EVP_EncryptUpdate(c, NULL, &len, aad, (int)aad_len)
             : EVP_DecryptUpdate(c, NULL, &len, aad, (int)aad_len)) == 1 &&
        (n == 0 || (enc ? EVP_EncryptUpdate(c, out, &len, in, (int)n)
                        : EVP_DecryptUpdate(c, out, &len, in, (int)n)) == 1);
    if (ok && enc) {
        ok = EVP_EncryptFinal_ex(c, out + n, &len) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1;
    } else if (ok) {
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1 &&
             EVP_DecryptFinal_ex(c, out + n, &len) == 1;
    }
    EVP_CIPHER_CTX_free(c);
    return ok;
}

/* For the rare wraps and unwraps of the keyring file. */
static bool gcm(bool enc, const unsigned char *key, const unsigned char *nonce, const void *aad,
                size_t aad_len, const unsigned char *in, size_t n, unsigned char *out,
                unsigned char tag[TAG_LEN])
{
    return gcm_with(EVP_aes_256_gcm(), enc, key, nonce, aad, aad_len, in, n, out, tag);
}

/* --- the master key ----------------------------------------------------------------- */

int keys_load_master(const char *key_file, const char *env, unsigned char master[KEYS_LEN],
                     tbuf *err)
{
    if (!key_file) {
        const char *name = env ? env : KEYS_DEFAULT_ENV;
        const char *v = getenv(name);
        if (!v || !*v)
            return fail(err, "no master key: set %s (64 hex digits) or encryption.key_file "
                             "(tern keys init --key-file FILE makes one)",
                        name);
        if (!parse_hex(v, strlen(v), master, KEYS_LEN))
            return fail(err, "%s must hold 64 hex digits (a 256-bit key)", name);
        return 0;
    }
    int fd = open(key_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(err, "master key file %s: %s", key_file, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return fail(err, "master key file %s is not a regular file", key_file);
    }
    if (sb.st_mode & 077) {
        close(fd);
        return fail(err, "master key file %s may be read by group or others (mode %03o): "
                         "chmod 600 it",
                    key_file, (unsigned)(sb.st_mode & 0777));
    }
    char buf[200];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    bool ok = false;
    if (n == KEYS_LEN) {
        memcpy(master, buf, KEYS_LEN);
        ok = true;
    } else if (n > 0) {
        ok = parse_hex(buf, (size_t)n, master, KEYS_LEN);
    }
    OPENSSL_cleanse(buf, sizeof buf);
    if (!ok)
        return fail(err, "master key file %s must hold 64 hex digits or 32 bytes", key_file);
    return 0;
}

int keys_generate_master(const char *path, tbuf *err)
{
    unsigned char key[KEYS_LEN];
    char hex[2 * KEYS_LEN + 2];
    if (RAND_bytes(key, KEYS_LEN) != 1) return fail(err, "no random bytes from OpenSSL");
    to_hex(key, KEYS_LEN, hex);
    OPENSSL_cleanse(key, sizeof key);
    strcat(hex, "\n");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        OPENSSL_cleanse(hex, sizeof hex);
        return fail(err, "creating %s: %s", path, strerror(errno));
    }
    bool ok = write(fd, hex, strlen(hex)) == (ssize_t)strlen(hex) && fsync(fd) == 0;
    int e = errno;
    close(fd);
    OPENSSL_cleanse(hex, sizeof hex);
    if (!ok) {
        unlink(path);
        return fail(err, "writing %s: %s", path, strerror(e));
    }
    return 0;
}

char *keys_ring_path(const char *store_path)
{
    tbuf b = TBUF_INIT;
    tbuf_printf(&b, "%s-keys.json", store_path);
    return tbuf_detach(&b, NULL);
}

/* --- the keyring file --------------------------------------------------------------- */

typedef struct ring_file {
    unsigned char check[32];
    uint32_t current;
    unsigned char index_key[KEYS_LEN];
    data_key *data;
    size_t n_data;
    char **created; /* per data key */
} ring_file;

static void ring_file_free(ring_file *r)
{
    if (r->data) OPENSSL_cleanse(r->data, r->n_data * sizeof *r->data);
    free(r->data);
    for (size_t i = 0; i < r->n_data; i++) free(r->created ? r->created[i] : NULL);
    free(r->created);
    OPENSSL_cleanse(r->index_key, sizeof r->index_key);
    *r = (ring_file){0};
}

static void master_check(const unsigned char *master, unsigned char out[32])
{
    hmac256(master, "tern keyring check", 18, "", 0, out);
}

static json_t *wrap(const unsigned char *master, const char *aad, const unsigned char *key)
{
    unsigned char buf[NONCE_LEN + KEYS_LEN + TAG_LEN];
    if (RAND_bytes(buf, NONCE_LEN) != 1) return NULL;
    if (!gcm(true, master, buf, aad, strlen(aad), key, KEYS_LEN, buf + NONCE_LEN,
             buf + NONCE_LEN + KEYS_LEN))
        return NULL;
    char hex[2 * sizeof buf + 1];
    to_hex(buf, sizeof buf, hex);
    return json_string(hex);
}

static bool unwrap(const unsigned char *master, const char *aad, json_t *v, unsigned char *key)
{
    unsigned char buf[NONCE_LEN + KEYS_LEN + TAG_LEN];
    const char *s = json_string_value(v);
    if (!s || !parse_hex(s, strlen(s), buf, sizeof buf)) return false;
    return gcm(false, master, buf, aad, strlen(aad), buf + NONCE_LEN, KEYS_LEN, key,
               buf + NONCE_LEN + KEYS_LEN);
}

static void wrap_aad(char *out, size_t cap, uint32_t id)
{
    snprintf(out, cap, "tern-wrap:data:%u", (unsigned)id);
}

static int ring_parse(const char *path, const char *text, const unsigned char *master,
                      ring_file *r, tbuf *err)
{
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    if (!root) return fail(err, "keyring %s: not JSON (%s, line %d)", path, je.text, je.line);
    int rc = -1;
    unsigned char want[32];
    master_check(master, want);
    const char *check = json_string_value(json_object_get(root, "check"));
    json_t *keys = json_object_get(root, "data_keys");
    json_int_t cur = json_integer_value(json_object_get(root, "current"));
    if (!check || !json_is_array(keys) || cur <= 0 ||
        json_array_size(keys) > MAX_DATA_KEYS ||
        !json_is_string(json_object_get(root, "format")) ||
        strcmp(json_string_value(json_object_get(root, "format")), "tern-keyring-1") != 0) {
        fail(err, "keyring %s: not a Tern keyring (format tern-keyring-1)", path);
        goto out;
    }
    if (!parse_hex(check, strlen(check), r->check, 32) || CRYPTO_memcmp(r->check, want, 32) != 0) {
        fail(err, "keyring %s: the master key is not the one this keyring was made with", path);
        goto out;
    }
    if (!unwrap(master, "tern-wrap:index", json_object_get(root, "index_key"), r->index_key)) {
        fail(err, "keyring %s: the index key does not unwrap (damaged file)", path);
        goto out;
    }
    size_t n = json_array_size(keys);
    r->data = xcalloc(n ? n : 1, sizeof *r->data);
    r->created = xcalloc(n ? n : 1, sizeof *r->created);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(keys, i);
        json_int_t id = json_integer_value(json_object_get(e, "id"));
        char aad[48];
        wrap_aad(aad, sizeof aad, (uint32_t)id);
        if (id <= 0 || id > UINT32_MAX ||
            !unwrap(master, aad, json_object_get(e, "key"), r->data[i].key)) {
            fail(err, "keyring %s: data key %zu does not unwrap (damaged file)", path, i + 1);
            goto out;
        }
        r->data[i].id = (uint32_t)id;
        const char *when = json_string_value(json_object_get(e, "created"));
        r->created[i] = xstrdup(when ? when : "");
        r->n_data = i + 1;
    }
    r->current = (uint32_t)cur;
    bool found = false;
    for (size_t i = 0; i < r->n_data; i++) found |= r->data[i].id == r->current;
    if (!found) {
        fail(err, "keyring %s: the current data key %u is missing", path, (unsigned)r->current);
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

static json_t *ring_json(const ring_file *r, const unsigned char *master)
{
    unsigned char check[32];
    char hex[65];
    master_check(master, check);
    to_hex(check, 32, hex);
    json_t *keys = json_array();
    for (size_t i = 0; i < r->n_data; i++) {
        char aad[48];
        wrap_aad(aad, sizeof aad, r->data[i].id);
        json_t *w = wrap(master, aad, r->data[i].key);
        if (!w) {
            json_decref(keys);
            return NULL;
        }
        json_array_append_new(keys, json_pack("{s:i, s:s, s:o}", "id", (json_int_t)r->data[i].id,
                                              "created", r->created[i], "key", w));
    }
    json_t *iw = wrap(master, "tern-wrap:index", r->index_key);
    if (!iw) {
        json_decref(keys);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:i, s:o, s:o}", "format", "tern-keyring-1", "check", hex,
                     "current", (json_int_t)r->current, "index_key", iw, "data_keys", keys);
}

static int lock_ring(const char *path, tbuf *err)
{
    tbuf lp = TBUF_INIT;
    tbuf_printf(&lp, "%s.lock", path);
    int fd = open(lp.p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) fail(err, "keyring lock %s: %s", lp.p, strerror(errno));
    tbuf_free(&lp);
    if (fd >= 0 && flock(fd, LOCK_EX) != 0) {
        fail(err, "keyring lock for %s: %s", path, strerror(errno));
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Reads the file; 1 when it does not exist. */
static int read_file(const char *path, tbuf *out, tbuf *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? 1 : fail(err, "keyring %s: %s", path, strerror(errno));
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        if (out->len + n > (1u << 22)) {
            fclose(f);
            return fail(err, "keyring %s: too large", path);
        }
        tbuf_put(out, buf, n);
    }
    bool bad = ferror(f);
    fclose(f);
    return bad ? fail(err, "keyring %s: read error", path) : 0;
}

static int write_ring(const char *path, const ring_file *r, const unsigned char *master,
                      tbuf *err)
{
    json_t *j = ring_json(r, master);
    if (!j) return fail(err, "keyring %s: wrapping keys failed (OpenSSL)", path);
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    tbuf tmp = TBUF_INIT;
    tbuf_printf(&tmp, "%s.tmp", path);
    int rc = -1;
    int fd = open(tmp.p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fail(err, "keyring %s: %s", tmp.p, strerror(errno));
    } else {
        size_t len = strlen(text);
        bool ok = write(fd, text, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
        int e = errno;
        close(fd);
        if (!ok || rename(tmp.p, path) != 0) {
            fail(err, "keyring %s: %s", path, strerror(ok ? errno : e));
            unlink(tmp.p);
        } else {
            char *dir = xstrdup(path);
            char *slash = strrchr(dir, '/');
            if (slash) *slash = '\0';
            int dfd = open(slash ? (*dir ? dir : "/") : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
            free(dir);
            rc = 0;
        }
    }
    free(text);
    tbuf_free(&tmp);
    return rc;
}

static void iso_now(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int add_key(ring_file *r, tbuf *err)
{
    uint32_t id = 1;
    for (size_t i = 0; i < r->n_data; i++)
        if (r->data[i].id >= id) id = r->data[i].id + 1;
    r->data = xrealloc(r->data, (r->n_data + 1) * sizeof *r->data);
    r->created = xrealloc(r->created, (r->n_data + 1) * sizeof *r->created);
    if (RAND_bytes(r->data[r->n_data].key, KEYS_LEN) != 1)
        return fail(err, "no random bytes from OpenSSL");
    char when[32];
    iso_now(when);
    r->data[r->n_data].id = id;
    r->created[r->n_data] = xstrdup(when);
    r->n_data++;
    r->current = id;
    return 0;
}

/* mkdir -p of the directory that holds path (0750). */
static void make_parent(const char *path)
{
    char *dir = xstrdup(path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(dir, 0750);
        *p = '/';
    }
    free(dir);
}

/* Loads (or, with create, makes) the keyring file under its lock. */
static int ring_load(const char *path, const unsigned char *master, bool create, ring_file *r,
                     tbuf *err)
{
    if (create) make_parent(path);
    int lock = lock_ring(path, err);
    if (lock < 0) return -1;
    tbuf text = TBUF_INIT;
    int rc = read_file(path, &text, err);
    if (rc == 1 && !create) {
        rc = fail(err, "keyring %s does not exist (the store was not encrypted yet)", path);
    } else if (rc == 1) {
        rc = RAND_bytes(r->index_key, KEYS_LEN) == 1 ? add_key(r, err)
                                                     : fail(err, "no random bytes from OpenSSL");
        if (rc == 0) rc = write_ring(path, r, master, err);
    } else if (rc == 0) {
        rc = ring_parse(path, tbuf_cstr(&text), master, r, err);
    }
    tbuf_free(&text);
    close(lock);
    if (rc != 0) ring_file_free(r);
    return rc;
}

/* --- the handle ---------------------------------------------------------------------- */

static const data_key *find_key(const keyring *k, uint32_t id)
{
    for (size_t i = 0; i < k->n_data; i++)
        if (k->data[i].id == id) return &k->data[i];
    return NULL;
}

int keyring_open(const char *path, const unsigned char master[KEYS_LEN], bool create,
                 keyring **out, tbuf *err)
{
    *out = NULL;
    ring_file r = {0};
    if (ring_load(path, master, create, &r, err) != 0) return -1;
    keyring *k = xcalloc(1, sizeof *k);
    k->data = r.data;
    k->n_data = r.n_data;
    k->current = r.current;
    memcpy(k->index_key, r.index_key, KEYS_LEN);
    for (size_t i = 0; i < r.n_data; i++) free(r.created[i]);
    free(r.created);
    r.created = NULL;
    r.data = NULL;
    r.n_data = 0;
    ring_file_free(&r);
    if (RAND_bytes(k->salt, SALT_LEN) != 1) {
        keyring_close(k);
        return fail(err, "no random bytes from OpenSSL");
    }
    derive_session(find_key(k, k->current)->key, k->salt, k->session);
    k->aes = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    k->index_mac = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    EVP_MAC_free(hmac);
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (!k->aes || !k->index_mac || EVP_MAC_init(k->index_mac, k->index_key, KEYS_LEN, params) != 1) {
        keyring_close(k);
        return fail(err, "OpenSSL has no AES-256-GCM or HMAC-SHA256");
    }
    atomic_init(&k->counter, 0);
    pthread_mutex_init(&k->lock, NULL);
    *out = k;
    return 0;
}

void keyring_close(keyring *k)
{
    if (!k) return;
    for (size_t i = 0; i < k->n_sealers; i++) EVP_CIPHER_CTX_free(k->sealers[i]);
    for (size_t i = 0; i < k->n_macs; i++) EVP_MAC_CTX_free(k->macs[i]);
    EVP_CIPHER_free(k->aes);
    EVP_MAC_CTX_free(k->index_mac);
    pthread_mutex_destroy(&k->lock);
    OPENSSL_cleanse(k->data, k->n_data * sizeof *k->data);
    free(k->data);
    OPENSSL_cleanse(k, sizeof *k);
    free(k);
}

/* --- sealing ------------------------------------------------------------------------------ */

/* A context keyed with this handle's session key, from the pool or new;
 * NULL when OpenSSL fails. */
static EVP_CIPHER_CTX *sealer_take(keyring *k)
{
    EVP_CIPHER_CTX *c = NULL;
    pthread_mutex_lock(&k->lock);
    if (k->n_sealers) c = k->sealers[--k->n_sealers];
    pthread_mutex_unlock(&k->lock);
    if (c) return c;
    c = EVP_CIPHER_CTX_new();
    if (c && EVP_EncryptInit_ex(c, k->aes, NULL, k->session, NULL) != 1) {
        EVP_CIPHER_CTX_free(c);
        c = NULL;
    }
    return c;
}

static void sealer_give(keyring *k, EVP_CIPHER_CTX *c)
{
    pthread_mutex_lock(&k->lock);
    if (k->n_sealers < POOL_SLOTS) {
        k->sealers[k->n_sealers++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&k->lock);
    EVP_CIPHER_CTX_free(c);
}

/* AES-256-GCM under the session key with a pooled context: only the nonce
 * is set per call. */
static bool seal_gcm(keyring *k, const unsigned char *nonce, const char *aad, const void *p,
                     size_t n, unsigned char *out, unsigned char tag[TAG_LEN])
{
    size_t aad_len = strlen(aad);
    if (n > INT32_MAX || aad_len > INT32_MAX) return false;
    EVP_CIPHER_CTX *c = sealer_take(k);
    if (!c) return false;
    int len = 0;
    bool ok = EVP_EncryptInit_ex(c, NULL, NULL, NULL, nonce) == 1 &&
              EVP_EncryptUpdate(c, NULL, &len, (const unsigned char *)aad, (int)aad_len) == 1 &&
              (n == 0 || EVP_EncryptUpdate(c, out, &len, p, (int)n) == 1) &&
              EVP_EncryptFinal_ex(c, out + n, &len) == 1 &&
              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1;
    if (ok)
        sealer_give(k, c);
    else
        EVP_CIPHER_CTX_free(c); /* its state is unknown: not back to the pool */
    return ok;
}

int keys_seal(keyring *k, const char *ctx, const void *p, size_t n, tbuf *out, tbuf *err)
{
    uint64_t ctr = atomic_fetch_add(&k->counter, 1);
    tbuf_grow(out, n + KEYS_OVERHEAD);
    unsigned char *h = (unsigned char *)out->p + out->len;
    memcpy(h, MAGIC, 4);
    put_u32(h + 4, k->current);
    memcpy(h + 8, k->salt, SALT_LEN);
    unsigned char *nonce = h + 8 + SALT_LEN;
    memset(nonce, 0, NONCE_LEN);
    for (int i = 0; i < 8; i++) nonce[i] = (unsigned char)(ctr >> (8 * i));
    if (!seal_gcm(k, nonce, ctx, p, n, h + HEAD_LEN, h + HEAD_LEN + n))
        return fail(err, "encrypting (%s) failed in OpenSSL", ctx);
    out->len += n + KEYS_OVERHEAD;
    out->p[out->len] = '\0';
    return 0;
}

bool keys_is_sealed(const void *p, size_t n)
{
    return n >= KEYS_OVERHEAD && memcmp(p, MAGIC, 4) == 0;
}

/* The session key of (id, salt): this handle's own, a cached one, or
 * derived now (and cached). */
static bool session_for(keyring *k, uint32_t id, const unsigned char *salt,
                        unsigned char key[KEYS_LEN])
{
    if (id == k->current && memcmp(salt, k->salt, SALT_LEN) == 0) {
        memcpy(key, k->session, KEYS_LEN);
        return true;
    }
    pthread_mutex_lock(&k->lock);
    bool found = false;
    for (size_t i = 0; i < CACHE_SLOTS && !found; i++) {
        session_key *s = &k->cache[i];
        if (s->used && s->id == id && memcmp(s->salt, salt, SALT_LEN) == 0) {
            memcpy(key, s->key, KEYS_LEN);
            found = true;
        }
    }
    if (!found) {
        const data_key *dk = find_key(k, id);
        if (dk) {
            session_key *s = &k->cache[k->next_slot];
            k->next_slot = (k->next_slot + 1) % CACHE_SLOTS;
            s->used = true;
            s->id = id;
            memcpy(s->salt, salt, SALT_LEN);
            derive_session(dk->key, salt, s->key);
            memcpy(key, s->key, KEYS_LEN);
            found = true;
        }
    }
    pthread_mutex_unlock(&k->lock);
    return found;
}

int keys_open_sealed(keyring *k, const char *ctx, const void *p, size_t n, tbuf *out, tbuf *err)
{
    if (!keys_is_sealed(p, n)) return fail(err, "not encrypted data (no TSE1 header)");
    const unsigned char *h = p;
    uint32_t id = get_u32(h + 4);
    unsigned char key[KEYS_LEN];
    if (!session_for(k, id, h + 8, key))
        return fail(err, "encrypted with data key %u, which this keyring does not hold",
                    (unsigned)id);
    size_t len = n - KEYS_OVERHEAD;
    tbuf_grow(out, len);
    unsigned char *dst = (unsigned char *)out->p + out->len;
    unsigned char tag[TAG_LEN];
    memcpy(tag, h + HEAD_LEN + len, TAG_LEN);
    bool ok = gcm_with(k->aes, false, key, h + 8 + SALT_LEN, ctx, strlen(ctx), h + HEAD_LEN, len,
                       dst, tag);
    OPENSSL_cleanse(key, sizeof key);
    if (!ok) {
        OPENSSL_cleanse(dst, len);
        out->p[out->len] = '\0';
        return fail(err, "encrypted data (%s) fails authentication: damaged or altered", ctx);
    }
    out->len += len;
    out->p[out->len] = '\0';
    return 0;
}

bool keys_is_sealed_text(const char *s)
{
    return s && strncmp(s, KEYS_TEXT_PREFIX, sizeof KEYS_TEXT_PREFIX - 1) == 0;
}

int keys_seal_text(keyring *k, const char *s, tbuf *out, tbuf *err)
{
    tbuf raw = TBUF_INIT;
    int rc = keys_seal(k, "text", s, strlen(s), &raw, err);
    if (rc == 0) {
        tbuf_puts(out, KEYS_TEXT_PREFIX);
        tbuf_grow(out, 4 * (raw.len / 3 + 1));
        int n = EVP_EncodeBlock((unsigned char *)out->p + out->len, (unsigned char *)raw.p,
                                (int)raw.len);
        out->len += (size_t)n;
        out->p[out->len] = '\0';
    }
    tbuf_free(&raw);
    return rc;
}

int keys_open_text(keyring *k, const char *s, tbuf *out, tbuf *err)
{
    if (!keys_is_sealed_text(s)) {
        tbuf_puts(out, s);
        return 0;
    }
    const char *b64 = s + sizeof KEYS_TEXT_PREFIX - 1;
    size_t len = strlen(b64);
    if (len % 4 != 0 || len > INT32_MAX) return fail(err, "encrypted text is damaged");
    unsigned char *raw = xmalloc(len / 4 * 3 + 1);
    int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)len);
    int rc;
    if (n < 0) {
        rc = fail(err, "encrypted text is damaged");
    } else {
        size_t real = (size_t)n;
        for (size_t i = len; i > 0 && b64[i - 1] == '='; i--) real--;
        rc = keys_open_sealed(k, "text", raw, real, out, err);
    }
    free(raw);
    return rc;
}

/* An HMAC context keyed with index_key, from the pool or duplicated from
 * the template; NULL when OpenSSL fails. */
static EVP_MAC_CTX *mac_take(keyring *k)
{
    EVP_MAC_CTX *c = NULL;
    pthread_mutex_lock(&k->lock);
    if (k->n_macs) c = k->macs[--k->n_macs];
    pthread_mutex_unlock(&k->lock);
    if (c && EVP_MAC_init(c, NULL, 0, NULL) != 1) { /* same key, fresh state */
        EVP_MAC_CTX_free(c);
        c = NULL;
    }
    return c ? c : EVP_MAC_CTX_dup(k->index_mac);
}

static void mac_give(keyring *k, EVP_MAC_CTX *c)
{
    pthread_mutex_lock(&k->lock);
    if (k->n_macs < POOL_SLOTS) {
        k->macs[k->n_macs++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&k->lock);
    EVP_MAC_CTX_free(c);
}

void keys_token(keyring *k, const char *domain, const char *value, char out[KEYS_TOKEN_LEN + 1])
{
    unsigned char mac[32];
    size_t maclen = 0;
    EVP_MAC_CTX *c = mac_take(k);
    bool ok = c && EVP_MAC_update(c, (const unsigned char *)domain, strlen(domain) + 1) == 1 &&
              EVP_MAC_update(c, (const unsigned char *)value, strlen(value)) == 1 &&
              EVP_MAC_final(c, mac, &maclen, sizeof mac) == 1;
    if (ok)
        mac_give(k, c);
    else
        EVP_MAC_CTX_free(c);
    if (!ok) hmac256(k->index_key, domain, strlen(domain) + 1, value, strlen(value), mac);
    out[0] = '~';
    to_hex(mac, 16, out + 1);
}

/* --- management ------------------------------------------------------------------------- */

/* Reads the keyring at path under its lock, opened with master, lets
 * change() modify it (NULL: nothing) and writes it back wrapped under
 * write_master. */
static int ring_update(const char *path, const unsigned char *master,
                       const unsigned char *write_master, int (*change)(ring_file *, tbuf *),
                       uint32_t *current, tbuf *err)
{
    int lock = lock_ring(path, err);
    if (lock < 0) return -1;
    tbuf text = TBUF_INIT;
    ring_file r = {0};
    int rc = read_file(path, &text, err);
    if (rc == 1) rc = fail(err, "keyring %s does not exist", path);
    if (rc == 0) rc = ring_parse(path, tbuf_cstr(&text), master, &r, err);
    if (rc == 0 && change) rc = change(&r, err);
    if (rc == 0) rc = write_ring(path, &r, write_master, err);
    if (rc == 0 && current) *current = r.current;
    ring_file_free(&r);
    tbuf_free(&text);
    close(lock);
    return rc;
}

int keys_rotate_master(const char *path, const unsigned char old_master[KEYS_LEN],
                       const unsigned char new_master[KEYS_LEN], tbuf *err)
{
    return ring_update(path, old_master, new_master, NULL, NULL, err);
}

int keys_add_data_key(const char *path, const unsigned char master[KEYS_LEN], uint32_t *new_id,
                      tbuf *err)
{
    return ring_update(path, master, master, add_key, new_id, err);
}

int keys_describe(const char *path, const unsigned char master[KEYS_LEN], tbuf *out, tbuf *err)
{
    ring_file r = {0};
    if (ring_load(path, master, false, &r, err) != 0) return -1;
    tbuf_printf(out, "keyring %s: %zu data key%s, index key present\n", path, r.n_data,
                r.n_data == 1 ? "" : "s");
    for (size_t i = 0; i < r.n_data; i++)
        tbuf_printf(out, "data key %u  created %s%s\n", (unsigned)r.data[i].id, r.created[i],
                    r.data[i].id == r.current ? "  (seals new data)" : "");
    ring_file_free(&r);
    return 0;
}
