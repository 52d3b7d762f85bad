/*
 * transform: compiled declarative steps; see transform.h.
 *
 * Compiling parses every path and unit once, so applying a step is a few
 * lookups in the parsed message plus the edit. Values are read into the
 * chain's scratch buffers before a write, because an edit may move the
 * bytes a span points at.
 */
#include "engine/transform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "engine/script.h"
#include "term/ucum.h"

typedef struct step {
    const config_transform *cfg;
    hl7_path path, to;
    ucum_unit unit;      /* CONVERT: the target */
    char *from_text;     /* CONVERT: the last source unit seen (owned) ... */
    ucum_unit from_unit; /* ... parsed */
    const codemap *map;  /* MAP */
    script *lua;         /* SCRIPT (owned) */
    script_host host;    /* SCRIPT: borrowed by lua, so it lives here */
} step;

struct transform_chain {
    step *steps;
    size_t n;
    tbuf a, b, c; /* scratch */
};

static int compile_step(step *s, const config_transform *t, const codemap_registry *maps,
                        tbuf *err)
{
    hl7_error he;
    s->cfg = t;
    switch (t->kind) {
    case CONFIG_TX_SET:
    case CONFIG_TX_COPY:
        if (hl7_path_parse(t->path, &s->path, &he) != HL7_OK ||
            (t->kind == CONFIG_TX_COPY && hl7_path_parse(t->to, &s->to, &he) != HL7_OK)) {
            tbuf_printf(err, "transform at line %u: %s", t->line, he.text);
            return -1;
        }
        return 0;
    case CONFIG_TX_DELETE:
        return 0;
    case CONFIG_TX_CONVERT: {
        ucum_error ue;
        if (ucum_parse(t->unit, &s->unit, &ue) != UCUM_OK) {
            tbuf_printf(err, "transform at line %u: %s", t->line, ue.text);
            return -1;
        }
        return 0;
    }
    case CONFIG_TX_MAP:
        s->map = maps ? codemap_registry_get(maps, t->map) : NULL;
        if (!s->map || hl7_path_parse(t->path, &s->path, &he) != HL7_OK) {
            tbuf_printf(err, "transform at line %u: %s", t->line,
                        s->map ? he.text : "no such code map");
            return -1;
        }
        return 0;
    case CONFIG_TX_SCRIPT: {
        script_limits lim;
        script_limits_default(&lim);
        if (t->max_instructions) lim.max_instructions = t->max_instructions;
        if (t->max_memory) lim.max_memory = t->max_memory;
        s->host = (script_host){.maps = maps};
        script_error se;
        if (script_load(t->script, &lim, &s->host, &s->lua, &se) != SCRIPT_OK) {
            tbuf_printf(err, "transform at line %u: %s", t->line, se.text);
            return -1;
        }
        return 0;
    }
    }
    tbuf_printf(err, "transform at line %u: unknown kind", t->line);
    return -1;
}

transform_chain *transform_compile(const config_transform *steps, size_t n,
                                   const codemap_registry *maps, tbuf *err)
{
    transform_chain *c = xcalloc(1, sizeof *c);
    c->steps = xcalloc(n ? n : 1, sizeof *c->steps);
    c->n = n;
    for (size_t i = 0; i < n; i++) {
        if (compile_step(&c->steps[i], &steps[i], maps, err) != 0) {
            transform_free(c);
            return NULL;
        }
    }
    return c;
}

void transform_free(transform_chain *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) {
        script_free(c->steps[i].lua);
        free(c->steps[i].from_text);
    }
    free(c->steps);
    tbuf_free(&c->a);
    tbuf_free(&c->b);
    tbuf_free(&c->c);
    free(c);
}

static int fail_hl7(const step *s, const hl7_error *he, tbuf *err)
{
    tbuf_printf(err, "transform at line %u (%s): %s", s->cfg->line,
                s->cfg->kind == CONFIG_TX_SET ? "set" : "copy", he->text);
    return -1;
}

