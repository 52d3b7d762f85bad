/*
 * cli_messages: `tern messages` lists, shows, reprocesses, edits and prunes
 * the messages in the engine's store, and lists the audit trail.
 *
 * Every subcommand opens the store named by the engine's configuration
 * (-c CONF: store.path) or given directly (--store PATH), does one thing
 * through store.h and closes it. The store is shared with a running
 * `tern serve`: readers never block it and writers take turns, and the CLI
 * only changes rows; the engine finds requeued deliveries on its next poll.
 *
 * The writing commands follow the safety rules in docs/messages.md:
 * reprocess first says how many messages and deliveries it will touch and
 * needs --yes and --reason above --limit; prune previews and needs --yes;
 * every change is audited with a user name. Text for people is aligned, with
 * control characters made harmless; --json prints one object per line, always
 * valid UTF-8. Exit codes: 0 done, 1 refused or failed, 2 usage.
 */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "base/mem.h"
#include "engine/msg_meta.h"
#include "engine/config.h"
#include "engine/engine.h"
#include "sec/keys.h"
#include "hl7/hl7.h"
#include "hl7/hl7_json.h"
#include "sec/sec.h"
#include "store/store.h"

/* --- usage texts ----------------------------------------------------------------- */

#define STORE_OPTIONS                                                                              \
    "  -c, --config CONF   the engine's configuration; the store is its store.path\n"              \
    "      --store PATH    the store itself, instead of -c\n"                                      \
    "      --token TOKEN   who you are when security is on (default: $TERN_TOKEN)\n"              \
    "  -h, --help          show this help\n"

static const char messages_usage[] =
    "usage: tern messages -c CONF COMMAND [options] [arguments]\n"
    "\n"
    "Looks at and repairs the messages Tern has stored: every message a channel\n"
    "received, what happened to it, and where it was delivered.\n"
    "\n"
    "commands:\n"
    "  list        one line per message, newest first, with search filters\n"
    "  show ID     one message: summary, deliveries, revisions, the message itself\n"
    "  reprocess   send messages again (ids, or the error queue with --state error)\n"
    "  edit ID F   store the corrected message in file F as a new revision and send it\n"
    "  prune       delete old messages that are done and give the disk space back\n"
    "  audit       who reprocessed, edited or pruned what, when and why\n"
    "\n"
    "options (before or after the command):\n" STORE_OPTIONS "\n"
    "Run 'tern messages COMMAND --help' for a command's options. A running\n"
    "'tern serve' picks up what reprocess and edit queue on its own.\n"
    "\n"
    "Exit codes: 0 done, 1 refused or failed (the reason is on stderr), 2 usage.\n";

static const char list_usage[] =
    "usage: tern messages -c CONF list [filters] [--limit N] [--json | --plan]\n"
    "\n"
    "Lists stored messages, newest first, one per line: id, received time, channel,\n"
    "state, type (MSH-9), control id (MSH-10), patient id (PID-3.1), revision and\n"
    "the state of each delivery (archive=sent downstream=error(3); the number is\n"
    "the attempts made by a delivery that has not succeeded).\n"
    "\n"
    "filters (all must match):\n"
    "  --channel C       messages of channel C\n"
    "  --state S         a message state (received, rejected, filtered, duplicate)\n"
    "                    or a delivery state (queued, sent, error, superseded):\n"
    "                    messages with at least one delivery in it. 'filtered' is\n"
    "                    the message state; write delivery:filtered for the other.\n"
    "                    May be given twice, once for each kind.\n"
    "  --type T          MSH-9 type: ADT^A01, or ADT for every ADT event\n"
    "  --since T         received at or after T: 2026-01-15, 2026-01-15T08:30[:00],\n"
    "                    with Z or +01:00 for a zone (else local time), or a\n"
    "                    duration ago: 30m, 2h, 7d\n"
    "  --patient ID      patient id (PID-3.1)\n"
    "  --order NUMBER    placer or filler order number (ORC-2/3, OBR-2/3)\n"
    "  --control-id ID   message control id (MSH-10)\n"
    "  --facility F      sending facility (MSH-4)\n"
    "  --before ID       only ids below ID (the next page)\n"
    "\n"
    "output:\n"
    "  --limit N         at most N messages (default 100)\n"
    "  --json            one JSON object per line, with every field and delivery\n"
    "  --plan            print how the store will run the search (which index)\n"
    "                    instead of running it\n" STORE_OPTIONS;

static const char show_usage[] =
    "usage: tern messages -c CONF show ID [--raw]\n"
    "\n"
    "Shows message ID: its summary, every delivery (state, attempts, last error,\n"
    "next attempt, last update), its revisions, and the message with one segment\n"
    "per line (control characters shown as \\xNN).\n"
    "\n"
    "options:\n"
    "  --raw             print only the message's exact bytes (e.g. to edit them:\n"
    "                    tern messages show 42 --raw > fix.hl7)\n" STORE_OPTIONS;

static const char reprocess_usage[] =
    "usage: tern messages -c CONF reprocess ID... [options]\n"
    "       tern messages -c CONF reprocess --state error [--channel C] [options]\n"
    "\n"
    "Queues messages again for delivery: the given ids, or every message with a\n"
    "delivery in a state (error: the error queue). Only deliveries that did not\n"
    "succeed (error, queued) are requeued; a destination that already accepted the\n"
    "message gets it again only when named with --dest. It first prints how many\n"
    "messages and deliveries it will touch; above --limit messages it refuses\n"
    "unless --yes and --reason are given. Every reprocess is audited.\n"
    "\n"
    "options:\n"
    "  --state S         select by delivery state (normally error)\n"
    "  --channel C       with --state: only messages of channel C\n"
    "  --dest NAME       requeue destination NAME, whatever its state (repeatable)\n"
    "  --dry-run         print what would be touched and change nothing\n"
    "  --limit N         ask for --yes above N messages (default 100)\n"
    "  --yes             go ahead above the limit (needs --reason)\n"
    "  --reason TEXT     why, recorded in the audit\n"
    "  --user NAME       who, recorded in the audit (default: $USER)\n" STORE_OPTIONS;

static const char edit_usage[] =
    "usage: tern messages -c CONF edit ID FILE [--dest NAME]... [--reason TEXT]\n"
    "\n"
    "Stores the corrected message in FILE as a new revision of message ID and\n"
    "queues it. The original stays as it was. FILE must be one valid HL7 v2\n"
    "message (segments are stored CR-terminated whatever the file used); the\n"
    "search fields (MSH-9, MSH-10, MSH-3..6, PID-3.1) are taken from it.\n"
    "\n"
    "Without --dest, the new revision goes to the destinations of ID that did\n"
    "not succeed, and those deliveries of ID become 'superseded'. A message\n"
    "without deliveries (rejected) goes to its channel's destinations (needs -c).\n"
    "\n"
    "options:\n"
    "  --dest NAME       send the new revision to NAME (repeatable)\n"
    "  --reason TEXT     why, recorded in the audit\n"
    "  --user NAME       who, recorded in the audit (default: $USER)\n" STORE_OPTIONS;

static const char prune_usage[] =
    "usage: tern messages -c CONF prune [--older-than DURATION] [--dry-run | --yes]\n"
    "\n"
    "Deletes the messages received more than DURATION ago (30d, 12h) that have no\n"
    "delivery still queued (sent, failed and filtered ones alike), then gives the\n"
    "space back to the file system. Without --older-than, each channel's\n"
    "`retention` from the configuration applies (channels without one are kept).\n"
    "Deleted rows are overwritten and their bodies blanked in the body log.\n"
    "Works in small batches, so a running engine keeps going. Without --yes it\n"
    "only says how many messages it would delete.\n"
    "\n"
    "options:\n"
    "  --older-than D    age of the newest message to delete, every channel\n"
    "  --dry-run         only count\n"
    "  --yes             delete\n"
    "  --reason TEXT     why, recorded in the audit\n"
    "  --user NAME       who, recorded in the audit (default: $USER)\n" STORE_OPTIONS;

static const char audit_usage[] =
    "usage: tern messages -c CONF audit [--limit N] [--json]\n"
    "\n"
    "Lists the audit trail, newest first: when, who, what was done (reprocess,\n"
    "edit, prune, with the counts) and why.\n"
    "\n"
    "options:\n"
    "  --limit N         at most N entries (default 100)\n"
    "  --json            one JSON object per line\n" STORE_OPTIONS;

/* --- shared state and options ------------------------------------------------------- */

enum {
    OPT_STORE = 256,
    OPT_TOKEN,
    OPT_CHANNEL,
    OPT_STATE,
    OPT_TYPE,
    OPT_SINCE,
    OPT_LIMIT,
    OPT_PATIENT,
    OPT_ORDER,
    OPT_CONTROL,
    OPT_FACILITY,
    OPT_BEFORE,
    OPT_JSON,
    OPT_PLAN,
    OPT_RAW,
    OPT_DEST,
    OPT_REASON,
    OPT_YES,
    OPT_DRY_RUN,
    OPT_USER,
    OPT_OLDER,
};

