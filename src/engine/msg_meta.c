/*
 * msg_meta: search fields of a message; see msg_meta.h.
 */
#include "engine/msg_meta.h"

#include "base/mem.h"

#include <stdlib.h>
#include <string.h>

static char *value(const hl7_msg *m, const char *path)
{
    hl7_path p;
    if (hl7_path_parse(path, &p, NULL) != HL7_OK) return NULL;
    tbuf out = TBUF_INIT;
    if (hl7_get(m, &p, &out) != HL7_VALUE) {
        tbuf_free(&out);
        return NULL;
    }
    return tbuf_detach(&out, NULL);
}

static void add_order(msg_meta *mm, size_t *cap, const hl7_msg *m, uint32_t seg, uint32_t field)
{
    hl7_span v;
    if (hl7_raw(m, seg, field, 1, 1, 0, &v) != HL7_VALUE) return;
    tbuf t = TBUF_INIT;
    hl7_unescape(hl7_delims_of(m), hl7_charset_of(m), v.p, v.len, &t);
    for (size_t k = 0; k < mm->norders; k++)
        if (!strcmp(mm->orders[k], tbuf_cstr(&t))) {
            tbuf_free(&t);
            return;
        }
    mm->orders = xgrow(mm->orders, cap, mm->norders + 1, sizeof(*mm->orders));
    mm->orders[mm->norders++] = tbuf_detach(&t, NULL);
}

void msg_meta_extract(const hl7_msg *m, msg_meta *out)
{
    memset(out, 0, sizeof(*out));
    char *type = value(m, "MSH-9.1"), *event = value(m, "MSH-9.2");
    if (type && event) {
        tbuf t = TBUF_INIT;
        tbuf_printf(&t, "%s^%s", type, event);
        out->msh9 = tbuf_detach(&t, NULL);
        free(type);
    } else {
        out->msh9 = type;
    }
    free(event);
    out->control_id = value(m, "MSH-10");
    out->send_app = value(m, "MSH-3");
    out->send_fac = value(m, "MSH-4");
    out->recv_app = value(m, "MSH-5");
    out->recv_fac = value(m, "MSH-6");
    out->patient_id = value(m, "PID-3.1");
    size_t cap = 0;
    for (uint32_t i = 0; i < hl7_seg_count(m); i++) {
        const hl7_seg *s = hl7_seg_at(m, i);
        if (memcmp(s->id, "ORC", 3) && memcmp(s->id, "OBR", 3)) continue;
        add_order(out, &cap, m, i, 2);
        add_order(out, &cap, m, i, 3);
    }
}

store_meta msg_meta_view(const msg_meta *mm)
{
    return (store_meta){mm->msh9,     mm->control_id, mm->send_app,
                        mm->send_fac, mm->recv_app,   mm->recv_fac,
                        mm->patient_id, (const char *const *)mm->orders, mm->norders, NULL};
}

void msg_meta_free(msg_meta *mm)
{
    free(mm->msh9);
    free(mm->control_id);
    free(mm->send_app);
    free(mm->send_fac);
    free(mm->recv_app);
    free(mm->recv_fac);
    free(mm->patient_id);
    for (size_t i = 0; i < mm->norders; i++) free(mm->orders[i]);
    free(mm->orders);
    memset(mm, 0, sizeof(*mm));
}
