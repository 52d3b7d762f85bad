/*
 * hl7_tables: HL7 code tables (built-in HL7 tables and user tables from CSV).
 *
 * A table is a name ("0001", or any user name such as "LOCALSEX"), a title
 * and its entries sorted by code (bytewise), so a lookup is a binary search
 * and never allocates. Codes are compared exactly: HL7 codes are
 * case-sensitive. The built-in tables are static const data; user tables are
 * read from CSV into a registry that owns them.
 *
 * A registry (hl7_tables) answers "which table is called X": a user table
 * of that name if one was loaded (so a site can replace, e.g., its 0203),
 * else the built-in one. The registry is immutable once loading is done and
 * may then be shared read-only between threads.
 *
 * CSV format (docs/validation.md): a header line (skipped), then one
 * "code,display" row per line; fields may be quoted ("a, b" and "" for a
 * quote); UTF-8 (a leading byte order mark is skipped); CRLF or LF; blank
 * lines are ignored. Every malformed row is an error naming its line.
 */
#ifndef TERN_HL7_TABLES_H
#define TERN_HL7_TABLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum hl7_table_status {
    HL7_TABLE_OK = 0,
    HL7_TABLE_ERR_IO,   /* the file cannot be read */
    HL7_TABLE_ERR_CSV,  /* a malformed CSV row, duplicate or empty code, bad UTF-8 */
    HL7_TABLE_ERR_NAME, /* an unusable table name */
} hl7_table_status;

/* A static, human-readable name for a status; never NULL. */
const char *hl7_table_strerror(hl7_table_status s);

/* Where and why loading failed: line is 1-based (0 when not about a line). */
typedef struct hl7_table_error {
    hl7_table_status code;
    size_t line;
    char text[256];
} hl7_table_error;

typedef struct hl7_table_entry {
    const char *code;
    const char *display;
} hl7_table_entry;

/* Invariant: entries[0..n) sorted by strcmp on code, codes unique.
 * slots, when not NULL, is a hash index of the entries that lookups use
 * instead of bisecting: mask + 1 slots, each 0 (empty) or 1 + the index of
 * an entry; the tables a registry hands out have one. */
typedef struct hl7_table {
    const char *name;
    const char *title;
    const hl7_table_entry *entries;
    size_t n;
    const uint32_t *slots;
    size_t mask;
} hl7_table;

/* The entry whose code is exactly code[0..len), or NULL. */
const hl7_table_entry *hl7_table_lookup(const hl7_table *t, const char *code, size_t len);
static inline bool hl7_table_has(const hl7_table *t, const char *code, size_t len)
{
    return hl7_table_lookup(t, code, len) != NULL;
}

/* Built-in tables: 0001 0002 0003 0004 0061 0076 0078 0085 0103 0104 0123
 * 0125 0203 0301 (see docs/validation.md). Static; never freed. */
const hl7_table *hl7_table_builtin(const char *name);
size_t hl7_table_builtin_count(void);
const hl7_table *hl7_table_builtin_at(size_t i);

typedef struct hl7_tables hl7_tables;

/* A registry holding the built-in tables and no user table. Never NULL. */
hl7_tables *hl7_tables_new(void);
void hl7_tables_free(hl7_tables *r);

/* The user table called name, else the built-in one, else NULL. The table
 * is owned by r (or static) and valid until hl7_tables_free(r). */
const hl7_table *hl7_tables_find(const hl7_tables *r, const char *name);

/* Adds (or replaces) user table `name` from CSV text[0..len). origin names
 * the source in messages ("tables/sex.csv"; NULL: "<text>"). On failure
 * nothing is added and err says which line is wrong and why. Names are 1 to
 * 32 letters, digits, '_', '-' or '.'. */
hl7_table_status hl7_tables_add_csv(hl7_tables *r, const char *name, const char *text, size_t len,
                                    const char *origin, hl7_table_error *err);
/* hl7_tables_add_csv() on the content of the file at path. */
hl7_table_status hl7_tables_load_csv(hl7_tables *r, const char *name, const char *path,
                                     hl7_table_error *err);

#endif
