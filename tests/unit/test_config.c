/*
 * Unit tests for the configuration loader (engine/config.c): the issue's
 * example read field by field, flow and block styles, defaults, anchors and
 * merge keys, every kind of error with its exact line and column, value
 * syntax (durations, sizes), and the run-time helpers (filter, retry delay,
 * filename templates).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/config.h"

#define ISSUE_EXAMPLE                                                                              \
    "store: { path: ./var/tern.db }          # SQLite, WAL; the embedded default\n"                \
    "http:  { listen: 127.0.0.1:8080 }       # admin/API port (used by later issues)\n"            \
    "channels:\n"                                                                                  \
    "  - name: adt-in\n"                                                                           \
    "    source: { type: mllp, listen: 127.0.0.1:2575 }\n"                                         \
    "    filter: { types: [ADT^A01, ADT^A04, ADT^A08] }   # MSH-9.1^MSH-9.2\n"                     \
    "    destinations:\n"                                                                          \
    "      - { name: archive, type: file, dir: ./var/out/adt, filename: \"${MSH-10}.hl7\" }\n"     \
    "      - { name: downstream, type: mllp, host: 127.0.0.1, port: 2576,\n"                       \
    "          retry: { max_attempts: 10, backoff: 1s..60s } }\n"                                  \
    "  - name: lab-files\n"                                                                        \
    "    source: { type: file, dir: ./var/in/lab, glob: \"*.hl7\", after: move, move_to: "         \
    "./var/done }\n"                                                                               \
    "    destinations:\n"                                                                          \
    "      - { name: to-http, type: http, url: \"http://127.0.0.1:9000/results\" }\n"

/* The same configuration written in block style only. */
#define ISSUE_EXAMPLE_BLOCK                                                                        \
    "store:\n"                                                                                     \
    "  path: ./var/tern.db\n"                                                                      \
    "http:\n"                                                                                      \
    "  listen: 127.0.0.1:8080\n"                                                                   \
    "channels:\n"                                                                                  \
    "- name: adt-in\n"                                                                             \
    "  source:\n"                                                                                  \
    "    type: mllp\n"                                                                             \
    "    listen: 127.0.0.1:2575\n"                                                                 \
    "  filter:\n"                                                                                  \
    "    types:\n"                                                                                 \
    "      - ADT^A01\n"                                                                            \
    "      - ADT^A04\n"                                                                            \
    "      - ADT^A08\n"                                                                            \
    "  destinations:\n"                                                                            \
    "    - name: archive\n"                                                                        \
    "      type: file\n"                                                                           \
    "      dir: ./var/out/adt\n"                                                                   \
    "      filename: ${MSH-10}.hl7\n"                                                              \
    "    - name: downstream\n"                                                                     \
    "      type: mllp\n"                                                                           \
    "      host: 127.0.0.1\n"                                                                      \
    "      port: 2576\n"                                                                           \
    "      retry:\n"                                                                               \
    "        max_attempts: 10\n"                                                                   \
    "        backoff: 1s..60s\n"                                                                   \
    "- name: lab-files\n"                                                                          \
    "  source:\n"                                                                                  \
    "    type: file\n"                                                                             \
    "    dir: ./var/in/lab\n"                                                                      \
    "    glob: '*.hl7'\n"                                                                          \
    "    after: move\n"                                                                            \
    "    move_to: ./var/done\n"                                                                    \
    "  destinations:\n"                                                                            \
    "    - name: to-http\n"                                                                        \
    "      type: http\n"                                                                           \
    "      url: http://127.0.0.1:9000/results\n"

static tern_config *load_ok(const char *text)
{
    tern_config *c = NULL;
    config_errors errs = CONFIG_ERRORS_INIT;
    config_status st = config_load_buffer("test.yaml", text, strlen(text), &c, &errs);
    for (size_t i = 0; i < errs.count; i++)
        fprintf(stderr, "unexpected: %u:%u: %s\n", errs.items[i].line, errs.items[i].column,
                errs.items[i].text);
    assert_int_equal(st, CONFIG_OK);
    assert_non_null(c);
    config_errors_free(&errs);
    return c;
}

/* Loads text that must fail; returns its errors, one "LINE:COL: TEXT" per
 * line (static buffer), and the count in *n. */
static const char *load_bad(const char *text, config_status want, size_t *n)
{
    static char buf[65536];
    tern_config *c = (tern_config *)1;
    config_errors errs = CONFIG_ERRORS_INIT;
    config_status st = config_load_buffer("test.yaml", text, strlen(text), &c, &errs);
    assert_int_equal(st, want);
    assert_null(c);
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < errs.count && len < sizeof(buf); i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%u:%u: %s\n", errs.items[i].line,
                                errs.items[i].column, errs.items[i].text);
    if (n) *n = errs.count;
    config_errors_free(&errs);
    return buf;
}

/* Asserts that the one error of `text` is at line:col and contains `part`. */
static void expect_error(const char *text, unsigned line, unsigned col, const char *part)
{
    size_t n;
    const char *e = load_bad(text, CONFIG_ERR_INVALID, &n);
    char where[32];
    snprintf(where, sizeof(where), "%u:%u: ", line, col);
    if (n != 1 || strncmp(e, where, strlen(where)) || !strstr(e, part)) {
        fprintf(stderr, "want 1 error at %s containing \"%s\", got %zu:\n%s", where, part, n, e);
        fail();
    }
}

