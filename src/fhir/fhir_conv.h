/*
 * fhir_conv: internal interface shared by the converter's files (not for
 * other modules; the public API is fhir_convert.h).
 *
 *   fhir_convert.c        core: the fc context, Bundle entries, stable ids,
 *                         datatypes (CX, HD, XPN, XAD, XTN, XCN, CWE, dates),
 *                         the table of message types and fhir_convert()
 *   fhir_conv_adt.c       Patient, Organization, Practitioner, Location,
 *                         Encounter, the ADT events and A40 merges
 *   fhir_conv_clinical.c  segments converted wherever they appear: NK1
 *                         RelatedPerson, AL1 AllergyIntolerance, DG1
 *                         Condition, IN1/IN2 Coverage
 *   fhir_conv_orders.c    ORU results, ORM/OML ServiceRequest + Specimen,
 *                         MDM DocumentReference
 *   fhir_conv_pharmacy.c  RDE MedicationRequest + Medication, VXU Immunization
 *   fhir_conv_sched.c     SIU Appointment
 *
 * Every helper takes the conversion context `fc`. The Bundle is built in
 * the converter's ftree (src/fhir/ftree.h): nodes, strings and the decoded
 * values of fc_val all live in its arena until the tree is cleared, so a
 * value stays valid for the whole conversion and nothing is freed piece by
 * piece (a node left out of the Bundle is simply never written). Keys are
 * string literals (borrowed by the tree). References are "Type/<32 hex>"
 * strings of at most FC_REF bytes.
 */
#ifndef TERN_FHIR_CONV_H
#define TERN_FHIR_CONV_H

#include <openssl/evp.h>

#include "fhir/fhir_convert.h"
#include "fhir/fhir_tables.h"
#include "fhir/ftree.h"

#define FC_REF 64
#define FC_KEEP (1u << 20) /* bytes a converter's buffer keeps for the next message */
#define FC_COMPS 16

/* The components of the field repetition fc_val read last: the helpers
 * read several components of one repetition in a row (a CWE, an XPN), so
 * it is split once. */
typedef struct fc_rep {
    long seg; /* -1: nothing cached */
    uint32_t f, r;
    uint32_t n;               /* components kept; 0 when the repetition is absent */
    bool more;                /* it has more than FC_COMPS components */
    uint32_t subs;            /* bit i: component i + 1 holds a subcomponent delimiter */
    const char *cp[FC_COMPS]; /* component i + 1 is cp[i][0..cl[i]) */
    uint32_t cl[FC_COMPS];
} fc_rep;

#define FC_RECENT 8

/* The last values fc_val returned, which are valid UTF-8 and live in the
 * tree: fc_text borrows them instead of copying and checking them again. */
typedef struct fc_recent {
    const char *p[FC_RECENT];
    uint32_t len[FC_RECENT];
    bool plain[FC_RECENT]; /* holds no byte JSON escapes */
    unsigned next;
} fc_recent;

/* What a converter keeps from one message to the next (fhir_convert.h). */
struct fhir_converter {
    ftree *tree;         /* the last Bundle, its values and strings */
    tbuf scratch;        /* fc_val's decoding buffer */
    tbuf date;           /* fc_date's output */
    tbuf ids;            /* the 32-character ids in the Bundle, back to back (dedup) */
    tbuf text;           /* short-lived text of coding_at and fc_identifier (never nested) */
    EVP_MD *sha256;      /* NULL when no provider has it: fhir_stable_id() then */
    EVP_MD_CTX *md_init; /* initialised once: copying it is cheaper than an init */
    EVP_MD_CTX *md_ctx;
};

/* One conversion. */
typedef struct fc {
    fhir_converter *cv;
    const hl7_msg *m;
    const hl7_delims *d; /* m's */
    const fhir_options *opt;
    const fhir_tables *tables; /* opt->tables or NULL (built-ins) */
    const char *trigger;       /* MSH-9.2 */
    ftree *t;                  /* cv->tree */
    ftree_node *entries;       /* Bundle.entry */
    char offset[8]; /* "+05:30", "Z": for times without their own offset */
    fc_rep rep;     /* fc_val's last repetition */
    fc_recent recent;
    uint64_t id_seen[16];       /* bit per id head in cv->ids: a clear bit means a new id */
    char org_ref[FC_REF];       /* sending facility (MSH-4); "" when none */
    char patient_ref[FC_REF];   /* "Patient/<id>" */
    char encounter_ref[FC_REF]; /* "" when no Encounter */
} fc;

