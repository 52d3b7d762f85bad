/*
 * engine_tls: the engine's TLS contexts, one per configured `tls:` block,
 * kept in one set so that `tern serve` can reload them all on SIGHUP.
 *
 * Sources and destination drivers ask the set for the context of their
 * block (eng_tls_get(); asking twice for the same block gives the same
 * context) and borrow it: the set owns every context and frees them with
 * itself, after the listeners and clients that use them. Log lines (refused
 * handshakes, reloads) are prefixed with the owner's name.
 */
#ifndef TERN_ENGINE_TLS_H
#define TERN_ENGINE_TLS_H

#include <stdbool.h>

#include "base/tbuf.h"
#include "engine/config.h"
#include "net/tls.h"

typedef struct eng_tls_set eng_tls_set;

/* Never NULL. */
eng_tls_set *eng_tls_set_new(void);
/* Frees every context; NULL is a no-op. */
void eng_tls_set_free(eng_tls_set *s);

/* The context for block t (borrowed from the configuration, which must
 * outlive the set), made on first use. who names the owner in logs
 * ("channel 'adt-in'", "http"). NULL with err on failure. */
tls_ctx *eng_tls_get(eng_tls_set *s, const config_tls *t, bool server, const char *who, tbuf *err);

/* Reloads every context from its files; a context whose new files are bad
 * keeps the old ones. Logs one line per context. Returns how many failed. */
int eng_tls_reload_all(eng_tls_set *s);

#endif
