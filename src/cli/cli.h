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

#endif
