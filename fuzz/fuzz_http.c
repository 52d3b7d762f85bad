/*
 * Fuzz target for the HTTP request path: the input is one raw HTTP/1.1
 * request ("METHOD TARGET HTTP/1.1", header lines, a blank line, the body).
 * The target is split into path and query by libevent's URI parser, as
 * evhttp does for the engine, and the request goes where the engine would
 * send it: /auth/login to the login body parser (sec_http_login_parse),
 * /fhir... to the FHIR REST API (fhir_rest_answer: routing, search
 * parameters, JSON bodies, transactions) over a FHIR store in a temporary
 * directory (in /dev/shm when there is one: the store fsyncs each write).
 * The store lives for the whole run, so resources one input creates are
 * there for the next.
 *
 * Properties beyond "no crash, no leak, no undefined behaviour": the status
 * is 200..599, never 500 (an answer the API did not produce); a non-empty
 * body is valid JSON; headers carry no control characters (no header
 * injection); a 201 names its Location.
 */
#include "fhir/fhir_rest.h"
#include "sec/sec_http.h"

#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/http.h>
#include <jansson.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fhir_rest *api;
static char dir[64], db[128];

static void cleanup(void)
{
    fhir_rest_free(api);
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[160];
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        snprintf(p, sizeof p, "%s%s", db, suffix[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void open_api(void)
{
    snprintf(dir, sizeof dir, "%s/tern-fuzz-http-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(dir)) abort();
    snprintf(db, sizeof db, "%s/fhir.db", dir);
    tbuf err = TBUF_INIT;
    api = fhir_rest_new(db, &err);
    if (!api) {
        fprintf(stderr, "fuzz_http: %s\n", tbuf_cstr(&err));
        abort();
    }
    tbuf_free(&err);
    atexit(cleanup);
}

static fhir_method method_named(const char *m, size_t n)
{
    if (n == 3 && !memcmp(m, "GET", 3)) return FHIR_METHOD_GET;
    if (n == 4 && !memcmp(m, "POST", 4)) return FHIR_METHOD_POST;
    if (n == 3 && !memcmp(m, "PUT", 3)) return FHIR_METHOD_PUT;
    if (n == 6 && !memcmp(m, "DELETE", 6)) return FHIR_METHOD_DELETE;
    return FHIR_METHOD_OTHER;
}

static void header_clean(const char *v)
{
    for (const char *p = v; p && *p; p++)
        if (iscntrl((unsigned char)*p)) abort();
}

/* One header line "Name: value" (NUL-terminated copy) into rq. */
static void take_header(fhir_rest_request *rq, char *line)
{
    char *colon = strchr(line, ':');
    if (!colon) return;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
    static const struct {
        const char *name;
        size_t off;
    } known[] = {
        {"Host", offsetof(fhir_rest_request, host)},
        {"Content-Type", offsetof(fhir_rest_request, content_type)},
        {"If-Match", offsetof(fhir_rest_request, if_match)},
        {"If-None-Exist", offsetof(fhir_rest_request, if_none_exist)},
        {"Prefer", offsetof(fhir_rest_request, prefer)},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcasecmp(line, known[i].name))
            *(const char **)((char *)rq + known[i].off) = v;
}

static void check_response(const fhir_rest_response *rs)
{
    if (rs->status < 200 || rs->status > 599 || rs->status == 500) abort();
    if (rs->body.len) {
        json_error_t e;
        json_t *j = json_loadb(rs->body.p, rs->body.len, 0, &e);
        if (!j) abort();
        json_decref(j);
    }
    header_clean(rs->etag);
    header_clean(rs->last_modified);
    if (rs->location_header) header_clean(rs->location);
    if (rs->status == 201 && !rs->location_header) abort();
}

static void run_fhir(fhir_rest_request *rq, const char *target)
{
    struct evhttp_uri *uri = evhttp_uri_parse_with_flags(target, 0);
    if (!uri) return; /* evhttp answers 400 itself */
    const char *path = evhttp_uri_get_path(uri);
    if (fhir_rest_path_is_ours(path)) {
        rq->path = path;
        rq->query = evhttp_uri_get_query(uri);
        fhir_rest_response rs;
        fhir_rest_answer(api, rq, &rs);
        check_response(&rs);
        fhir_rest_response_free(&rs);
    }
    evhttp_uri_free(uri);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!api) open_api();
    /* the head (request line and headers) as a NUL-terminated copy */
    const char *end = NULL;
    for (size_t i = 0; i + 3 < size && !end; i++)
        if (!memcmp(data + i, "\r\n\r\n", 4)) end = (const char *)data + i;
    size_t head_len = end ? (size_t)(end - (const char *)data) : size;
    char *head = malloc(head_len + 1);
    if (!head) return 0;
    memcpy(head, data, head_len);
    head[head_len] = '\0';
    if (strlen(head) != head_len) goto done; /* evhttp refuses NUL in the head */
    fhir_rest_request rq = {0};
    if (end) {
        rq.body = end + 4;
        rq.body_len = size - head_len - 4;
    }
    char *save = NULL, *line = strtok_r(head, "\r\n", &save);
    char *sp1 = line ? strchr(line, ' ') : NULL;
    if (!sp1) goto done;
    rq.method = method_named(line, (size_t)(sp1 - line));
    char *target = sp1 + 1, *sp2 = strchr(target, ' ');
    if (sp2) *sp2 = '\0';
    for (char *h = strtok_r(NULL, "\r\n", &save); h; h = strtok_r(NULL, "\r\n", &save))
        take_header(&rq, h);
    if (!strncmp(target, "/auth/login", 11)) {
        sec_login_body b;
        bool ok = sec_http_login_parse(rq.body, rq.body_len, &b);
        if (ok && (!b.user || !b.password || !b.totp)) abort();
        sec_login_body_free(&b);
    } else {
        run_fhir(&rq, target);
    }
done:
    free(head);
    return 0;
}
