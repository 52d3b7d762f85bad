/*
 * test_validate_edited: the validator reads an edited message exactly as it
 * reads the same message written out and parsed again.
 *
 * Edits (hl7_set_raw_at, hl7_set_fields_raw_at, hl7_splice_raw_at, and the
 * declarative transforms built on them) move a segment's text into memory
 * the message owns and shift its field offsets in place; the validator's
 * shortcuts (field masks, inline field location from the offsets, memos by
 * text) read those offsets directly. Each case here edits a message from
 * tests/data/quality at random, validates it as it is, then serializes,
 * parses and validates it again: the two problem lists (rule, severity,
 * path, text, in order) must be the same. A shortcut that read a stale
 * offset or the received bytes of an edited segment would differ.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/tbuf.h"
#include "engine/transform.h"
#include "hl7/hl7.h"
#include "quality/validate.h"
#include "term/codemap.h"

#define NOW ((time_t)1717243200) /* 2024-06-01 12:00:00 UTC */

/* --- inputs ----------------------------------------------------------------------- */

typedef struct corpus {
    tbuf *msgs;
    size_t n, cap;
} corpus;

static void add_file(corpus *c, const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->msgs = realloc(c->msgs, c->cap * sizeof *c->msgs);
    }
    tbuf *t = &c->msgs[c->n];
    *t = (tbuf)TBUF_INIT;
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, fp)) > 0) tbuf_put(t, buf, got);
    fclose(fp);
    c->n++;
}

static void add_dir(corpus *c, const char *sub)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/data/quality/%s", TERN_SOURCE_DIR, sub);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".hl7") != 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        add_file(c, path);
    }
    closedir(d);
}

/* --- the validator, as a channel would set it up ----------------------------------- */

static validator *make_validator(void)
{
    static const validate_field_spec fields[] = {
        {.path = "PID-3", .required = true, .type = HL7_TYPE_CX, .max_reps = 5},
        {.path = "PID-5", .required = true, .type = HL7_TYPE_XPN},
        {.path = "PID-8", .required = true, .table = "0001"},
        {.path = "OBR-4", .required = true, .type = HL7_TYPE_CWE},
        {.path = "OBX-3", .required = true, .type = HL7_TYPE_CWE},
        {.path = "OBX-3.3", .max_len = 12},
        {.path = "OBX-5", .required = true, .has_min = true, .min = 0, .when = "OBX-2=NM"},
        {.path = "OBX-6", .type = HL7_TYPE_CWE},
        {.path = "OBX-11", .required = true, .table = "0085"},
    };
    validator *v = validator_new(NULL);
    validate_error err;
    validate_profile *p = validate_profile_new("ORU^R01", &err);
    assert_non_null(p);
    assert_int_equal(validate_profile_set_structure(
                         p, "MSH PID [PV1] { [ORC] OBR [{NTE}] { OBX [{NTE}] } }", &err),
                     VALIDATE_OK);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        assert_int_equal(validate_profile_add_field(p, &fields[i], &err), VALIDATE_OK);
    assert_int_equal(validator_add_profile(v, p, &err), VALIDATE_OK);
    return v;
}

/* Every problem of r, one per line, with its rule. */
static void problems_text(const validate_result *r, tbuf *out)
{
    tbuf_reset(out);
    for (size_t i = 0; i < r->n; i++) {
        tbuf_printf(out, "[%s] ", validate_rule_name(r->v[i].rule));
        validate_problem_format(&r->v[i], out);
        tbuf_putc(out, '\n');
    }
}

