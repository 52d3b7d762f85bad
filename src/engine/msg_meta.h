/*
 * msg_meta: the header fields a stored message is searched by, read from a
 * parsed message in one place for everyone who stores messages (the engine
 * on arrival, `tern messages edit` for a corrected revision).
 *
 * Values are decoded (escapes resolved, UTF-8), as a person would type them
 * in a search. The struct owns its strings (all in strs, which the fields
 * point into); msg_meta_view() lends them to a store_meta for the duration
 * of a store call.
 */
#ifndef TERN_MSG_META_H
#define TERN_MSG_META_H

#include "hl7/hl7.h"
#include "store/store.h"

typedef struct msg_meta {
    char *msh9;       /* "ADT^A01" (MSH-9.1^MSH-9.2), "ADT" without a trigger */
    char *control_id; /* MSH-10 */
    char *send_app, *send_fac, *recv_app, *recv_fac; /* MSH-3..6 */
    char *patient_id; /* PID-3.1 */
    char **orders;    /* ORC-2.1, ORC-3.1, OBR-2.1, OBR-3.1 of every occurrence, once each */
    size_t norders;
    char *strs;       /* owns every string above */
} msg_meta;

/* Fills out (which must be zeroed or freed) from m; absent values are NULL. */
void msg_meta_extract(const hl7_msg *m, msg_meta *out);
/* A store_meta borrowing mm's strings. */
store_meta msg_meta_view(const msg_meta *mm);
/* Frees the strings and zeroes mm. */
void msg_meta_free(msg_meta *mm);

#endif
