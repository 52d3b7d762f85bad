/*
 * main: the `tern` command. Dispatches to one subcommand per cli_NAME.c;
 * see cli.h for the conventions every subcommand follows.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

typedef struct command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} command;

static const command commands[] = {
    {"parse", "parse HL7 v2 messages or batches and print them as JSON", cli_parse},
    {"get", "print the values at HL7 paths (PID-5.1, OBX[2]-5, ...)", cli_get},
    {"ack", "print the acknowledgement (ACK) for a message", cli_ack},
    {"send", "send HL7 messages over MLLP and print the ACKs", cli_send},
    {"serve", "run the engine on a configuration (channels, store, queues)", cli_serve},
    {"config", "check a configuration file", cli_config},
    {"messages", "list, show, reprocess, edit and prune stored messages", cli_messages},
    {"validate", "check messages against a channel's validation rules", cli_validate},
    {"quality", "data quality per channel: score, warnings, rejections, completeness", cli_quality},
    {"dictionary", "write the data dictionary (Markdown or HTML) of a configuration", cli_dictionary},
    {"units", "convert a value or reference range between UCUM units", cli_units},
    {"convert", "convert HL7 v2 messages to FHIR R4 transaction Bundles (JSON)", cli_convert},
    {"keys", "master key and keyring that encrypt PHI at rest (init, status, rotate)", cli_keys},
    {"user", "add, list, disable, enable users; passwords and TOTP (docs/security.md)", cli_user},
    {"token", "create, list, revoke API tokens and certificates of system identities", cli_token},
    {"login", "log in with password and TOTP code; prints a session token", cli_login},
    {"audit", "verify, search and export (FHIR AuditEvent) the audit trail", cli_audit},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: tern <command> [options] [arguments]\n\n"
                 "Tern is a healthcare integration engine (HL7 v2, FHIR).\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-10s %s\n  %-10s %s\n", "help", "show this list, or 'help CMD' for one",
            "version", "print the version");
    fprintf(out, "\nEvery command takes --help. Exit codes: 0 ok, 1 invalid input, "
                 "2 usage error.\n");
}

static const command *find(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(commands[i].name, name)) return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h")) {
        if (argc > 2 && argv[2][0] != '-') {
            const command *c = find(argv[2]);
            if (!c) {
                fprintf(stderr, "tern: unknown command '%s'. See 'tern help'.\n", argv[2]);
                return CLI_USAGE;
            }
            char *hargv[] = {(char *)c->name, "--help", NULL};
            return c->run(2, hargv);
        }
        if (argc > 2 && strcmp(argv[2], "--help") && strcmp(argv[2], "-h")) {
            fprintf(stderr, "tern help: unknown option '%s'. See 'tern help'.\n", argv[2]);
            return CLI_USAGE;
        }
        usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(name, "version") || !strcmp(name, "--version")) {
        if (argc > 2 && strcmp(argv[2], "--help") && strcmp(argv[2], "-h")) {
            fprintf(stderr, "tern version: unknown option '%s'. See 'tern help'.\n", argv[2]);
            return CLI_USAGE;
        }
        printf("tern %s\n", TERN_VERSION);
        return CLI_OK;
    }
    const command *c = find(name);
    if (!c) {
        fprintf(stderr, "tern: unknown command '%s'. See 'tern help'.\n", name);
        return CLI_USAGE;
    }
    return c->run(argc - 1, argv + 1);
}
