/*
 * quality_config: see quality_config.h. Owns the user tables the validator
 * borrows.
 */
#include "quality/quality_config.h"

#include <stdlib.h>

#include "base/mem.h"

struct quality_set {
    hl7_tables *tables;
    validator *v;
};

void quality_free(quality_set *q)
{
    if (!q) return;
    validator_free(q->v);
    hl7_tables_free(q->tables);
    free(q);
}

const validator *quality_validator(const quality_set *q)
{
    return q->v;
}

static int add_severities(quality_set *q, const config_validation *cv, tbuf *err, unsigned *line)
{
    for (size_t i = 0; i < cv->nseverity; i++) {
        const config_vseverity *s = &cv->severity[i];
        validate_rule rule;
        validate_severity sev;
        *line = s->line;
        if (!validate_rule_from_name(s->rule, &rule)) {
            tbuf_printf(err, "unknown rule '%s' in 'severity' (see docs/validation.md for the rule ids)",
                        s->rule);
            return -1;
        }
        if (!validate_severity_from_name(s->severity, &sev)) {
            tbuf_printf(err, "severity of '%s' must be error, warning or off, not '%s'", s->rule,
                        s->severity);
            return -1;
        }
        validator_set_severity(q->v, rule, sev);
    }
    return 0;
}

static int add_profile(quality_set *q, const config_vprofile *cp, tbuf *err, unsigned *line)
{
    validate_error ve;
    *line = cp->line;
    validate_profile *p = validate_profile_new(cp->message, &ve);
    if (!p) goto fail;
    if (cp->segments && validate_profile_set_structure(p, cp->segments, &ve) != VALIDATE_OK)
        goto fail_free;
    for (size_t i = 0; i < cp->nfields; i++) {
        const config_vfield *f = &cp->fields[i];
        *line = f->line;
        validate_field_spec spec = {
            .path = f->path,
            .required = f->required,
            .max_len = f->max_len,
            .max_reps = f->max_reps,
            .table = f->table,
            .has_min = f->has_min,
            .has_max = f->has_max,
            .min = f->min,
            .max = f->max,
            .when = f->when,
        };
        if (f->type && !hl7_type_from_name(f->type, &spec.type)) {
            tbuf_printf(err, "unknown datatype '%s' (ST, NM, SI, DT, DTM, TS, TM, ID, IS, CX, "
                             "XPN, XAD, CWE, CE, HD...)",
                        f->type);
            validate_profile_free(p);
            return -1;
        }
        if (validate_profile_add_field(p, &spec, &ve) != VALIDATE_OK) goto fail_free;
    }
    *line = cp->line;
    if (validator_add_profile(q->v, p, &ve) != VALIDATE_OK) goto fail;
    return 0;
fail_free:
    validate_profile_free(p);
fail:
    tbuf_printf(err, "profile %s: %s", cp->message ? cp->message : "?", ve.text);
    return -1;
}

static int add_lists(quality_set *q, const config_validation *cv, tbuf *err, unsigned *line)
{
    validate_error ve;
    if (cv->sex_specific.given) validator_clear_sex_rules(q->v);
    for (size_t i = 0; i < cv->sex_specific.n; i++) {
        const config_vrule *e = &cv->sex_specific.v[i];
        *line = e->line;
        if (validator_add_sex_rule(q->v, e->code, e->system, e->sex, &ve) != VALIDATE_OK) goto fail;
    }
    if (cv->age_restricted.given) validator_clear_age_rules(q->v);
    for (size_t i = 0; i < cv->age_restricted.n; i++) {
        const config_vrule *e = &cv->age_restricted.v[i];
        *line = e->line;
        int lo = e->has_min ? (int)e->min : 0, hi = e->has_max ? (int)e->max : 200;
        if (validator_add_age_rule(q->v, e->code, e->system, lo, hi, &ve) != VALIDATE_OK)
            goto fail;
    }
    if (cv->physiologic.given) validator_clear_limits(q->v);
    for (size_t i = 0; i < cv->physiologic.n; i++) {
        const config_vrule *e = &cv->physiologic.v[i];
        *line = e->line;
        if (validator_add_limit(q->v, e->code, e->units, e->has_min ? e->min : -1e300,
                                e->has_max ? e->max : 1e300, &ve) != VALIDATE_OK)
            goto fail;
    }
    return 0;
fail:
    tbuf_puts(err, ve.text);
    return -1;
}

quality_set *quality_build(const config_validation *cv, tbuf *err, unsigned *line)
{
    quality_set *q = xcalloc(1, sizeof *q);
    q->tables = hl7_tables_new();
    *line = 0;
    for (size_t i = 0; i < cv->ntables; i++) {
        hl7_table_error te;
        *line = cv->tables[i].line;
        if (hl7_tables_load_csv(q->tables, cv->tables[i].name, cv->tables[i].path, &te) !=
            HL7_TABLE_OK) {
            tbuf_printf(err, "table %s: %s", cv->tables[i].name, te.text);
            goto fail;
        }
    }
    q->v = validator_new(q->tables);
    validator_set_baseline(q->v, cv->baseline);
    validator_set_local_offset(q->v, cv->local_offset);
    if (add_lists(q, cv, err, line) != 0) goto fail;
    if (add_severities(q, cv, err, line) != 0) goto fail;
    for (size_t i = 0; i < cv->nprofiles; i++)
        if (add_profile(q, &cv->profiles[i], err, line) != 0) goto fail;
    return q;
fail:
    quality_free(q);
    return NULL;
}