#define SYS_V2_0203 "http://terminology.hl7.org/CodeSystem/v2-0203"
#define SYS_ACTCODE "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#define SYS_PARTICIPATION "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
#define SYS_UCUM "http://unitsofmeasure.org"
#define US_CORE "http://hl7.org/fhir/us/core/StructureDefinition/"

/* --- values and JSON ------------------------------------------------------ */

/* Decoded value at (seg index, field, rep, comp, sub), or NULL when empty,
 * absent or the explicit null "". comp/sub 0 = the whole element. The text
 * is in the tree's arena: valid for the whole conversion. */
const char *fc_val(fc *c, long seg, uint32_t f, uint32_t r, uint32_t comp, uint32_t sub);
/* Table lookup through the conversion's tables (user first, built-in). */
const char *fc_lookup(fc *c, fhir_table_id t, const char *key);
/* The first of a table value "a|b": copies part `part` (0 or 1) into out
 * (cap bytes); false when v is NULL or the part is empty. */
bool fc_part(const char *v, int part, char *out, size_t cap);

/* The helpers that take a key are inline: keys are literals, so their
 * lengths are known where they are written. */

/* A new empty object in the conversion's tree. */
__attribute__((always_inline)) static inline ftree_node *fc_obj(fc *c)
{
    return ftree_object(c->t);
}

/* A string node for s: s itself when fc_val returned it lately, else a
 * copy; NULL when s is not valid UTF-8 (a value cut inside a character),
 * as jansson's json_string refused it. */
ftree_node *fc_text(fc *c, const char *s);

/* Sets key to s (fc_text) when s is non-empty valid UTF-8 (else nothing). */
__attribute__((always_inline)) static inline void fc_str(fc *c, ftree_node *o, const char *key,
                                                         const char *s)
{
    if (s && *s) ftree_set(o, key, fc_text(c, s));
}

/* Sets key to a copy of s, known to be valid UTF-8 (table values, ids). */
__attribute__((always_inline)) static inline void fc_const(fc *c, ftree_node *o, const char *key,
                                                           const char *s)
{
    ftree_set(o, key, ftree_stringn_nocheck(c->t, s, strlen(s), false));
}

/* Sets key to a copy of s, made here of ASCII that needs no JSON escape
 * (ids, references "Type/<hex>"). */
__attribute__((always_inline)) static inline void fc_plain(fc *c, ftree_node *o, const char *key,
                                                           const char *s)
{
    ftree_set(o, key, ftree_stringn_nocheck(c->t, s, strlen(s), true));
}

/* Sets key to the string literal s, borrowed (not copied). */
#define fc_lit(c, o, key, s) ftree_set((o), (key), fc_literal(c, s))
/* A string node borrowing the literal s. */
#define fc_literal(c, s)                                                                           \
    ftree_string_borrowed((c)->t, "" s, sizeof("" s) - 1, FTREE_PLAIN("" s, sizeof("" s) - 1))

/* Appends item to the array o[key], creating it; item NULL: nothing. */
__attribute__((always_inline)) static inline void fc_push(fc *c, ftree_node *o, const char *key,
                                                          ftree_node *item)
{
    if (!item) return;
    ftree_node *a = ftree_get(o, key);
    if (!a) {
        a = ftree_array(c->t);
        ftree_set(o, key, a);
    }
    ftree_append(a, item);
}
/* Sets o[key] = v when v is a non-empty object or array (else nothing). */
__attribute__((always_inline)) static inline void fc_set_nonempty(ftree_node *o, const char *key,
                                                                  ftree_node *v)
{
    if (v && ftree_size(v)) ftree_set(o, key, v);
}
/* {"reference": ref}; ref ("Type/<hex>", from fc_add or fc_ref_of) is copied. */
ftree_node *fc_ref(fc *c, const char *ref);
/* {"system": system, "code": code}, or NULL when code is not valid UTF-8
 * (as jansson's json_pack refused it); system is a string literal. */
#define fc_coding(c, system, code) fc_coding_((c), fc_literal(c, system), (code))
ftree_node *fc_coding_(fc *c, ftree_node *system, const char *code);
/* {"coding":[{system, code, display}]} (display may be NULL); system is a
 * string literal, code and display valid UTF-8 (copied). */