/* Ends each command's option table: the options every command takes and
 * the terminator. */
#define COMMON_OPTIONS_END                                                                         \
    {"config", required_argument, NULL, 'c'}, {"store", required_argument, NULL, OPT_STORE},       \
        {"token", required_argument, NULL, OPT_TOKEN},                                             \
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},

#define GO_ON (-1)
#define MAX_LIMIT 1000000u

typedef struct msgs {
    const char *cmd;      /* "messages list": how messages name the command */
    const char *usage;    /* its --help text */
    const char *conf;     /* -c */
    const char *location; /* --store, or the configuration's store.path */
    tern_config *cfg;     /* loaded from conf; NULL with --store */
    struct keyring *keys; /* PHI at rest; NULL when not encrypted */
    store *s;
    /* who runs the command (docs/security.md): the action the command needs,
     * the token given, the security context (NULL with --store when there
     * is no security database beside the store) and the principal */
    sec_action action;
    const char *token;
    config_security sdef; /* --store: the defaults, db beside the store */
    sec_ctx *sec;
    sec_principal who;
} msgs;

/* Handles an option every command takes, or a getopt error. Returns GO_ON to
 * continue parsing, else the exit code. */
static int common_option(msgs *m, int c, char **argv)
{
    switch (c) {
    case 'c':
        m->conf = optarg;
        return GO_ON;
    case OPT_STORE:
        m->location = optarg;
        return GO_ON;
    case OPT_TOKEN:
        m->token = optarg;
        return GO_ON;
    case 'h':
        fputs(m->usage, stdout);
        return CLI_OK;
    case ':':
        return cli_usage_error(m->cmd, "option '%s' needs a value", argv[optind - 1]);
    default:
        return cli_usage_error(m->cmd, "unknown option '%s'", argv[optind - 1]);
    }
}

/* Resets getopt for a new argument vector. 0 (not 1) makes glibc and musl
 * forget the scanning mode of the previous, '+'-prefixed parse. */
static void getopt_reset(void)
{
    optind = 0;
    opterr = 0;
}

static int parse_count(msgs *m, const char *opt, const char *v, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = v[0] >= '0' && v[0] <= '9' ? strtoull(v, &end, 10) : 0;
    if (!(v[0] >= '0' && v[0] <= '9') || *end || errno || n < 1 || n > max)
        return cli_usage_error(m->cmd, "%s needs a whole number from 1 to %" PRIu64 ", not '%s'",
                               opt, max, v);
    *out = n;
    return GO_ON;
}

static bool parse_id(const char *v, int64_t *out)
{
    char *end;
    errno = 0;
    long long n = v[0] >= '1' && v[0] <= '9' ? strtoll(v, &end, 10) : 0;
    if (!(v[0] >= '1' && v[0] <= '9') || *end || errno || n <= 0) return false;
    *out = n;
    return true;
}

/* "1 message", "3 messages" */
static const char *plural(uint64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The audit name of the command's author: the authenticated principal's
 * when security is on (--user is then ignored), else --user or $USER. */
static const char *msgs_user(const msgs *m, const char *given)
{
    if (m->sec && m->who.kind != SEC_KIND_LOCAL) return m->who.name;
    if (given) return given;
    const char *u = getenv("USER");
    return u && *u ? u : "unknown";
}

/* The keyring of the store: per the configuration's encryption section,
 * or, with --store, the one beside the store opened with TERN_MASTER_KEY
 * when both exist (without the key, encrypted rows are reported as such). */
static int open_keys(msgs *m)
{
    tbuf err = TBUF_INIT;
    int rc = 0;
    if (m->cfg) {
        rc = engine_open_keyring(m->cfg, true, &m->keys, &err);
    } else {
        char *ring = keys_ring_path(m->location);
        unsigned char master[KEYS_LEN];
        if (access(ring, F_OK) == 0 && getenv(KEYS_DEFAULT_ENV) &&
            (rc = keys_load_master(NULL, NULL, master, &err)) == 0)
            rc = keyring_open(ring, master, false, &m->keys, &err);
        OPENSSL_cleanse(master, sizeof master);
        free(ring);
    }
    if (rc != 0) fprintf(stderr, "tern %s: %s\n", m->cmd, err.p);
    tbuf_free(&err);
    return rc == 0 ? CLI_OK : CLI_INVALID;
}

/* The file behind a SQLite location, or NULL for other backends. */
static const char *sqlite_file(const char *location)
{
    if (!strncmp(location, "sqlite:", 7)) {
        location += 7;
        if (!strncmp(location, "//", 2)) location += 2;
        return location;
    }
    return strstr(location, "://") ? NULL : location;
}

/* Security: with -c, the configuration's; with --store, the defaults when
 * a security database with an admin exists beside the store (else none:
 * whoever can read the store file directly needs no tool). Then who runs the command, and
 * whether their role allows m->action. */
static int msgs_secure(msgs *m, const char *file)
{
    const config_security *cfg = m->cfg ? &m->cfg->security : NULL;
    if (!cfg && file) {
        config_security_default(&m->sdef, file);
        struct stat st;
        if (stat(m->sdef.db, &st) == 0) cfg = &m->sdef;
    }
    if (!cfg) return CLI_OK;
    int rc = cli_sec_open(m->cmd, cfg, &m->sec);
    if (rc == CLI_OK) m->sec->keys = m->keys; /* patients audited as tokens */
    int64_t admins = 0;
    sec_error err = {0};
    if (rc == CLI_OK && cfg == &m->sdef &&
        m->sec->db->ops->user_count(m->sec->db, SEC_ROLE_ADMIN, &admins, &err) == SEC_OK &&
        admins == 0)
        m->sdef.auth = false; /* a database nobody administers: not in use */
    if (rc == CLI_OK) rc = cli_sec_who(m->cmd, m->sec, m->token, &m->who);
    if (rc == CLI_OK) rc = cli_sec_require(m->cmd, m->sec, &m->who, m->action, NULL);
    return rc;
}

/* An audit record of what the command did (nothing without security). */
static void msgs_audit(msgs *m, const char *action, const char *channel, const char *patient,
                       const char *detail)
{
    if (m->sec) sec_record_event(m->sec, &m->who, action, channel, patient, "cli", "ok", detail);
}

/* Loads the configuration (with -c) and opens the store. Does not create a
 * store that is not there: a mistyped path must not look like an empty one. */
static int msgs_open(msgs *m)
{
    if (m->conf && m->location)
        return cli_usage_error(m->cmd, "give either -c CONF or --store PATH, not both");
    if (!m->conf && !m->location)
        return cli_usage_error(m->cmd,
                               "needs -c CONF (the engine's configuration) or --store PATH");
    const char *from = "given with --store";
    if (m->conf) {
        config_errors errs = CONFIG_ERRORS_INIT;
        if (config_load(m->conf, &m->cfg, &errs) != CONFIG_OK) {
            tbuf line = TBUF_INIT;
            for (size_t i = 0; i < errs.count; i++) {
                tbuf_reset(&line);
                config_error_format(&errs.items[i], &line);
                fprintf(stderr, "%s\n", line.p);
            }
            fprintf(stderr,
                    "tern %s: cannot use the configuration %s; fix it (tern config check -c %s) "
                    "or name the store with --store PATH\n",
                    m->cmd, m->conf, m->conf);
            tbuf_free(&line);
            config_errors_free(&errs);
            return CLI_INVALID;
        }
        config_errors_free(&errs);
        m->location = m->cfg->store.path;
        from = "store.path in the configuration";
    }
    const char *file = sqlite_file(m->location);
    struct stat st;
    if (file && stat(file, &st) != 0 && errno == ENOENT) {
        fprintf(stderr, "tern %s: there is no store at %s (%s): check the path%s\n", m->cmd, file,
                from, m->cfg ? ", or start 'tern serve' with this configuration first" : "");
        return CLI_INVALID;
    }
    if (open_keys(m) != CLI_OK) return CLI_INVALID;
    store_error err;
    store_options opt = {.keys = m->keys};
    if (store_open(m->location, &opt, &m->s, &err) != STORE_OK) {
        fprintf(stderr, "tern %s: cannot open the store: %s\n", m->cmd, err.text);
        return CLI_INVALID;
    }
    return msgs_secure(m, file);
}

static void msgs_close(msgs *m)
{
    cli_sec_close(m->sec);
    sec_principal_clear(&m->who);
    free(m->sdef.db);
    m->sec = NULL;
    m->sdef.db = NULL;
    store_close(m->s);
    keyring_close(m->keys);
    config_free(m->cfg);
    m->keys = NULL;
    m->s = NULL;
    m->cfg = NULL;
}

static int store_failed(const msgs *m, const store_error *err)
{
    fprintf(stderr, "tern %s: %s\n", m->cmd, err->text);
    if (err->code == STORE_ERR_BUSY)
        fprintf(stderr, "tern %s: the store stayed locked by another process; try again\n", m->cmd);
    return CLI_INVALID;
}

/* --- text ----------------------------------------------------------------------------- */

/* Writes ms as ISO 8601 local time with its UTC offset,
 * 2026-01-15T08:30:00[.123]+01:00; returns buf. */
static char *fmt_time(int64_t ms, bool millis, char *buf, size_t size)
{
    int64_t secs = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        secs--;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    if (!localtime_r(&t, &tm)) {
        snprintf(buf, size, "%" PRId64 "ms", ms);
        return buf;
    }
    char date[40];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    long off = tm.tm_gmtoff;
    char sign = off < 0 ? '-' : '+';
    if (off < 0) off = -off;
    if (millis)
        snprintf(buf, size, "%s.%03d%c%02ld:%02ld", date, (int)frac, sign, off / 3600,
                 off % 3600 / 60);
    else
        snprintf(buf, size, "%s%c%02ld:%02ld", date, sign, off / 3600, off % 3600 / 60);
    return buf;
}

static bool take_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static int days_in_month(int y, int mon)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return mon == 2 && leap ? 29 : days[mon - 1];
}

