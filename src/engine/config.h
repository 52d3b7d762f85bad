/*
 * config: loads and validates tern.yaml into a plain C struct tree.
 *
 * config_load() reads the file with libyaml's document API (so block and
 * flow styles, anchors, aliases and `<<` merge keys all work), walks the
 * node tree against the schema in docs/configuration.md, fills in every
 * default and checks every value. Validation does not stop at the first
 * problem: every error found (up to CONFIG_MAX_ERRORS) is collected with
 * the line and column of the node that caused it, sorted by position.
 *
 * The result is all-or-nothing: on success *out is a complete tern_config
 * that owns every string and array in it (config_free releases the lot); on
 * any error *out is NULL. Relative paths in the file (store path, source and
 * destination directories) are resolved against the directory that holds
 * the configuration file, so the same file means the same paths whatever the
 * working directory of the process that reads it.
 *
 * The module only describes configuration; it opens no sockets and touches
 * no directories. A few helpers that interpret configured values at run time
 * (filter matching, retry delays, filename rendering) live here too so that
 * the rules are written once.
 */
#ifndef TERN_CONFIG_H
#define TERN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/tbuf.h"
#include "hl7/hl7.h"

typedef enum config_status {
    CONFIG_OK = 0,
    CONFIG_ERR_IO,      /* the file cannot be opened or read */
    CONFIG_ERR_SYNTAX,  /* not well-formed YAML */
    CONFIG_ERR_INVALID, /* well-formed YAML that breaks the schema, or a bad value */
} config_status;

/* Returns a static, human-readable name for a status; never NULL. */
const char *config_strerror(config_status s);

/* At most this many errors are kept; the rest are only counted. */
#define CONFIG_MAX_ERRORS 100

/* One problem in a configuration file. line and column are 1-based; both are
 * 0 when the error concerns the whole file (e.g. it cannot be opened). */
typedef struct config_error {
    const char *file; /* borrows config_errors.file */
    unsigned line;
    unsigned column;
    char *text; /* owned by the list: what is wrong and what to do */
} config_error;

/* The errors of one load. Start from CONFIG_ERRORS_INIT; every load empties
 * the list first; config_errors_free releases it (and leaves it reusable). */
typedef struct config_errors {
    config_error *items; /* sorted by line, then column */
    size_t count;
    size_t cap;
    size_t dropped; /* errors beyond CONFIG_MAX_ERRORS, counted but not kept */
    char *file;     /* owned copy of the file name the errors refer to */
} config_errors;

#define CONFIG_ERRORS_INIT                                                                         \
    {                                                                                              \
        NULL, 0, 0, 0, NULL                                                                        \
    }

void config_errors_free(config_errors *errs);
/* Appends "FILE:LINE:COL: error: TEXT" (or "FILE: error: TEXT" without a
 * position) to out, without a newline. */
void config_error_format(const config_error *e, tbuf *out);

/* --- the configuration tree -------------------------------------------- */

/* A listening or connecting address. host is owned and never NULL in a
 * loaded configuration; "0.0.0.0" or "::" mean every interface. */
typedef struct config_addr {
    char *host;
    uint16_t port;
} config_addr;

typedef enum config_store_type {
    CONFIG_STORE_SQLITE = 0,
} config_store_type;

typedef struct config_store {
    config_store_type type;
    char *path; /* owned; resolved against the configuration's directory */
} config_store;

/* PHI at rest (docs/security-at-rest.md): on unless turned off. The master
 * key comes from key_file when set, else from the environment variable
 * key_env. */
typedef struct config_encryption {
    bool enabled;   /* default true */
    char *key_file; /* owned, resolved; NULL: use key_env */
    char *key_env;  /* owned; default TERN_MASTER_KEY */
} config_encryption;

typedef enum config_client_cert {
    CONFIG_CLIENT_CERT_NONE = 0,
    CONFIG_CLIENT_CERT_OPTIONAL,
    CONFIG_CLIENT_CERT_REQUIRED,
} config_client_cert;

