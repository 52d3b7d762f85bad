/*
 * msg_meta: search fields of a message; see msg_meta.h.
 *
 * Every value is decoded into one buffer (strs), NUL after each, and the
 * fields point into it: one allocation per message (two with order
 * numbers), whatever the number of values. Fields are read by position
 * (hl7_raw), not through path text.
 */
#include "engine/msg_meta.h"

#include "base/mem.h"

#include <stdlib.h>
#include <string.h>

/* Appends the decoded first repetition of field (component comp, 0: all)
 * of segment idx to b, NUL-terminated. Returns its offset in b, or -1 when
 * there is no value. */
static long put_value(const hl7_msg *m, long idx, uint32_t field, uint32_t comp, tbuf *b)
{
    hl7_span v;
    if (idx < 0 || hl7_raw(m, (uint32_t)idx, field, 1, comp, 0, &v) != HL7_VALUE) return -1;
    long off = (long)b->len;
    hl7_unescape(hl7_delims_of(m), hl7_charset_of(m), v.p, v.len, b);
    tbuf_putc(b, '\0');
    return off;
}

/* An order number at offset off of b, unless an earlier one is the same
 * (then it is taken back out of b). */
static void add_order(long **offs, size_t *n, size_t *cap, tbuf *b, long off)
{
    if (off < 0) return;
    for (size_t k = 0; k < *n; k++)
        if (!strcmp(b->p + (*offs)[k], b->p + off)) {
            b->len = (size_t)off;
            return;
        }
    *offs = xgrow(*offs, cap, *n + 1, sizeof(**offs));
    (*offs)[(*n)++] = off;
}

static char *at(char *base, long off)
{
    return off < 0 ? NULL : base + off;
}

void msg_meta_extract(const hl7_msg *m, msg_meta *out)
{
    memset(out, 0, sizeof(*out));
    tbuf b = TBUF_INIT;
    tbuf_grow(&b, 256);
    long msh = hl7_seg_count(m) ? 0 : -1;
    long o[7];
    o[0] = put_value(m, msh, 9, 1, &b);
    if (o[0] >= 0) { /* "ADT^A01": the trigger follows its type after a '^' */
        size_t nul = b.len - 1;
        if (put_value(m, msh, 9, 2, &b) >= 0) b.p[nul] = '^';
    }
    static const uint32_t msh_fields[] = {10, 3, 4, 5, 6}; /* control id, MSH-3..6 */
    for (size_t i = 0; i < 5; i++) o[i + 1] = put_value(m, msh, msh_fields[i], 0, &b);
    o[6] = put_value(m, hl7_seg_find(m, "PID", 1), 3, 1, &b);
    long *orders = NULL;
    size_t norders = 0, cap = 0;
    for (uint32_t i = 0; i < hl7_seg_count(m); i++) {
        const hl7_seg *s = hl7_seg_at(m, i);
        if (memcmp(s->id, "ORC", 3) && memcmp(s->id, "OBR", 3)) continue;
        add_order(&orders, &norders, &cap, &b, put_value(m, i, 2, 1, &b));
        add_order(&orders, &norders, &cap, &b, put_value(m, i, 3, 1, &b));
    }
    out->strs = b.p;
    out->msh9 = at(b.p, o[0]);
    out->control_id = at(b.p, o[1]);
    out->send_app = at(b.p, o[2]);
    out->send_fac = at(b.p, o[3]);
    out->recv_app = at(b.p, o[4]);
    out->recv_fac = at(b.p, o[5]);
    out->patient_id = at(b.p, o[6]);
    if (norders) {
        out->orders = xcalloc(norders, sizeof(*out->orders));
        for (size_t k = 0; k < norders; k++) out->orders[k] = b.p + orders[k];
        out->norders = norders;
    }
    free(orders);
}

store_meta msg_meta_view(const msg_meta *mm)
{
    return (store_meta){mm->msh9,     mm->control_id, mm->send_app,
                        mm->send_fac, mm->recv_app,   mm->recv_fac,
                        mm->patient_id, (const char *const *)mm->orders, mm->norders, NULL};
}

void msg_meta_free(msg_meta *mm)
{
    free(mm->strs);
    free(mm->orders);
    memset(mm, 0, sizeof(*mm));
}
