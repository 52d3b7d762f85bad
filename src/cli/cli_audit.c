/*
 * cli_audit: `tern audit verify|search|export`, the tamper-evident audit
 * trail (sec_audit.h). Needs audit.read (auditor or admin); reading the
 * trail is itself audited. verify exits 0 only when the whole chain and
 * every seal check out with the configured audit key.
 */
#include "cli/cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/config.h"
#include "engine/engine.h"
#include "sec/keys.h"
#include "sec/sec.h"

static const char usage[] =
    "usage: tern audit -c CONF verify\n"
    "       tern audit -c CONF search [--user U] [--patient P] [--since T] [--action A]\n"
    "                                 [--limit N]\n"
    "       tern audit -c CONF export [filters] [-o FILE]\n"
    "\n"
    "verify  walks the hash chain and checks every seal with the audit key:\n"
    "        'OK' or where it breaks (changed, deleted, inserted or reordered\n"
    "        record, bad seal); exit 1 when broken or when there is no key\n"
    "search  one line per record: seq, time (UTC), who, role, action, channel,\n"
    "        patient, from where, outcome, detail\n"
    "export  a FHIR R4 Bundle of AuditEvent resources (JSON)\n"
    "\n"
    "options:\n"
    "  -c, --config CONF   the engine's configuration (security section)\n"
    "      --token TOKEN   who you are (default: $TERN_TOKEN)\n"
    "      --user U        records of this user (or token:NAME)\n"
    "      --patient P     records naming this patient id\n"
    "      --since T       at or after T: 2026-01-15, 2026-01-15T08:30:00 (UTC) or\n"
    "                      a duration ago: 30m, 2h, 7d\n"
    "      --action A      records of this action (message.view, login, ...)\n"
    "      --limit N       at most N records\n"
    "  -o, --output FILE   export: write there instead of stdout\n"
    "  -h, --help          show this help\n";

enum { OPT_TOKEN = 256, OPT_USER, OPT_PATIENT, OPT_SINCE, OPT_ACTION, OPT_LIMIT };

static bool parse_since(const char *s, int64_t *out)
{
    uint64_t ms;
    char why[128];
    if (config_parse_duration(s, &ms, why, sizeof why) == CONFIG_OK) {
        *out = sec_now_ms() - (int64_t)ms;
        return true;
    }
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end || *end) {
        memset(&tm, 0, sizeof tm);
        end = strptime(s, "%Y-%m-%d", &tm);
    }
    if (!end || *end) return false;
    *out = (int64_t)timegm(&tm) * 1000;
    return true;
}