static void check_issue_example(const tern_config *c)
{
    assert_string_equal(c->store.path, "var/tern.db");
    assert_int_equal(c->store.type, CONFIG_STORE_SQLITE);
    assert_true(c->http.enabled);
    assert_string_equal(c->http.listen.host, "127.0.0.1");
    assert_int_equal(c->http.listen.port, 8080);
    assert_int_equal(c->nchannels, 2);

    const config_channel *adt = &c->channels[0];
    assert_string_equal(adt->name, "adt-in");
    assert_true(adt->enabled);
    assert_null(adt->description);
    assert_int_equal(adt->line, 4);
    assert_int_equal(adt->source.type, CONFIG_SOURCE_MLLP);
    assert_string_equal(adt->source.listen.host, "127.0.0.1");
    assert_int_equal(adt->source.listen.port, 2575);
    assert_int_equal(adt->source.mllp.max_frame, 16u << 20);
    assert_int_equal(adt->source.mllp.idle_timeout_ms, 3600000);
    assert_int_equal(adt->source.mllp.max_connections, 100);
    assert_int_equal(adt->source.mllp.ack, CONFIG_ACK_AFTER_COMMIT);
    assert_int_equal(adt->filter.ntypes, 3);
    assert_string_equal(adt->filter.types[0], "ADT^A01");
    assert_string_equal(adt->filter.types[1], "ADT^A04");
    assert_string_equal(adt->filter.types[2], "ADT^A08");
    assert_int_equal(adt->filter.nexclude, 0);
    assert_false(adt->duplicates.enabled);
    assert_int_equal(adt->limits.max_message, HL7_DEFAULT_MAX_MESSAGE);
    assert_int_equal(adt->limits.max_field, HL7_DEFAULT_MAX_FIELD);
    assert_int_equal(adt->limits.max_segments, HL7_DEFAULT_MAX_SEGMENTS);
    assert_int_equal(adt->ndestinations, 2);

    const config_destination *archive = &adt->destinations[0];
    assert_string_equal(archive->name, "archive");
    assert_int_equal(archive->type, CONFIG_DEST_FILE);
    assert_true(archive->enabled);
    assert_int_equal(archive->parallel, 1);
    assert_string_equal(archive->file.dir, "var/out/adt");
    assert_string_equal(archive->file.filename.source, "${MSH-10}.hl7");
    assert_int_equal(archive->file.filename.nparts, 2);
    assert_int_equal(archive->file.filename.parts[0].kind, CONFIG_TPL_PATH);
    assert_string_equal(archive->file.filename.parts[0].path.seg, "MSH");
    assert_int_equal(archive->file.filename.parts[0].path.field, 10);
    assert_int_equal(archive->file.filename.parts[1].kind, CONFIG_TPL_TEXT);
    assert_string_equal(archive->file.filename.parts[1].text, ".hl7");
    assert_int_equal(archive->retry.max_attempts, 10);
    assert_int_equal(archive->retry.backoff_min_ms, 1000);
    assert_int_equal(archive->retry.backoff_max_ms, 300000);

    const config_destination *down = &adt->destinations[1];
    assert_string_equal(down->name, "downstream");
    assert_int_equal(down->type, CONFIG_DEST_MLLP);
    assert_string_equal(down->mllp.host, "127.0.0.1");
    assert_int_equal(down->mllp.port, 2576);
    assert_int_equal(down->mllp.connect_timeout_ms, 10000);
    assert_int_equal(down->mllp.ack_timeout_ms, 30000);
    assert_int_equal(down->retry.max_attempts, 10);
    assert_int_equal(down->retry.backoff_min_ms, 1000);
    assert_int_equal(down->retry.backoff_max_ms, 60000);

    const config_channel *lab = &c->channels[1];
    assert_string_equal(lab->name, "lab-files");
    assert_int_equal(lab->source.type, CONFIG_SOURCE_FILE);
    assert_null(lab->source.listen.host);
    assert_string_equal(lab->source.file.dir, "var/in/lab");
    assert_string_equal(lab->source.file.glob, "*.hl7");
    assert_int_equal(lab->source.file.after, CONFIG_AFTER_MOVE);
    assert_string_equal(lab->source.file.move_to, "var/done");
    assert_int_equal(lab->source.file.poll_ms, 1000);
    assert_int_equal(lab->source.file.settle_ms, 2000);
    assert_int_equal(lab->source.file.nignore_suffixes, 2);
    assert_string_equal(lab->source.file.ignore_suffixes[0], ".tmp");
    assert_string_equal(lab->source.file.ignore_suffixes[1], ".part");
    assert_int_equal(lab->filter.ntypes, 0);
    assert_int_equal(lab->ndestinations, 1);
    const config_destination *to_http = &lab->destinations[0];
    assert_string_equal(to_http->name, "to-http");
    assert_int_equal(to_http->type, CONFIG_DEST_HTTP);
    assert_string_equal(to_http->http.url, "http://127.0.0.1:9000/results");
    assert_int_equal(to_http->http.nheaders, 0);
    assert_int_equal(to_http->http.timeout_ms, 30000);

    assert_ptr_equal(config_find_channel(c, "lab-files"), lab);
    assert_null(config_find_channel(c, "nope"));
}

static void test_issue_example_flow(void **state)
{
    (void)state;
    tern_config *c = load_ok(ISSUE_EXAMPLE);
    check_issue_example(c);
    assert_string_equal(c->file, "test.yaml");
    config_free(c);
}

static void test_issue_example_block(void **state)
{
    (void)state;
    tern_config *c = load_ok(ISSUE_EXAMPLE_BLOCK);
    assert_int_equal(c->channels[0].line, 6);
    c->channels[0].line = 4; /* the only difference: where the channel starts */
    check_issue_example(c);
    config_free(c);
}

static void test_all_keys(void **state)
{
    (void)state;
    tern_config *c =
        load_ok("store: { type: sqlite, path: /data/tern.db }\n"
                "http: { enabled: false, listen: '[::1]:9090' }\n"
                "channels:\n"
                "  - name: a\n"
                "    description: ADT from the HIS\n"
                "    enabled: no\n"
                "    source: { type: mllp, listen: 2575, max_frame: 64KiB,\n"
                "              idle_timeout: 0, max_connections: 5, ack: always }\n"
                "    filter: { types: 'ADT^*', exclude: [ADT^A08] }\n"
                "    duplicates: { enabled: true, window: 7d }\n"
                "    limits: { max_message: 2MiB, max_field: 1MiB, max_segments: 500 }\n"
                "    destinations:\n"
                "      - name: h\n"
                "        type: http\n"
                "        url: https://lis.example.org:8443/in?x=1\n"
                "        headers: { Authorization: Bearer abc, X-Site: north }\n"
                "        timeout: 1m30s\n"
                "        parallel: 4\n"
                "        enabled: false\n"
                "        retry: { max_attempts: forever, backoff: 5s }\n"
                "  - name: b\n"
                "    enabled: false\n"
                "    source: { type: http, max_body: 1MB }\n"
                "  - name: c\n"
                "    source: { type: http, listen: '*:9100' }\n"
                "  - name: d\n"
                "    source: { type: file, dir: in/, after: delete, poll: 250ms,\n"
                "              settle: 0, ignore_suffixes: [.tmp, .swp, '~'] }\n");
    assert_string_equal(c->store.path, "/data/tern.db");
    assert_false(c->http.enabled);
    assert_string_equal(c->http.listen.host, "::1");
    assert_int_equal(c->http.listen.port, 9090);
    const config_channel *a = &c->channels[0];
    assert_string_equal(a->description, "ADT from the HIS");
    assert_false(a->enabled);
    assert_string_equal(a->source.listen.host, "0.0.0.0");
    assert_int_equal(a->source.listen.port, 2575);
    assert_int_equal(a->source.mllp.max_frame, 65536);
    assert_int_equal(a->source.mllp.idle_timeout_ms, 0);
    assert_int_equal(a->source.mllp.max_connections, 5);
    assert_int_equal(a->source.mllp.ack, CONFIG_ACK_ALWAYS);
    assert_int_equal(a->filter.ntypes, 1);
    assert_string_equal(a->filter.types[0], "ADT^*");
    assert_string_equal(a->filter.exclude[0], "ADT^A08");
    assert_true(a->duplicates.enabled);
    assert_int_equal(a->duplicates.window_ms, 7ull * 86400000);
    assert_int_equal(a->limits.max_message, 2u << 20);
    assert_int_equal(a->limits.max_field, 1u << 20);
    assert_int_equal(a->limits.max_segments, 500);
    const config_destination *h = &a->destinations[0];
    assert_string_equal(h->http.url, "https://lis.example.org:8443/in?x=1");
    assert_int_equal(h->http.nheaders, 2);
    assert_string_equal(h->http.headers[0].name, "Authorization");
    assert_string_equal(h->http.headers[0].value, "Bearer abc");
    assert_string_equal(h->http.headers[1].name, "X-Site");
    assert_int_equal(h->http.timeout_ms, 90000);
    assert_int_equal(h->parallel, 4);
    assert_false(h->enabled);
    assert_int_equal(h->retry.max_attempts, CONFIG_RETRY_FOREVER);
    assert_int_equal(h->retry.backoff_min_ms, 5000);
    assert_int_equal(h->retry.backoff_max_ms, 5000);
    const config_channel *b = &c->channels[1];
    assert_null(b->source.listen.host);
    assert_int_equal(b->source.http.max_body, 1000000);
    assert_int_equal(b->ndestinations, 0);
    assert_string_equal(c->channels[2].source.listen.host, "0.0.0.0");
    assert_int_equal(c->channels[2].source.http.max_body, 16u << 20);
    const config_channel *d = &c->channels[3];
    assert_string_equal(d->source.file.dir, "in");
    assert_int_equal(d->source.file.after, CONFIG_AFTER_DELETE);
    assert_null(d->source.file.move_to);
    assert_int_equal(d->source.file.poll_ms, 250);
    assert_int_equal(d->source.file.settle_ms, 0);
    assert_int_equal(d->source.file.nignore_suffixes, 3);
    assert_string_equal(d->source.file.ignore_suffixes[2], "~");
    config_free(c);
}

