/*
 * cli_user: `tern user add|list|disable|enable|passwd|mfa-reset`, the
 * people who may use Tern (docs/security.md).
 *
 * Every action needs the user.admin right (an admin's token), except that
 * `user add --role admin` works without a token while the security database
 * has no enabled admin: that is how the first admin is made, by whoever can
 * read the configuration and write the database file. `passwd` also lets a
 * user change their own password. Every change is audited.
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/config.h"
#include "sec/sec.h"

static const char usage[] =
    "usage: tern user -c CONF add NAME --role ROLE [--password-stdin]\n"
    "       tern user -c CONF list\n"
    "       tern user -c CONF disable|enable|mfa-reset NAME\n"
    "       tern user -c CONF passwd NAME [--password-stdin]\n"
    "\n"
    "Manages the people who use Tern. Roles: admin, engineer, analyst, auditor\n"
    "(docs/security.md). 'add' and 'mfa-reset' print the TOTP secret and the\n"
    "otpauth:// URI to enter in an authenticator app; logins need its codes.\n"
    "While no admin exists, 'add --role admin' works without a token: that\n"
    "makes the first admin. Otherwise an admin's token is needed.\n"
    "\n"
    "options:\n"
    "  -c, --config CONF   the engine's configuration (security section)\n"
    "      --token TOKEN   who you are (default: $TERN_TOKEN)\n"
    "      --role ROLE     add: the user's role\n"
    "      --password-stdin  read the password from the first line of stdin\n"
    "                        (else it is asked twice on the terminal)\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit codes: 0 done, 1 refused or failed, 2 usage.\n";

enum { OPT_TOKEN = 256, OPT_ROLE, OPT_PWSTDIN };

typedef struct args {
    const char *conf, *token, *role, *action, *name;
    bool pw_stdin;
} args;

static int parse(int argc, char **argv, args *a)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"token", required_argument, NULL, OPT_TOKEN},
        {"role", required_argument, NULL, OPT_ROLE},
        {"password-stdin", no_argument, NULL, OPT_PWSTDIN}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': a->conf = optarg; break;
        case OPT_TOKEN: a->token = optarg; break;
        case OPT_ROLE: a->role = optarg; break;
        case OPT_PWSTDIN: a->pw_stdin = true; break;
        case 'h': fputs(usage, stdout); return CLI_OK;
        case ':': return cli_usage_error("user", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("user", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cli_usage_error("user", "needs a command: add, list, disable, enable, passwd or "
                                       "mfa-reset");
    a->action = argv[optind++];
    if (optind < argc) a->name = argv[optind++];
    if (optind < argc) return cli_usage_error("user", "unexpected argument '%s'", argv[optind]);
    if (!a->conf) return cli_usage_error("user", "needs -c CONF");
    bool needs_name = strcmp(a->action, "list") != 0;
    if (needs_name && !a->name) return cli_usage_error("user", "%s needs a user name", a->action);
    return -1;
}

static int read_password(const args *a, char *pw, size_t size)
{
    char again[256];
    if (cli_read_secret("password: ", a->pw_stdin, pw, size) != 0) {
        fprintf(stderr, "tern user: no password: type it on a terminal or use --password-stdin\n");
        return CLI_INVALID;
    }
    if (!a->pw_stdin) {
        if (cli_read_secret("again: ", false, again, sizeof again) != 0 || strcmp(pw, again)) {
            fprintf(stderr, "tern user: the two passwords differ\n");
            return CLI_INVALID;
        }
    }
    return CLI_OK;
}

static void print_secret(const char *name, const char *secret)
{
    tbuf uri = TBUF_INIT;
    sec_otpauth_uri(name, secret, &uri);
    printf("TOTP secret: %s\n%s\n", secret, uri.p);
    tbuf_free(&uri);
}

static bool list_row(void *ctx, const sec_user *u)
{
    int64_t now = *(int64_t *)ctx;
    char when[32];
    time_t t = (time_t)(u->created_at / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *state = u->disabled ? "disabled" : u->locked_until > now ? "locked" : "active";
    printf("%-24s %-9s %-9s %d %s\n", u->name, sec_role_name(u->role), state, u->failed, when);
    return true;
}

int cli_user(int argc, char **argv)
{
    args a = {0};
    int rc = parse(argc, argv, &a);
    if (rc >= 0) return rc;
    sec_role role = SEC_ROLE_NONE;
    if (!strcmp(a.action, "add")) {
        role = sec_role_from_name(a.role);
        if (role == SEC_ROLE_NONE || role == SEC_ROLE_SYSTEM)
            return cli_usage_error("user", "add needs --role admin, engineer, analyst or auditor");
    } else if (strcmp(a.action, "list") && strcmp(a.action, "disable") &&
               strcmp(a.action, "enable") && strcmp(a.action, "passwd") &&
               strcmp(a.action, "mfa-reset")) {
        return cli_usage_error("user", "unknown command '%s'", a.action);
    }
    tern_config *cfg = cli_load_config("user", a.conf);
    if (!cfg) return CLI_INVALID;
    sec_ctx *sec = NULL;
    sec_principal who = {0};
    sec_error err = {0};
    rc = cli_sec_open("user", &cfg->security, &sec);
    if (rc != CLI_OK) goto done;
    int64_t admins = 0;
    if ((rc = sec->db->ops->user_count(sec->db, SEC_ROLE_ADMIN, &admins, &err)) != SEC_OK) {
        fprintf(stderr, "tern user: %s\n", err.text);
        rc = CLI_INVALID;
        goto done;
    }
    bool bootstrap = role == SEC_ROLE_ADMIN && admins == 0;
    if (bootstrap) {
        who.kind = SEC_KIND_LOCAL;
        who.role = SEC_ROLE_ADMIN;
        snprintf(who.name, sizeof who.name, "bootstrap");
    } else if ((rc = cli_sec_who("user", sec, a.token, &who)) != CLI_OK) {
        goto done;
    }
    bool self = !strcmp(a.action, "passwd") && !strcmp(who.name, a.name);
    if (!self && (rc = cli_sec_require("user", sec, &who, SEC_USER_ADMIN, NULL)) != CLI_OK)
        goto done;
    char pw[256], secret[64];
    sec_status st = SEC_OK;
    int64_t now = sec_now_ms();
    if (!strcmp(a.action, "add")) {
        if ((rc = read_password(&a, pw, sizeof pw)) != CLI_OK) goto done;
        st = sec_user_create(sec->db, sec->cfg, a.name, role, pw, now, secret, &err);
        if (st == SEC_OK) {
            printf("user %s added with role %s%s\n", a.name, sec_role_name(role),
                   bootstrap ? " (the first admin)" : "");
            print_secret(a.name, secret);
        }
    } else if (!strcmp(a.action, "list")) {
        st = sec->db->ops->user_list(sec->db, list_row, &now, &err);
    } else if (!strcmp(a.action, "disable") || !strcmp(a.action, "enable")) {
        st = sec_user_set_disabled(sec->db, a.name, a.action[0] == 'd', &err);
        if (st == SEC_OK) printf("user %s %sd\n", a.name, a.action);
    } else if (!strcmp(a.action, "passwd")) {
        if ((rc = read_password(&a, pw, sizeof pw)) != CLI_OK) goto done;
        st = sec_user_set_password(sec->db, sec->cfg, a.name, pw, &err);
        if (st == SEC_OK) printf("password of %s changed; its sessions are ended\n", a.name);
    } else {
        st = sec_user_reset_mfa(sec->db, a.name, secret, &err);
        if (st == SEC_OK) {
            printf("new TOTP secret for %s; the old codes no longer work\n", a.name);
            print_secret(a.name, secret);
        }
    }
    memset(pw, 0, sizeof pw);
    char what[160];
    snprintf(what, sizeof what, "user %s %s%s%s", a.action, a.name ? a.name : "",
             a.role ? " role " : "", a.role ? a.role : "");
    if (strcmp(a.action, "list"))
        sec_record_event(sec, &who, "user.admin", NULL, NULL, "cli", st == SEC_OK ? "ok" : "failed",
                         what);
    if (st != SEC_OK) {
        fprintf(stderr, "tern user: %s\n", err.text);
        rc = CLI_INVALID;
    }
done:
    sec_principal_clear(&who);
    cli_sec_close(sec);
    config_free(cfg);
    return rc;
}
