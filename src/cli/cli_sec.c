/*
 * cli_sec: what the security commands (user, token, login, audit) and the
 * commands that touch the store (messages) share: opening the security
 * context of a configuration, finding who runs the command, checking the
 * role, and reading a password.
 *
 * Who runs a CLI command: with security.auth on, the holder of the token
 * given with --token or in TERN_TOKEN (a session token from `tern login` or
 * an API token); with it off, a local principal with every right, named
 * after $USER, whose actions are still audited.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "sec/sec.h"

static const char *local_user(void)
{
    const char *u = getenv("USER");
    return u && *u ? u : "unknown";
}

int cli_sec_open(const char *cmd, const config_security *cfg, sec_ctx **sec)
{
    sec_error err = {0};
    if (sec_ctx_open(cfg, sec, &err) != SEC_OK) {
        fprintf(stderr, "tern %s: %s\n", cmd, err.text);
        return CLI_INVALID;
    }
    return CLI_OK;
}

int cli_sec_who(const char *cmd, sec_ctx *sec, const char *token, sec_principal *who)
{
    if (!sec->cfg->auth) {
        who->kind = SEC_KIND_LOCAL;
        who->role = SEC_ROLE_ADMIN;
        snprintf(who->name, sizeof who->name, "%s", local_user());
        return CLI_OK;
    }
    if (!token) token = getenv("TERN_TOKEN");
    if (!token || !*token) {
        fprintf(stderr,
                "tern %s: authentication is required (security.auth): log in with 'tern login' "
                "and put the token in TERN_TOKEN, or give --token\n",
                cmd);
        sec_record_event(sec, NULL, cmd, NULL, NULL, "cli", "denied", "no token");
        return CLI_INVALID;
    }
    sec_error err = {0};
    if (sec_authenticate(sec->db, sec->cfg, token, sec_now_ms(), who, &err) != SEC_OK) {
        fprintf(stderr, "tern %s: %s\n", cmd, err.text);
        sec_record_event(sec, NULL, cmd, NULL, NULL, "cli", "denied", err.text);
        return CLI_INVALID;
    }
    return CLI_OK;
}

int cli_sec_require(const char *cmd, sec_ctx *sec, const sec_principal *who, int action,
                    const char *channel)
{
    sec_action a = (sec_action)action;
    if (sec_check(sec, who, a, channel, "cli")) return CLI_OK;
    fprintf(stderr, "tern %s: %s (role %s) may not %s; ask an admin for a role that may\n", cmd,
            who->name, sec_role_name(who->role), sec_action_name(a));
    return CLI_INVALID;
}

void cli_sec_close(sec_ctx *sec)
{
    sec_error err = {0};
    if (sec_ctx_close(sec, &err) != SEC_OK)
        fprintf(stderr, "tern: the audit trail could not be written: %s\n", err.text);
}

int cli_read_secret(const char *prompt, bool from_stdin, char *out, size_t size)
{
    bool tty = !from_stdin && isatty(STDIN_FILENO);
    if (!from_stdin && !tty) return -1;
    struct termios old, quiet;
    if (tty) {
        fprintf(stderr, "%s", prompt);
        tcgetattr(STDIN_FILENO, &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *got = fgets(out, (int)size, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (!got) return -1;
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

int cli_sec_gate(const char *cmd, const config_security *cfg, const char *token, int action,
                 sec_ctx **sec, sec_principal *who)
{
    *sec = NULL;
    int rc = cli_sec_open(cmd, cfg, sec);
    if (rc == CLI_OK) rc = cli_sec_who(cmd, *sec, token, who);
    if (rc == CLI_OK) rc = cli_sec_require(cmd, *sec, who, action, NULL);
    if (rc != CLI_OK && *sec) {
        cli_sec_close(*sec);
        *sec = NULL;
    }
    return rc;
}