/* Parses YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z|(+|-)HH[:MM]]; local time when no
 * zone is given. */
static bool parse_iso_time(const char *s, int64_t *ms)
{
    int y, mon, d, h = 0, mi = 0, sec = 0, millis = 0;
    const char *p = s;
    if (!take_digits(&p, 4, &y) || *p++ != '-' || !take_digits(&p, 2, &mon) || *p++ != '-' ||
        !take_digits(&p, 2, &d))
        return false;
    if (*p == 'T' || *p == ' ') {
        p++;
        if (!take_digits(&p, 2, &h) || *p++ != ':' || !take_digits(&p, 2, &mi)) return false;
        if (*p == ':') {
            p++;
            if (!take_digits(&p, 2, &sec)) return false;
            if (*p == '.') {
                p++;
                int scale = 100, digit;
                if (!(*p >= '0' && *p <= '9')) return false;
                while (take_digits(&p, 1, &digit)) {
                    millis += digit * scale;
                    scale /= 10;
                }
            }
        }
    }
    bool zoned = false;
    long offset = 0;
    if (*p == 'Z') {
        zoned = true;
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
        if (!take_digits(&p, 2, &oh)) return false;
        if (*p == ':') p++;
        if (*p && !take_digits(&p, 2, &om)) return false;
        if (oh > 23 || om > 59) return false;
        zoned = true;
        offset = sign * (oh * 3600L + om * 60L);
    }
    if (*p || mon < 1 || mon > 12 || d < 1 || d > days_in_month(y, mon) || h > 23 || mi > 59 ||
        sec > 60)
        return false;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec,
                    .tm_isdst = -1};
    time_t t = zoned ? timegm(&tm) - offset : mktime(&tm);
    *ms = (int64_t)t * 1000 + millis;
    return true;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when there is none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80) return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        if (s[0] == 0xE0) lo = 0xA0;
        if (s[0] == 0xED) hi = 0x9F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        if (s[0] == 0xF0) lo = 0x90;
        if (s[0] == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

/* Appends s as a JSON string, bytes that are not UTF-8 as U+FFFD (stored
 * values may be in a legacy character set); NULL as null. */
static void put_json_text(tbuf *out, const char *s)
{
    if (!s) {
        tbuf_puts(out, "null");
        return;
    }
    tbuf clean = TBUF_INIT;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq((const unsigned char *)s + i, n - i);
        if (len) {
            tbuf_put(&clean, s + i, len);
            i += len;
        } else {
            tbuf_puts(&clean, "\xEF\xBF\xBD");
            i++;
        }
    }
    json_put_string(out, clean.p ? clean.p : "", clean.len);
    tbuf_free(&clean);
}

static void put_json_time(tbuf *out, int64_t ms)
{
    char buf[64];
    if (!ms) {
        tbuf_puts(out, "null");
        return;
    }
    tbuf_printf(out, "\"%s\"", fmt_time(ms, true, buf, sizeof buf));
}

/* Appends s[0..n) for a terminal: control characters as \xNN. */
static void put_visible(tbuf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 && c != '\t')
            tbuf_printf(out, "\\x%02X", c);
        else if (c == 0x7F)
            tbuf_puts(out, "\\x7F");
        else
            tbuf_putc(out, (char)c);
    }
}

/* --- aligned tables ------------------------------------------------------------------- */

typedef struct table {
    size_t ncols;
    char **cells; /* row-major, owned */
    size_t n, cap;
} table;

/* Adds the next cell: text on one line, "-" for NULL or empty. */
static void table_add(table *t, const char *s)
{
    tbuf cell = TBUF_INIT;
    if (!s || !*s) s = "-";
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        tbuf_putc(&cell, c < 0x20 || c == 0x7F ? ' ' : (char)c);
    }
    t->cells = xgrow(t->cells, &t->cap, t->n + 1, sizeof *t->cells);
    t->cells[t->n++] = tbuf_detach(&cell, NULL);
}

static void table_addf(table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void table_addf(table *t, const char *fmt, ...)
{
    tbuf b = TBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    tbuf_vprintf(&b, fmt, ap);
    va_end(ap);
    table_add(t, b.p);
    tbuf_free(&b);
}

/* Characters on screen: UTF-8 continuation bytes take no column. */
static size_t display_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) w++;
    return w;
}

/* Prints the table with columns two spaces apart; the last is not padded. */
static void table_print(const table *t, const char *indent)
{
    size_t *width = xcalloc(t->ncols, sizeof *width);
    for (size_t i = 0; i < t->n; i++) {
        size_t w = display_width(t->cells[i]);
        if (w > width[i % t->ncols]) width[i % t->ncols] = w;
    }
    tbuf line = TBUF_INIT;
    for (size_t r = 0; r < t->n / t->ncols; r++) {
        tbuf_reset(&line);
        tbuf_puts(&line, indent);
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            tbuf_puts(&line, cell);
            if (c + 1 < t->ncols)
                for (size_t pad = display_width(cell); pad < width[c] + 2; pad++)
                    tbuf_putc(&line, ' ');
        }
        tbuf_putc(&line, '\n');
        fputs(line.p, stdout);
    }
    tbuf_free(&line);
    free(width);
}

static void table_free(table *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->n = t->cap = 0;
}

/* --- list ------------------------------------------------------------------------------ */

typedef struct id_list {
    int64_t *ids;
    size_t n, cap;
} id_list;

static bool collect_id(void *ctx, const store_summary *s)
{
    id_list *l = ctx;
    l->ids = xgrow(l->ids, &l->cap, l->n + 1, sizeof *l->ids);
    l->ids[l->n++] = s->id;
    return true;
}

/* "archive=sent downstream=error(3)": attempts are shown for deliveries
 * that have not succeeded. */
static void put_deliveries(tbuf *out, const store_message *msg)
{
    for (size_t i = 0; i < msg->n_deliveries; i++) {
        const store_delivery *d = &msg->deliveries[i];
        tbuf_printf(out, "%s%s=%s", i ? " " : "", d->dest, store_dlv_state_name(d->state));
        if ((d->state == STORE_DLV_QUEUED || d->state == STORE_DLV_ERROR) && d->attempts > 0)
            tbuf_printf(out, "(%d)", d->attempts);
    }
}

static void put_revision(tbuf *out, const store_summary *s)
{
    if (s->revision > 1)
        tbuf_printf(out, "%d of %" PRId64, s->revision, s->original_id);
    else
        tbuf_printf(out, "%d", s->revision);
}

static void list_row(table *t, const store_message *msg)
{
    const store_summary *s = &msg->sum;
    char when[64];
    tbuf b = TBUF_INIT;
    table_addf(t, "%" PRId64, s->id);
    table_add(t, fmt_time(s->received_at, false, when, sizeof when));
    table_add(t, s->channel);
    table_add(t, store_msg_state_name(s->state));
    table_add(t, s->meta.msh9);
    table_add(t, s->meta.control_id);
    table_add(t, s->meta.patient_id);
    put_revision(&b, s);
    table_add(t, b.p);
    tbuf_reset(&b);
    put_deliveries(&b, msg);
    if (!msg->n_deliveries && s->error) tbuf_printf(&b, "error: %.80s", s->error);
    table_add(t, b.p);
    tbuf_free(&b);
}

static void json_field(tbuf *out, const char *name, const char *value)
{
    tbuf_printf(out, ",\"%s\":", name);
    put_json_text(out, value);
}