/* m as it is, and m written out and parsed again, give the same problems. */
static void same_problems(const validator *v, const hl7_msg *m, const char *what)
{
    validate_result r1 = VALIDATE_RESULT_INIT, r2 = VALIDATE_RESULT_INIT;
    tbuf wire = TBUF_INIT, a = TBUF_INIT, b = TBUF_INIT;
    validate_message(v, m, NOW, &r1);
    problems_text(&r1, &a);
    hl7_serialize(m, &wire);
    hl7_msg *m2 = hl7_msg_new(NULL);
    hl7_error he;
    assert_int_equal(hl7_parse(m2, wire.p, wire.len, &he), HL7_OK);
    validate_message(v, m2, NOW, &r2);
    problems_text(&r2, &b);
    if (strcmp(tbuf_cstr(&a), tbuf_cstr(&b)) != 0)
        fail_msg("%s: the edited message\n%s\ngives\n%s\nbut written out and parsed again\n%s",
                 what, tbuf_cstr(&wire), tbuf_cstr(&a), tbuf_cstr(&b));
    hl7_msg_free(m2);
    validate_result_free(&r1);
    validate_result_free(&r2);
    tbuf_free(&wire);
    tbuf_free(&a);
    tbuf_free(&b);
}

/* --- random edits ------------------------------------------------------------------- */

