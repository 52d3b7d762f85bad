/*
 * hl7_json: writes the JSON form described in hl7_json.h. Walks the index
 * with hl7_raw and the count helpers; every leaf is unescaped into a scratch
 * buffer and then JSON-escaped.
 */
#include "hl7/hl7_json.h"

#include "hl7/hl7_int.h"

#include <stdio.h>

void json_put_string(tbuf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    tbuf_grow(out, n + 2);
    tbuf_putc(out, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        tbuf_put(out, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': tbuf_puts(out, "\\\""); break;
        case '\\': tbuf_puts(out, "\\\\"); break;
        case '\n': tbuf_puts(out, "\\n"); break;
        case '\r': tbuf_puts(out, "\\r"); break;
        case '\t': tbuf_puts(out, "\\t"); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            tbuf_put(out, u, 6);
        }
        }
    }
    tbuf_put(out, s + run, n - run);
    tbuf_putc(out, '"');
}

static void put_leaf(const hl7_msg *m, hl7_span v, tbuf *scratch, tbuf *out)
{
    if (hl7_presence_of(v.p, v.len) == HL7_NULL_VALUE) {
        tbuf_puts(out, "null");
        return;
    }
    tbuf_reset(scratch);
    hl7_unescape(&m->d, m->cs, v.p, v.len, scratch);
    json_put_string(out, scratch->p ? scratch->p : "", scratch->len);
}

static void put_component(const hl7_msg *m, hl7_span c, tbuf *scratch, tbuf *out)
{
    if (!m->d.sub || !memchr(c.p, m->d.sub, c.len)) {
        put_leaf(m, c, scratch, out);
        return;
    }
    tbuf_putc(out, '[');
    for (uint32_t k = 1;; k++) {
        hl7_span s;
        if (!hl7_nth(c.p, c.len, m->d.sub, k, &s)) break;
        if (k > 1) tbuf_putc(out, ',');
        put_leaf(m, s, scratch, out);
    }
    tbuf_putc(out, ']');
}

static void put_repetition(const hl7_msg *m, hl7_span r, tbuf *scratch, tbuf *out)
{
    if (!m->d.comp || !memchr(r.p, m->d.comp, r.len)) {
        put_component(m, r, scratch, out);
        return;
    }
    tbuf_putc(out, '[');
    for (uint32_t k = 1;; k++) {
        hl7_span c;
        if (!hl7_nth(r.p, r.len, m->d.comp, k, &c)) break;
        if (k > 1) tbuf_putc(out, ',');
        put_component(m, c, scratch, out);
    }
    tbuf_putc(out, ']');
}

static void put_field(const hl7_msg *m, const hl7_seg *s, uint32_t f, tbuf *scratch, tbuf *out)
{
    hl7_span v;
    hl7_field_span(m, s, f, &v);
    tbuf_putc(out, '[');
    if (f <= 2 && !memcmp(s->id, "MSH", 3)) {
        json_put_string(out, v.p, v.len);
    } else {
        for (uint32_t r = 1;; r++) {
            hl7_span rv;
            if (!hl7_nth(v.p, v.len, m->d.rep, r, &rv)) break;
            if (r > 1) tbuf_putc(out, ',');
            put_repetition(m, rv, scratch, out);
        }
    }
    tbuf_putc(out, ']');
}

void hl7_json_write(const hl7_msg *m, bool offset_known, size_t offset, tbuf *out)
{
    tbuf scratch = TBUF_INIT;
    tbuf_putc(out, '{');
    if (offset_known) tbuf_printf(out, "\"offset\":%zu,", offset);
    tbuf_puts(out, "\"segments\":[");
    for (size_t i = 0; i < m->nsegs; i++) {
        const hl7_seg *s = &m->segs[i];
        if (i) tbuf_putc(out, ',');
        tbuf_puts(out, "{\"id\":");
        json_put_string(out, s->id, 3);
        tbuf_puts(out, ",\"fields\":[");
        for (uint32_t f = 1; f <= s->nfields; f++) {
            if (f > 1) tbuf_putc(out, ',');
            put_field(m, s, f, &scratch, out);
        }
        tbuf_puts(out, "]}");
    }
    tbuf_puts(out, "]}");
    tbuf_free(&scratch);
}