static bool print_record(void *ctx, const sec_record *r)
{
    char when[32];
    time_t t = (time_t)(r->at / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    printf("%" PRId64 "\t%s.%03dZ\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r->seq, when,
           (int)(r->at % 1000), r->actor, r->role, r->action, *r->channel ? r->channel : "-",
           *r->patient ? r->patient : "-", r->source, r->outcome, r->detail);
    return true;
}

static int verify(sec_ctx *sec)
{
    sec_verify v;
    sec_error err = {0};
    if (sec_audit_verify(sec->db, sec->has_key ? sec->key : NULL, sec->key_len, &v, &err) !=
        SEC_OK) {
        fprintf(stderr, "tern audit: %s\n", err.text);
        return CLI_INVALID;
    }
    if (!v.ok) {
        printf("BROKEN at record %" PRId64 ": %s\n", v.broken_at, v.problem);
        return CLI_INVALID;
    }
    printf("OK: %" PRId64 " records, chain intact; %" PRId64 " seals, sealed up to record %" PRId64
           "%s\n",
           v.records, v.seals, v.sealed_upto,
           v.records > v.sealed_upto ? " (the rest is sealed at the next seal)" : "");
    if (v.key_missing) {
        printf("seals NOT checked: %s\n", sec->key_problem);
        return CLI_INVALID;
    }
    return CLI_OK;
}

int cli_audit(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"token", required_argument, NULL, OPT_TOKEN},
        {"user", required_argument, NULL, OPT_USER},
        {"patient", required_argument, NULL, OPT_PATIENT},
        {"since", required_argument, NULL, OPT_SINCE},
        {"action", required_argument, NULL, OPT_ACTION},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"output", required_argument, NULL, 'o'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *conf = NULL, *token = NULL, *output = NULL;
    sec_audit_filter f = {0};
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': conf = optarg; break;
        case 'o': output = optarg; break;
        case OPT_TOKEN: token = optarg; break;
        case OPT_USER: f.actor = optarg; break;
        case OPT_PATIENT: f.patient = optarg; break;
        case OPT_ACTION: f.action = optarg; break;
        case OPT_LIMIT:
            f.limit = atoll(optarg);
            if (f.limit <= 0) return cli_usage_error("audit", "--limit needs a positive number");
            break;
        case OPT_SINCE:
            if (!parse_since(optarg, &f.since))
                return cli_usage_error("audit", "--since takes 2026-01-15, 2026-01-15T08:30:00 "
                                                "or a duration like 7d, not '%s'",
                                       optarg);
            break;
        case 'h': fputs(usage, stdout); return CLI_OK;
        case ':': return cli_usage_error("audit", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("audit", "unknown option '%s'", argv[optind - 1]);
        }
    }
    const char *action = optind < argc ? argv[optind] : NULL;
    if (!action || (strcmp(action, "verify") && strcmp(action, "search") && strcmp(action, "export")))
        return cli_usage_error("audit", "needs a command: verify, search or export");
    if (optind + 1 < argc)
        return cli_usage_error("audit", "unexpected argument '%s'", argv[optind + 1]);
    if (!conf) return cli_usage_error("audit", "needs -c CONF");
    tern_config *cfg = cli_load_config("audit", conf);
    if (!cfg) return CLI_INVALID;
    sec_ctx *sec = NULL;
    struct keyring *keys = NULL;
    sec_principal who = {0};
    int rc;
    /* with encryption at rest the trail holds patient tokens: search by token */
    tbuf kerr = TBUF_INIT;
    if (engine_open_keyring(cfg, true, &keys, &kerr) != 0) {
        fprintf(stderr, "tern audit: %s\n", kerr.p);
        tbuf_free(&kerr);
        config_free(cfg);
        return CLI_INVALID;
    }
    tbuf_free(&kerr);
    char tok[KEYS_TOKEN_LEN + 1];
    if (keys && f.patient && *f.patient) {
        keys_token(keys, "patient", f.patient, tok);
        f.patient = tok;
    }
    if ((rc = cli_sec_open("audit", &cfg->security, &sec)) != CLI_OK ||
        (rc = cli_sec_who("audit", sec, token, &who)) != CLI_OK ||
        (rc = cli_sec_require("audit", sec, &who, SEC_AUDIT_READ, NULL)) != CLI_OK)
        goto done;
    /* what is on disk now, before this command's own records */
    sec_error err = {0};
    if (sec_audit_flush(sec->audit, &err) != SEC_OK) {
        fprintf(stderr, "tern audit: %s\n", err.text);
        rc = CLI_INVALID;
        goto done;
    }
    char detail[200];
    snprintf(detail, sizeof detail, "audit %s%s%s%s%s", action, f.actor ? " user " : "",
             f.actor ? f.actor : "", f.patient ? " patient " : "", f.patient ? f.patient : "");
    if (!strcmp(action, "verify")) {
        rc = verify(sec);
    } else if (!strcmp(action, "search")) {
        if (sec->db->ops->audit_scan(sec->db, &f, print_record, NULL, &err) != SEC_OK) {
            fprintf(stderr, "tern audit: %s\n", err.text);
            rc = CLI_INVALID;
        }
    } else {
        tbuf out = TBUF_INIT;
        if (sec_audit_export_fhir(sec->db, &f, &out, &err) != SEC_OK) {
            fprintf(stderr, "tern audit: %s\n", err.text);
            rc = CLI_INVALID;
        } else {
            FILE *o = output ? fopen(output, "w") : stdout;
            if (!o || fwrite(out.p, 1, out.len, o) != out.len) {
                fprintf(stderr, "tern audit: cannot write %s\n", output ? output : "stdout");
                rc = CLI_INVALID;
            }
            if (o && o != stdout) fclose(o);
        }
        tbuf_free(&out);
    }
    sec_record_event(sec, &who, !strcmp(action, "export") ? "audit.export" : "audit.read", NULL,
                     f.patient, "cli", rc == CLI_OK ? "ok" : "failed", detail);
done:
    sec_principal_clear(&who);
    cli_sec_close(sec);
    keyring_close(keys);
    config_free(cfg);
    return rc;
}