static void test_defaults(void **state)
{
    (void)state;
    tern_config *c = load_ok("channels:\n"
                             "  - name: a\n"
                             "    source: { type: mllp, listen: 0.0.0.0:2575 }\n"
                             "    destinations: [{ name: f, type: file, dir: out }]\n");
    assert_string_equal(c->store.path, "var/tern.db");
    assert_true(c->http.enabled);
    assert_string_equal(c->http.listen.host, "127.0.0.1");
    assert_int_equal(c->http.listen.port, 8080);
    const config_destination *f = &c->channels[0].destinations[0];
    assert_string_equal(f->file.filename.source, "${ID}.hl7");
    assert_true(f->enabled);
    assert_int_equal(f->parallel, 1);
    assert_int_equal(f->retry.max_attempts, 10);
    assert_int_equal(f->retry.backoff_min_ms, 1000);
    assert_int_equal(f->retry.backoff_max_ms, 300000);
    assert_false(c->channels[0].duplicates.enabled);
    assert_int_equal(c->channels[0].duplicates.window_ms, 86400000);
    config_free(c);

    /* An empty channel list is allowed; an empty file is not. */
    c = load_ok("channels: []\n");
    assert_int_equal(c->nchannels, 0);
    config_free(c);
    c = load_ok("channels:\n");
    assert_int_equal(c->nchannels, 0);
    config_free(c);
    size_t n;
    const char *e = load_bad("# nothing\n", CONFIG_ERR_INVALID, &n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(e, "0:0: the file is empty"));
}

static void test_relative_paths(void **state)
{
    (void)state;
    static const char text[] = "store: { path: ./var/tern.db }\n"
                               "channels:\n"
                               "  - name: a\n"
                               "    source: { type: file, dir: in, move_to: /abs/done/ }\n"
                               "    destinations: [{ name: f, type: file, dir: ././out/ }]\n";
    tern_config *c = NULL;
    config_errors errs = CONFIG_ERRORS_INIT;
    assert_int_equal(config_load_buffer("/etc/tern/tern.yaml", text, strlen(text), &c, &errs),
                     CONFIG_OK);
    assert_string_equal(c->store.path, "/etc/tern/var/tern.db");
    assert_string_equal(c->fhir.store, "/etc/tern/var/tern-fhir.db");
    assert_string_equal(c->channels[0].source.file.dir, "/etc/tern/in");
    assert_string_equal(c->channels[0].source.file.move_to, "/abs/done");
    assert_string_equal(c->channels[0].destinations[0].file.dir, "/etc/tern/out");
    config_free(c);
    assert_int_equal(config_load_buffer("/tern.yaml", text, strlen(text), &c, &errs), CONFIG_OK);
    assert_string_equal(c->store.path, "/var/tern.db");
    config_free(c);
    assert_int_equal(config_load_buffer("conf/t.yaml", text, strlen(text), &c, &errs), CONFIG_OK);
    assert_string_equal(c->store.path, "conf/var/tern.db");
    config_free(c);
    config_errors_free(&errs);
}

static void test_fhir_store_key(void **state)
{
    (void)state;
    static const char text[] = "store: { path: /data/msgs }\nfhir: { store: fhir/r4.db }\n"
                               "channels: []\n";
    tern_config *c = NULL;
    config_errors errs = CONFIG_ERRORS_INIT;
    assert_int_equal(config_load_buffer("/etc/tern/tern.yaml", text, strlen(text), &c, &errs),
                     CONFIG_OK);
    assert_string_equal(c->fhir.store, "/etc/tern/fhir/r4.db");
    config_free(c);
    assert_int_equal(config_load_buffer("/etc/t.yaml", "store: { path: /data/msgs }\nchannels: []\n", 41,
                                        &c, &errs), CONFIG_OK);
    assert_string_equal(c->fhir.store, "/data/msgs-fhir");
    config_free(c);
    static const char dest[] = "channels:\n"
                               "  - name: a\n"
                               "    source: { type: mllp, listen: 127.0.0.1:2575 }\n"
                               "    destinations: [{ name: f, type: fhir-store }]\n";
    assert_int_equal(config_load_buffer("/etc/t.yaml", dest, strlen(dest), &c, &errs), CONFIG_OK);
    assert_int_equal(c->channels[0].destinations[0].type, CONFIG_DEST_FHIR_STORE);
    config_free(c);
    config_errors_free(&errs);
}

/* fhir.tables: resolved, loaded at check time; a bad file is an error at
 * the key's line that names the file's own problem. */
