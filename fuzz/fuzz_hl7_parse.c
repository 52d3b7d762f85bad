/*
 * Fuzz target for the HL7 v2 parser and everything that reads a parsed
 * message: access by path at every level, escape decoding, JSON output,
 * editing and serialization. Properties checked, beyond "no crash, no leak,
 * no undefined behaviour":
 *   - an accepted message serializes back to exactly the bytes it came from;
 *   - a value set with hl7_set reads back unchanged after a re-parse;
 *   - the field cursor reads what hl7_raw reads;
 *   - edits leave an index equal to that of a re-parse of the result, and
 *     several fields set at once equal the same fields set one by one;
 *   - the search fields (msg_meta) equal what hl7_get reads at their paths.
 */
#include "engine/msg_meta.h"
#include "hl7/hl7.h"
#include "hl7/hl7_json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const hl7_msg *m)
{
    tbuf out = TBUF_INIT;
    hl7_json_write(m, true, 0, &out);
    tbuf_reset(&out);
    for (uint32_t i = 0; i < hl7_seg_count(m) && i < 64; i++) {
        const hl7_seg *s = hl7_seg_at(m, i);
        for (uint32_t f = 1; f <= s->nfields && f < 32; f++) {
            uint32_t reps = hl7_rep_count(m, i, f);
            for (uint32_t r = 1; r <= reps + 1 && r < 8; r++) {
                uint32_t comps = hl7_comp_count(m, i, f, r);
                for (uint32_t c = 0; c <= comps + 1 && c < 8; c++) {
                    hl7_path p = {.seg_occ = 1, .field = f, .rep = r, .comp = c, .sub = c ? 1 : 0};
                    memcpy(p.seg, s->id, 3);
                    hl7_get(m, &p, &out);
                    tbuf_reset(&out);
                }
            }
        }
    }
    tbuf_free(&out);
}

/* Every field through the cursor equals hl7_raw(); with `other`, also the
 * other message's fields (an edited message against its re-parse). */
static void same_fields(const hl7_msg *m, const hl7_msg *other)
{
    if (other && hl7_seg_count(other) != hl7_seg_count(m)) abort();
    for (uint32_t i = 0; i < hl7_seg_count(m) && i < 64; i++) {
        hl7_fields f;
        if (!hl7_fields_at(m, i, &f) || f.len != hl7_seg_at(m, i)->len) abort();
        for (uint32_t k = 1; k <= f.nfields + 1 && k < 64; k++) {
            hl7_span a = {"", 0}, b, c;
            bool have = hl7_fields_get(&f, k, &a);
            hl7_presence pr = hl7_raw(m, i, k, 0, 0, 0, &b);
            if (have != (pr != HL7_ABSENT) || (have && (a.p != b.p || a.len != b.len))) abort();
            if (!other) continue;
            hl7_presence po = hl7_raw(other, i, k, 0, 0, 0, &c);
            if (po != pr || (have && (c.len != b.len || memcmp(c.p, b.p, b.len)))) abort();
        }
    }
}

static void roundtrip(const hl7_msg *m, const uint8_t *data, size_t size)
{
    tbuf out = TBUF_INIT;
    hl7_serialize(m, &out);
    /* the message starts after an optional BOM and leading blanks */
    size_t pos = 0;
    if (size >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF) pos = 3;
    while (pos < size && strchr("\r\n \t", data[pos]) && data[pos]) pos++;
    if (out.len != size - pos || memcmp(out.p, data + pos, out.len) != 0) abort();
    tbuf_free(&out);
}

