/*
 * store_fixture: fills a store with messages in known states, through the
 * store API, for tests/cli_messages.sh.
 *
 *   store_fixture PATH N
 *
 * With TERN_MASTER_KEY set, the store is encrypted at rest (its keyring
 * made beside it), as `tern serve` would store it.
 *
 * Message i (1..N) is written with store_put_batch and its delivery outcomes
 * with store_mark_batch, by these rules (the test's expectations follow
 * from them):
 *   channel       odd i: adt-in (destinations archive, downstream);
 *                 even i: lab-in (destinations archive, results)
 *   type          adt-in: ADT^A01 when i % 4 == 1, else ADT^A08; lab-in: ORU^R01
 *   MSH-10        MSG%05d; MSH-4 HOSP (adt-in) or LAB (lab-in)
 *   PID-3.1       PAT(i % 5)
 *   state         i % 10 == 9: rejected (no deliveries, error "MSH-9 missing");
 *                 i % 10 == 0: filtered (both deliveries filtered);
 *                 else received, and then:
 *                   archive: sent;
 *                   the second destination: i % 3 == 0: error after 3 attempts;
 *                   i % 3 == 1: sent; i % 3 == 2: queued, 1 failed attempt,
 *                   next attempt in an hour
 *   received      i <= 3: 40 days ago (plus i minutes);
 *                 else (N - i) hours and 30 minutes ago
 * It prints the ids it wrote, first and last, as "ids FIRST..LAST".
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "sec/keys.h"
#include "store/store.h"

#define HOUR INT64_C(3600000)
#define DAY (24 * HOUR)

typedef struct fixture_msg {
    char raw[512];
    char type[16], control[16], fac[8], patient[8];
    store_dest dests[2];
} fixture_msg;

static int fail(const char *what, const store_error *err)
{
    fprintf(stderr, "store_fixture: %s: %s\n", what, err->text);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3 || atoi(argv[2]) < 1) {
        fprintf(stderr, "usage: store_fixture PATH N\n");
        return 2;
    }
    int n = atoi(argv[2]);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;

    /* encrypted at rest, as tern serve stores, when a master key is set */
    keyring *keys = NULL;
    if (getenv(KEYS_DEFAULT_ENV)) {
        unsigned char master[KEYS_LEN];
        tbuf kerr = TBUF_INIT;
        char *ring = keys_ring_path(argv[1]);
        if (keys_load_master(NULL, NULL, master, &kerr) != 0 ||
            keyring_open(ring, master, true, &keys, &kerr) != 0) {
            fprintf(stderr, "store_fixture: %s\n", kerr.p);
            return 1;
        }
        free(ring);
        tbuf_free(&kerr);
    }
    store *s;
    store_error err;
    store_options opt = {.keys = keys};
    if (store_open(argv[1], &opt, &s, &err) != STORE_OK) return fail("opening", &err);
    fixture_msg *fm = xcalloc((size_t)n, sizeof *fm);
    store_put *items = xcalloc((size_t)n, sizeof *items);
    int64_t *ids = xcalloc((size_t)n, sizeof *ids);
    for (int i = 1; i <= n; i++) {
        fixture_msg *f = &fm[i - 1];
        bool adt = i % 2 == 1;
        snprintf(f->type, sizeof f->type, "%s",
                 !adt         ? "ORU^R01"
                 : i % 4 == 1 ? "ADT^A01"
                              : "ADT^A08");
        snprintf(f->control, sizeof f->control, "MSG%05d", i);
        snprintf(f->fac, sizeof f->fac, "%s", adt ? "HOSP" : "LAB");
        snprintf(f->patient, sizeof f->patient, "PAT%d", i % 5);
        snprintf(f->raw, sizeof f->raw,
                 "MSH|^~\\&|APP|%s|TERN|TERN|20260115083000||%s|%s|P|2.5.1\r"
                 "PID|1||%s^^^HOSP^MR||DOE^JANE\r",
                 f->fac, f->type, f->control, f->patient);
        store_dlv_state first = i % 10 == 0 ? STORE_DLV_FILTERED : STORE_DLV_QUEUED;
        f->dests[0] = (store_dest){"archive", first};
        f->dests[1] = (store_dest){adt ? "downstream" : "results", first};
        store_put *p = &items[i - 1];
        *p = (store_put){
            .channel = adt ? "adt-in" : "lab-in",
            .raw = f->raw,
            .raw_len = strlen(f->raw),
            .received_at = i <= 3 ? now - 40 * DAY + i * 60000 : now - (n - i) * HOUR - HOUR / 2,
            .meta = {.msh9 = f->type,
                     .control_id = f->control,
                     .send_app = "APP",
                     .send_fac = f->fac,
                     .recv_app = "TERN",
                     .recv_fac = "TERN",
                     .patient_id = f->patient},
            .state = i % 10 == 9   ? STORE_MSG_REJECTED
                     : i % 10 == 0 ? STORE_MSG_FILTERED
                                   : STORE_MSG_RECEIVED,
            .dests = f->dests,
            .n_dests = 2,
        };
        if (i % 10 == 9) {
            p->error = "MSH-9 missing";
            p->n_dests = 0;
        }
    }
    int rc = 0;
    if (store_put_batch(s, items, (size_t)n, ids, &err) != STORE_OK) {
        rc = fail("storing", &err);
        goto done;
    }
    /* Outcomes in three rounds, as an engine would record its attempts. */
    for (int round = 0; round < 3; round++) {
        store_mark *marks = xcalloc((size_t)n * 2, sizeof *marks);
        size_t k = 0;
        for (int i = 1; i <= n; i++) {
            if (items[i - 1].state != STORE_MSG_RECEIVED) continue;
            const char *ch = items[i - 1].channel, *second = fm[i - 1].dests[1].name;
            if (round == 0)
                marks[k++] = (store_mark){ch, "archive", ids[i - 1], STORE_SENT, 0, NULL};
            if (i % 3 == 1 && round == 0)
                marks[k++] = (store_mark){ch, second, ids[i - 1], STORE_SENT, 0, NULL};
            if (i % 3 == 2 && round == 0)
                marks[k++] = (store_mark){ch,          second,     ids[i - 1],
                                          STORE_RETRY, now + HOUR, "connection refused"};
            if (i % 3 == 0)
                marks[k++] = (store_mark){ch,         second,
                                          ids[i - 1], round < 2 ? STORE_RETRY : STORE_FAILED,
                                          now,        "AE: unknown patient"};
        }
        store_status st = store_mark_batch(s, marks, k, now, &err);
        free(marks);
        if (st != STORE_OK) {
            rc = fail("marking", &err);
            goto done;
        }
    }
    printf("ids %" PRId64 "..%" PRId64 "\n", ids[0], ids[n - 1]);
done:
    free(ids);
    free(items);
    free(fm);
    store_close(s);
    keyring_close(keys);
    return rc;
}
