/*
 * source_fhir: the `fhir` source. The channel subscribes to the writes of
 * the engine's FHIR REST API (fhir_rest_subscribe); each create or update
 * of a configured resource type, once committed, is turned into an HL7 v2
 * message and submitted to the channel like any received message (stored,
 * validated, filtered, routed to the destinations, retried).
 *
 * Today the one type is ServiceRequest -> OML^O21 or ORM^O01
 * (fhir_to_v2), with the Patient and Practitioner it names read from the
 * FHIR store. ORC-1 says what happened: NW for a create, CA when the
 * status became revoked or entered-in-error, XO for any other update; a
 * draft is not sent. An order that cannot be mapped (no Patient, no code)
 * is logged and not submitted: the resource is stored either way, since
 * the API answered before the channel ran.
 *
 * MSH-10 is "F" + the milliseconds since 1970 + a per-channel sequence,
 * unique per channel. Everything runs on the loop thread, inside the API's
 * request handler, after the answer was sent.
 */
#include "engine/engine_int.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>

#include "base/mem.h"
#include "fhir/fhir_rest.h"
#include "fhir/fhir_to_v2.h"

struct eng_source {
    eng_channel *ch;
    const config_source *cfg;
    fhir_rest *api; /* the engine's; borrowed */
    uint32_t seq;
    size_t inflight; /* submitted, not yet answered */
    bool subscribed;
    struct event *stop_ev;
    void (*done)(void *);
    void *done_arg;
};

static bool wanted(const eng_source *s, const char *type)
{
    for (size_t i = 0; i < s->cfg->fhir.nresources; i++)
        if (!strcmp(s->cfg->fhir.resources[i], type)) return true;
    return false;
}

static json_t *resolve(void *arg, const char *reference)
{
    eng_source *s = arg;
    const char *slash = strchr(reference, '/');
    char type[64];
    if (!slash || (size_t)(slash - reference) >= sizeof type || strchr(slash + 1, '/')) return NULL;
    memcpy(type, reference, (size_t)(slash - reference));
    type[slash - reference] = '\0';
    tbuf json = TBUF_INIT;
    json_t *res = fhir_rest_read(s->api, type, slash + 1, &json)
                      ? json_loadb(json.p, json.len, 0, NULL)
                      : NULL;
    tbuf_free(&json);
    return res;
}

static void on_submitted(void *arg, bool stored, bool accepted, const char *ack, size_t ack_len)
{
    eng_source *s = arg;
    s->inflight--;
    if (!stored || !accepted)
        eng_log(s->ch, "the HL7 order made from a FHIR write was %s: %.*s",
                stored ? "stored but not accepted" : "not stored", (int)ack_len, ack);
    if (s->done && s->inflight == 0) event_active(s->stop_ev, EV_TIMEOUT, 1);
}

/* ORC-1 for this write, or NULL when nothing is to be sent. */
static const char *order_control(const json_t *sr, bool created)
{
    const char *status = json_string_value(json_object_get(sr, "status"));
    if (status && !strcmp(status, "draft")) return NULL;
    if (status && (!strcmp(status, "revoked") || !strcmp(status, "entered-in-error"))) return "CA";
    return created ? "NW" : "XO";
}

static void on_write(void *arg, const char *type, const char *id, bool created, const char *json,
                     size_t len)
{
    eng_source *s = arg;
    if (s->done || !wanted(s, type)) return;
    json_t *sr = json_loadb(json, len, 0, NULL);
    const char *control = order_control(sr, created);
    if (!sr || !control) {
        json_decref(sr);
        return;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char ts[32], cid[40];
    struct tm tm;
    time_t t = tv.tv_sec;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y%m%d%H%M%S+0000", &tm);
    snprintf(cid, sizeof cid, "F%" PRId64 "%04" PRIu32,
             (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000, s->seq++ % 10000);
    const config_source *c = s->cfg;
    fhir_v2_options o = {.message = c->fhir.orm ? FHIR_V2_ORM_O01 : FHIR_V2_OML_O21,
                         .sending_application = c->fhir.sending_application,
                         .sending_facility = c->fhir.sending_facility,
                         .receiving_application = c->fhir.receiving_application,
                         .receiving_facility = c->fhir.receiving_facility,
                         .control_id = cid,
                         .timestamp = ts,
                         .order_control = control,
                         .tables = eng_channel_fhir_tables(s->ch),
                         .resolve = resolve,
                         .resolve_arg = s};
    tbuf msg = TBUF_INIT;
    fhir_error err;
    if (fhir_to_v2_order(sr, &o, &msg, &err) != FHIR_OK) {
        eng_log(s->ch, "%s/%s is stored but was not sent as HL7: %s", type, id, err.text);
    } else {
        s->inflight++;
        eng_submit(s->ch, msg.p, msg.len, on_submitted, s);
    }
    tbuf_free(&msg);
    json_decref(sr);
}

static void on_stopped(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    eng_source *s = arg;
    if (s->inflight == 0 && s->done) {
        void (*done)(void *) = s->done;
        s->done = NULL;
        done(s->done_arg);
    }
}

static void fhir_source_free(eng_source *s)
{
    if (!s) return;
    if (s->subscribed) fhir_rest_unsubscribe(s->api, on_write, s);
    if (s->stop_ev) event_free(s->stop_ev);
    free(s);
}

static eng_source *fhir_source_start(eng_channel *ch, tbuf *err)
{
    const config_source *src = &eng_channel_config(ch)->source;
    assert(src->type == CONFIG_SOURCE_FHIR);
    fhir_rest *api = eng_channel_fhir(ch);
    if (!api) {
        tbuf_puts(err, "the FHIR API is not running (it needs the http listener)");
        return NULL;
    }
    eng_source *s = xcalloc(1, sizeof(*s));
    s->ch = ch;
    s->cfg = src;
    s->api = api;
    s->stop_ev = event_new(eng_channel_base(ch), -1, 0, on_stopped, s);
    if (!s->stop_ev) {
        tbuf_puts(err, "cannot create an event");
        fhir_source_free(s);
        return NULL;
    }
    s->subscribed = fhir_rest_subscribe(api, on_write, s);
    return s;
}

static void fhir_source_stop(eng_source *s, void (*done)(void *), void *arg)
{
    if (s->subscribed) fhir_rest_unsubscribe(s->api, on_write, s);
    s->subscribed = false;
    s->done = done;
    s->done_arg = arg;
    event_active(s->stop_ev, EV_TIMEOUT, 1);
}

const eng_source_ops eng_source_fhir_ops = {fhir_source_start, fhir_source_stop, fhir_source_free};