static void test_fhir_tables_key(void **state)
{
    (void)state;
    char dir[] = "/tmp/tern-cfg-tables-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char good[128], bad[128], cfg[160], text[512];
    snprintf(good, sizeof good, "%s/good.json", dir);
    snprintf(bad, sizeof bad, "%s/bad.json", dir);
    snprintf(cfg, sizeof cfg, "%s/tern.yaml", dir);
    FILE *f = fopen(good, "w");
    assert_non_null(f);
    fputs("{\"authorities\": {\"HOSP\": \"http://hosp.example.org/mrn\"}}", f);
    fclose(f);
    f = fopen(bad, "w");
    assert_non_null(f);
    fputs("{\"colours\": {}}", f);
    fclose(f);
    tern_config *c = NULL;
    config_errors errs = CONFIG_ERRORS_INIT;
    snprintf(text, sizeof text, "fhir: { tables: good.json }\nchannels: []\n");
    assert_int_equal(config_load_buffer(cfg, text, strlen(text), &c, &errs), CONFIG_OK);
    assert_string_equal(c->fhir.tables, good);
    config_free(c);
    snprintf(text, sizeof text, "channels: []\nfhir:\n  tables: bad.json\n");
    assert_int_equal(config_load_buffer(cfg, text, strlen(text), &c, &errs), CONFIG_ERR_INVALID);
    assert_int_equal(errs.count, 1);
    assert_int_equal(errs.items[0].line, 3);
    assert_non_null(strstr(errs.items[0].text, "unknown table \"colours\""));
    snprintf(text, sizeof text, "channels: []\nfhir: { tables: missing.json }\n");
    assert_int_equal(config_load_buffer(cfg, text, strlen(text), &c, &errs), CONFIG_ERR_INVALID);
    assert_int_equal(errs.items[0].line, 2);
    assert_non_null(strstr(errs.items[0].text, "missing.json"));
    config_errors_free(&errs);
    unlink(good);
    unlink(bad);
    rmdir(dir);
}

/* The fhir source and the fhir destination: keys, defaults, errors. */
static void test_fhir_source_and_destination(void **state)
{
    (void)state;
    tern_config *c = load_ok("channels:\n"
                             "  - name: orders\n"
                             "    source: { type: fhir, message: ORM^O01, sending_application: EHR }\n"
                             "    destinations:\n"
                             "      - { name: ehr, type: fhir, url: https://fhir.example.org/r4,\n"
                             "          token_env: EHR_TOKEN, timeout: 5s }\n");
    const config_channel *ch = &c->channels[0];
    assert_int_equal(ch->source.type, CONFIG_SOURCE_FHIR);
    assert_int_equal(ch->source.fhir.nresources, 1);
    assert_string_equal(ch->source.fhir.resources[0], "ServiceRequest");
    assert_true(ch->source.fhir.orm);
    assert_string_equal(ch->source.fhir.sending_application, "EHR");
    assert_null(ch->source.fhir.receiving_application);
    assert_int_equal(ch->destinations[0].type, CONFIG_DEST_FHIR);
    assert_string_equal(ch->destinations[0].http.url, "https://fhir.example.org/r4");
    assert_string_equal(ch->destinations[0].fhir.token_env, "EHR_TOKEN");
    assert_int_equal(ch->destinations[0].http.timeout_ms, 5000);
    config_free(c);
    expect_error("channels:\n  - name: o\n    source: { type: fhir, resources: [Patient] }\n", 3, 39,
                 "'Patient' cannot be turned into HL7 v2 yet");
    expect_error("channels:\n  - name: o\n    source: { type: fhir, message: ADT^A01 }\n", 3, 36,
                 "ADT^A01");
    expect_error("http: { enabled: false }\nchannels:\n  - name: o\n    source: { type: fhir }\n",
                 4, 13, "enable http");
    expect_error("channels:\n  - name: o\n    source: { type: mllp, listen: 127.0.0.1:2575 }\n"
                 "    destinations:\n      - { name: d, type: fhir, url: http://x/fhir, token: a, "
                 "token_env: B }\n",
                 5, 73, "not both");
}

static void test_extension_keys_and_anchors(void **state)
{
    (void)state;
    /* Top-level keys starting with x- are ignored: a place for anchors. */
    tern_config *c = load_ok("x-retry: &slow { max_attempts: 3, backoff: 10s..1h }\n"
                             "x-lis: &lis\n"
                             "  type: mllp\n"
                             "  host: lis\n"
                             "  port: 2600\n"
                             "  retry: *slow\n"
                             "channels:\n"
                             "  - name: a\n"
                             "    source: { type: mllp, listen: 2575 }\n"
                             "    destinations:\n"
                             "      - { <<: *lis, name: one }\n"
                             "      - { <<: *lis, name: two, port: 2601 }\n");
    const config_channel *a = &c->channels[0];
    assert_string_equal(a->destinations[0].mllp.host, "lis");
    assert_int_equal(a->destinations[0].mllp.port, 2600);
    assert_int_equal(a->destinations[0].retry.max_attempts, 3);
    assert_int_equal(a->destinations[1].mllp.port, 2601);
    assert_int_equal(a->destinations[1].retry.backoff_max_ms, 3600000);
    config_free(c);
}

static void test_merge_keys(void **state)
{
    (void)state;
    tern_config *c =
        load_ok("channels:\n"
                "  - name: a\n"
                "    source: { type: mllp, listen: 2575 }\n"
                "    destinations:\n"
                "      - &lis\n"
                "        name: one\n"
                "        type: mllp\n"
                "        host: lis\n"
                "        port: 2600\n"
                "        retry: &slow { max_attempts: 3, backoff: 10s..1h }\n"
                "      - { <<: *lis, name: two, port: 2601 }\n"
                "      - { <<: [*lis], name: three, retry: { <<: *slow, max_attempts: 5 } }\n");
    const config_channel *a = &c->channels[0];
    assert_int_equal(a->ndestinations, 3);
    assert_string_equal(a->destinations[1].name, "two");
    assert_string_equal(a->destinations[1].mllp.host, "lis");
    assert_int_equal(a->destinations[1].mllp.port, 2601);
    assert_int_equal(a->destinations[1].retry.max_attempts, 3);
    assert_int_equal(a->destinations[1].retry.backoff_max_ms, 3600000);
    assert_string_equal(a->destinations[2].name, "three");
    assert_int_equal(a->destinations[2].mllp.port, 2600);
    assert_int_equal(a->destinations[2].retry.max_attempts, 5);
    assert_int_equal(a->destinations[2].retry.backoff_min_ms, 10000);
    config_free(c);
}

/* --- errors, each with its line and column ------------------------------ */

#define CH_HEAD "channels:\n  - name: a\n"
#define MLLP_SRC "    source: { type: mllp, listen: 2575 }\n"