/* A `tls:` block (docs/tls.md). Listeners use cert, key, ca, client_cert
 * and the allow lists; senders use ca, cert, key, server_name and verify.
 * Paths are owned and resolved; NULL when not given. The files were loaded
 * once by config_load (so a bad one is reported at its line). */
typedef struct config_tls {
    bool enabled; /* the block is present */
    unsigned line;
    char *cert, *key, *ca;
    config_client_cert client_cert; /* default: required when ca is given */
    char **allow_subjects;          /* owned; DN or CN */
    size_t nallow_subjects;
    char **allow_fingerprints; /* owned; SHA-256 hex */
    size_t nallow_fingerprints;
    char *server_name; /* sender: name checked and sent as SNI; NULL: the host */
    bool verify;       /* sender: check the server's certificate (default true) */
} config_tls;

struct tls_options;
/* Fills o (net/tls.h; zeroed first) from t for a listener (server true) or
 * a sender; o borrows t's strings. */
void config_tls_options(const config_tls *t, bool server, struct tls_options *o);

typedef struct config_http {
    bool enabled;
    config_addr listen;
    config_tls tls;
    /* http.timeout: a connection on which a request is not read (or the
     * answer not written) within this long is closed; also for HTTP sources
     * with a listen of their own */
    uint64_t timeout_ms;
} config_http;

/* The FHIR REST API's resource store (docs/fhir.md). */
typedef struct config_fhir {
    /* owned, resolved; fhir.store, default: store.path with "-fhir" before
     * its extension (var/tern.db -> var/tern-fhir.db) */
    char *store;
    /* owned, resolved; fhir.tables: a JSON file of conversion tables
     * (docs/fhir.md, "Tables file") used by every HL7 v2 <-> FHIR
     * conversion of the engine; NULL: the built-in tables. Loaded once by
     * config_load so that a bad file is reported at its line. */
    char *tables;
} config_fhir;

typedef enum config_source_type {
    CONFIG_SOURCE_MLLP = 1,
    CONFIG_SOURCE_FILE,
    CONFIG_SOURCE_HTTP,
    CONFIG_SOURCE_FHIR, /* resources written through the FHIR API -> HL7 v2 */
} config_source_type;

typedef enum config_ack_mode {
    CONFIG_ACK_AFTER_COMMIT = 0, /* AA once durably stored; AE/AR for bad HL7 */
    CONFIG_ACK_ALWAYS,           /* AA for every frame once stored, bad HL7 included */
} config_ack_mode;

typedef enum config_after {
    CONFIG_AFTER_MOVE = 0,
    CONFIG_AFTER_DELETE,
} config_after;

/* Where a channel's messages come from. Only the part for `type` is filled;
 * the others stay zeroed. */
typedef struct config_source {
    config_source_type type;
    /* mllp and http. For http, host NULL and port 0 mean "on the shared
     * admin/API listener (config http.listen)". */
    config_addr listen;
    struct {
        size_t max_frame;         /* bytes between 0x0B and 0x1C 0x0D */
        uint64_t idle_timeout_ms; /* 0: never close an idle connection */
        uint32_t max_connections;
        config_ack_mode ack;
    } mllp;
    struct {
        char *dir;  /* owned, resolved */
        char *glob; /* owned, matched against file names (fnmatch) */
        config_after after;
        char *move_to; /* owned, resolved; NULL unless after == MOVE */
        uint64_t poll_ms;
        uint64_t settle_ms;     /* size and mtime unchanged this long before pickup */
        char **ignore_suffixes; /* owned array of owned strings */
        size_t nignore_suffixes;
    } file;
    struct {
        size_t max_body; /* bytes in one POST body */
    } http;
    struct {
        char **resources; /* owned; the resource types that trigger (ServiceRequest) */
        size_t nresources;
        bool orm; /* message: ORM^O01; default OML^O21 */
        /* owned; MSH-3..6 of the generated messages; NULL: defaults */
        char *sending_application, *sending_facility;
        char *receiving_application, *receiving_facility;
    } fhir;
    config_tls tls; /* mllp, and http with its own listen */
} config_source;