static void list_json(tbuf *out, const store_message *msg)
{
    const store_summary *s = &msg->sum;
    tbuf_printf(out, "{\"id\":%" PRId64 ",\"received_at\":", s->id);
    put_json_time(out, s->received_at);
    tbuf_printf(out, ",\"received_at_ms\":%" PRId64, s->received_at);
    json_field(out, "channel", s->channel);
    json_field(out, "state", store_msg_state_name(s->state));
    json_field(out, "type", s->meta.msh9);
    json_field(out, "control_id", s->meta.control_id);
    json_field(out, "send_app", s->meta.send_app);
    json_field(out, "send_fac", s->meta.send_fac);
    json_field(out, "recv_app", s->meta.recv_app);
    json_field(out, "recv_fac", s->meta.recv_fac);
    json_field(out, "patient_id", s->meta.patient_id);
    json_field(out, "error", s->error);
    tbuf_printf(out, ",\"revision\":%d,\"original_id\":%" PRId64 ",\"size\":%zu,\"deliveries\":[",
                s->revision, s->original_id, s->raw_len);
    for (size_t i = 0; i < msg->n_deliveries; i++) {
        const store_delivery *d = &msg->deliveries[i];
        tbuf_puts(out, i ? ",{\"dest\":" : "{\"dest\":");
        put_json_text(out, d->dest);
        json_field(out, "state", store_dlv_state_name(d->state));
        tbuf_printf(out, ",\"attempts\":%d,\"next_attempt_at\":", d->attempts);
        put_json_time(out, d->next_attempt_at);
        json_field(out, "last_error", d->last_error);
        tbuf_puts(out, ",\"updated_at\":");
        put_json_time(out, d->updated_at);
        tbuf_putc(out, '}');
    }
    tbuf_puts(out, "]}\n");
}

/* Sets the filter's state from a --state value; returns false when the
 * name is no state, or names a kind already set. */
static bool set_state(store_filter *f, const char *v)
{
    store_msg_state ms = STORE_MSG_NONE;
    store_dlv_state ds = STORE_DLV_NONE;
    if (!strncmp(v, "delivery:", 9))
        ds = store_dlv_state_from_name(v + 9);
    else if (!strncmp(v, "message:", 8))
        ms = store_msg_state_from_name(v + 8);
    else if ((ms = store_msg_state_from_name(v)) == STORE_MSG_NONE)
        ds = store_dlv_state_from_name(v);
    if (ms != STORE_MSG_NONE && f->state == STORE_MSG_NONE) {
        f->state = ms;
        return true;
    }
    if (ds != STORE_DLV_NONE && f->dlv_state == STORE_DLV_NONE) {
        f->dlv_state = ds;
        return true;
    }
    return false;
}

static int parse_since(msgs *m, const char *v, int64_t *since)
{
    uint64_t ago;
    if (parse_iso_time(v, since)) return GO_ON;
    if (config_parse_duration(v, &ago, NULL, 0) == CONFIG_OK && ago > 0 &&
        ago < (uint64_t)INT64_MAX / 2) {
        *since = now_ms() - (int64_t)ago;
        return GO_ON;
    }
    return cli_usage_error(m->cmd,
                           "--since needs a date or time (2026-01-15, 2026-01-15T08:30, with Z "
                           "or +01:00 for a zone) or a duration ago (30m, 2h, 7d), not '%s'",
                           v);
}

static int cmd_list(msgs *m, int argc, char **argv)
{
    static const struct option opts[] = {{"channel", required_argument, NULL, OPT_CHANNEL},
                                         {"state", required_argument, NULL, OPT_STATE},
                                         {"type", required_argument, NULL, OPT_TYPE},
                                         {"since", required_argument, NULL, OPT_SINCE},
                                         {"limit", required_argument, NULL, OPT_LIMIT},
                                         {"patient", required_argument, NULL, OPT_PATIENT},
                                         {"order", required_argument, NULL, OPT_ORDER},
                                         {"control-id", required_argument, NULL, OPT_CONTROL},
                                         {"facility", required_argument, NULL, OPT_FACILITY},
                                         {"before", required_argument, NULL, OPT_BEFORE},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         {"plan", no_argument, NULL, OPT_PLAN},
                                         COMMON_OPTIONS_END};
    store_filter f = {0};
    uint64_t limit = 100;
    bool json = false, plan = false;
    int c, rc = GO_ON;
    getopt_reset();
    while (rc == GO_ON && (c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_CHANNEL:
            f.channel = optarg;
            break;
        case OPT_STATE:
            if (!set_state(&f, optarg))
                rc = cli_usage_error(
                    m->cmd,
                    "--state '%s' is not a state, or repeats a kind: give at most one message "
                    "state (received, rejected, filtered, duplicate) and one delivery state "
                    "(queued, sent, error, delivery:filtered, superseded)",
                    optarg);
            break;
        case OPT_TYPE:
            f.msh9 = optarg;
            break;
        case OPT_SINCE:
            rc = parse_since(m, optarg, &f.since);
            break;
        case OPT_LIMIT:
            rc = parse_count(m, "--limit", optarg, MAX_LIMIT, &limit);
            break;
        case OPT_PATIENT:
            f.patient_id = optarg;
            break;
        case OPT_ORDER:
            f.order_id = optarg;
            break;
        case OPT_CONTROL:
            f.control_id = optarg;
            break;
        case OPT_FACILITY:
            f.send_fac = optarg;
            break;
        case OPT_BEFORE:
            if (!parse_id(optarg, &f.before_id))
                rc = cli_usage_error(m->cmd, "--before needs a message id, not '%s'", optarg);
            break;
        case OPT_JSON:
            json = true;
            break;
        case OPT_PLAN:
            plan = true;
            break;
        default:
            rc = common_option(m, c, argv);
        }
    }
    if (rc != GO_ON) return rc;
    if (optind < argc)
        return cli_usage_error(m->cmd,
                               "unexpected argument '%s' (filters are options: --channel, "
                               "--state, --type, ...)",
                               argv[optind]);
    if (json && plan) return cli_usage_error(m->cmd, "give --json or --plan, not both");
    /* One more than asked tells whether there are more. */
    f.limit = (size_t)limit + 1;
    if ((rc = msgs_open(m)) != CLI_OK) return rc;
    msgs_audit(m, "message.list", f.channel, f.patient_id, "tern messages list");

    store_error err;
    if (plan) {
        tbuf out = TBUF_INIT;
        if (store_list_plan(m->s, &f, &out, &err) != STORE_OK) {
            tbuf_free(&out);
            return store_failed(m, &err);
        }
        printf("query plan (%s):\n%s", store_backend(m->s), out.p ? out.p : "");
        tbuf_free(&out);
        return CLI_OK;
    }

    id_list l = {0};
    if (store_list(m->s, &f, collect_id, &l, &err) != STORE_OK) {
        free(l.ids);
        return store_failed(m, &err);
    }
    bool more = l.n > limit;
    size_t shown = more ? (size_t)limit : l.n;
    table t = {.ncols = 9};
    if (!json) {
        const char *head[] = {"ID",         "RECEIVED", "CHANNEL",  "STATE",     "TYPE",
                              "CONTROL ID", "PATIENT",  "REVISION", "DELIVERIES"};
        for (size_t i = 0; i < 9; i++)
            table_add(&t, head[i]);
    }
    store_message msg = STORE_MESSAGE_INIT;
    tbuf out = TBUF_INIT;
    rc = CLI_OK;
    for (size_t i = 0; i < shown; i++) {
        store_status st = store_get(m->s, l.ids[i], &msg, &err);
        if (st == STORE_ERR_NOT_FOUND) continue; /* pruned meanwhile */
        if (st != STORE_OK) {
            rc = store_failed(m, &err);
            break;
        }
        if (json) {
            tbuf_reset(&out);
            list_json(&out, &msg);
            fputs(out.p, stdout);
        } else {
            list_row(&t, &msg);
        }
    }
    if (rc == CLI_OK && !json) {
        if (shown)
            table_print(&t, "");
        else
            printf("no messages match\n");
    }
    if (rc == CLI_OK && more)
        fprintf(stderr,
                "(the newest %zu shown; more match: raise --limit, or see the next page with "
                "--before %" PRId64 ")\n",
                shown, l.ids[shown - 1]);
    store_message_free(&msg);
    tbuf_free(&out);
    table_free(&t);
    free(l.ids);
    return rc;
}

/* --- show ------------------------------------------------------------------------------ */

typedef struct rev_list {
    int64_t ids[64];
    int revs[64];
    size_t n, total;
} rev_list;

static bool collect_revision(void *ctx, const store_summary *s)
{
    rev_list *r = ctx;
    if (r->n < 64) {
        r->ids[r->n] = s->id;
        r->revs[r->n++] = s->revision;
    }
    r->total++;
    return true;
}