static int apply_set(step *s, hl7_msg *m, tbuf *err)
{
    hl7_error he;
    if (hl7_set(m, &s->path, s->cfg->value, strlen(s->cfg->value), &he) != HL7_OK)
        return fail_hl7(s, &he, err);
    return 0;
}

static int apply_copy(transform_chain *c, step *s, hl7_msg *m, tbuf *err)
{
    hl7_span v;
    tbuf_reset(&c->a);
    if (hl7_get_raw(m, &s->path, &v) >= HL7_EMPTY) tbuf_put(&c->a, v.p, v.len);
    hl7_error he;
    if (hl7_set_raw(m, &s->to, c->a.p ? c->a.p : "", c->a.len, &he) != HL7_OK)
        return fail_hl7(s, &he, err);
    return 0;
}

static int apply_delete(step *s, hl7_msg *m, tbuf *err)
{
    for (uint32_t i = hl7_seg_count(m); i-- > 1;) {
        if (strcmp(hl7_seg_at(m, i)->id, s->cfg->path) != 0) continue;
        hl7_error he;
        if (hl7_seg_remove(m, i, &he) != HL7_OK) {
            tbuf_printf(err, "transform at line %u (delete %s): %s", s->cfg->line, s->cfg->path,
                        he.text);
            return -1;
        }
    }
    return 0;
}

/* The decoded value at SEG[occ]-field.comp into out; false when absent. */
static bool get_at(const hl7_msg *m, const char *seg, uint32_t occ, uint32_t field, uint32_t comp,
                   tbuf *out)
{
    hl7_path p = {.seg_occ = occ, .field = field, .rep = 1, .comp = comp};
    memcpy(p.seg, seg, 4);
    tbuf_reset(out);
    return hl7_get(m, &p, out) == HL7_VALUE;
}

static int set_at(hl7_msg *m, uint32_t occ, uint32_t field, uint32_t comp, const char *text,
                  size_t len, hl7_error *he)
{
    hl7_path p = {.seg = "OBX", .seg_occ = occ, .field = field, .rep = 1, .comp = comp};
    return hl7_set(m, &p, text, len, he) == HL7_OK ? 0 : -1;
}

/* Converts OBX occurrence occ from its unit to the step's. */
static int convert_obx(transform_chain *c, step *s, hl7_msg *m, uint32_t occ, tbuf *err)
{
    const config_transform *t = s->cfg;
    if (!get_at(m, "OBX", occ, 6, 1, &c->a)) {
        tbuf_printf(err,
                    "transform at line %u (convert %s): OBX[%u]-6 has no unit to convert from",
                    t->line, t->code, occ);
        return -1;
    }
    char *from = xstrdup(c->a.p);
    int rc = 0;
    if ((t->from && strcmp(from, t->from) != 0) || strcmp(from, t->unit) == 0) goto done;
    ucum_error ue;
    bool converted;
    hl7_error he;
    /* the source unit, parsed once per distinct text (feeds repeat theirs) */
    if (!s->from_text || strcmp(s->from_text, from) != 0) {
        free(s->from_text);
        s->from_text = NULL;
        if (ucum_parse(from, &s->from_unit, &ue) != UCUM_OK) goto unit_error;
        s->from_text = xstrdup(from);
    }
    tbuf_reset(&c->b);
    if (get_at(m, "OBX", occ, 5, 0, &c->a) &&
        ucum_convert_text_units(c->a.p, &s->from_unit, &s->unit, from, t->unit, t->mw, &c->b,
                                &converted, &ue) != UCUM_OK)
        goto unit_error;
    if (c->b.len && set_at(m, occ, 5, 0, c->b.p, c->b.len, &he) != 0) goto hl7_failed;
    tbuf_reset(&c->b);
    if (get_at(m, "OBX", occ, 7, 0, &c->a) &&
        ucum_convert_range_units(c->a.p, &s->from_unit, &s->unit, from, t->unit, t->mw, &c->b,
                                 &converted, &ue) != UCUM_OK)
        goto unit_error;
    if (c->b.len && set_at(m, occ, 7, 0, c->b.p, c->b.len, &he) != 0) goto hl7_failed;
    /* OBX-6 becomes unit^unit^UCUM, in one edit */
    {
        const hl7_delims *d = hl7_delims_of(m);
        tbuf_reset(&c->b);
        hl7_escape(d, t->unit, strlen(t->unit), &c->b);
        tbuf_putc(&c->b, d->comp);
        hl7_escape(d, t->unit, strlen(t->unit), &c->b); /* not a copy of b: b may move */
        tbuf_putc(&c->b, d->comp);
        tbuf_puts(&c->b, "UCUM");
        hl7_path p6 = {.seg = "OBX", .seg_occ = occ, .field = 6, .rep = 1};
        if (hl7_set_raw(m, &p6, c->b.p, c->b.len, &he) != HL7_OK) goto hl7_failed;
    }
    goto done;
unit_error:
    tbuf_printf(err, "transform at line %u (convert %s): OBX[%u]: %s", t->line, t->code, occ,
                ue.text);
    rc = -1;
    goto done;
hl7_failed:
    tbuf_printf(err, "transform at line %u (convert %s): OBX[%u]: %s", t->line, t->code, occ,
                he.text);
    rc = -1;
done:
    free(from);
    return rc;
}