static void test_error_unknown_key(void **state)
{
    (void)state;
    size_t n;
    const char *e =
        load_bad(CH_HEAD "    sourc: { type: mllp, listen: 2575 }\n", CONFIG_ERR_INVALID, &n);
    assert_string_equal(e, "2:5: channel 'a' has no 'source'; add it, e.g. source: { type: mllp, "
                           "listen: 0.0.0.0:2575 }\n"
                           "3:5: unknown key 'sourc' in channel 'a'; did you mean 'source'?\n");
    e = load_bad(CH_HEAD MLLP_SRC "    destinations:\n      - { name: f, type: file, dri: out }\n",
                 CONFIG_ERR_INVALID, &n);
    assert_string_equal(e, "5:9: destination 'f' of channel 'a' has no 'dir'; add it, e.g. dir: "
                           "./var/out\n"
                           "5:32: unknown key 'dri' in destination 'f' of channel 'a'; did you "
                           "mean 'dir'?\n");
    e = load_bad(CH_HEAD "    source: { type: mllp, lisen: 2575 }\n", CONFIG_ERR_INVALID, &n);
    assert_string_equal(e, "3:13: the source of channel 'a' has no 'listen'; add it, e.g. listen: "
                           "0.0.0.0:2575\n"
                           "3:27: unknown key 'lisen' in the source of channel 'a'; did you mean "
                           "'listen'?\n");
    expect_error("stor: { path: x }\nchannels: []\n", 1, 1,
                 "unknown key 'stor' in the top level of the file; did you mean 'store'?");
    expect_error(CH_HEAD MLLP_SRC "    colour: blue\n", 4, 5,
                 "unknown key 'colour' in channel 'a'; the keys here are: name, enabled, "
                 "description, retention, source, filter, duplicates, limits, transform, validation, destinations");
    /* A key of another source type says so. */
    expect_error(CH_HEAD "    source: { type: mllp, listen: 2575, dir: in }\n", 3, 41,
                 "'dir' does not apply to an mllp source (it is for file sources)");
    expect_error(CH_HEAD "    source: { type: http, max_frame: 1MiB }\n", 3, 27,
                 "'max_frame' does not apply to an http source (it is for mllp sources)");
}

static void test_error_wrong_type(void **state)
{
    (void)state;
    expect_error("channels: { name: a }\n", 1, 11, "'channels' must be a list");
    expect_error(CH_HEAD "    source: mllp\n", 3, 13,
                 "the source of channel 'a' must be a mapping of keys to values");
    expect_error(CH_HEAD MLLP_SRC "    enabled: maybe\n", 4, 14,
                 "'enabled' must be true or false, not 'maybe'");
    expect_error(CH_HEAD MLLP_SRC "    filter: { types: { ADT: A01 } }\n", 4, 22,
                 "'types' must be a list");
    expect_error(CH_HEAD "    name: [x]\n" MLLP_SRC, 3, 5, "appears twice");
    expect_error("- a\n- b\n", 1, 1, "the top level of the file must be a mapping");
    expect_error(CH_HEAD "    source: { type: mllp, listen: 2575, max_connections: lots }\n", 3, 58,
                 "'max_connections' must be a whole number from 1 to 100000, not 'lots'");
}

static void test_error_missing_required(void **state)
{
    (void)state;
    /* Reported at the line of the mapping that lacks the key. */
    expect_error("store: { path: x }\n", 1, 1, "the configuration has no 'channels'");
    expect_error("channels:\n  - source: { type: mllp, listen: 2575 }\n", 2, 5,
                 "the channel at line 2 has no 'name'; add it, e.g. name: adt-in");
    expect_error(CH_HEAD "    destinations:\n      - { name: f, type: file, dir: out }\n", 2, 5,
                 "channel 'a' has no 'source'");
    expect_error(CH_HEAD "    source:\n      listen: 2575\n", 4, 7,
                 "the source of channel 'a' has no 'type'; add it, e.g. type: mllp");
    expect_error(CH_HEAD MLLP_SRC "    destinations:\n"
                                  "      - name: d\n"
                                  "        type: mllp\n"
                                  "        host: lis\n",
                 5, 9, "destination 'd' of channel 'a' has no 'port'");
    expect_error(CH_HEAD "    source: { type: file, dir: in }\n", 3, 13,
                 "needs 'move_to'; add e.g. move_to: ./var/done, or set after: delete");
    expect_error(CH_HEAD "    name: \n" MLLP_SRC, 3, 5, "appears twice");
    expect_error("channels:\n  - name:\n" MLLP_SRC, 2, 10,
                 "'name' in the channel at line 2 is empty");
    /* A channel whose name is unusable is named by its line further down. */
    size_t n;
    const char *e = load_bad("channels:\n"
                             "  - name: a/b\n"
                             "    source: { type: mllp, listen: 2575, x: 1 }\n"
                             "    destinations: [{ name: f, type: file }]\n",
                             CONFIG_ERR_INVALID, &n);
    assert_string_equal(e, "2:11: 'a/b' is not a valid channel name: use 1 to 64 letters, digits, "
                           "'.', '_' or '-', starting with a letter or digit (e.g. adt-in)\n"
                           "3:41: unknown key 'x' in the source of the channel at line 2; the "
                           "keys here are: type, listen, max_frame, idle_timeout, "
                           "max_connections, ack, tls\n"
                           "4:20: destination 'f' of the channel at line 2 has no 'dir'; add it, "
                           "e.g. dir: ./var/out\n");
}

static void test_error_duplicates(void **state)
{
    (void)state;
    expect_error("channels:\n"
                 "  - { name: a, source: { type: mllp, listen: 2575 } }\n"
                 "  - { name: b, source: { type: mllp, listen: 2576 } }\n"
                 "  - { name: a, source: { type: mllp, listen: 2577 } }\n",
                 4, 13, "there is already a channel named 'a' (line 2)");
    expect_error(CH_HEAD MLLP_SRC "    destinations:\n"
                                  "      - { name: f, type: file, dir: out }\n"
                                  "      - { name: f, type: file, dir: out2 }\n",
                 6, 17, "channel 'a' already has a destination named 'f' (line 5)");
    expect_error("channels:\n"
                 "  - { name: a, source: { type: mllp, listen: 127.0.0.1:2575 } }\n"
                 "  - { name: b, source: { type: mllp, listen: 127.0.0.1:2575 } }\n",
                 3, 46, "127.0.0.1:2575 is already used by channel 'a' (line 2)");
    expect_error("channels:\n"
                 "  - { name: a, source: { type: mllp, listen: 127.0.0.1:2575 } }\n"
                 "  - { name: b, source: { type: http, listen: 2575 } }\n",
                 3, 46,
                 "0.0.0.0:2575 (every interface) overlaps 127.0.0.1:2575 of channel 'a' (line 2)");
    expect_error("http: { listen: 127.0.0.1:2575 }\n"
                 "channels:\n"
                 "  - { name: a, source: { type: mllp, listen: 127.0.0.1:2575 } }\n",
                 3, 46, "is already used by the http listener (line 1)");
    expect_error("channels:\n"
                 "  - { name: a, source: { type: file, dir: in, after: delete } }\n"
                 "  - { name: b, source: { type: file, dir: ./in/, after: delete } }\n",
                 3, 43, "directory 'in' is already polled by channel 'a' (line 2)");
    expect_error(CH_HEAD MLLP_SRC "    filter: { types: [ADT^A01], types: [ORU^R01] }\n", 4, 33,
                 "'types' appears twice in the filter of channel 'a' (first at line 4)");
    /* A disabled channel does not take its port. */
    tern_config *c =
        load_ok("channels:\n"
                "  - { name: a, source: { type: mllp, listen: 2575 } }\n"
                "  - { name: b, enabled: false, source: { type: mllp, listen: 2575 } }\n");
    config_free(c);
}