static int not_found(const msgs *m, int64_t id)
{
    fprintf(stderr,
            "tern %s: there is no message %" PRId64 " in %s; find ids with 'tern messages list'\n",
            m->cmd, id, m->location);
    return CLI_INVALID;
}

static void show_field(const char *name, const char *value)
{
    tbuf b = TBUF_INIT;
    tbuf_printf(&b, "  %-13s", name);
    if (value && *value)
        put_visible(&b, value, strlen(value));
    else
        tbuf_putc(&b, '-');
    tbuf_putc(&b, '\n');
    fputs(b.p, stdout);
    tbuf_free(&b);
}

/* Prints the message one segment per line, whatever its terminators. */
static void show_raw(const char *raw, size_t len)
{
    tbuf b = TBUF_INIT;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && raw[i] != '\r' && raw[i] != '\n') continue;
        if (i > start) {
            tbuf_puts(&b, "  ");
            put_visible(&b, raw + start, i - start);
            tbuf_putc(&b, '\n');
        }
        start = i + 1;
    }
    fwrite(b.p ? b.p : "", 1, b.len, stdout);
    tbuf_free(&b);
}

static int cmd_show(msgs *m, int argc, char **argv)
{
    static const struct option opts[] = {{"raw", no_argument, NULL, OPT_RAW}, COMMON_OPTIONS_END};
    bool raw = false;
    int c, rc = GO_ON;
    getopt_reset();
    while (rc == GO_ON && (c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        if (c == OPT_RAW)
            raw = true;
        else
            rc = common_option(m, c, argv);
    }
    if (rc != GO_ON) return rc;
    int64_t id;
    if (optind >= argc) return cli_usage_error(m->cmd, "needs the ID of the message to show");
    if (!parse_id(argv[optind], &id))
        return cli_usage_error(m->cmd, "'%s' is not a message id", argv[optind]);
    if (optind + 1 < argc)
        return cli_usage_error(m->cmd, "unexpected argument '%s' (one ID at a time)",
                               argv[optind + 1]);
    if (raw) m->action = SEC_MESSAGE_EXPORT;
    if ((rc = msgs_open(m)) != CLI_OK) return rc;

    store_error err;
    store_message msg = STORE_MESSAGE_INIT;
    store_status st = store_get(m->s, id, &msg, &err);
    if (st == STORE_ERR_NOT_FOUND) return not_found(m, id);
    if (st != STORE_OK) return store_failed(m, &err);
    char what[64];
    snprintf(what, sizeof what, "message %" PRId64 "%s", id, raw ? " (raw bytes)" : "");
    msgs_audit(m, raw ? "message.export" : "message.view", msg.sum.channel,
               msg.sum.meta.patient_id, what);
    if (raw) {
        fwrite(msg.raw, 1, msg.sum.raw_len, stdout);
        store_message_free(&msg);
        return CLI_OK;
    }

    const store_summary *s = &msg.sum;
    rev_list revs = {0};
    store_filter rf = {.original_id = s->original_id, .limit = 1000};
    if (store_list(m->s, &rf, collect_revision, &revs, &err) != STORE_OK) {
        store_message_free(&msg);
        return store_failed(m, &err);
    }

    char when[64];
    tbuf b = TBUF_INIT;
    printf("message %" PRId64 "\n", s->id);
    show_field("received", fmt_time(s->received_at, true, when, sizeof when));
    show_field("channel", s->channel);
    show_field("state", store_msg_state_name(s->state));
    if (s->error) show_field("error", s->error);
    show_field("type", s->meta.msh9);
    show_field("control id", s->meta.control_id);
    show_field("patient id", s->meta.patient_id);
    tbuf_printf(&b, "%s / %s", s->meta.send_app ? s->meta.send_app : "-",
                s->meta.send_fac ? s->meta.send_fac : "-");
    show_field("sender", b.p);
    tbuf_reset(&b);
    tbuf_printf(&b, "%s / %s", s->meta.recv_app ? s->meta.recv_app : "-",
                s->meta.recv_fac ? s->meta.recv_fac : "-");
    show_field("receiver", b.p);
    tbuf_reset(&b);
    tbuf_printf(&b, "%zu bytes", s->raw_len);
    show_field("size", b.p);
    tbuf_reset(&b);
    if (s->revision > 1)
        tbuf_printf(&b, "%d, an edit of message %" PRId64, s->revision, s->original_id);
    else
        tbuf_printf(&b, "1 (as received)");
    if (revs.n && revs.ids[0] != s->id)
        tbuf_printf(&b, "; newest revision: %" PRId64 " (revision %d)", revs.ids[0], revs.revs[0]);
    show_field("revision", b.p);

    printf("\ndeliveries\n");
    if (!msg.n_deliveries) {
        printf("  none%s\n", s->state == STORE_MSG_REJECTED
                                 ? " (rejected: fix it with 'tern messages edit')"
                                 : "");
    } else {
        table t = {.ncols = 6};
        const char *head[] = {"DESTINATION",  "STATE",   "ATTEMPTS",
                              "NEXT ATTEMPT", "UPDATED", "LAST ERROR"};
        for (size_t i = 0; i < 6; i++)
            table_add(&t, head[i]);
        for (size_t i = 0; i < msg.n_deliveries; i++) {
            const store_delivery *d = &msg.deliveries[i];
            table_add(&t, d->dest);
            table_add(&t, store_dlv_state_name(d->state));
            table_addf(&t, "%d", d->attempts);
            table_add(&t, d->state == STORE_DLV_QUEUED && d->next_attempt_at
                              ? fmt_time(d->next_attempt_at, false, when, sizeof when)
                              : NULL);
            table_add(&t, fmt_time(d->updated_at, false, when, sizeof when));
            table_add(&t, d->last_error);
        }
        table_print(&t, "  ");
        table_free(&t);
    }

    if (revs.total > 1) {
        printf("\nrevisions (newest first)\n");
        for (size_t i = 0; i < revs.n; i++)
            printf("  %-10" PRId64 " revision %d%s%s\n", revs.ids[i], revs.revs[i],
                   revs.revs[i] == 1 ? ", as received" : "",
                   revs.ids[i] == s->id ? "  <- this one" : "");
        if (revs.total > revs.n) printf("  ... %zu more\n", revs.total - revs.n);
    }

    printf("\nmessage (%zu bytes, one segment per line)\n", s->raw_len);
    show_raw(msg.raw, s->raw_len);
    tbuf_free(&b);
    store_message_free(&msg);
    return CLI_OK;
}

/* --- destinations named on the command line ------------------------------------------------ */

typedef struct name_list {
    const char **v;
    size_t n, cap;
} name_list;

static int add_dest(msgs *m, name_list *l, const char *name)
{
    if (!*name) return cli_usage_error(m->cmd, "--dest needs a destination name");
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], name))
            return cli_usage_error(m->cmd, "--dest %s is given twice", name);
    l->v = xgrow(l->v, &l->cap, l->n + 1, sizeof *l->v);
    l->v[l->n++] = name;
    return GO_ON;
}

static bool channel_has_dest(const config_channel *ch, const char *name)
{
    for (size_t i = 0; i < ch->ndestinations; i++)
        if (!strcmp(ch->destinations[i].name, name)) return true;
    return false;
}

/* With a configuration, every named destination must exist in channel (or,
 * channel NULL, in some channel): a typo would otherwise select nothing. */
static int check_dests(const msgs *m, const name_list *l, const char *channel)
{
    if (!m->cfg) return CLI_OK;
    const config_channel *ch = channel ? config_find_channel(m->cfg, channel) : NULL;
    if (channel && !ch) return CLI_OK; /* a channel no longer configured: history */
    for (size_t i = 0; i < l->n; i++) {
        bool found = ch && channel_has_dest(ch, l->v[i]);
        for (size_t c = 0; !ch && !found && c < m->cfg->nchannels; c++)
            found = channel_has_dest(&m->cfg->channels[c], l->v[i]);
        if (found) continue;
        tbuf names = TBUF_INIT;
        for (size_t c = 0; c < m->cfg->nchannels; c++) {
            const config_channel *cc = &m->cfg->channels[c];
            if (ch && cc != ch) continue;
            for (size_t d = 0; d < cc->ndestinations; d++)
                tbuf_printf(&names, "%s%s (%s)", names.len ? ", " : "", cc->destinations[d].name,
                            cc->name);
        }
        fprintf(stderr, "tern %s: %s has no destination '%s'%s%s; the destinations are: %s\n",
                m->cmd, m->conf, l->v[i], ch ? " in channel " : "", ch ? ch->name : "",
                names.len ? names.p : "none");
        tbuf_free(&names);
        return CLI_INVALID;
    }
    return CLI_OK;
}

/* --- reprocess ------------------------------------------------------------------------- */