/* Whether component 1 of field 3 of segment idx is `code` (decoded only
 * when it holds an escape). */
static bool code_is(transform_chain *c, const hl7_msg *m, uint32_t idx, const char *code)
{
    hl7_span v;
    if (hl7_raw(m, idx, 3, 1, 1, 0, &v) != HL7_VALUE) return false;
    const hl7_delims *d = hl7_delims_of(m);
    if (!d->esc || !memchr(v.p, d->esc, v.len))
        return v.len == strlen(code) && memcmp(v.p, code, v.len) == 0;
    tbuf_reset(&c->c);
    hl7_unescape(d, hl7_charset_of(m), v.p, v.len, &c->c);
    return c->c.len == strlen(code) && memcmp(c->c.p, code, c->c.len) == 0;
}

/* Segments by index (an edit never adds or removes one here), counting OBX
 * occurrences for the paths of the edits. */
static int apply_convert(transform_chain *c, step *s, hl7_msg *m, tbuf *err)
{
    uint32_t occ = 0, n = hl7_seg_count(m);
    for (uint32_t i = 1; i < n; i++) {
        if (memcmp(hl7_seg_at(m, i)->id, "OBX", 4) != 0) continue;
        occ++;
        if (code_is(c, m, i, s->cfg->code) && convert_obx(c, s, m, occ, err) != 0) return -1;
    }
    return 0;
}

/* Writes v (text) as the n-th piece of out, escaped. */
static void put_escaped(const hl7_msg *m, const char *v, tbuf *out)
{
    if (v) hl7_escape(hl7_delims_of(m), v, strlen(v), out);
}

/* Maps one value (a component, or the code of a coded field: components
 * 1-3 of its first repetition rewritten in one edit) in place. Values the
 * map leaves as they are cost no edit. */