/* Which message types a channel accepts; the others are stored as
 * "filtered". Patterns are TYPE^EVENT on MSH-9.1 and MSH-9.2 with the glob
 * characters * and ? ("ADT^A0?", "ADT^*", "*"); a bare "ADT" means "ADT^*". */
typedef struct config_filter {
    char **types; /* owned; empty: every type is accepted */
    size_t ntypes;
    char **exclude; /* owned; checked after types */
    size_t nexclude;
    char *script; /* owned, resolved; a Lua filter (docs/scripting.md); NULL: none */
} config_filter;

/* True when a message of this type and event passes the filter. */
bool config_filter_accepts(const config_filter *f, const char *type, const char *event);

/* One declarative transform step (docs/transforms.md), applied in order to
 * a copy of each message as it is delivered; the stored message is never
 * changed. Strings are owned. */
typedef enum config_tx_kind {
    CONFIG_TX_SET = 1, /* path = value ("" clears it) */
    CONFIG_TX_COPY,    /* to = the value at path (raw, escapes kept) */
    CONFIG_TX_DELETE,  /* remove every segment with id `path` */
    CONFIG_TX_CONVERT, /* OBX with OBX-3.1 = code: OBX-5, -6, -7 from OBX-6.1 to unit */
    CONFIG_TX_MAP,     /* the code at path, in every occurrence, through code map `map` */
    CONFIG_TX_SCRIPT,  /* a Lua transform (docs/scripting.md) */
} config_tx_kind;

typedef struct config_transform {
    config_tx_kind kind;
    unsigned line;
    char *path;  /* SET, COPY: an HL7 path; DELETE: a segment id */
    char *value; /* SET */
    char *to;    /* COPY: target path */
    char *code;  /* CONVERT: the observation code (OBX-3.1) */
    char *unit;  /* CONVERT: the target UCUM unit */
    char *from;  /* CONVERT: only when OBX-6.1 is this unit; NULL: any */
    double mw;   /* CONVERT: molar mass in g/mol; 0: none */
    char *map;   /* MAP: the code map's name */
    char *script; /* SCRIPT: the Lua file, resolved */
    uint32_t max_instructions; /* SCRIPT: 0: default */
    size_t max_memory;         /* SCRIPT: 0: default */
} config_transform;

/* Validation of received messages (docs/validation.md). Strings owned. */
typedef struct config_vfield {
    unsigned line;
    char *path;
    bool required;
    char *type; /* an HL7 datatype name (CX, DTM, NM...); NULL: none */
    uint32_t max_len, max_reps;
    char *table;
    bool has_min, has_max;
    double min, max;
    char *when; /* "OBX-2=NM": check only when that holds */
} config_vfield;

typedef struct config_vprofile {
    unsigned line;
    char *message;  /* "ORU^R01", "ADT^*", "*" */
    char *segments; /* structure grammar; NULL: not checked */
    config_vfield *fields;
    size_t nfields;
} config_vprofile;

typedef struct config_vtable {
    char *name;
    char *path;
    unsigned line;
} config_vtable;

typedef struct config_vseverity {
    char *rule; /* a rule id: datatype, table, sex-specific... */
    char *severity; /* error, warning, off */
    unsigned line;
} config_vseverity;

/* One entry of sex_specific, age_restricted or physiologic. */
typedef struct config_vrule {
    unsigned line;
    char *code;   /* a code or a prefix ending in '*' */
    char *system; /* coding systems, '|'-separated; NULL: any */
    char *sex;    /* sex_specific: F, M... */
    char *units;  /* physiologic: units, '|'-separated; NULL: any */
    double min, max;
    bool has_min, has_max;
} config_vrule;

typedef struct config_vrules {
    bool given; /* the key is present: it replaces the built-in list */
    config_vrule *v;
    size_t n;
} config_vrules;

typedef struct config_validation {
    bool baseline; /* default true */
    int local_offset; /* minutes east of UTC for times without an offset */
    config_vrules sex_specific, age_restricted, physiologic;
    config_vtable *tables;
    size_t ntables;
    config_vseverity *severity;
    size_t nseverity;
    config_vprofile *profiles;
    size_t nprofiles;
} config_validation;