static void describe_selection(tbuf *out, const store_reprocess_req *req)
{
    if (req->n_ids) {
        tbuf_puts(out, req->n_ids == 1 ? "message " : "messages ");
        for (size_t i = 0; i < req->n_ids && i < 20; i++)
            tbuf_printf(out, "%s%" PRId64, i ? ", " : "", req->ids[i]);
        if (req->n_ids > 20) tbuf_printf(out, ", ... (%zu in all)", req->n_ids);
    } else {
        tbuf_printf(out, "messages with a delivery in state %s",
                    store_dlv_state_name(req->dlv_state));
        if (req->channel) tbuf_printf(out, " on channel %s", req->channel);
    }
    tbuf_puts(out, "\ndestinations: ");
    if (!req->n_dests) {
        tbuf_puts(out, "only those that did not succeed (error, queued); a destination that "
                       "accepted a message does not get it again");
        return;
    }
    for (size_t i = 0; i < req->n_dests; i++)
        tbuf_printf(out, "%s%s", i ? ", " : "", req->dests[i]);
    tbuf_puts(out, ", whatever their state (sent ones too)");
}

static int cmd_reprocess(msgs *m, int argc, char **argv)
{
    static const struct option opts[] = {{"state", required_argument, NULL, OPT_STATE},
                                         {"channel", required_argument, NULL, OPT_CHANNEL},
                                         {"dest", required_argument, NULL, OPT_DEST},
                                         {"reason", required_argument, NULL, OPT_REASON},
                                         {"yes", no_argument, NULL, OPT_YES},
                                         {"limit", required_argument, NULL, OPT_LIMIT},
                                         {"dry-run", no_argument, NULL, OPT_DRY_RUN},
                                         {"user", required_argument, NULL, OPT_USER},
                                         COMMON_OPTIONS_END};
    const char *state = NULL, *reason = NULL, *user = NULL;
    name_list dests = {0};
    int64_t *ids = NULL;
    uint64_t limit = 100;
    bool yes = false, dry_run = false;
    store_reprocess_req req = {0};
    store_message msg = STORE_MESSAGE_INIT;
    tbuf text = TBUF_INIT;
    int c, rc = GO_ON;
    getopt_reset();
    while (rc == GO_ON && (c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_STATE:
            state = optarg;
            break;
        case OPT_CHANNEL:
            req.channel = optarg;
            break;
        case OPT_DEST:
            rc = add_dest(m, &dests, optarg);
            break;
        case OPT_REASON:
            reason = optarg;
            break;
        case OPT_YES:
            yes = true;
            break;
        case OPT_LIMIT:
            rc = parse_count(m, "--limit", optarg, UINT32_MAX, &limit);
            break;
        case OPT_DRY_RUN:
            dry_run = true;
            break;
        case OPT_USER:
            user = optarg;
            break;
        default:
            rc = common_option(m, c, argv);
        }
    }
    if (rc != GO_ON) goto done;
    size_t n_ids = (size_t)(argc - optind);
    ids = xcalloc(n_ids + 1, sizeof *ids);
    for (size_t i = 0; i < n_ids; i++) {
        if (!parse_id(argv[optind + (int)i], &ids[i])) {
            rc = cli_usage_error(m->cmd, "'%s' is not a message id", argv[optind + (int)i]);
            goto done;
        }
    }
    if (n_ids && state) {
        rc = cli_usage_error(m->cmd, "give message ids or --state, not both");
        goto done;
    }
    if (!n_ids && !state) {
        rc = cli_usage_error(m->cmd, "needs message ids, or --state error for the error queue");
        goto done;
    }
    if (n_ids && req.channel) {
        rc = cli_usage_error(m->cmd, "--channel goes with --state; ids name their messages");
        goto done;
    }
    if (state && (req.dlv_state = store_dlv_state_from_name(state)) == STORE_DLV_NONE) {
        rc = cli_usage_error(m->cmd,
                             "--state takes a delivery state (error, queued, sent, filtered), "
                             "not '%s'",
                             state);
        goto done;
    }
    if (user && !*user) {
        rc = cli_usage_error(m->cmd, "--user needs a name");
        goto done;
    }
    req.ids = ids;
    req.n_ids = n_ids;
    req.dests = dests.v;
    req.n_dests = dests.n;
    if ((rc = msgs_open(m)) != CLI_OK) goto done;
    if ((rc = check_dests(m, &dests, req.channel)) != CLI_OK) goto done;

    store_error err;
    for (size_t i = 0; i < n_ids; i++) {
        store_status st = store_get(m->s, ids[i], &msg, &err);
        if (st == STORE_ERR_NOT_FOUND) {
            rc = not_found(m, ids[i]);
            goto done;
        }
        if (st != STORE_OK) {
            rc = store_failed(m, &err);
            goto done;
        }
    }
    store_counts count;
    if (store_reprocess_count(m->s, &req, &count, &err) != STORE_OK) {
        rc = store_failed(m, &err);
        goto done;
    }
    tbuf_puts(&text, "selected: ");
    describe_selection(&text, &req);
    printf("%s\nthis requeues %" PRIu64 " %s of %" PRIu64 " %s\n", text.p, count.deliveries,
           plural(count.deliveries, "delivery", "deliveries"), count.messages,
           plural(count.messages, "message", "messages"));
    if (!count.deliveries) {
        printf("nothing to reprocess%s\n",
               n_ids ? ": the deliveries of these messages succeeded or were superseded by an "
                       "edit (see 'tern messages show ID'; name --dest to resend)"
                     : "");
        rc = CLI_OK;
        goto done;
    }
    if (dry_run) {
        printf("dry run: nothing changed\n");
        rc = CLI_OK;
        goto done;
    }
    if (count.messages > limit && !yes) {
        fprintf(stderr,
                "tern %s: refusing to reprocess %" PRIu64 " messages, more than --limit %" PRIu64
                ". Check the selection with 'tern messages list', then run again with --yes "
                "--reason TEXT\n",
                m->cmd, count.messages, limit);
        rc = CLI_INVALID;
        goto done;
    }
    if (count.messages > limit && (!reason || !*reason)) {
        fprintf(stderr,
                "tern %s: reprocessing %" PRIu64 " messages (more than --limit %" PRIu64
                ") needs --reason TEXT, recorded in the audit with your name\n",
                m->cmd, count.messages, limit);
        rc = CLI_INVALID;
        goto done;
    }
    store_audit who = {msgs_user(m, user), reason};
    store_counts done_count;
    if (store_reprocess(m->s, &req, &who, now_ms(), &done_count, &err) != STORE_OK) {
        rc = store_failed(m, &err);
        goto done;
    }
    tbuf_reset(&text);
    store_describe_reprocess(&req, &done_count, &text);
    msgs_audit(m, "message.reprocess", req.channel, NULL, text.p);
    printf("requeued %" PRIu64 " %s of %" PRIu64
           " %s (audited as %s); a running 'tern serve' sends them on its next queue poll\n",
           done_count.deliveries, plural(done_count.deliveries, "delivery", "deliveries"),
           done_count.messages, plural(done_count.messages, "message", "messages"), who.who);
    rc = CLI_OK;
done:
    store_message_free(&msg);
    tbuf_free(&text);
    free(ids);
    free(dests.v);
    return rc;
}

/* --- edit -------------------------------------------------------------------------------- */

/* Appends the decoded value at path to out (nothing when absent). */
static void meta_value(const hl7_msg *hm, const char *path, tbuf *out)
{
    hl7_path p;
    if (hl7_path_parse(path, &p, NULL) == HL7_OK) hl7_get(hm, &p, out);
}

/* Without --dest, a message that has no deliveries at all (rejected) goes to
 * its channel's enabled destinations, if its filter accepts the new type. */
static int route_unrouted(msgs *m, const store_message *orig, const hl7_msg *hm, name_list *dests)
{
    const config_channel *ch = m->cfg ? config_find_channel(m->cfg, orig->sum.channel) : NULL;
    if (!ch) {
        fprintf(stderr,
                "tern %s: message %" PRId64 " has no deliveries to requeue (it was %s) and %s; "
                "say where the corrected message goes with --dest NAME\n",
                m->cmd, orig->sum.id, store_msg_state_name(orig->sum.state),
                m->cfg ? "its channel is not in the configuration"
                       : "without -c CONF its channel's destinations are unknown");
        return CLI_INVALID;
    }
    tbuf type = TBUF_INIT, event = TBUF_INIT;
    meta_value(hm, "MSH-9.1", &type);
    meta_value(hm, "MSH-9.2", &event);
    bool accepted = config_filter_accepts(&ch->filter, tbuf_cstr(&type), tbuf_cstr(&event));
    if (!accepted)
        fprintf(stderr,
                "tern %s: channel %s does not accept %s^%s (its filter); correct MSH-9, or name "
                "destinations with --dest to send it anyway\n",
                m->cmd, ch->name, tbuf_cstr(&type), tbuf_cstr(&event));
    tbuf_free(&type);
    tbuf_free(&event);
    if (!accepted) return CLI_INVALID;
    for (size_t i = 0; i < ch->ndestinations; i++)
        if (ch->destinations[i].enabled) {
            dests->v = xgrow(dests->v, &dests->cap, dests->n + 1, sizeof *dests->v);
            dests->v[dests->n++] = ch->destinations[i].name;
        }
    return CLI_OK;
}