static unsigned next_rand(unsigned *s)
{
    unsigned x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* A raw value for m: text, numbers, dates, codes, with the message's
 * component, repetition and subcomponent separators and escapes. */
static void random_raw(const hl7_msg *m, unsigned *s, tbuf *out)
{
    static const char *const words[] = {"", "F", "M", "NM", "ST", "N", "H", "X", "0", "-5",
                                        "12.5", "abc", "2345-7", "LN", "http://loinc.org",
                                        "20240101", "19800115", "202406011200-0500", "2099",
                                        "\"\"", "1234566", "M10", "MR", "DOE", "ISO", "A B"};
    const hl7_delims *d = hl7_delims_of(m);
    char seps[4] = {d->comp, d->rep, d->sub, d->comp};
    tbuf_reset(out);
    unsigned parts = 1 + next_rand(s) % 4;
    for (unsigned i = 0; i < parts; i++) {
        if (i && seps[next_rand(s) % 4]) tbuf_putc(out, seps[next_rand(s) % 4]);
        tbuf_puts(out, words[next_rand(s) % (sizeof words / sizeof words[0])]);
        if (d->esc && next_rand(s) % 16 == 0) {
            char e[4] = {d->esc, 'T', d->esc, 0};
            tbuf_puts(out, e);
        }
    }
    /* drop what an edit may not hold */
    size_t k = 0;
    for (size_t i = 0; i < out->len; i++)
        if (out->p[i] && out->p[i] != d->field && out->p[i] != '\r' && out->p[i] != '\n' &&
            (d->comp || out->p[i] != '\0'))
            out->p[k++] = out->p[i];
    out->len = k;
}

/* One random edit of segment idx (not MSH-1/MSH-2), by one of the three
 * ways edits are made. */
static void random_edit(hl7_msg *m, unsigned *s, tbuf *raw)
{
    uint32_t nsegs = hl7_seg_count(m);
    uint32_t idx = next_rand(s) % nsegs;
    uint32_t field = 3 + next_rand(s) % 16;
    hl7_error he;
    random_raw(m, s, raw);
    switch (next_rand(s) % 3) {
    case 0: {
        hl7_path p = {.field = field};
        if (next_rand(s) % 2) p.rep = 1 + next_rand(s) % 2;
        if (p.rep && next_rand(s) % 2) p.comp = 1 + next_rand(s) % 4;
        (void)hl7_set_raw_at(m, idx, &p, raw->p, raw->len, &he);
        break;
    }
    case 1: {
        hl7_field_edit e[2] = {{field, raw->p, raw->len}, {field + 2, "Y", 1}};
        (void)hl7_set_fields_raw_at(m, idx, e, 1 + next_rand(s) % 2, &he);
        break;
    }
    default: {
        hl7_fields f;
        hl7_span v;
        if (!hl7_fields_at(m, idx, &f) || !hl7_fields_get(&f, field, &v)) break;
        size_t a = v.len ? next_rand(s) % (v.len + 1) : 0;
        size_t n = a < v.len ? next_rand(s) % (v.len - a + 1) : 0;
        (void)hl7_splice_raw_at(m, idx, field, (hl7_span){v.p + a, n}, raw->p, raw->len, &he);
        break;
    }
    }
}

static void random_edits(void **state)
{
    (void)state;
    corpus c = {0};
    add_dir(&c, "valid");
    add_dir(&c, "invalid");
    add_dir(&c, "unusual");
    assert_true(c.n >= 20);
    validator *v = make_validator();
    hl7_msg *m = hl7_msg_new(NULL);
    tbuf raw = TBUF_INIT;
    unsigned s = 12345;
    char what[64];
    for (int round = 0; round < 400; round++) {
        for (size_t i = 0; i < c.n; i++) {
            hl7_error he;
            if (hl7_parse(m, c.msgs[i].p, c.msgs[i].len, &he) != HL7_OK) continue;
            unsigned edits = 1 + next_rand(&s) % 6;
            for (unsigned k = 0; k < edits; k++) random_edit(m, &s, &raw);
            snprintf(what, sizeof what, "round %d, message %zu", round, i);
            same_problems(v, m, what);
        }
    }
    tbuf_free(&raw);
    hl7_msg_free(m);
    validator_free(v);
    for (size_t i = 0; i < c.n; i++) tbuf_free(&c.msgs[i]);
    free(c.msgs);
}

/* The declarative steps of a lab channel (a code map over OBX-3, a unit
 * conversion, a set, a copy), then validation of what they wrote. */
static void after_transforms(void **state)
{
    (void)state;
    codemap_options o;
    codemap_options_default(&o);
    o.unmapped = CODEMAP_UNMAPPED_PASS;
    codemap *cm = codemap_new("loinc", &o);
    codemap_error ce;
    static const char *const codes[] = {"2345-7", "2160-0", "718-7", "GLU", "1234-5"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        assert_int_equal(codemap_add(cm, NULL, codes[i], "http://loinc.org", codes[i], "Mapped",
                                     &ce),
                         CODEMAP_OK);
    codemap_registry *maps = codemap_registry_new();
    assert_int_equal(codemap_registry_add(maps, cm, &ce), CODEMAP_OK);
    static const config_transform steps[] = {
        {.kind = CONFIG_TX_MAP, .line = 1, .path = "OBX-3", .map = "loinc"},
        {.kind = CONFIG_TX_CONVERT, .line = 2, .code = "2345-7", .unit = "mmol/L", .mw = 180.16},
        {.kind = CONFIG_TX_SET, .line = 3, .path = "MSH-5", .value = "DWH"},
        {.kind = CONFIG_TX_COPY, .line = 4, .path = "OBR-2", .to = "ORC-2"},
    };
    tbuf err = TBUF_INIT;
    transform_chain *chain = transform_compile(steps, sizeof steps / sizeof steps[0], maps, &err);
    if (!chain) fail_msg("%s", tbuf_cstr(&err));
    corpus c = {0};
    add_dir(&c, "valid");
    add_dir(&c, "unusual");
    validator *v = make_validator();
    hl7_msg *m = hl7_msg_new(NULL);
    tbuf raw = TBUF_INIT;
    unsigned s = 777;
    size_t applied = 0;
    for (int round = 0; round < 50; round++) {
        for (size_t i = 0; i < c.n; i++) {
            hl7_error he;
            if (hl7_parse(m, c.msgs[i].p, c.msgs[i].len, &he) != HL7_OK) continue;
            if (round) random_edit(m, &s, &raw);
            tbuf_reset(&err);
            if (transform_apply(chain, m, &err) != 0) continue; /* e.g. an unmapped code */
            applied++;
            same_problems(v, m, "after the transforms");
        }
    }
    assert_true(applied > 50);
    tbuf_free(&raw);
    tbuf_free(&err);
    hl7_msg_free(m);
    validator_free(v);
    transform_free(chain);
    codemap_registry_free(maps);
    for (size_t i = 0; i < c.n; i++) tbuf_free(&c.msgs[i]);
    free(c.msgs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_edits),
        cmocka_unit_test(after_transforms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
