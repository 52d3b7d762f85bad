/*
 * hl7_json: a message as JSON, for people and scripts.
 *
 * Shape: {"segments":[{"id":"PID","fields":[F1, F2, ...]}, ...]} where each
 * field Fn is an array of repetitions; a repetition is a string when it has
 * one component, else an array of components; a component is a string when
 * it has one subcomponent, else an array of subcomponents. Values are
 * unescaped UTF-8; the explicit null "" is JSON null; an empty field is [""].
 * MSH-1 and MSH-2 are given as they are (["|"], ["^~\\&"]). The nesting is
 * fixed by position, so a reader can always tell which level it is at.
 */
#ifndef TERN_HL7_JSON_H
#define TERN_HL7_JSON_H

#include "hl7/hl7.h"

/* Appends the JSON object for m to out. When offset_known, adds
 * "offset": byte offset of the message in its input. No trailing newline. */
void hl7_json_write(const hl7_msg *m, bool offset_known, size_t offset, tbuf *out);

/* Appends s[0..n) as a JSON string literal (quotes included). s must be
 * UTF-8; control characters are escaped. */
void json_put_string(tbuf *out, const char *s, size_t n);

#endif