static int cmd_edit(msgs *m, int argc, char **argv)
{
    static const struct option opts[] = {{"dest", required_argument, NULL, OPT_DEST},
                                         {"reason", required_argument, NULL, OPT_REASON},
                                         {"user", required_argument, NULL, OPT_USER},
                                         COMMON_OPTIONS_END};
    const char *reason = NULL, *user = NULL;
    name_list dests = {0};
    tbuf file = TBUF_INIT, wire = TBUF_INIT;
    store_message orig = STORE_MESSAGE_INIT, rev = STORE_MESSAGE_INIT;
    msg_meta em = {0};
    hl7_msg *hm = NULL;
    int c, rc = GO_ON;
    getopt_reset();
    while (rc == GO_ON && (c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_DEST:
            rc = add_dest(m, &dests, optarg);
            break;
        case OPT_REASON:
            reason = optarg;
            break;
        case OPT_USER:
            user = optarg;
            break;
        default:
            rc = common_option(m, c, argv);
        }
    }
    if (rc != GO_ON) goto done;
    int64_t id;
    if (argc - optind != 2) {
        rc = argc - optind < 2
                 ? cli_usage_error(m->cmd, "needs the message ID and the FILE with the correction")
                 : cli_usage_error(m->cmd, "unexpected argument '%s' (one ID and one FILE)",
                                   argv[optind + 2]);
        goto done;
    }
    if (!parse_id(argv[optind], &id)) {
        rc = cli_usage_error(m->cmd, "'%s' is not a message id", argv[optind]);
        goto done;
    }
    if (user && !*user) {
        rc = cli_usage_error(m->cmd, "--user needs a name");
        goto done;
    }
    const char *path = argv[optind + 1];
    char why[300];
    if (cli_read_file(path, &file, why, sizeof why) != 0) {
        fprintf(stderr, "tern %s: %s\n", m->cmd, why);
        rc = CLI_INVALID;
        goto done;
    }
    if ((rc = msgs_open(m)) != CLI_OK) goto done;

    store_error err;
    store_status st = store_get(m->s, id, &orig, &err);
    if (st != STORE_OK) {
        rc = st == STORE_ERR_NOT_FOUND ? not_found(m, id) : store_failed(m, &err);
        goto done;
    }
    const config_channel *ch = m->cfg ? config_find_channel(m->cfg, orig.sum.channel) : NULL;
    hm = hl7_msg_new(ch ? &ch->limits : NULL);
    hl7_error he;
    if (hl7_parse(hm, file.p ? file.p : "", file.len, &he) != HL7_OK) {
        char where[128];
        fprintf(stderr,
                "tern %s: %s is not a valid HL7 v2 message: %s (at %s); nothing was stored, fix "
                "the file and run again\n",
                m->cmd, path, he.text, hl7_error_where(&he, where, sizeof where));
        rc = CLI_INVALID;
        goto done;
    }
    /* Segments go out CR-terminated, as HL7 wants, whatever the editor saved. */
    for (uint32_t i = 0; i < hl7_seg_count(hm); i++) {
        const hl7_seg *seg = hl7_seg_at(hm, i);
        tbuf_put(&wire, seg->p, seg->len);
        tbuf_putc(&wire, '\r');
    }
    msg_meta_extract(hm, &em);
    store_meta meta = msg_meta_view(&em);
    if ((rc = check_dests(m, &dests, orig.sum.channel)) != CLI_OK) goto done;
    if (!dests.n && !orig.n_deliveries && (rc = route_unrouted(m, &orig, hm, &dests)) != CLI_OK)
        goto done;

    store_audit who = {msgs_user(m, user), reason};
    int64_t new_id;
    size_t queued;
    if (store_edit(m->s, id, wire.p, wire.len, &meta, dests.v, dests.n, &who, now_ms(), &new_id,
                   &queued, &err) != STORE_OK) {
        rc = store_failed(m, &err);
        goto done;
    }
    char what[96];
    snprintf(what, sizeof what, "message %" PRId64 " corrected as message %" PRId64, id, new_id);
    msgs_audit(m, "message.edit", orig.sum.channel, meta.patient_id, what);
    printf("stored the correction of message %" PRId64 " as message %" PRId64, id, new_id);
    if (store_get(m->s, new_id, &rev, &err) == STORE_OK)
        printf(" (revision %d of %" PRId64 ")", rev.sum.revision, rev.sum.original_id);
    printf("; %zu %s queued", queued, plural(queued, "delivery", "deliveries"));
    for (size_t i = 0; i < rev.n_deliveries; i++)
        printf("%s%s", i ? ", " : ": ", rev.deliveries[i].dest);
    printf("\n");
    if (!queued)
        printf("nothing was queued: every delivery of message %" PRId64
               " had succeeded; name destinations with --dest to send the correction\n",
               id);
    rc = CLI_OK;
done:
    msg_meta_free(&em);
    hl7_msg_free(hm);
    store_message_free(&orig);
    store_message_free(&rev);
    tbuf_free(&file);
    tbuf_free(&wire);
    free(dests.v);
    return rc;
}

/* --- prune ------------------------------------------------------------------------------- */

static void put_bytes(tbuf *out, uint64_t n)
{
    if (n < 1024)
        tbuf_printf(out, "%" PRIu64 " bytes", n);
    else if (n < 1024 * 1024)
        tbuf_printf(out, "%.1f KiB", (double)n / 1024);
    else if (n < UINT64_C(1) << 30)
        tbuf_printf(out, "%.1f MiB", (double)n / (1024 * 1024));
    else
        tbuf_printf(out, "%.2f GiB", (double)n / (1024.0 * 1024 * 1024));
}

/* prune without --older-than: each channel of the configuration by its
 * retention (0: kept). */

/* What pruning does before it deletes: nothing on a dry run, nothing
 * without --yes (exit 1 when something would have gone). Returns the exit
 * code to stop with, or -1 to go on. */
static int prune_confirm(const msgs *m, bool dry_run, bool yes, bool any)
{
    if (dry_run) {
        printf("dry run: nothing deleted\n");
        return CLI_OK;
    }
    if (!yes) {
        fprintf(stderr,
                "tern %s: nothing deleted; deleting cannot be undone, so run again with --yes "
                "to delete them\n",
                m->cmd);
        return any ? CLI_INVALID : CLI_OK;
    }
    return -1;
}

static int prune_by_retention(msgs *m, bool yes, bool dry_run, const char *reason,
                              const char *user)
{
    if (yes && dry_run) return cli_usage_error(m->cmd, "give --dry-run or --yes, not both");
    if (user && !*user) return cli_usage_error(m->cmd, "--user needs a name");
    int rc = msgs_open(m);
    if (rc != CLI_OK) return rc;
    if (!m->cfg)
        return cli_usage_error(m->cmd, "needs --older-than DURATION, e.g. 30d, with --store "
                                       "(retention is in the configuration)");
    int64_t now = now_ms();
    store_error err;
    uint64_t total = 0, deleted = 0, freed = 0;
    size_t with_retention = 0;
    store_audit who = {msgs_user(m, user), reason};
    for (size_t i = 0; i < m->cfg->nchannels; i++) {
        const config_channel *ch = &m->cfg->channels[i];
        if (!ch->retention_ms || !ch->name) continue;
        with_retention++;
        int64_t before = now - (int64_t)ch->retention_ms;
        char when[64], keep[32];
        uint64_t count;
        if (store_prune_count_channel(m->s, ch->name, before, &count, &err) != STORE_OK)
            return store_failed(m, &err);
        config_format_duration(ch->retention_ms, keep, sizeof keep);
        printf("%s (retention %s): %" PRIu64 " %s received before %s\n", ch->name, keep, count,
               plural(count, "message", "messages"), fmt_time(before, false, when, sizeof when));
        total += count;
        if (!yes || !count) continue;
        store_prune_result res;
        if (store_prune_channel(m->s, ch->name, before, &who, now, &res, &err) != STORE_OK) {
            if (res.messages)
                fprintf(stderr, "tern %s: %" PRIu64 " messages were deleted before the failure\n",
                        m->cmd, res.messages);
            return store_failed(m, &err);
        }
        deleted += res.messages;
        freed += res.bytes_freed;
    }
    if (!with_retention)
        return cli_usage_error(m->cmd, "needs --older-than DURATION, e.g. 30d, when no channel "
                                       "has a retention (`retention: 90d` at the top of the "
                                       "configuration or in a channel)");
    int gate = prune_confirm(m, dry_run, yes, total > 0);
    if (gate >= 0) return gate;
    tbuf b = TBUF_INIT;
    tbuf_printf(&b, "%" PRIu64 " messages deleted by retention", deleted);
    msgs_audit(m, "message.prune", NULL, NULL, b.p);
    tbuf_reset(&b);
    put_bytes(&b, freed);
    printf("deleted %" PRIu64 " %s (audited as %s); gave %s back to the file system\n", deleted,
           plural(deleted, "message", "messages"), who.who, b.p);
    tbuf_free(&b);
    return CLI_OK;
}

