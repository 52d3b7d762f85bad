/*
 * cli: the `tern` command's subcommands and what they share.
 *
 * Each subcommand lives in its own cli_NAME.c and exposes
 * `int cli_NAME(int argc, char **argv)`, where argv[0] is the subcommand name.
 * It returns the process exit code: CLI_OK (0), CLI_INVALID (1: the input is
 * not valid / not accepted) or CLI_USAGE (2: bad options or arguments).
 * Every subcommand answers --help on stdout with exit 0, and reports an
 * unknown option with a one-line error and exit 2 (cli_usage_error).
 */
#ifndef TERN_CLI_H
#define TERN_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "base/tbuf.h"

enum { CLI_OK = 0, CLI_INVALID = 1, CLI_USAGE = 2 };

/* Prints "tern CMD: <message>" and a hint to use --help on stderr; returns
 * CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads a whole file ("-" is stdin) into out. On failure writes a message to
 * err and returns -1. */
int cli_read_file(const char *path, tbuf *out, char *err, size_t errlen);

struct tern_config;
/* Loads the configuration at path for command cmd; on failure prints every
 * error (FILE:LINE:COL) to stderr and returns NULL. */
struct tern_config *cli_load_config(const char *cmd, const char *path);

/* --- security (cli_sec.c; docs/security.md) --- */
struct config_security;
struct sec_ctx;
struct sec_principal;
/* Opens the security context of cfg; prints why not and returns CLI_INVALID. */
int cli_sec_open(const char *cmd, const struct config_security *cfg, struct sec_ctx **sec);
/* Who runs the command: the holder of token (NULL: $TERN_TOKEN) when
 * security.auth is on, else a local admin named $USER. CLI_INVALID (printed,
 * audited) without a valid token. */
int cli_sec_who(const char *cmd, struct sec_ctx *sec, const char *token, struct sec_principal *who);
/* CLI_OK when who may do action (an enum sec_action); else prints, audits
 * the refusal and returns CLI_INVALID. */
int cli_sec_require(const char *cmd, struct sec_ctx *sec, const struct sec_principal *who,
                    int action, const char *channel);
/* Flushes and seals the audit trail, then frees sec (NULL is fine). */
void cli_sec_close(struct sec_ctx *sec);
/* cli_sec_open + cli_sec_who + cli_sec_require(action): the principal in
 * *who (clear it with sec_principal_clear) and *sec open on CLI_OK; nothing
 * to close otherwise. */
int cli_sec_gate(const char *cmd, const struct config_security *cfg, const char *token, int action,
                 struct sec_ctx **sec, struct sec_principal *who);
/* Reads one line into out: from stdin when from_stdin, else from the
 * terminal without echo after prompt. -1 at end of input or without a tty. */
int cli_read_secret(const char *prompt, bool from_stdin, char *out, size_t size);

int cli_parse(int argc, char **argv);
int cli_get(int argc, char **argv);
int cli_ack(int argc, char **argv);
int cli_send(int argc, char **argv);
int cli_config(int argc, char **argv);
int cli_messages(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_units(int argc, char **argv);
int cli_validate(int argc, char **argv);
int cli_quality(int argc, char **argv);
int cli_dictionary(int argc, char **argv);
int cli_convert(int argc, char **argv);
int cli_keys(int argc, char **argv);
int cli_user(int argc, char **argv);
int cli_token(int argc, char **argv);
int cli_login(int argc, char **argv);
int cli_audit(int argc, char **argv);

#endif
