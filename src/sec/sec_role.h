/*
 * sec_role: roles, actions, principals, and the one function that decides
 * whether a principal may do an action (sec_allowed).
 *
 * The role -> actions table is ROLE_ACTIONS in sec_role.c, the only place
 * permissions are written; docs/security.md shows the same table. A role is
 * a fixed set of actions; a principal bound to channels (a system identity)
 * may in addition act only on those channels. Anonymous may do nothing.
 */
#ifndef TERN_SEC_ROLE_H
#define TERN_SEC_ROLE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum sec_role {
    SEC_ROLE_NONE = 0, /* anonymous, or unknown */
    SEC_ROLE_ADMIN,
    SEC_ROLE_ENGINEER,
    SEC_ROLE_ANALYST,
    SEC_ROLE_AUDITOR,
    SEC_ROLE_SYSTEM,
    SEC_ROLE_COUNT
} sec_role;

typedef enum sec_action {
    SEC_MESSAGE_READ = 0, /* list and show stored messages (PHI) */
    SEC_MESSAGE_EXPORT,   /* raw bytes of stored messages out of the store (PHI) */
    SEC_MESSAGE_REPROCESS,
    SEC_MESSAGE_EDIT,
    SEC_MESSAGE_PRUNE,
    SEC_MESSAGE_POST, /* submit messages to a channel (HTTP source) */
    SEC_FHIR_READ,    /* FHIR read and search (PHI) */
    SEC_FHIR_WRITE,
    SEC_AUDIT_READ, /* search, verify and export the audit trail (no PHI) */
    SEC_USER_ADMIN, /* users and tokens */
    SEC_CONFIG_WRITE,
    SEC_ACTION_COUNT
} sec_action;

/* "admin", ...; "anonymous" for NONE. */
const char *sec_role_name(sec_role r);
/* The role with that name, or SEC_ROLE_NONE. */
sec_role sec_role_from_name(const char *name);
/* "message.read", ...; never NULL. */
const char *sec_action_name(sec_action a);

typedef enum sec_kind {
    SEC_KIND_ANONYMOUS = 0,
    SEC_KIND_USER,  /* a person, through a session token */
    SEC_KIND_TOKEN, /* a system identity's API token */
    SEC_KIND_CERT,  /* a system identity's client certificate */
    SEC_KIND_LOCAL, /* the CLI with security turned off */
} sec_kind;

/* Who is asking. name is a user name, "token:NAME" or "cert:NAME".
 * channels is a comma-separated list (owned; NULL: not bound to channels).
 * Release with sec_principal_clear. */
typedef struct sec_principal {
    sec_kind kind;
    sec_role role;
    char name[96];
    char *channels;
} sec_principal;

void sec_principal_clear(sec_principal *p);
/* True when the comma-separated list holds channel. */
bool sec_channel_in(const char *list, const char *channel);

/* The decision: p may do action (on channel, when the action concerns one;
 * NULL otherwise). A principal bound to channels may act only on them, and
 * an action that concerns a channel needs one given. */
bool sec_allowed(const sec_principal *p, sec_action action, const char *channel);

#endif
