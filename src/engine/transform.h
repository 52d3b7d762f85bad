/*
 * transform: a channel's declarative transform steps (config_transform),
 * compiled once and applied to a parsed message.
 *
 * The engine applies them as it delivers: the stored message stays exactly
 * as received (it is the evidence of what the sender sent), and a corrected
 * map or step takes effect on reprocessing. A step that cannot be applied
 * (a unit that does not convert, a value that cannot be stored) fails the
 * delivery for good, so the message lands in the error queue with the
 * step's line in the configuration and the reason.
 *
 * Steps: set a path to a value; copy the raw value at one path to another;
 * delete every segment with an id; convert OBX-5 (value), OBX-6 (units) and
 * OBX-7 (reference range) of every OBX whose OBX-3.1 is a code, from the
 * unit in OBX-6.1 to a target UCUM unit, with an optional molar mass.
 * Non-numeric results ("POS", "see note") are left as they are. Map a
 * coded field (CWE/CE: code, text, coding system) or one value through a
 * code map (term/codemap.h), in every occurrence of the segment; unmapped
 * codes follow the map's policy (error: the step fails; warning, pass: the
 * value stays). Run a Lua transform (engine/script.h).
 */
#ifndef TERN_TRANSFORM_H
#define TERN_TRANSFORM_H

#include <stddef.h>

#include "base/tbuf.h"
#include "engine/config.h"
#include "hl7/hl7.h"
#include "term/codemap.h"

typedef struct transform_chain transform_chain;

/* Compiles steps (borrowed: they must outlive the chain) with the code maps
 * `maps` (borrowed; may be NULL when no step maps). Script steps load their
 * Lua file now. NULL with a reason in err when a step is unusable
 * (config_load already checks most). */
transform_chain *transform_compile(const config_transform *steps, size_t n,
                                   const codemap_registry *maps, tbuf *err);
void transform_free(transform_chain *c);

/* Applies every step to m in order. 0, or -1 with the reason in err (the
 * message may then be half transformed: throw it away). */
int transform_apply(transform_chain *c, hl7_msg *m, tbuf *err);

#endif