#define fc_concept(c, system, code, display)                                                       \
    fc_concept_((c), fc_literal(c, system), (code), (display))
ftree_node *fc_concept_(fc *c, ftree_node *system, const char *code, const char *display);

/* --- resources and ids ------------------------------------------------------ */

/* "type/id" into ref, cut to FC_REF - 1 bytes (as snprintf would). */
void fc_ref_of(char ref[FC_REF], const char *type, const char *id);
/* Appends the decimal digits of n to out. */
void fc_put_uint(tbuf *out, unsigned n);
/* Appends the strings of the list, which ends with NULL, to out. */
void fc_cat(tbuf *out, ...) __attribute__((sentinel));
/* s (NULL: "") cut to cap - 1 bytes into out, as snprintf "%s" would. */
void fc_copy(char *out, size_t cap, const char *s);
/* Writes the id of key (see fhir_stable_id). */
void fc_stable_id(fc *c, const char *key, char out[33]);
/* Derives the id from key, or from MSH-10 and label when key is empty. */
void fc_id_from(fc *c, tbuf *key, const char *type, const char *label, char id[33]);
/* New {"resourceType": type, "id": id}; type is a string literal, id is
 * copied. */
#define fc_resource(c, type, id) fc_resource_((c), fc_literal(c, type), (id))
ftree_node *fc_resource_(fc *c, ftree_node *type, const char *id);
/* Adds r to the Bundle as PUT Type/id and writes "Type/id" to ref (may be
 * NULL). A resource whose id is already in the Bundle (the same
 * doctor as attending and admitting) is dropped: a transaction may not
 * hold two entries for one resource. */
void fc_add(fc *c, ftree_node *r, char *ref);

/* --- datatypes ---------------------------------------------------------------- */

enum { FC_DATETIME = 0, FC_DATE = 1, FC_INSTANT = 2, FC_INSTANT_MIN = 3 };
/* The FHIR form of the DTM at (seg, f, rep 1, comp) as a string node, or
 * NULL; kind FC_DATETIME, FC_DATE, FC_INSTANT (only when the value has
 * seconds) or FC_INSTANT_MIN (seconds padded when it has at least
 * minutes). comp 0 is the first component. fc_date sets key to it. */
ftree_node *fc_date_node(fc *c, long seg, uint32_t f, uint32_t comp, int kind);
__attribute__((always_inline)) static inline void fc_date(fc *c, ftree_node *o, const char *key,
                                                          long seg, uint32_t f, uint32_t comp,
                                                          int kind)
{
    ftree_set(o, key, fc_date_node(c, seg, f, comp, kind));
}
/* Appends the FHIR system URI for a coding system name (CWE-3). */
void fc_code_system(fc *c, const char *name, tbuf *out);
/* CodeableConcept from the CWE at (seg, f, r); comp 0: the field's
 * components 1..3, comp > 0: the subcomponents of component comp. Also
 * reads the alternate code (CWE-4..6). NULL when empty. */
ftree_node *fc_codeable(fc *c, long seg, uint32_t f, uint32_t r, uint32_t comp);
/* fc_codeable or {"text": "unknown"} (for required elements). */
ftree_node *fc_codeable_req(fc *c, long seg, uint32_t f);
/* Identifier system from the HD at (seg, f, r, comp) (comp 0: the field is
 * the HD); false when there is none. */
bool fc_hd_system(fc *c, long seg, uint32_t f, uint32_t r, uint32_t comp, tbuf *out);
/* Identifier from CX/EI/XCN-like (seg, f, r): value component 1, system
 * from the HD at hd_comp, type code (v2-0203) when given. key (may be NULL)
 * gets "res_type|system|value". NULL when no value. */
ftree_node *fc_identifier(fc *c, long seg, uint32_t f, uint32_t r, uint32_t hd_comp,
                          const char *type, const char *res_type, tbuf *key);
/* HumanName from the XPN at (seg, f, r) starting at component `first`
 * (1 for XPN, 2 for XCN); NULL when empty. */
