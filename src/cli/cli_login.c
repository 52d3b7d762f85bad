/*
 * cli_login: `tern login`, a user's password and TOTP code for a session
 * token, printed once on stdout (use it as TERN_TOKEN or as an HTTP Bearer
 * token). Success and failure are audited, with "cli" as the origin.
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "engine/config.h"
#include "sec/sec.h"

static const char usage[] =
    "usage: tern login -c CONF --user NAME [--password-stdin] [--totp CODE]\n"
    "\n"
    "Prints a session token for NAME. The password is asked on the terminal\n"
    "(or read from the first line of stdin with --password-stdin); the TOTP\n"
    "code from the authenticator app is asked too unless --totp gives it (with\n"
    "--password-stdin it may also be the second line of stdin).\n"
    "\n"
    "  export TERN_TOKEN=$(tern login -c tern.yaml --user ann)\n"
    "\n"
    "options:\n"
    "  -c, --config CONF   the engine's configuration (security section)\n"
    "      --user NAME     who logs in\n"
    "      --totp CODE     the 6-digit code\n"
    "      --password-stdin  read the password from stdin\n"
    "  -h, --help          show this help\n";

enum { OPT_USER = 256, OPT_TOTP, OPT_PWSTDIN };

int cli_login(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"user", required_argument, NULL, OPT_USER},
                                         {"totp", required_argument, NULL, OPT_TOTP},
                                         {"password-stdin", no_argument, NULL, OPT_PWSTDIN},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *conf = NULL, *user = NULL, *totp = NULL;
    bool pw_stdin = false;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': conf = optarg; break;
        case OPT_USER: user = optarg; break;
        case OPT_TOTP: totp = optarg; break;
        case OPT_PWSTDIN: pw_stdin = true; break;
        case 'h': fputs(usage, stdout); return CLI_OK;
        case ':': return cli_usage_error("login", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("login", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("login", "unexpected argument '%s'", argv[optind]);
    if (!conf || !user) return cli_usage_error("login", "needs -c CONF and --user NAME");
    char pw[256], code[32];
    if (cli_read_secret("password: ", pw_stdin, pw, sizeof pw) != 0) {
        fprintf(stderr, "tern login: no password: type it on a terminal or use --password-stdin\n");
        return CLI_INVALID;
    }
    if (!totp) {
        if (cli_read_secret("code: ", pw_stdin, code, sizeof code) != 0) {
            fprintf(stderr, "tern login: no TOTP code: give --totp CODE\n");
            return CLI_INVALID;
        }
        totp = code;
    }
    tern_config *cfg = cli_load_config("login", conf);
    if (!cfg) return CLI_INVALID;
    sec_ctx *sec = NULL;
    int rc = cli_sec_open("login", &cfg->security, &sec);
    if (rc == CLI_OK) {
        char token[SEC_TOKEN_TEXT];
        sec_principal who = {0};
        sec_error err = {0};
        if (sec_login(sec->db, sec->cfg, user, pw, totp, sec_now_ms(), token, &who, &err) ==
            SEC_OK) {
            printf("%s\n", token);
            sec_record_event(sec, &who, "login", NULL, NULL, "cli", "ok", "session started");
        } else {
            fprintf(stderr, "tern login: %s\n", err.text);
            snprintf(who.name, sizeof who.name, "%s", user);
            sec_record_event(sec, &who, "login", NULL, NULL, "cli", "failed", err.text);
            rc = CLI_INVALID;
        }
        memset(token, 0, sizeof token);
        sec_principal_clear(&who);
    }
    memset(pw, 0, sizeof pw);
    cli_sec_close(sec);
    config_free(cfg);
    return rc;
}
