/*
 * sec_role: the role table and sec_allowed. See sec_role.h.
 *
 * Least privilege: each role lists what it may do; everything else is
 * refused. admin holds every action. engineer runs the engine (configuration,
 * reprocess, edit, reading the messages it repairs) but administers no one
 * and cannot prune. analyst reads messages and FHIR data. auditor reads the
 * audit trail only, which holds no PHI beyond patient ids. system posts to
 * (and writes FHIR on) its own channels only.
 */
#include "sec/sec_role.h"

#include <stdlib.h>
#include <string.h>

#define A(x) (1u << (x))

static const unsigned ROLE_ACTIONS[SEC_ROLE_COUNT] = {
    [SEC_ROLE_NONE] = 0,
    [SEC_ROLE_ADMIN] = (1u << SEC_ACTION_COUNT) - 1,
    [SEC_ROLE_ENGINEER] = A(SEC_CONFIG_WRITE) | A(SEC_MESSAGE_REPROCESS) | A(SEC_MESSAGE_EDIT) |
                          A(SEC_MESSAGE_READ),
    [SEC_ROLE_ANALYST] = A(SEC_MESSAGE_READ) | A(SEC_MESSAGE_EXPORT) | A(SEC_FHIR_READ),
    [SEC_ROLE_AUDITOR] = A(SEC_AUDIT_READ),
    [SEC_ROLE_SYSTEM] = A(SEC_MESSAGE_POST) | A(SEC_FHIR_WRITE),
};

/* Actions that concern one channel: a bound principal needs it in its list. */
static const unsigned CHANNEL_ACTIONS = A(SEC_MESSAGE_POST) | A(SEC_FHIR_WRITE);

static const char *const ROLE_NAMES[SEC_ROLE_COUNT] = {
    "anonymous", "admin", "engineer", "analyst", "auditor", "system",
};

static const char *const ACTION_NAMES[SEC_ACTION_COUNT] = {
    [SEC_MESSAGE_READ] = "message.read",
    [SEC_MESSAGE_EXPORT] = "message.export",
    [SEC_MESSAGE_REPROCESS] = "message.reprocess",
    [SEC_MESSAGE_EDIT] = "message.edit",
    [SEC_MESSAGE_PRUNE] = "message.prune",
    [SEC_MESSAGE_POST] = "message.post",
    [SEC_FHIR_READ] = "fhir.read",
    [SEC_FHIR_WRITE] = "fhir.write",
    [SEC_AUDIT_READ] = "audit.read",
    [SEC_USER_ADMIN] = "user.admin",
    [SEC_CONFIG_WRITE] = "config.write",
};

const char *sec_role_name(sec_role r)
{
    return r >= 0 && r < SEC_ROLE_COUNT ? ROLE_NAMES[r] : "anonymous";
}

sec_role sec_role_from_name(const char *name)
{
    for (int r = SEC_ROLE_ADMIN; name && r < SEC_ROLE_COUNT; r++)
        if (!strcmp(ROLE_NAMES[r], name)) return (sec_role)r;
    return SEC_ROLE_NONE;
}

const char *sec_action_name(sec_action a)
{
    return a >= 0 && a < SEC_ACTION_COUNT ? ACTION_NAMES[a] : "unknown";
}

void sec_principal_clear(sec_principal *p)
{
    free(p->channels);
    memset(p, 0, sizeof *p);
}

bool sec_channel_in(const char *list, const char *channel)
{
    size_t n = strlen(channel);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !memcmp(p, channel, n)) return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

bool sec_allowed(const sec_principal *p, sec_action action, const char *channel)
{
    if (!p || action < 0 || action >= SEC_ACTION_COUNT) return false;
    if (p->role <= SEC_ROLE_NONE || p->role >= SEC_ROLE_COUNT) return false;
    if (!(ROLE_ACTIONS[p->role] & A(action))) return false;
    if (CHANNEL_ACTIONS & A(action)) {
        if (p->role == SEC_ROLE_SYSTEM && !p->channels) return false;
        if (p->channels && (!channel || !sec_channel_in(p->channels, channel))) return false;
    }
    return true;
}
