/*
 * cli_keys: `tern keys init|status|rotate`, the master key and the keyring
 * that encrypt PHI at rest (sec/keys.h, docs/security-at-rest.md).
 *
 *   init --key-file FILE          a new random master key (mode 0600)
 *   status -c CONF                the keyring's data keys
 *   rotate -c CONF --new-key-file FILE | --new-key-env NAME
 *                                 re-wraps every key under a new master key;
 *                                 the configuration must then name it
 *   rotate -c CONF --data-key     a new data key seals from now on (restart
 *                                 tern serve to use it); old data stays
 *                                 readable
 *
 * Only the keyring file is rewritten: stored data is never re-encrypted,
 * which is why a master key rotation takes milliseconds whatever the size
 * of the store.
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "engine/config.h"
#include "sec/keys.h"
#include "sec/sec.h"

static const char keys_usage[] =
    "usage: tern keys init --key-file FILE\n"
    "       tern keys status -c CONF\n"
    "       tern keys rotate -c CONF (--new-key-file FILE | --new-key-env NAME | --data-key)\n"
    "\n"
    "Manages the keys that encrypt PHI at rest (message bodies, patient ids,\n"
    "error texts) with AES-256-GCM. The master key lives outside the store: in\n"
    "a file (encryption.key_file, mode 0600) or an environment variable\n"
    "(encryption.key_env, default TERN_MASTER_KEY, 64 hex digits). It wraps the\n"
    "data keys kept in the keyring beside the store (STORE-keys.json).\n"
    "\n"
    "  init      writes a new random master key to FILE (which must not exist)\n"
    "  status    lists the keyring's data keys\n"
    "  rotate    --new-key-file/--new-key-env: re-wraps the keyring under a new\n"
    "            master key, then point the configuration at it;\n"
    "            --data-key: adds a data key that seals new data from the next\n"
    "            start of tern serve on\n"
    "\n"
    "options:\n"
    "  -c, --config FILE      the configuration (store path, current master key)\n"
    "      --key-file FILE    init: where to write the new master key\n"
    "      --new-key-file F   rotate: the new master key's file\n"
    "      --new-key-env NAME rotate: the environment variable holding it\n"
    "      --data-key         rotate: add a data key\n"
    "  -h, --help             show this help\n";

typedef struct keys_opts {
    const char *conf, *key_file, *new_file, *new_env;
    bool data_key;
} keys_opts;

/* The current master key and keyring path of the configuration. */
static int load_current(const keys_opts *o, unsigned char master[KEYS_LEN], char **ring,
                        const char *cmd)
{
    tern_config *cfg = cli_load_config(cmd, o->conf);
    if (!cfg) return CLI_USAGE;
    /* keys are an admin's business, and every use is audited */
    sec_ctx *sec = NULL;
    sec_principal who = {0};
    if (cli_sec_gate(cmd, &cfg->security, NULL, SEC_USER_ADMIN, &sec, &who) != CLI_OK) {
        config_free(cfg);
        return CLI_INVALID;
    }
    sec_record_event(sec, &who, "config.keys", NULL, NULL, "cli", "ok", cmd);
    sec_principal_clear(&who);
    cli_sec_close(sec);
    int rc = CLI_OK;
    tbuf err = TBUF_INIT;
    if (!cfg->encryption.enabled) {
        fprintf(stderr, "tern %s: encryption is turned off in %s (encryption.enabled: false)\n",
                cmd, o->conf);
        rc = CLI_INVALID;
    } else if (keys_load_master(cfg->encryption.key_file, cfg->encryption.key_env, master,
                                &err) != 0) {
        fprintf(stderr, "tern %s: %s\n", cmd, err.p);
        rc = CLI_INVALID;
    } else {
        *ring = keys_ring_path(cfg->store.path);
    }
    tbuf_free(&err);
    config_free(cfg);
    return rc;
}