static void test_error_values(void **state)
{
    (void)state;
    expect_error(CH_HEAD "    source: { type: mllp, listen: 127.0.0.1:70000 }\n", 3, 35,
                 "the port must be from 1 to 65535");
    expect_error(CH_HEAD "    source: { type: mllp, listen: localhost }\n", 3, 35,
                 "is not HOST:PORT");
    expect_error(CH_HEAD "    source: { type: mllp, listen: '::1:2575' }\n", 3, 35,
                 "write an IPv6 address in brackets");
    expect_error(CH_HEAD MLLP_SRC "    destinations: [{ name: m, type: mllp, host: h, port: 0 }]\n",
                 4, 58, "'port' must be a port number from 1 to 65535, not '0'");
    expect_error(CH_HEAD "    source: { type: mllp, listen: 2575, idle_timeout: 10 }\n", 3, 55,
                 "'idle_timeout': '10' has no unit; write e.g. 10ms or 10s");
    expect_error(CH_HEAD "    source: { type: mllp, listen: 2575, idle_timeout: 5min }\n", 3, 55,
                 "'5min' is not a duration");
    expect_error(CH_HEAD "    source: { type: mllp, listen: 2575, max_frame: 1 MB5 }\n", 3, 52,
                 "'max_frame': '1 MB5' is not a size");
    expect_error(CH_HEAD "    source: { type: mllp, listen: 2575, max_frame: 100 }\n", 3, 52,
                 "'max_frame' must be from 1KiB to 1GiB, not 100");
    expect_error(CH_HEAD "    source: { type: mlp, listen: 2575 }\n", 3, 21,
                 "'mlp' is not a source type; did you mean 'mllp'? (one of: mllp, file, http, fhir)");
    expect_error(CH_HEAD MLLP_SRC "    destinations: [{ name: x, type: ftp }]\n", 4, 37,
                 "'ftp' is not a destination type; use one of: file, mllp, http");
    expect_error("channels:\n  - name: a b\n" MLLP_SRC, 2, 11, "'a b' is not a valid channel name");
    expect_error(CH_HEAD MLLP_SRC "    filter: { types: [adt^a01] }\n", 4, 23,
                 "(HL7 message types are upper case)");
    expect_error(CH_HEAD MLLP_SRC "    filter: { types: [ADT^A01^ADT_A01] }\n", 4, 23,
                 "filter on TYPE^EVENT");
    expect_error(CH_HEAD MLLP_SRC "    limits: { max_message: 1MiB, max_field: 2MiB }\n", 4, 45,
                 "'max_field' is larger than 'max_message'");
    expect_error(CH_HEAD MLLP_SRC
                 "    destinations: [{ name: m, type: mllp, host: h, port: 1, retry: { backoff: "
                 "60s..1s } }]\n",
                 4, 79, "the first duration must not exceed the second");
    expect_error(CH_HEAD MLLP_SRC
                 "    destinations: [{ name: m, type: mllp, host: h, port: 1, retry: { "
                 "max_attempts: 0 } }]\n",
                 4, 84, "'max_attempts' must be from 1 to 1000000, not 0");
    expect_error(CH_HEAD MLLP_SRC "    destinations: [{ name: h, type: http, url: ftp://x/ }]\n", 4,
                 48, "url 'ftp://x/' must start with http:// or https://");
    expect_error(CH_HEAD MLLP_SRC
                 "    destinations: [{ name: h, type: http, url: 'http://u:p@x/' }]\n",
                 4, 48, "carries credentials");
    expect_error(CH_HEAD MLLP_SRC
                 "    destinations: [{ name: h, type: http, url: 'http://x/', headers: { "
                 "Content-Length: 5 } }]\n",
                 4, 72, "header 'Content-Length' is set by Tern");
    expect_error(CH_HEAD "    source: { type: file, dir: in, move_to: ./in }\n", 3, 45,
                 "'move_to' is the polled directory itself");
    expect_error(CH_HEAD "    source: { type: file, dir: in, after: delete, move_to: x }\n", 3, 60,
                 "'move_to' has no effect with after: delete");
    expect_error("http: { enabled: false }\nchannels:\n  - { name: a, source: { type: http } }\n",
                 3, 24,
                 "the source of channel 'a' has no 'listen' of its own and so is served on "
                 "the http listener, which is disabled");
    expect_error("store: { type: postgres }\nchannels: []\n", 1, 16,
                 "store type 'postgres' is not available in this version");
}

static void test_error_templates(void **state)
{
    (void)state;
#define TPL(t)                                                                                     \
    CH_HEAD MLLP_SRC "    destinations:\n      - name: f\n        type: file\n        dir: out\n " \
                     "       filename: " t "\n"
    expect_error(TPL("\"${PID-x}.hl7\""), 8, 19,
                 "'${PID-x}' is neither an HL7 path like ${MSH-10} nor one of ${CHANNEL}, "
                 "${ID}, ${DATE}, ${TIME}: path 'PID-x'");
    expect_error(TPL("\"../${MSH-10}\""), 8, 19, "must not contain '..'");
    expect_error(TPL("\"a/../../b\""), 8, 19, "must not contain '..'");
    expect_error(TPL("/tmp/${MSH-10}"), 8, 19, "must be relative to 'dir'");
    expect_error(TPL("\"${MSH-10\""), 8, 19, "without its closing '}'");
    expect_error(TPL("\"${channel}.hl7\""), 8, 19, "write ${CHANNEL} in capitals");
    expect_error(TPL("\"${PID}.hl7\""), 8, 19,
                 "nor the path of an HL7 field; name a field, e.g. ${PID-3.1}");
    expect_error(TPL("\"a//b\""), 8, 19, "empty directory level");
    expect_error(TPL("\"a/\""), 8, 19, "ends with '/'");
    expect_error(TPL("\"./${ID}\""), 8, 19, "has a '.' directory level");
    expect_error(TPL("\"\""), 8, 19, "'filename' is empty");
    tern_config *c = load_ok(TPL("\"${DATE}/${CHANNEL}-${MSH-4.1}_${ID}.${TIME}.hl7\""));
    const config_template *t = &c->channels[0].destinations[0].file.filename;
    assert_int_equal(t->nparts, 10);
    assert_int_equal(t->parts[0].kind, CONFIG_TPL_DATE);
    assert_int_equal(t->parts[1].kind, CONFIG_TPL_TEXT);
    assert_string_equal(t->parts[1].text, "/");
    assert_int_equal(t->parts[2].kind, CONFIG_TPL_CHANNEL);
    assert_int_equal(t->parts[4].kind, CONFIG_TPL_PATH);
    assert_int_equal(t->parts[6].kind, CONFIG_TPL_ID);
    assert_int_equal(t->parts[8].kind, CONFIG_TPL_TIME);
    config_free(c);
#undef TPL
}