/* Duplicate detection on (MSH-4 sending facility, MSH-10 control id). */
typedef struct config_duplicates {
    bool enabled;
    uint64_t window_ms;
} config_duplicates;

#define CONFIG_RETRY_FOREVER 0u

typedef struct config_retry {
    uint32_t max_attempts; /* CONFIG_RETRY_FOREVER: never give up */
    uint64_t backoff_min_ms;
    uint64_t backoff_max_ms;
} config_retry;

/* Delay before attempt `attempt` + 1 after `attempt` (>= 1) failures:
 * backoff_min doubled per failure, capped at backoff_max. */
uint64_t config_retry_delay(const config_retry *r, uint32_t attempt);

typedef enum config_tpl_kind {
    CONFIG_TPL_TEXT = 0, /* literal text */
    CONFIG_TPL_PATH,     /* ${MSH-10}: a value of the message */
    CONFIG_TPL_CHANNEL,  /* ${CHANNEL}: the channel name */
    CONFIG_TPL_ID,       /* ${ID}: the store's message id */
    CONFIG_TPL_DATE,     /* ${DATE}: received date, YYYYMMDD, local time */
    CONFIG_TPL_TIME,     /* ${TIME}: received time, HHMMSS, local time */
} config_tpl_kind;

typedef struct config_tpl_part {
    config_tpl_kind kind;
    char *text;    /* owned; CONFIG_TPL_TEXT only */
    hl7_path path; /* CONFIG_TPL_PATH only */
} config_tpl_part;

/* A validated file name template: relative, no "." or ".." component, no
 * empty component, every ${...} known. */
typedef struct config_template {
    char *source;           /* owned; the template as written */
    config_tpl_part *parts; /* owned */
    size_t nparts;
} config_template;

/* Appends the file name for one message to out (relative to the
 * destination's dir). Substituted values are made safe for a file name:
 * bytes other than A-Z a-z 0-9 . _ - become '_', a leading '.' becomes '_',
 * an empty value becomes "_", and each value is cut at 64 bytes; so the
 * result can never leave the directory. m may be NULL (paths render "_"). */
void config_template_render(const config_template *t, const hl7_msg *m, const char *channel,
                            uint64_t id, time_t received, tbuf *out);

typedef enum config_dest_type {
    CONFIG_DEST_FILE = 1,
    CONFIG_DEST_MLLP,
    CONFIG_DEST_HTTP,
    CONFIG_DEST_FHIR_STORE, /* HL7 -> FHIR Bundle -> the local FHIR store */
    CONFIG_DEST_FHIR,       /* HL7 -> FHIR Bundle -> POST to an external FHIR server */
} config_dest_type;

typedef struct config_header {
    char *name;  /* owned */
    char *value; /* owned */
} config_header;

/* Where a channel delivers. Only the part for `type` is filled. */
typedef struct config_destination {
    char *name;    /* owned; unique within its channel */
    unsigned line; /* where it is defined in the file, for messages */
    config_dest_type type;
    bool enabled;
    uint32_t parallel; /* connections/writers; 1 keeps messages in order */
    config_retry retry;
    struct {
        char *dir; /* owned, resolved */
        config_template filename;
    } file;
    struct {
        char *host; /* owned */
        uint16_t port;
        uint64_t connect_timeout_ms;
        uint64_t ack_timeout_ms;
    } mllp;
    struct {
        char *url;              /* owned; starts with http:// or https:// */
        config_header *headers; /* owned */
        size_t nheaders;
        uint64_t timeout_ms;
    } http; /* http; fhir uses url (the server's base) and timeout_ms */
    struct {
        char *token;     /* owned; a bearer token written in the file; NULL: none */
        char *token_env; /* owned; the variable holding it (read at start); NULL: none */
    } fhir;
    config_tls tls; /* mllp; http and fhir with an https:// url */
} config_destination;

