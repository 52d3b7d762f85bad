/*
 * cli_token: `tern token create|list|revoke`, the system identities (API
 * tokens and client certificates) and the channels each may use. Needs
 * user.admin; every change is audited. A token is printed once, at
 * creation; only its SHA-256 is kept.
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/tbuf.h"
#include "engine/config.h"
#include "sec/sec.h"

static const char usage[] =
    "usage: tern token -c CONF create --name N --channel C... [--role ROLE]\n"
    "       tern token -c CONF create --name N --cert SHA256 [--subject S] --channel C...\n"
    "       tern token -c CONF list\n"
    "       tern token -c CONF revoke NAME\n"
    "\n"
    "System identities: an API token (random 256 bits, printed once, stored as\n"
    "its SHA-256) or a client certificate (its SHA-256 fingerprint), bound to\n"
    "the channels it may post to. The role is 'system' unless --role says\n"
    "otherwise (e.g. an analyst token for a reporting job).\n"
    "\n"
    "options:\n"
    "  -c, --config CONF   the engine's configuration (security section)\n"
    "      --token TOKEN   who you are (an admin; default: $TERN_TOKEN)\n"
    "      --name N        the identity's name\n"
    "      --channel C     a channel it may use (repeatable)\n"
    "      --role ROLE     its role (default: system)\n"
    "      --cert SHA256   a client certificate's fingerprint instead of a token\n"
    "      --subject S     the certificate's subject, for people reading the list\n"
    "  -h, --help          show this help\n";

enum { OPT_TOKEN = 256, OPT_NAME, OPT_CHANNEL, OPT_ROLE, OPT_CERT, OPT_SUBJECT };

static bool list_row(void *ctx, const sec_ident *t)
{
    printf("%-20s %-5s %-8s %-8s %s%s%s\n", t->name, t->kind == SEC_IDENT_CERT ? "cert" : "token",
           sec_role_name(t->role), t->revoked_at ? "revoked" : "active",
           t->channels[0] ? t->channels : "-", t->subject[0] ? " " : "", t->subject);
    return true;
}

int cli_token(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"token", required_argument, NULL, OPT_TOKEN},
        {"name", required_argument, NULL, OPT_NAME},
        {"channel", required_argument, NULL, OPT_CHANNEL},
        {"role", required_argument, NULL, OPT_ROLE}, {"cert", required_argument, NULL, OPT_CERT},
        {"subject", required_argument, NULL, OPT_SUBJECT}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *conf = NULL, *token = NULL, *name = NULL, *role_name = "system", *cert = NULL,
               *subject = NULL;
    tbuf channels = TBUF_INIT;
    int c, rc = -1;
    optind = 0;
    opterr = 0;
    while (rc < 0 && (c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': conf = optarg; break;
        case OPT_TOKEN: token = optarg; break;
        case OPT_NAME: name = optarg; break;
        case OPT_ROLE: role_name = optarg; break;
        case OPT_CERT: cert = optarg; break;
        case OPT_SUBJECT: subject = optarg; break;
        case OPT_CHANNEL:
            if (strchr(optarg, ','))
                rc = cli_usage_error("token", "give --channel once per channel");
            if (channels.len) tbuf_putc(&channels, ',');
            tbuf_puts(&channels, optarg);
            break;
        case 'h': fputs(usage, stdout); rc = CLI_OK; break;
        case ':': rc = cli_usage_error("token", "option '%s' needs a value", argv[optind - 1]); break;
        default: rc = cli_usage_error("token", "unknown option '%s'", argv[optind - 1]); break;
        }
    }
    const char *action = optind < argc ? argv[optind] : NULL;
    const char *arg = optind + 1 < argc ? argv[optind + 1] : NULL;
    sec_role role = sec_role_from_name(role_name);
    if (rc >= 0) goto out;
    if (!action || (strcmp(action, "create") && strcmp(action, "list") && strcmp(action, "revoke")))
        rc = cli_usage_error("token", "needs a command: create, list or revoke");
    else if (!conf)
        rc = cli_usage_error("token", "needs -c CONF");
    else if (!strcmp(action, "create") && (!name || !channels.len || role == SEC_ROLE_NONE))
        rc = cli_usage_error("token", "create needs --name, a known --role and at least one "
                                      "--channel");
    else if (!strcmp(action, "revoke") && !arg)
        rc = cli_usage_error("token", "revoke needs the token's name");
    if (rc >= 0) goto out;
    tern_config *cfg = cli_load_config("token", conf);
    if (!cfg) {
        rc = CLI_INVALID;
        goto out;
    }
    sec_ctx *sec = NULL;
    sec_principal who = {0};
    sec_error err = {0};
    sec_status st = SEC_OK;
    if ((rc = cli_sec_open("token", &cfg->security, &sec)) != CLI_OK ||
        (rc = cli_sec_who("token", sec, token, &who)) != CLI_OK ||
        (rc = cli_sec_require("token", sec, &who, SEC_USER_ADMIN, NULL)) != CLI_OK)
        goto done;
    int64_t now = sec_now_ms();
    if (!strcmp(action, "list")) {
        st = sec->db->ops->ident_list(sec->db, list_row, NULL, &err);
    } else if (!strcmp(action, "revoke")) {
        st = sec->db->ops->ident_revoke(sec->db, arg, now, &err);
        if (st == SEC_OK) printf("%s revoked\n", arg);
    } else if (cert) {
        st = sec_cert_create(sec->db, name, cert, subject, channels.p, now, &err);
        if (st == SEC_OK) printf("certificate %s may use: %s\n", name, channels.p);
    } else {
        char secret[SEC_TOKEN_TEXT];
        st = sec_token_create(sec->db, name, role, channels.p, now, secret, &err);
        if (st == SEC_OK) {
            printf("%s\n", secret);
            fprintf(stderr, "token %s (role %s, channels %s) created; it is shown only now\n", name,
                    sec_role_name(role), channels.p);
        }
        memset(secret, 0, sizeof secret);
    }
    if (strcmp(action, "list")) {
        char what[300];
        snprintf(what, sizeof what, "token %s %s%s%s", action, name ? name : arg,
                 channels.len ? " channels " : "", channels.len ? channels.p : "");
        sec_record_event(sec, &who, "user.admin", NULL, NULL, "cli", st == SEC_OK ? "ok" : "failed",
                         what);
    }
    if (st != SEC_OK) {
        fprintf(stderr, "tern token: %s\n", err.text);
        rc = CLI_INVALID;
    }
done:
    sec_principal_clear(&who);
    cli_sec_close(sec);
    config_free(cfg);
out:
    tbuf_free(&channels);
    return rc;
}