ftree_node *fc_name(fc *c, long seg, uint32_t f, uint32_t r, uint32_t first);
/* Address from the XAD at (seg, f, r); NULL when empty. */
ftree_node *fc_address(fc *c, long seg, uint32_t f, uint32_t r);
/* Every repetition of the XTN at (seg, f) pushed to res.telecom. */
void fc_telecoms(fc *c, long seg, uint32_t f, const char *default_use, ftree_node *res);
/* A unit, its coding system and the UCUM code the units table maps it to,
 * looked up once for the quantities that share it (a result and its
 * range): their strings are made once too, each quantity gets nodes that
 * share their text. Any of them may be NULL. */
typedef struct fc_unit {
    const char *text, *system, *ucum;
    ftree_node *unit, *code; /* the strings of "unit" and "code"; NULL: none */
    bool ucum_system;        /* system is UCUM (or none): "system" and "code" are set */
} fc_unit;
fc_unit fc_unit_of(fc *c, const char *text, const char *system);
/* The unit of the CWE at (seg, f): component 1, its system component 3. */
fc_unit fc_unit_at(fc *c, long seg, uint32_t f);
/* Quantity {value, unit, system, code}: the unit's UCUM code unless its
 * system names another one than UCUM. No value when v is not finite. */
ftree_node *fc_quantity(fc *c, double v, const fc_unit *u);
/* Parses a whole decimal; false if anything else. */
bool fc_number(const char *s, double *out);
/* strtod(s, end): the number at the start of s (0 and *end == s when
 * there is none). */
double fc_number_prefix(const char *s, const char **end);
/* True when segment i is named id (three letters). */
bool fc_is(fc *c, long i, const char *id);
/* True when a segment id (4 bytes, NUL-terminated) is want (a 3-letter
 * literal): one 32-bit compare. */
static inline bool fc_id_is(const char id[4], const char *want)
{
    return !memcmp(id, want, 4);
}

/* --- resource builders shared by the families ------------------------------ */

/* Practitioner from the XCN at (seg, f, r); writes its reference. */
bool fc_practitioner(fc *c, long seg, uint32_t f, uint32_t r, char ref[FC_REF]);
/* Organization from an XON/CX-like id at (seg, f) with name; writes ref. */
bool fc_organization(fc *c, const char *system, const char *value, const char *name,
                     char ref[FC_REF]);
/* Location from the PL at (seg, f); writes ref. */
bool fc_location(fc *c, long seg, uint32_t f, char ref[FC_REF]);
/* Patient from PID (sets c->patient_ref). */
ftree_node *fc_patient(fc *c, long pid); /* returns the resource (in the Bundle) */
/* Encounter from PV1 (+ PV2) with its Location and Practitioners (sets
 * c->encounter_ref). status NULL: from the trigger and PV1-45. */
void fc_encounter(fc *c, long pv1, const char *status);
/* Sending facility Organization (MSH-4), sets c->org_ref when present. */
void fc_sending_org(fc *c);

/* Segments converted wherever they appear (fhir_conv_clinical.c). */
void fc_clinical_segments(fc *c);
/* Condition from DG1 at index seg; writes ref. */
void fc_condition(fc *c, long dg1, char ref[FC_REF]);

/* Order key text (fhir_conv_orders.c): the first of the EI identifiers at
 * (seg, fields[i]) that is there ("Order|system|value"), else
 * "Order|msh10|<MSH-10>|pos". Pushes the identifiers, typed types[i], to
 * res (may be NULL). */
void fc_order_key(fc *c, long seg, const uint32_t fields[2], const char *types[2], unsigned pos,
                  ftree_node *res, tbuf *key);
/* request-status of an order: ORC-5, else ORC-1, else "unknown". */
const char *fc_request_status(fc *c, long orc);
/* The Observation for the OBX at index obx (obr: fallback for the time, may
 * be -1); category an observation-category code or NULL; part_of a
 * reference or NULL. Its id comes from order_key and n, its position. */
void fc_observation(fc *c, long obx, long obr, const char *order_key, unsigned n,
                    const char *category, const char *part_of, char ref[FC_REF]);
/* Patient, Encounter (when PV1 is there) and the NK1/AL1/DG1/IN1 segments. */
void fc_context(fc *c);

/* --- message converters ----------------------------------------------------- */

void fc_convert_adt(fc *c);
void fc_convert_merge(fc *c);
void fc_convert_oru(fc *c);
void fc_convert_order(fc *c);
void fc_convert_mdm(fc *c);
void fc_convert_rde(fc *c);
void fc_convert_vxu(fc *c);
void fc_convert_siu(fc *c);

#endif