static int map_one(transform_chain *c, step *s, hl7_msg *m, uint32_t occ, tbuf *err)
{
    const config_transform *t = s->cfg;
    hl7_path p = s->path;
    p.seg_occ = occ;
    bool coded = p.comp == 0;
    if (coded) p.comp = 1;
    tbuf_reset(&c->a);
    if (hl7_get(m, &p, &c->a) != HL7_VALUE) return 0; /* nothing to map */
    const char *system = NULL;
    if (coded) {
        hl7_path sp = p;
        sp.comp = 3;
        tbuf_reset(&c->b);
        if (hl7_get(m, &sp, &c->b) == HL7_VALUE) system = c->b.p;
    }
    codemap_result r;
    char where[48];
    hl7_error he;
    if (!codemap_lookup(s->map, system, c->a.p, c->a.len, &r)) {
        if (r.unmapped != CODEMAP_UNMAPPED_ERROR) return 0;
        tbuf_printf(err, "transform at line %u (map %s): %s: code '%s'%s%s%s is not in the map",
                    t->line, t->map, hl7_path_format(&p, where, sizeof where), c->a.p,
                    system ? " (system " : "", system ? system : "", system ? ")" : "");
        return -1;
    }
    if (!coded) {
        if (strcmp(c->a.p, r.target_code) == 0) return 0;
        if (hl7_set(m, &p, r.target_code, strlen(r.target_code), &he) != HL7_OK) goto fail;
        return 0;
    }
    /* The repetition's raw text with components 1-3 replaced. */
    const hl7_delims *d = hl7_delims_of(m);
    hl7_path rp = p;
    rp.comp = 0;
    hl7_span raw;
    if (hl7_get_raw(m, &rp, &raw) < HL7_EMPTY) raw = (hl7_span){"", 0};
    tbuf_reset(&c->c);
    put_escaped(m, r.target_code, &c->c);
    tbuf_putc(&c->c, d->comp);
    const char *rest = raw.p, *end = raw.p + raw.len;
    const char *c2 = memchr(rest, d->comp, raw.len);
    const char *c3 = c2 ? memchr(c2 + 1, d->comp, (size_t)(end - c2 - 1)) : NULL;
    const char *c4 = c3 ? memchr(c3 + 1, d->comp, (size_t)(end - c3 - 1)) : NULL;
    if (r.target_display) put_escaped(m, r.target_display, &c->c);
    else if (c2) tbuf_put(&c->c, c2 + 1, (size_t)((c3 ? c3 : end) - c2 - 1));
    tbuf_putc(&c->c, d->comp);
    if (r.target_system) put_escaped(m, r.target_system, &c->c);
    else if (c3) tbuf_put(&c->c, c3 + 1, (size_t)((c4 ? c4 : end) - c3 - 1));
    if (c4) tbuf_put(&c->c, c4, (size_t)(end - c4));
    while (c->c.len && c->c.p[c->c.len - 1] == d->comp) c->c.len--; /* no empty trailing parts */
    if (c->c.len == raw.len && memcmp(c->c.p, raw.p, raw.len) == 0) return 0;
    if (hl7_set_raw(m, &rp, c->c.p, c->c.len, &he) != HL7_OK) goto fail;
    return 0;
fail:
    tbuf_printf(err, "transform at line %u (map %s): %s: %s", t->line, t->map,
                hl7_path_format(&p, where, sizeof where), he.text);
    return -1;
}

static int apply_map(transform_chain *c, step *s, hl7_msg *m, tbuf *err)
{
    uint32_t n = hl7_seg_occurrences(m, s->path.seg);
    bool one = s->cfg->path[3] == '['; /* an explicit occurrence: only that one */
    for (uint32_t occ = one ? s->path.seg_occ : 1; occ <= (one ? s->path.seg_occ : n); occ++)
        if (map_one(c, s, m, occ, err) != 0) return -1;
    return 0;
}

static int apply_script(step *s, hl7_msg *m, tbuf *err)
{
    script_error se;
    if (script_run_transform(s->lua, m, &se) != SCRIPT_OK) {
        tbuf_printf(err, "transform at line %u (script): %s", s->cfg->line, se.text);
        return -1;
    }
    return 0;
}

int transform_apply(transform_chain *c, hl7_msg *m, tbuf *err)
{
    for (size_t i = 0; i < c->n; i++) {
        step *s = &c->steps[i];
        int rc = 0;
        switch (s->cfg->kind) {
        case CONFIG_TX_SET: rc = apply_set(s, m, err); break;
        case CONFIG_TX_COPY: rc = apply_copy(c, s, m, err); break;
        case CONFIG_TX_DELETE: rc = apply_delete(s, m, err); break;
        case CONFIG_TX_CONVERT: rc = apply_convert(c, s, m, err); break;
        case CONFIG_TX_MAP: rc = apply_map(c, s, m, err); break;
        case CONFIG_TX_SCRIPT: rc = apply_script(s, m, err); break;
        }
        if (rc != 0) return -1;
    }
    return 0;
}