static void test_error_syntax(void **state)
{
    (void)state;
    size_t n;
    const char *e = load_bad("channels:\n  - name: a\n   source: x\n", CONFIG_ERR_SYNTAX, &n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(e, "3:4: YAML syntax: "));
    e = load_bad("channels: [a, b\n", CONFIG_ERR_SYNTAX, &n);
    assert_non_null(strstr(e, "2:1: YAML syntax: did not find expected ',' or ']' while "
                              "parsing a flow sequence (line 1, column 11)"));
    e = load_bad("channels:\n\t- name: a\n", CONFIG_ERR_SYNTAX, &n);
    assert_non_null(strstr(e, "2:1: "));
    assert_non_null(strstr(e, "use spaces"));
    e = load_bad("channels:\n  - name: a\n    filter: { types: [*] }\n", CONFIG_ERR_SYNTAX, &n);
    assert_non_null(strstr(e, "3:24: "));
    assert_non_null(strstr(e, "must be quoted"));
    e = load_bad("channels: []\n---\nchannels: []\n", CONFIG_ERR_INVALID, &n);
    assert_non_null(strstr(e, "2:1: a second YAML document starts here"));
    e = load_bad("channels: []\nx: \"\xff\"\n", CONFIG_ERR_SYNTAX, &n);
    assert_non_null(strstr(e, "2:5: "));
    assert_non_null(strstr(e, "UTF-8"));
}

static void test_many_errors_collected(void **state)
{
    (void)state;
    size_t n;
    const char *e = load_bad("stor: {}\n"
                             "channels:\n"
                             "  - name: a\n"
                             "    source: { type: mllp, listen: 99999 }\n"
                             "    destinations:\n"
                             "      - { name: d, type: file }\n"
                             "  - name: a\n"
                             "    source: { type: carrier-pigeon }\n",
                             CONFIG_ERR_INVALID, &n);
    assert_int_equal(n, 5);
    assert_string_equal(e, "1:1: unknown key 'stor' in the top level of the file; did you mean "
                           "'store'?\n"
                           "4:35: 'listen': '99999': the port must be from 1 to 65535\n"
                           "6:9: destination 'd' of channel 'a' has no 'dir'; add it, e.g. dir: "
                           "./var/out\n"
                           "7:11: there is already a channel named 'a' (line 3); give each "
                           "channel its own name\n"
                           "8:21: 'carrier-pigeon' is not a source type; use one of: mllp, file, "
                           "http, fhir\n");

    /* Past the cap, errors are counted but not kept. */
    char *big = malloc(200 * 64 + 64);
    size_t len = (size_t)sprintf(big, "channels:\n");
    for (int i = 0; i < 150; i++)
        len += (size_t)sprintf(big + len, "  - { name: c%d, bogus: 1 }\n", i);
    tern_config *c = NULL;
    config_errors errs = CONFIG_ERRORS_INIT;
    assert_int_equal(config_load_buffer("big.yaml", big, len, &c, &errs), CONFIG_ERR_INVALID);
    assert_int_equal(errs.count, CONFIG_MAX_ERRORS);
    assert_int_equal(errs.dropped, 300 - CONFIG_MAX_ERRORS);
    tbuf t = TBUF_INIT;
    config_error_format(&errs.items[0], &t);
    assert_string_equal(t.p, "big.yaml:2:5: error: channel 'c0' has no 'source'; add it, e.g. "
                             "source: { type: mllp, listen: 0.0.0.0:2575 }");
    tbuf_free(&t);
    /* The list is reusable: the next load empties it. */
    const char *ok = "channels: []\n";
    assert_int_equal(config_load_buffer("ok.yaml", ok, strlen(ok), &c, &errs), CONFIG_OK);
    assert_int_equal(errs.count, 0);
    assert_int_equal(errs.dropped, 0);
    config_free(c);
    config_errors_free(&errs);
    free(big);
}

static void test_alias_bomb(void **state)
{
    (void)state;
    /* A self-containing anchor and a quadratic alias fan-out stay bounded. */
    size_t n;
    load_bad("channels: &a [*a]\n", CONFIG_ERR_INVALID, &n);
    assert_true(n >= 1);
    tbuf t = TBUF_INIT;
    tbuf_puts(&t, "d: &d [");
    for (int i = 0; i < 2000; i++)
        tbuf_printf(&t, "%s{name: x, type: file, dir: o}", i ? "," : "");
    tbuf_puts(&t, "]\nc: &c {name: c, source: {type: http}, destinations: *d}\nchannels: [");
    for (int i = 0; i < 2000; i++)
        tbuf_puts(&t, i ? ",*c" : "*c");
    tbuf_puts(&t, "]\n");
    tern_config *c = NULL;
    config_errors errs = CONFIG_ERRORS_INIT;
    assert_int_equal(config_load_buffer("bomb.yaml", t.p, t.len, &c, &errs), CONFIG_ERR_INVALID);
    assert_null(c);
    assert_int_equal(errs.count, CONFIG_MAX_ERRORS);
    config_errors_free(&errs);
    tbuf_free(&t);
}

static void test_load_file(void **state)
{
    (void)state;
    tern_config *c = NULL;
    config_errors errs = CONFIG_ERRORS_INIT;
    assert_int_equal(config_load("/nonexistent/tern.yaml", &c, &errs), CONFIG_ERR_IO);
    assert_null(c);
    assert_int_equal(errs.count, 1);
    tbuf t = TBUF_INIT;
    config_error_format(&errs.items[0], &t);
    assert_string_equal(t.p, "/nonexistent/tern.yaml: error: cannot open the configuration: No "
                             "such file or directory");
    tbuf_free(&t);
    assert_int_equal(config_load(TERN_SOURCE_DIR "/examples/demo/tern.yaml", &c, &errs), CONFIG_OK);
    assert_int_equal(c->nchannels, 4);
    assert_string_equal(c->store.path, TERN_SOURCE_DIR "/examples/demo/var/tern.db");
    config_free(c);
    config_errors_free(&errs);
    assert_string_equal(config_strerror(CONFIG_ERR_SYNTAX), "the configuration is not valid YAML");
}