static void edit(hl7_msg *m)
{
    static const char *paths[] = {"PID-5.1", "OBX[2]-5", "MSH-10", "ZZZ-3[2].1.2", "NTE-3"};
    static const char value[] = "v|a^l~u\\e&#\n";
    hl7_error err;
    tbuf wire = TBUF_INIT, got = TBUF_INIT;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        hl7_path p;
        if (hl7_path_parse(paths[i], &p, &err) != HL7_OK) abort();
        if (hl7_set(m, &p, value, sizeof(value) - 1, &err) != HL7_OK) continue;
        tbuf_reset(&wire);
        hl7_serialize(m, &wire);
        hl7_msg *again = hl7_msg_new(NULL);
        if (hl7_parse(again, wire.p, wire.len, &err) == HL7_OK) {
            tbuf_reset(&got);
            hl7_get(again, &p, &got);
            /* the value comes back unless the sender's charset rewrote bytes */
            if (hl7_charset_of(again) == HL7_CS_DEFAULT && hl7_delims_of(again)->esc &&
                (got.len != sizeof(value) - 1 || memcmp(got.p, value, got.len)))
                abort();
        }
        hl7_msg_free(again);
    }
    /* several first repetitions of the last segment at once, and one by one */
    uint32_t last = hl7_seg_count(m) - 1;
    if (last > 0) {
        static const char *const vals[] = {"", "x", "a^b", "c~d", "e|f"};
        hl7_field_edit ed[3];
        for (size_t i = 0; i < 3; i++) {
            const char *v = vals[(last + i * 7) % 5];
            ed[i] = (hl7_field_edit){(uint32_t)(2 + i * (1 + last % 3)), v, strlen(v)};
        }
        tbuf_reset(&wire);
        hl7_serialize(m, &wire);
        hl7_msg *one = hl7_msg_new(NULL);
        if (hl7_parse(one, wire.p, wire.len, &err) == HL7_OK) {
            hl7_status a = hl7_set_fields_raw_at(m, last, ed, 3, &err), b = HL7_OK;
            for (size_t i = 0; i < 3 && b == HL7_OK; i++) {
                hl7_path p = {.field = ed[i].field, .rep = 1};
                b = hl7_set_raw_at(one, last, &p, ed[i].raw, ed[i].len, &err);
            }
            if (a != b) abort();
            if (a == HL7_OK) same_fields(m, one);
        }
        hl7_msg_free(one);
    }
    /* the index after all these edits is a re-parse's */
    tbuf_reset(&wire);
    hl7_serialize(m, &wire);
    hl7_msg *fresh = hl7_msg_new(NULL);
    if (hl7_parse(fresh, wire.p, wire.len, &err) == HL7_OK) same_fields(m, fresh);
    hl7_msg_free(fresh);
    tbuf_free(&wire);
    tbuf_free(&got);
}

/* v (NULL: no value) is what hl7_get reads at path. */
static void same_as_path(const hl7_msg *m, const char *path, const char *v)
{
    hl7_path p;
    if (hl7_path_parse(path, &p, NULL) != HL7_OK) abort();
    tbuf t = TBUF_INIT;
    bool have = hl7_get(m, &p, &t) == HL7_VALUE;
    if (have != (v != NULL) || (have && strcmp(tbuf_cstr(&t), v) != 0)) abort();
    tbuf_free(&t);
}

static void meta(const hl7_msg *m)
{
    msg_meta mm;
    msg_meta_extract(m, &mm);
    same_as_path(m, "MSH-10", mm.control_id);
    same_as_path(m, "MSH-3", mm.send_app);
    same_as_path(m, "MSH-4", mm.send_fac);
    same_as_path(m, "MSH-5", mm.recv_app);
    same_as_path(m, "MSH-6", mm.recv_fac);
    same_as_path(m, "PID-3.1", mm.patient_id);
    /* "TYPE^EVENT", the type alone, or nothing without a type */
    hl7_path p1, p2;
    hl7_path_parse("MSH-9.1", &p1, NULL);
    hl7_path_parse("MSH-9.2", &p2, NULL);
    tbuf want = TBUF_INIT, event = TBUF_INIT;
    bool type = hl7_get(m, &p1, &want) == HL7_VALUE;
    if (type && hl7_get(m, &p2, &event) == HL7_VALUE) {
        tbuf_putc(&want, '^');
        tbuf_puts(&want, tbuf_cstr(&event));
    }
    if (type != (mm.msh9 != NULL) || (type && strcmp(tbuf_cstr(&want), mm.msh9) != 0)) abort();
    tbuf_free(&want);
    tbuf_free(&event);
    for (size_t i = 0; i < mm.norders; i++)
        for (size_t k = 0; k < i; k++)
            if (!strcmp(mm.orders[i], mm.orders[k])) abort(); /* once each */
    msg_meta_free(&mm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hl7_limits lim;
    hl7_limits_default(&lim);
    lim.max_field = 4096;
    lim.max_segments = 512;
    hl7_msg *m = hl7_msg_new(&lim);
    hl7_error err;
    if (hl7_parse(m, (const char *)data, size, &err) == HL7_OK) {
        roundtrip(m, data, size);
        same_fields(m, NULL);
        walk(m);
        meta(m);
        edit(m);
    } else if (err.text[0] == '\0' || err.offset > size) {
        abort(); /* every error explains itself and points inside the input */
    }
    hl7_msg_free(m);
    return 0;
}
