/*
 * fhir_json: compact JSON text of a jansson tree, written straight into a
 * tbuf; the text is byte for byte what json_dumps(j, JSON_COMPACT |
 * JSON_REAL_PRECISION(p)) gives, several times faster (no callback per
 * token, no loop-detection table, an ASCII fast path for strings).
 *
 * Meant for trees the program built itself (Bundles from fhir_convert):
 * it does not check for reference cycles and recurses once per nesting
 * level.
 */
#ifndef TERN_FHIR_JSON_H
#define TERN_FHIR_JSON_H

#include <jansson.h>

#include "base/tbuf.h"

/* Appends the compact JSON text of j to out. real_precision is the number
 * of significant digits of reals (1..17; 0 means 17, jansson's default). */
void fhir_json_write(const json_t *j, int real_precision, tbuf *out);

#endif