/* --- value syntax and run-time helpers ---------------------------------- */

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint64_t ms;
    } good[] = {{"0", 0},        {"500ms", 500},         {"10s", 10000},     {"5m", 300000},
                {"1h", 3600000}, {"30d", 2592000000ull}, {"1h30m", 5400000}, {"1s500ms", 1500},
                {"0s", 0},       {"90s", 90000}};
    static const char *const bad[] = {"",     "10", "s",    "1.5s", "-1s",
                                      "10 s", "1w", "5min", "1s2",  "99999999999999999999d"};
    char why[256], buf[64];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t ms = 1;
        assert_int_equal(config_parse_duration(good[i].s, &ms, why, sizeof(why)), CONFIG_OK);
        assert_int_equal(ms, good[i].ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t ms;
        why[0] = '\0';
        assert_int_equal(config_parse_duration(bad[i], &ms, why, sizeof(why)), CONFIG_ERR_INVALID);
        assert_true(why[0] != '\0');
    }
    assert_int_equal(config_parse_duration("x", &(uint64_t){0}, NULL, 0), CONFIG_ERR_INVALID);
    assert_string_equal(config_format_duration(0, buf, sizeof(buf)), "0");
    assert_string_equal(config_format_duration(5400000, buf, sizeof(buf)), "1h30m");
    assert_string_equal(config_format_duration(1500, buf, sizeof(buf)), "1s500ms");
    assert_string_equal(config_format_duration(2592000000ull, buf, sizeof(buf)), "30d");
}

static void test_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint64_t n;
    } good[] = {{"0", 0},          {"65536", 65536},      {"64KiB", 65536},
                {"1MiB", 1048576}, {"2GiB", 2147483648u}, {"1 MiB", 1048576},
                {"512B", 512},     {"64kB", 64000},       {"64KB", 64000},
                {"1MB", 1000000},  {"1GB", 1000000000}};
    static const char *const bad[] = {"",       "MiB",  "1.5MiB",         "-1",    "1mib",
                                      "1 KiB ", "1TiB", "99999999999GiB", "1  MiB"};
    char why[256];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t n = 1;
        assert_int_equal(config_parse_size(good[i].s, &n, why, sizeof(why)), CONFIG_OK);
        assert_int_equal(n, good[i].n);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t n;
        if (config_parse_size(bad[i], &n, why, sizeof(why)) != CONFIG_ERR_INVALID) {
            fprintf(stderr, "accepted '%s'\n", bad[i]);
            fail();
        }
    }
}

static void test_filter(void **state)
{
    (void)state;
    char *types[] = {"ADT^A01", "ADT^A0?", "ORU^*", "ACK"};
    char *exclude[] = {"ADT^A08"};
    config_filter f = {types, 4, exclude, 1, NULL};
    assert_true(config_filter_accepts(&f, "ADT", "A01"));
    assert_true(config_filter_accepts(&f, "ADT", "A04"));
    assert_false(config_filter_accepts(&f, "ADT", "A08"));
    assert_false(config_filter_accepts(&f, "ADT", "A11"));
    assert_true(config_filter_accepts(&f, "ORU", "R01"));
    assert_true(config_filter_accepts(&f, "ORU", NULL));
    assert_true(config_filter_accepts(&f, "ACK", "A01"));
    assert_false(config_filter_accepts(&f, "SIU", "S12"));
    config_filter all = {NULL, 0, NULL, 0, NULL};
    assert_true(config_filter_accepts(&all, "SIU", "S12"));
    assert_true(config_filter_accepts(&all, NULL, NULL));
    config_filter none_but = {NULL, 0, exclude, 1, NULL};
    assert_false(config_filter_accepts(&none_but, "ADT", "A08"));
    assert_true(config_filter_accepts(&none_but, "ADT", "A01"));
}

static void test_retry_delay(void **state)
{
    (void)state;
    config_retry r = {10, 1000, 60000};
    assert_int_equal(config_retry_delay(&r, 1), 1000);
    assert_int_equal(config_retry_delay(&r, 2), 2000);
    assert_int_equal(config_retry_delay(&r, 6), 32000);
    assert_int_equal(config_retry_delay(&r, 7), 60000);
    assert_int_equal(config_retry_delay(&r, 4000000000u), 60000);
    config_retry fixed = {3, 5000, 5000};
    assert_int_equal(config_retry_delay(&fixed, 3), 5000);
}

static void test_template_render(void **state)
{
    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    tern_config *c = load_ok(CH_HEAD MLLP_SRC
                             "    destinations:\n"
                             "      - { name: f, type: file, dir: out,\n"
                             "          filename: \"${DATE}/${CHANNEL}-${MSH-10}-${PID-5}_${PID-99}"
                             "_${ID}.${TIME}.hl7\" }\n");
    static const char msg[] = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|../../etc/x|P|2.5\r"
                              "PID|1||123||DOE^JOHN\r";
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_error he;
    assert_int_equal(hl7_parse(m, msg, strlen(msg), &he), HL7_OK);
    tbuf out = TBUF_INIT;
    config_template_render(&c->channels[0].destinations[0].file.filename, m, "a", 42,
                           (time_t)1767323045, &out);
    assert_string_equal(out.p, "20260102/a-_._.._etc_x-DOE_JOHN___42.030405.hl7");
    tbuf_reset(&out);
    config_template_render(&c->channels[0].destinations[0].file.filename, NULL, "a", 7, 0, &out);
    assert_string_equal(out.p, "19700101/a-_-____7.000000.hl7");
    tbuf_free(&out);
    hl7_msg_free(m);
    config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue_example_flow),
        cmocka_unit_test(test_issue_example_block),
        cmocka_unit_test(test_all_keys),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_fhir_store_key),
        cmocka_unit_test(test_fhir_tables_key),
        cmocka_unit_test(test_fhir_source_and_destination),
        cmocka_unit_test(test_extension_keys_and_anchors),
        cmocka_unit_test(test_merge_keys),
        cmocka_unit_test(test_error_unknown_key),
        cmocka_unit_test(test_error_wrong_type),
        cmocka_unit_test(test_error_missing_required),
        cmocka_unit_test(test_error_duplicates),
        cmocka_unit_test(test_error_values),
        cmocka_unit_test(test_error_templates),
        cmocka_unit_test(test_error_syntax),
        cmocka_unit_test(test_many_errors_collected),
        cmocka_unit_test(test_alias_bomb),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_filter),
        cmocka_unit_test(test_retry_delay),
        cmocka_unit_test(test_template_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