static int cmd_prune(msgs *m, int argc, char **argv)
{
    static const struct option opts[] = {{"older-than", required_argument, NULL, OPT_OLDER},
                                         {"yes", no_argument, NULL, OPT_YES},
                                         {"dry-run", no_argument, NULL, OPT_DRY_RUN},
                                         {"reason", required_argument, NULL, OPT_REASON},
                                         {"user", required_argument, NULL, OPT_USER},
                                         COMMON_OPTIONS_END};
    const char *older = NULL, *reason = NULL, *user = NULL;
    bool yes = false, dry_run = false;
    int c, rc = GO_ON;
    getopt_reset();
    while (rc == GO_ON && (c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_OLDER:
            older = optarg;
            break;
        case OPT_YES:
            yes = true;
            break;
        case OPT_DRY_RUN:
            dry_run = true;
            break;
        case OPT_REASON:
            reason = optarg;
            break;
        case OPT_USER:
            user = optarg;
            break;
        default:
            rc = common_option(m, c, argv);
        }
    }
    if (rc != GO_ON) return rc;
    if (optind < argc) return cli_usage_error(m->cmd, "unexpected argument '%s'", argv[optind]);
    if (!older) return prune_by_retention(m, yes, dry_run, reason, user);
    uint64_t age;
    char why[128];
    if (config_parse_duration(older, &age, why, sizeof why) != CONFIG_OK)
        return cli_usage_error(m->cmd, "--older-than '%s': %s", older, why);
    if (age >= (uint64_t)INT64_MAX / 2)
        return cli_usage_error(m->cmd, "--older-than '%s' is too long", older);
    if (yes && dry_run) return cli_usage_error(m->cmd, "give --dry-run or --yes, not both");
    if (user && !*user) return cli_usage_error(m->cmd, "--user needs a name");
    if ((rc = msgs_open(m)) != CLI_OK) return rc;

    int64_t now = now_ms(), before = now - (int64_t)age;
    char when[64];
    store_error err;
    uint64_t count;
    if (store_prune_count(m->s, before, &count, &err) != STORE_OK) return store_failed(m, &err);
    printf("%" PRIu64 " %s received before %s (%s ago) %s no delivery queued\n", count,
           plural(count, "message was", "messages were"),
           fmt_time(before, false, when, sizeof when), older, plural(count, "has", "have"));
    int gate = prune_confirm(m, dry_run, yes, true);
    if (gate >= 0) return gate;
    store_audit who = {msgs_user(m, user), reason};
    store_prune_result res;
    if (store_prune(m->s, before, &who, now, &res, &err) != STORE_OK) {
        if (res.messages)
            fprintf(stderr, "tern %s: %" PRIu64 " messages were deleted before the failure\n",
                    m->cmd, res.messages);
        return store_failed(m, &err);
    }
    tbuf b = TBUF_INIT;
    tbuf_printf(&b, "%" PRIu64 " messages deleted", res.messages);
    msgs_audit(m, "message.prune", NULL, NULL, b.p);
    tbuf_reset(&b);
    put_bytes(&b, res.bytes_freed);
    printf("deleted %" PRIu64 " %s (audited as %s); gave %s back to the file system\n",
           res.messages, plural(res.messages, "message", "messages"), who.who, b.p);
    tbuf_free(&b);
    return CLI_OK;
}

/* --- audit ------------------------------------------------------------------------------- */

typedef struct audit_out {
    bool json;
    table t;
    tbuf line;
} audit_out;

static bool audit_row(void *ctx, const store_audit_entry *e)
{
    audit_out *o = ctx;
    char when[64];
    if (o->json) {
        tbuf_reset(&o->line);
        tbuf_printf(&o->line, "{\"id\":%" PRId64 ",\"at\":", e->id);
        put_json_time(&o->line, e->at);
        json_field(&o->line, "who", e->who);
        json_field(&o->line, "action", e->action);
        json_field(&o->line, "what", e->what);
        json_field(&o->line, "why", e->why);
        tbuf_puts(&o->line, "}\n");
        fputs(o->line.p, stdout);
        return true;
    }
    table_add(&o->t, fmt_time(e->at, false, when, sizeof when));
    table_add(&o->t, e->who);
    table_add(&o->t, e->action);
    table_add(&o->t, e->why);
    table_add(&o->t, e->what);
    return true;
}

static int cmd_audit(msgs *m, int argc, char **argv)
{
    static const struct option opts[] = {{"limit", required_argument, NULL, OPT_LIMIT},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         COMMON_OPTIONS_END};
    uint64_t limit = 100;
    audit_out o = {.t = {.ncols = 5}};
    int c, rc = GO_ON;
    getopt_reset();
    while (rc == GO_ON && (c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        if (c == OPT_LIMIT)
            rc = parse_count(m, "--limit", optarg, MAX_LIMIT, &limit);
        else if (c == OPT_JSON)
            o.json = true;
        else
            rc = common_option(m, c, argv);
    }
    if (rc != GO_ON) return rc;
    if (optind < argc) return cli_usage_error(m->cmd, "unexpected argument '%s'", argv[optind]);
    if ((rc = msgs_open(m)) != CLI_OK) return rc;

    const char *head[] = {"WHEN", "WHO", "ACTION", "WHY", "WHAT"};
    for (size_t i = 0; !o.json && i < 5; i++)
        table_add(&o.t, head[i]);
    store_error err;
    if (store_audit_list(m->s, (size_t)limit, audit_row, &o, &err) != STORE_OK) {
        rc = store_failed(m, &err);
    } else if (!o.json) {
        if (o.t.n > o.t.ncols)
            table_print(&o.t, "");
        else
            printf("the audit is empty: nothing was reprocessed, edited or pruned yet\n");
    }
    table_free(&o.t);
    tbuf_free(&o.line);
    return rc;
}

/* --- dispatch ------------------------------------------------------------------------------ */

typedef struct subcommand {
    const char *name;
    const char *cmd;
    const char *usage;
    int (*run)(msgs *m, int argc, char **argv);
    sec_action action; /* what the command needs (docs/security.md) */
} subcommand;

static const subcommand subcommands[] = {
    {"list", "messages list", list_usage, cmd_list, SEC_MESSAGE_READ},
    {"show", "messages show", show_usage, cmd_show, SEC_MESSAGE_READ},
    {"reprocess", "messages reprocess", reprocess_usage, cmd_reprocess, SEC_MESSAGE_REPROCESS},
    {"edit", "messages edit", edit_usage, cmd_edit, SEC_MESSAGE_EDIT},
    {"prune", "messages prune", prune_usage, cmd_prune, SEC_MESSAGE_PRUNE},
    {"audit", "messages audit", audit_usage, cmd_audit, SEC_AUDIT_READ},
};

static const subcommand *find_subcommand(const char *name)
{
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (!strcmp(subcommands[i].name, name)) return &subcommands[i];
    return NULL;
}

int cli_messages(int argc, char **argv)
{
    static const struct option opts[] = {COMMON_OPTIONS_END};
    msgs m = {.cmd = "messages", .usage = messages_usage};
    int c, rc = GO_ON;
    getopt_reset();
    while (rc == GO_ON && (c = getopt_long(argc, argv, "+:c:h", opts, NULL)) != -1)
        rc = common_option(&m, c, argv);
    if (rc != GO_ON) return rc;
    if (optind >= argc)
        return cli_usage_error("messages",
                               "needs a command: list, show, reprocess, edit, prune or audit");
    const char *name = argv[optind];
    if (!strcmp(name, "help")) {
        const subcommand *sub = optind + 1 < argc ? find_subcommand(argv[optind + 1]) : NULL;
        fputs(sub ? sub->usage : messages_usage, stdout);
        return CLI_OK;
    }
    const subcommand *sub = find_subcommand(name);
    if (!sub)
        return cli_usage_error("messages",
                               "unknown command '%s'; the commands are: list, show, reprocess, "
                               "edit, prune, audit",
                               name);
    m.cmd = sub->cmd;
    m.usage = sub->usage;
    m.action = sub->action;
    rc = sub->run(&m, argc - optind, argv + optind);
    msgs_close(&m);
    return rc;
}