typedef struct config_channel {
    char *name;        /* owned; unique; [A-Za-z0-9][A-Za-z0-9._-]*, at most 64 bytes */
    char *description; /* owned; NULL when not given */
    unsigned line;     /* where it is defined in the file, for messages */
    bool enabled;
    config_source source;
    config_filter filter;
    config_duplicates duplicates;
    hl7_limits limits;
    config_destination *destinations; /* owned; may be empty (store only) */
    size_t ndestinations;
    config_transform *transforms; /* owned; applied in order on delivery */
    size_t ntransforms;
    config_validation validation;
    /* retention: messages received longer ago than this are pruned (their
     * deliveries done); the channel's own key or the top-level one; 0:
     * kept forever */
    uint64_t retention_ms;
} config_channel;

/* A code map (docs/codemaps.md), shared by every channel. */
typedef struct config_map {
    char *name;     /* owned; unique */
    char *file;     /* owned, resolved; .json: FHIR ConceptMap, else CSV */
    char *unmapped; /* owned; error (default), warning or pass */
    char *match;    /* owned; exact (default) or caseless */
    unsigned line;
} config_map;

/* Identities, roles and the audit trail (docs/security.md). */
typedef struct config_security {
    bool auth;            /* authentication required (default true) */
    char *db;             /* owned, resolved; default: store.path with "-sec" before ".db" */
    char *audit_key_file; /* owned, resolved; NULL: the TERN_AUDIT_KEY environment variable */
    uint32_t lockout_attempts; /* failed logins in a row before a lockout */
    uint64_t lockout_ms;
    uint64_t session_idle_ms; /* a session unused this long expires */
    uint64_t session_max_ms;  /* a session expires this long after login, used or not */
    uint32_t argon2_memory_kib, argon2_iterations, argon2_parallelism;
    uint32_t seal_every;       /* seal the audit chain every N records ... */
    uint64_t seal_interval_ms; /* ... or this often, and at shutdown */
    uint32_t audit_queue;      /* audit records buffered before appends wait */
} config_security;

/* Fills s with the defaults of docs/configuration.md; with store_path, db is
 * the security database beside it (owned: free s->db). */
void config_security_default(config_security *s, const char *store_path);

typedef struct tern_config {
    char *file; /* owned; the path it was loaded from */
    config_store store;
    config_encryption encryption;
    config_http http;
    config_fhir fhir;
    config_security security;
    config_map *maps; /* owned */
    size_t nmaps;
    config_channel *channels; /* owned */
    size_t nchannels;
    uint64_t retention_ms;   /* top-level retention, the channels' default; 0: forever */
    uint64_t prune_every_ms; /* how often `tern serve` prunes by retention */
} tern_config;

/* --- loading ------------------------------------------------------------- */

/* Loads and validates the YAML file at path. On CONFIG_OK *out is a new
 * configuration the caller frees with config_free; otherwise *out is NULL
 * and errs (emptied first; never NULL) holds every problem found. */
config_status config_load(const char *path, tern_config **out, config_errors *errs);

/* Like config_load on text[0..len) that was read from `name`; name is used
 * in messages and its directory for relative paths. */
config_status config_load_buffer(const char *name, const char *text, size_t len, tern_config **out,
                                 config_errors *errs);

/* Frees c and everything it owns; NULL is fine. */
void config_free(tern_config *c);

/* The channel with this name, or NULL. Borrowed from c. */
const config_channel *config_find_channel(const tern_config *c, const char *name);

/* --- value syntax, shared with the CLI ------------------------------------- */

/* Parses a duration: a number with a unit ms, s, m, h or d ("500ms", "10s",
 * "5m", "1h", "30d"), several in a row ("1h30m"), or "0". On failure writes
 * why (may be NULL) and returns CONFIG_ERR_INVALID. */
config_status config_parse_duration(const char *s, uint64_t *ms, char *why, size_t whylen);
/* Parses a size: plain bytes ("65536") or a number with a unit B, KiB, MiB,
 * GiB (powers of 1024) or kB, KB, MB, GB (powers of 1000): "64KiB", "1MiB". */
config_status config_parse_size(const char *s, uint64_t *bytes, char *why, size_t whylen);
/* Writes a duration the way the configuration spells it ("1h30m", "500ms",
 * "0") into buf; returns buf. */
char *config_format_duration(uint64_t ms, char *buf, size_t size);

#endif
