/*
 * codemap: code maps (terminology translation tables) and a registry of them.
 *
 * A code map translates (source system, source code) into (target system,
 * target code, display): local lab codes to LOINC, local or brand medication
 * names to RxNorm, and so on. Maps load from CSV or from a FHIR R4
 * ConceptMap (JSON) and are looked up with a hash table keyed on the source
 * code, normalised once at load time (exact, or caseless with whitespace
 * collapsed for free-text keys such as medication names).
 *
 * A map does not decide what happens to a code it does not hold: it carries
 * an `unmapped` policy (error, warning or pass) and every lookup returns
 * found / not found together with that policy, so the caller (the Lua map()
 * function, the engine) acts on it.
 *
 * A map is immutable once loaded and lookups do not write to it, so one map
 * may be read from several threads. A codemap_registry owns a set of named
 * maps; there is no global registry.
 */
#ifndef TERN_CODEMAP_H
#define TERN_CODEMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum codemap_status {
    CODEMAP_OK = 0,
    CODEMAP_ERR_IO,        /* the file cannot be read */
    CODEMAP_ERR_FORMAT,    /* malformed CSV or JSON, or a missing column/member */
    CODEMAP_ERR_DUPLICATE, /* a source code (or map name) given twice */
    CODEMAP_ERR_OPTION,    /* an unknown policy or match name */
} codemap_status;

/* Returns a static name for a status; never NULL. */
const char *codemap_strerror(codemap_status s);

/* What went wrong and where. line/column are 1-based, 0 when unknown;
 * `text` names the file, the place and what to do. */
typedef struct codemap_error {
    codemap_status code;
    uint32_t line;
    uint32_t column;
    char text[320];
} codemap_error;

/* What the caller should do with a code that is not in the map. */
typedef enum codemap_unmapped {
    CODEMAP_UNMAPPED_ERROR = 0, /* treat as an error (message to the error queue) */
    CODEMAP_UNMAPPED_WARNING,   /* carry on, but log a warning */
    CODEMAP_UNMAPPED_PASS,      /* carry on silently */
} codemap_unmapped;

/* How source codes are compared. */
typedef enum codemap_match {
    CODEMAP_MATCH_EXACT = 0, /* byte for byte */
    CODEMAP_MATCH_CASELESS,  /* ASCII case folded, whitespace runs -> one space, trimmed */
} codemap_match;

typedef struct codemap_options {
    codemap_unmapped unmapped;
    codemap_match match;
} codemap_options;

/* unmapped = error, match = exact. */
void codemap_options_default(codemap_options *opt);

/* "error" | "warning" | "pass"; "exact" | "caseless". CODEMAP_ERR_OPTION on
 * anything else (err may be NULL). */
codemap_status codemap_unmapped_parse(const char *s, codemap_unmapped *out, codemap_error *err);
codemap_status codemap_match_parse(const char *s, codemap_match *out, codemap_error *err);
const char *codemap_unmapped_name(codemap_unmapped u);

typedef struct codemap codemap;

/* Returns a new empty map; name is copied; opt NULL means defaults. Never NULL. */
codemap *codemap_new(const char *name, const codemap_options *opt);
void codemap_free(codemap *m);

/* Adds one row. source_system, target_system and display may be NULL or ""
 * (absent). CODEMAP_ERR_DUPLICATE when (source_system, source_code) is
 * already there (after normalisation); CODEMAP_ERR_FORMAT when source_code
 * or target_code is empty. All strings are copied. */
codemap_status codemap_add(codemap *m, const char *source_system, const char *source_code,
                           const char *target_system, const char *target_code, const char *display,
                           codemap_error *err);

/* Loads a CSV file: a header line naming the columns (source_code and
 * target_code required; source_system, target_system, target_display
 * optional; other columns ignored), then one row per code. RFC 4180 quoting;
 * unquoted fields are trimmed. On failure *out is NULL and err has the line. */
codemap_status codemap_load_csv(const char *path, const char *name, const codemap_options *opt,
                                codemap **out, codemap_error *err);
/* The same from a buffer; `origin` names it in error messages. */
codemap_status codemap_parse_csv(const char *text, size_t len, const char *origin, const char *name,
                                 const codemap_options *opt, codemap **out, codemap_error *err);

/* Loads a FHIR ConceptMap (R4; R5 `relationship` accepted too): every
 * group[].element[].target[] becomes a row with group.source/target as the
 * systems; targets with equivalence unmatched/disjoint (relationship
 * not-related-to) are skipped; when an element has several targets the first
 * usable one wins. Malformed JSON reports jansson's line and column. */
codemap_status codemap_load_conceptmap(const char *path, const char *name,
                                       const codemap_options *opt, codemap **out,
                                       codemap_error *err);

/* The same from a buffer; `origin` names it in error messages. */
codemap_status codemap_parse_conceptmap(const char *text, size_t len, const char *origin,
                                        const char *name, const codemap_options *opt, codemap **out,
                                        codemap_error *err);

/* Picks the loader by extension: .json -> ConceptMap, anything else -> CSV. */
codemap_status codemap_load_file(const char *path, const char *name, const codemap_options *opt,
                                 codemap **out, codemap_error *err);

/* One lookup's answer. The strings point into the map (valid until it is
 * freed or added to); system and display are NULL when the row has none. When !found,
 * only `unmapped` is meaningful. */
typedef struct codemap_result {
    bool found;
    codemap_unmapped unmapped;
    uint32_t row; /* the row's 0-based index, the same for the map's life (for
                   * callers that keep something per row), below codemap_size() */
    const char *target_system;
    const char *target_code;
    const char *target_display;
} codemap_result;

/* Looks up code[0..len). source_system NULL or "" matches any row; a given
 * system matches rows with that system or with none (a row with a system is
 * preferred). Returns out->found. */
bool codemap_lookup(const codemap *m, const char *source_system, const char *code, size_t len,
                    codemap_result *out);
/* codemap_lookup() with the system given as system[0..system_len) (no NUL
 * inside; length 0 matches any row, as NULL does), for callers that hold
 * spans of a message. */
bool codemap_lookup_span(const codemap *m, const char *source_system, size_t system_len,
                         const char *code, size_t len, codemap_result *out);

const char *codemap_name(const codemap *m);
size_t codemap_size(const codemap *m);
codemap_unmapped codemap_policy(const codemap *m);

/* --- registry ------------------------------------------------------------ */

typedef struct codemap_registry codemap_registry;

/* Never NULL. Freeing the registry frees every map in it. */
codemap_registry *codemap_registry_new(void);
void codemap_registry_free(codemap_registry *r);
/* Takes ownership of m on success; CODEMAP_ERR_DUPLICATE (m still the
 * caller's) when a map with that name is already registered. */
codemap_status codemap_registry_add(codemap_registry *r, codemap *m, codemap_error *err);
/* The map with that name, or NULL. Borrowed from the registry. */
const codemap *codemap_registry_get(const codemap_registry *r, const char *name);
size_t codemap_registry_count(const codemap_registry *r);

#endif