static int keys_status(const keys_opts *o)
{
    unsigned char master[KEYS_LEN];
    char *ring = NULL;
    int rc = load_current(o, master, &ring, "keys status");
    if (rc != CLI_OK) return rc;
    tbuf out = TBUF_INIT, err = TBUF_INIT;
    if (keys_describe(ring, master, &out, &err) != 0) {
        fprintf(stderr, "tern keys status: %s\n", err.p);
        rc = CLI_INVALID;
    } else {
        fputs(out.p, stdout);
    }
    OPENSSL_cleanse(master, sizeof master);
    free(ring);
    tbuf_free(&out);
    tbuf_free(&err);
    return rc;
}

static int keys_rotate(const keys_opts *o)
{
    int modes = (o->new_file != NULL) + (o->new_env != NULL) + o->data_key;
    if (modes != 1)
        return cli_usage_error("keys", "rotate needs one of --new-key-file, --new-key-env, "
                                       "--data-key");
    unsigned char master[KEYS_LEN], fresh[KEYS_LEN];
    char *ring = NULL;
    int rc = load_current(o, master, &ring, "keys rotate");
    if (rc != CLI_OK) return rc;
    tbuf err = TBUF_INIT;
    if (o->data_key) {
        uint32_t id = 0;
        if (keys_add_data_key(ring, master, &id, &err) != 0) {
            rc = CLI_INVALID;
        } else {
            printf("data key %u added to %s; it seals new data once tern serve restarts\n",
                   (unsigned)id, ring);
        }
    } else if (keys_load_master(o->new_file, o->new_env, fresh, &err) != 0 ||
               keys_rotate_master(ring, master, fresh, &err) != 0) {
        rc = CLI_INVALID;
    } else {
        printf("keyring %s re-wrapped under the new master key; set encryption.%s to %s in "
               "the configuration (the old key no longer opens it)\n",
               ring, o->new_file ? "key_file" : "key_env", o->new_file ? o->new_file : o->new_env);
    }
    if (rc != CLI_OK) fprintf(stderr, "tern keys rotate: %s\n", err.p);
    OPENSSL_cleanse(master, sizeof master);
    OPENSSL_cleanse(fresh, sizeof fresh);
    free(ring);
    tbuf_free(&err);
    return rc;
}

int cli_keys(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},     {"key-file", required_argument, NULL, 'k'},
        {"new-key-file", required_argument, NULL, 'n'}, {"new-key-env", required_argument, NULL, 'e'},
        {"data-key", no_argument, NULL, 'd'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(keys_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    const char *action = argv[1];
    keys_opts o = {0};
    int c;
    optind = 2;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o.conf = optarg; break;
        case 'k': o.key_file = optarg; break;
        case 'n': o.new_file = optarg; break;
        case 'e': o.new_env = optarg; break;
        case 'd': o.data_key = true; break;
        case 'h': fputs(keys_usage, stdout); return CLI_OK;
        default:
            return cli_usage_error("keys", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("keys", "unexpected argument '%s'", argv[optind]);
    if (!strcmp(action, "init")) {
        if (!o.key_file) return cli_usage_error("keys", "init needs --key-file FILE");
        tbuf err = TBUF_INIT;
        int rc = keys_generate_master(o.key_file, &err);
        if (rc != 0) fprintf(stderr, "tern keys init: %s\n", err.p);
        else printf("new master key written to %s (mode 0600); keep a copy apart from the store's "
                    "backups: without it the encrypted data cannot be read\n", o.key_file);
        tbuf_free(&err);
        return rc == 0 ? CLI_OK : CLI_INVALID;
    }
    if (!o.conf) return cli_usage_error("keys", "%s needs the configuration: -c FILE", action);
    if (!strcmp(action, "status")) return keys_status(&o);
    if (!strcmp(action, "rotate")) return keys_rotate(&o);
    return cli_usage_error("keys", "unknown action '%s' (init, status, rotate)", action);
}
